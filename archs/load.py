"""Architecture YAML -> `SpatialArch`, with every problem reported as file:line: path: message."""

from __future__ import annotations

import difflib
from pathlib import Path

from archs.model import ComputeArray, Dram, Operation, RegisterFile, SpatialArch, StorageLevel
from einsum_ir.spec import Reader, SpecError

PRESETS_DIR = Path(__file__).parent / "presets"
GIB = 2**30
TOP_KEYS = ("architecture", "kind", "description", "clock_ghz", "word_bytes", "dram", "levels",
            "arrays")
DRAM_KEYS = ("bandwidth_gib_per_s", "bandwidth_gb_per_s", "access_bytes", "energy_pj_per_access")
LEVEL_KEYS = ("name", "capacity_bytes", "row_bytes", "read_energy_pj_per_row",
              "write_energy_pj_per_row", "area_um2")
ARRAY_KEYS = ("name", "shape", "operations", "register_file", "unit_area_um2")
OP_KEYS = ("cycles", "energy_pj", "composed_of")
RF_KEYS = ("entries", "read_energy_pj", "write_energy_pj", "area_um2")


def preset_names() -> tuple[str, ...]:
    """Names of the presets in `archs/presets/`, sorted."""
    return tuple(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))


def load_arch(path_or_name: str | Path) -> SpatialArch:
    """Load an architecture from a YAML file or a preset name; `SpecError` lists all problems."""
    text = str(path_or_name)
    if text in preset_names():
        return _load(Reader.from_file(PRESETS_DIR / f"{text}.yaml"))
    path = Path(path_or_name)
    if not path.exists() and not text.endswith((".yaml", ".yml")):
        from einsum_ir.spec import Problem

        close = difflib.get_close_matches(text, preset_names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SpecError([Problem(text, 0, 0, "", f"no such file or preset{hint} "
                                                 f"(presets: {', '.join(preset_names())})")])
    return _load(Reader.from_file(path))


def load_arch_text(text: str, file: str = "<string>") -> SpatialArch:
    """Load an architecture from YAML text."""
    return _load(Reader.from_text(text, file))


def _positive(r: Reader | None, integer: bool = False) -> float:
    if r is None:
        return 0.0
    if not r.check("int" if integer else "number"):
        return 0.0
    value = float(r.value)
    if value <= 0:
        r.error(f"expected a positive number, got {r.value}")
    return value


def _non_negative(r: Reader | None) -> float:
    if r is None or not r.check("number"):
        return 0.0
    value = float(r.value)
    if value < 0:
        r.error(f"expected a number >= 0, got {r.value}")
    return value


def _load(root: Reader) -> SpatialArch:
    root.finish()
    if not root.is_map:
        root.error("expected a mapping with keys " + ", ".join(TOP_KEYS))
        root.finish()
    name = root.req("architecture", "str")
    kind = root.opt("kind", "str")
    if kind is not None and kind.value != "spatial":
        kind.error(f"expected kind 'spatial', got {kind.value!r}")
    desc = root.opt("description", "str")
    clock = _positive(root.req("clock_ghz", "number"))
    word = _positive(root.req("word_bytes", "int"), integer=True)
    dram = _dram(root.req("dram", "map"))
    levels = tuple(_level(r) for r in _list(root, "levels"))
    arrays = tuple(_array(r) for r in _list(root, "arrays"))
    root.done(TOP_KEYS)
    _check_unique(root, "levels", [lv.name for lv in levels])
    _check_unique(root, "arrays", [a.name for a in arrays])
    root.finish()
    return SpatialArch(
        name=str(name.value) if name else "",
        clock_hz=clock * 1e9,
        word_bytes=int(word),
        dram=dram,
        levels=levels,
        arrays=arrays,
        description=str(desc.value) if desc else "",
        source=root.file,
    )


def _list(root: Reader, key: str) -> list[Reader]:
    r = root.req(key, "list")
    items = list(r.each()) if r else []
    if r is not None and not items:
        r.error(f"expected at least one entry in {key}")
    return items


def _check_unique(root: Reader, key: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        r = root.get(key)
        (r or root).error(f"duplicate names in {key}: {', '.join(dupes)}")


def _dram(r: Reader | None) -> Dram:
    if r is None:
        return Dram(0.0, 1, 0.0)
    gib, gb = r.get("bandwidth_gib_per_s"), r.get("bandwidth_gb_per_s")
    if (gib is None) == (gb is None):
        r.error("give exactly one of bandwidth_gib_per_s (2^30 B/s) or bandwidth_gb_per_s (1e9 B/s)")
        bandwidth = 0.0
    else:
        bandwidth = _positive(gib) * GIB if gib is not None else _positive(gb) * 1e9
    access = _positive(r.req("access_bytes", "int"), integer=True)
    energy = _non_negative(r.req("energy_pj_per_access", "number"))
    r.done(DRAM_KEYS)
    return Dram(bandwidth, int(access) or 1, energy)


def _level(r: Reader) -> StorageLevel:
    name = r.req("name", "str")
    level = StorageLevel(
        name=str(name.value) if name else "",
        capacity_bytes=int(_positive(r.req("capacity_bytes", "int"), integer=True)),
        row_bytes=int(_positive(r.req("row_bytes", "int"), integer=True)),
        read_energy_pj_per_row=_non_negative(r.req("read_energy_pj_per_row", "number")),
        write_energy_pj_per_row=_non_negative(r.req("write_energy_pj_per_row", "number")),
        area_um2=_non_negative(r.opt("area_um2", "number")),
    )
    r.done(LEVEL_KEYS)
    return level


def _array(r: Reader) -> ComputeArray:
    name = r.req("name", "str")
    rows, cols = 1, 1
    shape = r.req("shape", "list")
    if shape is not None:
        dims = [int(_positive(d, integer=True)) for d in shape.each()]
        if len(dims) not in (1, 2):
            shape.error(f"expected [rows, cols] or [lanes], got {shape.value}")
        elif len(dims) == 1:
            cols = dims[0]
        else:
            rows, cols = dims
    ops = _operations(r.req("operations", "map"))
    rf_r = r.opt("register_file", "map")
    rf = None
    if rf_r is not None:
        rf = RegisterFile(
            entries=int(_positive(rf_r.req("entries", "int"), integer=True)),
            read_energy_pj=_non_negative(rf_r.req("read_energy_pj", "number")),
            write_energy_pj=_non_negative(rf_r.req("write_energy_pj", "number")),
            area_um2=_non_negative(rf_r.opt("area_um2", "number")),
        )
        rf_r.done(RF_KEYS)
    areas: list[tuple[str, float]] = []
    area_r = r.opt("unit_area_um2", "map")
    if area_r is not None:
        areas = [(k, _non_negative(v)) for k, v in area_r.items()]
    r.done(ARRAY_KEYS)
    return ComputeArray(
        name=str(name.value) if name else "",
        rows=rows,
        cols=cols,
        operations=ops,
        register_file=rf,
        unit_area_um2=tuple(areas),
    )


def _operations(r: Reader | None) -> tuple[Operation, ...]:
    if r is None:
        return ()
    ops: list[Operation] = []
    readers: dict[str, Reader] = {}
    for key, child in r.items():
        readers[key] = child
        if not child.check("map"):
            continue
        comp_r = child.opt("composed_of", "map")
        composed = tuple((k, int(_positive(v, integer=True))) for k, v in comp_r.items()) if comp_r else ()
        if composed and (child.get("cycles") or child.get("energy_pj")):
            child.error("a composed operation takes its cycles and energy from its parts; "
                        "remove cycles/energy_pj")
        cycles = _positive(child.opt("cycles", "number")) if not composed else 0.0
        energy = _non_negative(child.opt("energy_pj", "number")) if not composed else 0.0
        if not composed and child.get("cycles") is None:
            cycles = 1.0
        child.done(OP_KEYS)
        ops.append(Operation(key, cycles, energy, composed))
    names = {o.name for o in ops}
    for op in ops:
        for part, _ in op.composed_of:
            if part not in names:
                readers[op.name].error(f"composed_of names unknown operation {part!r}; "
                                       f"defined: {', '.join(sorted(names))}")
            elif _reaches(ops, part, op.name):
                readers[op.name].error(f"operation {op.name!r} is composed of itself")
    return tuple(ops)


def _reaches(ops: list[Operation], start: str, target: str) -> bool:
    by_name = {o.name: o for o in ops}
    stack, seen = [start], set()
    while stack:
        name = stack.pop()
        if name == target:
            return True
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        stack.extend(p for p, _ in by_name[name].composed_of)
    return False
