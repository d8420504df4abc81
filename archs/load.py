"""Architecture YAML -> `SpatialArch` or `GpuArch`; problems as file:line:col: path: message."""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attnsim.archs.datasheet import derived_calibration
from attnsim.archs.gpu import GpuArch, load_gpu
from attnsim.archs.model import (
    ComputeArray,
    Dram,
    Operation,
    RegisterFile,
    SpatialArch,
    StorageLevel,
)
from attnsim.archs.overrides import apply_overrides
from attnsim.einsum_ir.spec import Problem, Reader, SpecError, path_exists

PRESETS_DIR = Path(__file__).parent / "presets"
GIB = 2**30
KINDS = ("spatial", "gpu")
Arch = SpatialArch | GpuArch
TOP_KEYS = (
    "architecture",
    "kind",
    "description",
    "clock_ghz",
    "word_bytes",
    "dram",
    "levels",
    "arrays",
)
DRAM_KEYS = ("bandwidth_gib_per_s", "bandwidth_gb_per_s", "access_bytes", "energy_pj_per_access")
LEVEL_KEYS = (
    "name",
    "capacity_bytes",
    "row_bytes",
    "read_energy_pj_per_row",
    "write_energy_pj_per_row",
    "area_um2",
    "area_table_um2",
)
ARRAY_KEYS = ("name", "shape", "operations", "register_file", "unit_area_um2")
OP_KEYS = ("cycles", "energy_pj", "composed_of", "absorbs")
RF_KEYS = (
    "entries",
    "read_energy_pj",
    "write_energy_pj",
    "base_area_um2",
    "area_um2_per_address_bit",
    "base_entries",
)


def preset_names(kind: str | None = None) -> tuple[str, ...]:
    """Names of the presets in `archs/presets/`, sorted; only those of `kind` when given."""
    names = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
    return tuple(n for n in names if kind is None or preset_kind(n) == kind)


def preset_kind(name: str) -> str:
    """The `kind:` of preset `name` (`spatial` when absent or unreadable)."""
    root = Reader.from_file(preset_path(name))
    kind = root.get("kind") if root.is_map and not root.problems else None
    value = kind.value if kind is not None else None
    return value if isinstance(value, str) else "spatial"


def preset_path(name: str) -> Path:
    """The YAML file of preset `name` (which may not exist)."""
    return PRESETS_DIR / f"{name}.yaml"


def load_arch(path_or_name: str | Path, overrides: Mapping[str, Any] | None = None) -> Arch:
    """Load an architecture from a YAML file or a preset name; `SpecError` lists all problems.

    `overrides` (names and units of `archs.overrides.OVERRIDES`, e.g. `{"buffer_bytes":
    "8MiB"}`) are applied after loading; one the architecture cannot take is a `SpecError`.
    A GPU without a calibration file gets one derived from a calibrated preset of its
    architecture or from its datasheet (`archs.datasheet`; `{"calibration": "none"}`: the
    datasheet alone, even for a calibrated GPU).
    """
    return apply_overrides(_load_base(path_or_name), overrides or {})


def _load_base(path_or_name: str | Path) -> Arch:
    text = str(path_or_name)
    if text in preset_names():
        return _load_preset(text)
    path = Path(path_or_name)
    if not path_exists(path) and not text.endswith((".yaml", ".yml")):
        close = difflib.get_close_matches(text, preset_names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        message = f"no such file or preset{hint} (presets: {', '.join(preset_names())})"
        raise SpecError([Problem(text, 0, 0, "", message)])
    return _with_derived(_load(Reader.from_file(path)))


@functools.cache
def _load_preset(name: str) -> Arch:
    """A preset, read once per process, with a derived calibration where it has none."""
    return _with_derived(_load_raw_preset(name))


@functools.cache
def _load_raw_preset(name: str) -> Arch:
    """A preset as its file states it, read once per process.

    Architectures are frozen values, and a GPU preset's calibration file alone took most of
    a second to read.
    """
    return _load(Reader.from_file(preset_path(name)))


@functools.cache
def _calibrated_gpus() -> tuple[GpuArch, ...]:
    """The GPU presets with a calibration file of their own, by name."""
    presets = (_load_raw_preset(n) for n in preset_names("gpu"))
    return tuple(a for a in presets if isinstance(a, GpuArch) and a.calibration is not None)


def _with_derived(arch: Arch) -> Arch:
    """A GPU without a calibration file gets a derived one (`archs.datasheet`)."""
    if not isinstance(arch, GpuArch) or arch.calibration is not None:
        return arch
    return dataclasses.replace(arch, calibration=derived_calibration(arch, _calibrated_gpus()))


def load_spatial_arch(path_or_name: str | Path) -> SpatialArch:
    """`load_arch` for callers that need a spatial accelerator (a GPU file is a `SpecError`)."""
    arch = load_arch(path_or_name)
    if not isinstance(arch, SpatialArch):
        where = arch.source or str(path_or_name)
        message = "expected a spatial architecture, got a GPU"
        raise SpecError([Problem(where, 0, 0, "kind", message)])
    return arch


def load_arch_text(text: str, file: str = "<string>") -> Arch:
    """Load an architecture from YAML text (`file` names it in messages)."""
    return _with_derived(_load(Reader.from_text(text, file)))


# -- scalar checks: each takes a reader (None when missing or mistyped, already reported)


def _pos_int(r: Reader | None, default: int = 0) -> int:
    if r is None or not r.check("int"):
        return default
    if r.value <= 0:
        r.error(f"expected a positive integer, got {r.value}")
        return default
    return int(r.value)


def _pos_num(r: Reader | None, default: float = 0.0) -> float:
    if r is None or not r.check("number"):
        return default
    value = float(r.value)
    if not value > 0:
        r.error(f"expected a positive number, got {r.value}")
        return default
    return value


def _non_negative(r: Reader | None, default: float = 0.0) -> float:
    if r is None or not r.check("number"):
        return default
    value = float(r.value)
    if not value >= 0:
        r.error(f"expected a number >= 0, got {r.value}")
        return default
    return value


def _text(r: Reader | None) -> str:
    return str(r.value) if r is not None else ""


# -- sections


def _load(root: Reader) -> Arch:
    root.finish()  # YAML syntax errors: nothing below can be read
    if not root.is_map:
        root.error("expected a mapping with keys " + ", ".join(TOP_KEYS))
        root.finish()
    kind = root.opt("kind", "str")
    if kind is not None and kind.value == "gpu":
        return load_gpu(root)
    name = root.req("architecture", "str")
    if kind is not None and kind.value not in KINDS:
        kind.error(f"expected kind 'spatial' or 'gpu', got {kind.value!r}")
    desc = root.opt("description", "str")
    clock_ghz = _pos_num(root.req("clock_ghz", "number"))
    word_bytes = _pos_int(root.req("word_bytes", "int"), default=1)
    dram = _dram(root.req("dram", "map"))
    level_readers = _list(root, "levels")
    array_readers = _list(root, "arrays")
    levels = tuple(_level(r) for r in level_readers)
    arrays = tuple(_array(r) for r in array_readers)
    root.done(TOP_KEYS)
    _check_unique("level", level_readers)
    _check_unique("array", array_readers)
    root.finish()
    return SpatialArch(
        name=_text(name),
        clock_hz=clock_ghz * 1e9,
        word_bytes=word_bytes,
        dram=dram,
        levels=levels,
        arrays=arrays,
        description=_text(desc),
        source=root.file,
    )


def _list(root: Reader, key: str) -> list[Reader]:
    r = root.req(key, "list")
    items = list(r.each()) if r else []
    if r is not None and not items:
        r.error(f"expected at least one entry in {key}")
    return items


def _check_unique(what: str, readers: list[Reader]) -> None:
    first_line: dict[str, int] = {}
    for r in readers:
        name_r = r.get("name") if r.is_map else None
        if name_r is None or not isinstance(name_r.value, str):
            continue
        if name_r.value in first_line:
            name_r.error(
                f"duplicate {what} name {name_r.value!r} "
                f"(first defined at line {first_line[name_r.value]})"
            )
        else:
            first_line[name_r.value] = name_r.line


def _dram(r: Reader | None) -> Dram:
    if r is None:
        return Dram(0.0, 1, 0.0)
    gib, gb = r.get("bandwidth_gib_per_s"), r.get("bandwidth_gb_per_s")
    bandwidth = 0.0
    if (gib is None) == (gb is None):
        r.error(
            "give exactly one of bandwidth_gib_per_s (2^30 B/s) or bandwidth_gb_per_s (1e9 B/s)"
        )
    elif gib is not None:
        bandwidth = _pos_num(gib) * GIB
    else:
        bandwidth = _pos_num(gb) * 1e9
    access = _pos_int(r.req("access_bytes", "int"), default=1)
    energy = _non_negative(r.req("energy_pj_per_access", "number"))
    r.done(DRAM_KEYS)
    return Dram(bandwidth, access, energy)


def _level(r: Reader) -> StorageLevel:
    if not r.check("map"):
        return StorageLevel("", 1, 1, 0.0, 0.0)
    capacity = _pos_int(r.req("capacity_bytes", "int"))
    row_r = r.req("row_bytes", "int")
    row = _pos_int(row_r)
    if row_r is not None and capacity and row and capacity % row:
        row_r.error(f"capacity_bytes {capacity} is not a whole number of {row}-byte rows")
    fixed, table = r.opt("area_um2", "number"), r.opt("area_table_um2", "list")
    if fixed is not None and table is not None:
        r.error("give area_um2 (fixed) or area_table_um2 (by capacity), not both")
    level = StorageLevel(
        name=_text(r.req("name", "str")),
        capacity_bytes=capacity,
        row_bytes=row,
        read_energy_pj_per_row=_non_negative(r.req("read_energy_pj_per_row", "number")),
        write_energy_pj_per_row=_non_negative(r.req("write_energy_pj_per_row", "number")),
        fixed_area_um2=_non_negative(fixed),
        area_table_um2=_area_table(table) if table is not None else (),
    )
    r.done(LEVEL_KEYS)
    return level


def _area_table(r: Reader) -> tuple[tuple[int, int, float], ...]:
    points: list[tuple[int, int, float]] = []
    for entry in r.each():
        cells = list(entry.each()) if entry.check("list") else None
        if cells is None:
            continue
        if len(cells) != 3:
            entry.error(f"expected [capacity_bytes, row_bits, area_um2], got {entry.value}")
            continue
        point = (_pos_int(cells[0]), _pos_int(cells[1]), _pos_num(cells[2]))
        if points and point[0] <= points[-1][0]:
            entry.error(
                f"capacities must increase down the table; {point[0]} follows {points[-1][0]}"
            )
            continue
        points.append(point)
    if not points:
        r.error("expected at least one [capacity_bytes, row_bits, area_um2] point")
    return tuple(points)


def _array(r: Reader) -> ComputeArray:
    if not r.check("map"):
        return ComputeArray("", 1, 1, ())
    name = r.req("name", "str")
    rows, cols = _shape(r.req("shape", "list"))
    ops = _operations(r.req("operations", "map"))
    rf_r = r.opt("register_file", "map")
    rf = _register_file(rf_r) if rf_r is not None else None
    areas: list[tuple[str, float]] = []
    area_r = r.opt("unit_area_um2", "map")
    known = [o.name for o in ops]
    for unit, value in area_r.items() if area_r is not None else ():
        if ops and unit not in known:
            value.error(
                f"unknown operation {unit!r}{_hint(unit, known)} "
                f"operations of this array: {', '.join(known)}"
            )
        areas.append((unit, _non_negative(value)))
    r.done(ARRAY_KEYS)
    return ComputeArray(_text(name), rows, cols, ops, rf, tuple(areas))


def _shape(r: Reader | None) -> tuple[int, int]:
    if r is None:
        return 1, 1
    dims = [_pos_int(d, default=1) for d in r.each()]
    if len(dims) == 1:
        return 1, dims[0]
    if len(dims) == 2:
        return dims[0], dims[1]
    r.error(f"expected [rows, cols] or [lanes], got {r.value}")
    return 1, 1


def _register_file(r: Reader) -> RegisterFile:
    rf = RegisterFile(
        entries=_pos_int(r.req("entries", "int"), default=1),
        read_energy_pj=_non_negative(r.req("read_energy_pj", "number")),
        write_energy_pj=_non_negative(r.req("write_energy_pj", "number")),
        base_area_um2=_non_negative(r.opt("base_area_um2", "number")),
        area_um2_per_address_bit=_non_negative(r.opt("area_um2_per_address_bit", "number")),
        base_entries=_pos_int(r.opt("base_entries", "int"), default=4),
    )
    r.done(RF_KEYS)
    return rf


def _hint(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ";"


def _operations(r: Reader | None) -> tuple[Operation, ...]:
    if r is None:
        return ()
    pairs = list(r.items())
    known = [k for k, _ in pairs]
    ops: list[Operation] = []
    part_readers: dict[str, Reader] = {}
    for key, child in pairs:
        if not child.check("map"):
            continue
        op, comp_r = _operation(key, child, known)
        if comp_r is not None:
            part_readers[key] = comp_r
        ops.append(op)
    for name, path in _cycles(ops).items():
        part_readers[name].error(f"composition cycle: {' -> '.join(path)}")
    if not pairs:
        r.error("expected at least one operation")
    return tuple(ops)


def _operation(name: str, r: Reader, known: list[str]) -> tuple[Operation, Reader | None]:
    comp_r = r.opt("composed_of", "map")
    composed: list[tuple[str, int]] = []
    for part, count_r in comp_r.items() if comp_r is not None else ():
        if part not in known:
            count_r.error(
                f"unknown operation {part!r}{_hint(part, known)} "
                f"operations of this array: {', '.join(known)}"
            )
        else:
            composed.append((part, _pos_int(count_r, default=1)))
    if comp_r is not None and not comp_r.value:
        comp_r.error("expected at least one {operation: count} entry")
    cycles_r, energy_r = r.get("cycles"), r.get("energy_pj")
    if comp_r is not None and (cycles_r is not None or energy_r is not None):
        r.error(
            "a composed operation takes its cycles and energy from its parts; "
            "remove cycles/energy_pj"
        )
    cycles = _pos_num(r.opt("cycles", "number"), default=1.0) if comp_r is None else 0.0
    energy = _non_negative(r.opt("energy_pj", "number")) if comp_r is None else 0.0
    absorbs: list[str] = []
    absorbs_r = r.opt("absorbs", "list")
    for item in absorbs_r.each() if absorbs_r is not None else ():
        if not item.check("str"):
            continue
        if item.value not in known:
            item.error(
                f"unknown operation {item.value!r}{_hint(item.value, known)} "
                f"operations of this array: {', '.join(known)}"
            )
        elif item.value == name:
            item.error(f"operation {name!r} cannot absorb itself")
        else:
            absorbs.append(item.value)
    r.done(OP_KEYS)
    return Operation(name, cycles, energy, tuple(composed), tuple(absorbs)), comp_r


def _cycles(ops: list[Operation]) -> dict[str, list[str]]:
    """Each composition cycle once, keyed by its first operation in declaration order."""
    parts = {o.name: [p for p, _ in o.composed_of] for o in ops}
    found: dict[str, list[str]] = {}
    on_cycle: set[str] = set()
    for start in parts:
        if start in on_cycle:
            continue
        stack: list[list[str]] = [[start]]
        seen: set[str] = set()
        while stack and start not in found:
            path = stack.pop()
            for nxt in parts.get(path[-1], []):
                if nxt == start:
                    found[start] = [*path, start]
                    on_cycle.update(path)
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append([*path, nxt])
    return found
