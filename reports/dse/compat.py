"""Check-time cross checks of what a sweep block selects, so `run` does not fail on input.

Overrides are checked against every architecture a block can select (`check_overrides`).
For every combination of the categorical choices a block makes (design, arch, preset,
cascade, mapper, workload) this checks that the mapper maps onto the architecture's kind
(`mappers.registry.arch_problem`) and that the workload's sizes bind the cascade's ranks
(`einsum_ir.sizes.resolve_sizes`). Numeric paths do not change either answer, so the
combinations stay few even when the sweep is huge.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from typing import Any

from attnsim.archs import overrides as O
from attnsim.einsum_ir.spec import Reader
from attnsim.reports.dse.design_space import Tables

CHOICES = ("design", "arch", "arch.preset", "cascade", "mapper", "workload")
MAX_COMBINATIONS = 10_000  # beyond this, the first ones are checked (a bound on check's time)


def check_block(r: Reader, t: Tables, block: Any) -> None:
    """Record a located problem for each mapper/arch or workload/cascade mismatch of `block`."""
    located = {(p.line, p.column) for p in r.problems}  # one problem per node is enough
    for index, group in _groups(block):
        for combo in itertools.islice(_product(group), MAX_COMBINATIONS):
            for path, message in _problems(combo, t, _size_names(group)):
                node = _node(r, path, index) or r
                if (node.line, node.column) not in located:
                    located.add((node.line, node.column))
                    node.error(message)


def _groups(block: Any) -> Iterator[tuple[int | None, dict[str, list[Any]]]]:
    """(row index or None, path -> its choices) for each independent part of the block."""
    fixed = {k: [v] for k, v in block.fixed.items()}
    if block.rows:
        for i, row in enumerate(block.rows):
            yield i, {**fixed, **{k: [v] for k, v in row.items()}}
    elif block.space:
        space = {k: s.values for k, s in block.space.items() if s.kind == "choice"}
        ranges: dict[str, list[Any]] = {k: [] for k, s in block.space.items() if s.kind != "choice"}
        yield None, {**fixed, **ranges, **space}
    else:
        yield None, {**fixed, **block.grid}


def _product(group: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    keys = [k for k in CHOICES if group.get(k)]
    for values in itertools.product(*(dict.fromkeys(map(_key, group[k])) for k in keys)):
        yield dict(zip(keys, values, strict=True))


def _key(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) else repr(value)


def _size_names(group: dict[str, list[Any]]) -> set[str]:
    """Rank names a block itself binds (swept sizes; a swept length binds P and M)."""
    names = {k.removeprefix("workload.sizes.") for k in group if k.startswith("workload.sizes.")}
    if "workload.seq_len" in group:
        names |= {"P", "M"}
    return names


def _problems(combo: dict[str, Any], t: Tables, swept: set[str]) -> list[tuple[str, str]]:
    """(the path to blame, message) for each mismatch of one combination of choices."""
    from attnsim.mappers.registry import arch_problem, get_mapper, mapper_names

    design = combo.get("design") or (next(iter(t.designs)) if len(t.designs) == 1 else None)
    d = t.designs.get(design) if isinstance(design, str) else None
    if not isinstance(d, dict) or not all(k in d for k in ("arch", "cascade", "mapper")):
        return []  # no design chosen, or a half-read one: reported elsewhere
    arch, mapper = str(combo.get("arch", d["arch"])), str(combo.get("mapper", d["mapper"]))
    entry = t.mappers.get(mapper)
    if entry is None or entry["name"] not in mapper_names():
        return []
    name, out = entry["name"], []
    kind, arch_desc = _arch_kind(t, arch, combo.get("arch.preset"))
    if kind is not None and (problem := arch_problem(name, kind)) is not None:
        blame = next((p for p in ("mapper", "arch.preset", "arch") if p in combo), "design")
        out.append((blame, f"design {design!r}: {arch_desc}: {problem}"))
    if getattr(get_mapper(name), "binds_cascade_ranks", True):
        cascade = str(combo.get("cascade", d["cascade"]))
        label = combo.get("workload") or (
            next(iter(t.workloads)) if len(t.workloads) == 1 else None
        )
        problem = _rank_problem(t, cascade, label, swept, d.get("sizes", {}))
        if problem is not None:
            blame = next((p for p in ("workload", "cascade") if p in combo), "design")
            out.append((blame, f"design {design!r}: {problem}"))
    return out


def _arch_kind(t: Tables, label: str, preset: Any) -> tuple[str | None, str]:
    from attnsim.archs.load import load_arch, preset_kind, preset_names
    from attnsim.mappers.registry import arch_kind

    if isinstance(preset, str):
        if preset in preset_names():
            return preset_kind(preset), f"preset {preset!r}"
        try:
            return arch_kind(load_arch(preset)), f"preset {preset!r}"
        except Exception:  # noqa: BLE001  (a broken file is reported where it is read)
            return None, ""
    arch = t.arch_objs.get(label)
    return (arch_kind(arch), f"arch {label!r}") if arch is not None else (None, "")


def _rank_problem(
    t: Tables, cascade_label: str, workload: Any, swept: set[str], design: dict[str, Any]
) -> str | None:
    """Why `workload`'s sizes (with the design's `sizes:`) do not bind the cascade's ranks."""
    from attnsim.einsum_ir.sizes import SizeError, resolve_sizes
    from attnsim.mappers.workloads import MODELS

    cascade = t.cascade_objs.get(cascade_label)
    w = t.workloads.get(workload) if isinstance(workload, str) else None
    if cascade is None or w is None:
        return None
    names = set(w.get("sizes", {})) | swept
    if w.get("model") in MODELS:
        names |= set(MODELS[w["model"]].attention_sizes(1))
    elif w.get("seq_len") is not None:
        names |= {"P", "M"}
    names = (names - {k for k, v in design.items() if v is None}) | {
        k for k, v in design.items() if v is not None
    }
    try:
        resolve_sizes(cascade, {n: 1 for n in sorted(names)})
    except SizeError as exc:
        with_design = " (with the design's sizes)" if design else ""
        return f"workload {workload!r}{with_design} on cascade {cascade_label!r}: {exc}"
    return None


def _node(r: Reader, path: str, row: int | None) -> Reader | None:
    """The reader of `path` inside a block (its list row, grid, random space or fixed)."""
    if row is not None:
        rows = r.get("list")
        items = list(rows.each()) if rows is not None and rows.check("list") else []
        found = items[row].get(path) if row < len(items) and items[row].is_map else None
        if found is not None:
            return found
    for section in ("grid", "random"):
        s = r.get(section)
        s = s.get("space") if section == "random" and s is not None and s.is_map else s
        if s is not None and s.is_map and s.get(path) is not None:
            return s.get(path)
    fixed = r.get("fixed")
    return fixed.get(path) if fixed is not None and fixed.is_map else None


def check_overrides(r: Reader, t: Tables) -> None:
    """Record a problem for each override a block sets that an arch it selects cannot take.

    Covers swept `arch.overrides.*` paths (on every arch the block's designs, `arch` or
    `arch.preset` values select) and swept presets that cannot take their arch's overrides.
    """
    fixed = r.get("fixed")
    shared = list(fixed.items()) if fixed is not None and fixed.is_map else []
    groups: list[list[tuple[str, Reader]]] = []
    grid, rows, rand = r.get("grid"), r.get("list"), r.get("random")
    if grid is not None and grid.is_map:
        groups.append(shared + list(grid.items()))
    elif rows is not None:
        groups += [shared + list(item.items()) for item in rows.each() if item.is_map]
    elif rand is not None and rand.is_map:
        space = rand.get("space")
        groups.append(shared + (list(space.items()) if space is not None else []))
    located = {(p.line, p.column) for p in r.problems}  # one problem per node is enough
    for pairs in groups:
        for reader, message in _override_problems(dict(pairs), t):
            if (reader.line, reader.column) not in located:
                located.add((reader.line, reader.column))
                reader.error(message)


def _override_problems(readers: dict[str, Reader], t: Tables) -> list[tuple[Reader, str]]:
    choices = {k: _choices(readers[k]) for k in ("design", "arch", "arch.preset") if k in readers}
    if not choices.keys() & {"design", "arch"} and len(t.designs) != 1:
        return []  # no design chosen: check_selection says so
    designs = [d for d in choices.get("design", list(t.designs)) if d in t.designs]
    # a half-read design (its section malformed) may lack an arch: it selects none here
    labels = choices.get("arch") or [
        t.designs[d]["arch"]
        for d in designs
        if isinstance(t.designs[d], dict) and "arch" in t.designs[d]
    ]
    labels = [x for x in dict.fromkeys(labels) if x in t.arch_objs]
    targets = [(label, t.arch_objs[label]) for label in labels]
    out: list[tuple[Reader, str]] = []
    presets = [_preset_arch(p) for p in choices.get("arch.preset", [])]
    if "arch.preset" in readers:
        targets = [(label, a) for label in labels for a in presets if a is not None]
        for label, arch in targets:
            for where, message in O.override_problems(arch, t.archs[label]["overrides"]):
                out.append((readers["arch.preset"], f"arch {label!r}: {where}: {message}"))
    for path, reader in readers.items():
        parts = path.split(".")
        if parts[:2] != ["arch", "overrides"] or parts[2] not in O.BY_NAME:
            continue
        for label, arch in targets:
            problem = O.name_problem(arch, parts[2])
            if problem is None and len(parts) == 4:
                problem = O.array_problem(arch, parts[2], parts[3])
            if problem is not None:
                out.append((reader, f"arch {label!r}: {problem}"))
    return out


def _choices(r: Reader) -> list[Any]:
    """The values a selector takes in a block: one value, a list, or none for a range."""
    value = r.value
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return [value] if isinstance(value, str) else []


@functools.lru_cache(maxsize=64)
def _preset_arch(name: str) -> Any:
    """A built-in preset by name (None for a file path or an unknown name: not checked here)."""
    from attnsim.archs.load import load_arch, preset_names

    return load_arch(name) if name in preset_names() else None
