"""The named entries of an experiment and the dotted paths of a resolved design point.

A resolved point is a plain JSON-able dict: `design` (label), `arch` {label, preset,
overrides}, `cascade` {label, builtin | file + sha256 | inline}, `mapper` {label, name,
options} and `workload` {label, model, seq_len, kv_len, sizes}. Sweeps set its dotted paths.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnsim.archs import overrides as O
from attnsim.einsum_ir.load import MAX_SIZE
from attnsim.einsum_ir.spec import Reader, SpecError
from attnsim.reports.dse.design_sizes import size_expression

SELECTORS = ("design", "arch", "cascade", "mapper", "workload")
ARCH_KEYS = ("preset", "overrides")
WORKLOAD_KEYS = ("model", "seq_len", "kv_len", "sizes")
MAPPER_KEYS = ("mapper", "options")
DESIGN_KEYS = ("arch", "cascade", "mapper")
DESIGN_OPTIONAL = ("sizes",)
RANKS = ("B", "H", "P", "M", "E", "F")
SAMPLER_KEYS = ("uniform", "log_uniform")
INVALID = object()  # a value that failed validation (its problem is recorded)


@dataclass(slots=True)
class Tables:
    """Named entries of an experiment, each already in resolved-point form."""

    base: Path
    archs: dict[str, dict[str, Any]] = field(default_factory=dict)
    arch_objs: dict[str, Any] = field(default_factory=dict)
    cascades: dict[str, dict[str, Any]] = field(default_factory=dict)
    cascade_objs: dict[str, Any] = field(default_factory=dict)
    workloads: dict[str, dict[str, Any]] = field(default_factory=dict)
    mappers: dict[str, dict[str, Any]] = field(default_factory=dict)
    designs: dict[str, dict[str, Any]] = field(default_factory=dict)  # arch, cascade, mapper, sizes


@dataclass(frozen=True, slots=True)
class Sampler:
    """How a random block draws one path: a choice from `values`, or a (log-)uniform range."""

    kind: str  # "choice", "uniform" or "log_uniform"
    values: list[Any]
    is_int: bool = False

    def sample(self, rng: random.Random) -> Any:
        """One draw (ranges round to integers when both bounds are integers)."""
        if self.kind == "choice":
            return copy.deepcopy(rng.choice(self.values))
        lo, hi = self.values
        if self.kind == "uniform":
            x = rng.uniform(lo, hi)
        else:
            x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return round(x) if self.is_int else x


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`did you mean 'x'? ` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _unknown(r: Reader, what: str, name: str, known: list[str] | tuple[str, ...]) -> None:
    r.error(f"unknown {what} {name!r}; {did_you_mean(name, known)}known: {', '.join(known)}")


# ----------------------------------------------------------------------------- sections


def read_architectures(r: Reader | None, t: Tables) -> None:
    """`architectures: {label: preset | {preset, overrides}}`."""
    from attnsim.archs.load import load_arch

    for label, child in r.items() if r else ():
        preset_r = child if not child.is_map else child.req("preset", "str")
        if child.is_map:
            child.done(ARCH_KEYS)
        elif not child.check("str"):
            continue
        if preset_r is None or not preset_r.check("str"):
            continue
        preset, sha = _preset_id(str(preset_r.value), t.base)
        entry: dict[str, Any] = {"label": label, "preset": preset, "overrides": {}}
        if sha:
            entry["sha256"] = sha
        t.archs[label] = entry  # declared even when invalid: no follow-on "unknown arch"
        try:
            arch = load_arch(preset)
        except SpecError as exc:
            for p in exc.problems:  # an unknown name has no line of its own: point at ours
                if p.line:
                    child.problems.append(p)
                else:
                    preset_r.error(p.message)
            continue
        t.arch_objs[label] = arch
        over = child.opt("overrides", "map") if child.is_map else None
        for key, o in over.items() if over else ():
            path = f"arch.overrides.{key}"
            problem = O.name_problem(arch, key)
            if problem is not None:
                o.error(problem)
            elif O.BY_NAME[key].per_array:
                entry["overrides"][key] = {}
                for name, item in o.items() if o.check("map") else ():
                    if (bad := O.array_problem(arch, key, name)) is not None:
                        item.error(bad)
                        continue
                    value = normalize(item, f"{path}.{name}", item.value, t, False, label)
                    if value is not INVALID:
                        entry["overrides"][key][name] = value
            else:
                value = normalize(o, path, o.value, t, False, label)
                if value is not INVALID:
                    entry["overrides"][key] = value


def _preset_id(text: str, base: Path) -> tuple[str, str]:
    """A preset name as is, or a file path made absolute, with the file's content hash."""
    from attnsim.archs.load import preset_names

    if text in preset_names():
        return text, ""
    path = (base / text).resolve()
    try:
        return str(path), hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return text, ""  # load_arch reports it


def read_cascades(r: Reader | None, t: Tables) -> None:
    """`cascades: {label: builtin name | {file: path} | {inline cascade spec}}`."""
    from attnsim.einsum_ir import load_cascade

    for label, child in r.items() if r else ():
        entry: dict[str, Any] = {"label": label}
        t.cascades[label] = entry  # declared even when invalid: no follow-on "unknown cascade"
        try:
            if not child.is_map:
                if child.check("str"):
                    text = str(child.value)
                    if text.endswith((".yaml", ".yml")):
                        t.cascade_objs[label] = _file_entry(entry, t.base / text, load_cascade)
                    else:
                        t.cascade_objs[label] = load_cascade(text)
                        entry["builtin"] = text
                    t.cascades[label] = entry
            elif child.get("file") is not None and len(list(child.items())) == 1:
                f = child.req("file", "str")
                if f is not None:
                    path = t.base / str(f.value)
                    t.cascade_objs[label] = _file_entry(entry, path, load_cascade)
                    t.cascades[label] = entry
            else:
                cascade = _inline_cascade(child)
                if cascade is not None:
                    t.cascade_objs[label] = cascade
                entry["inline"] = child.value
                t.cascades[label] = entry
        except SpecError as exc:
            for p in exc.problems:  # point at the experiment's line, keep the cascade's message
                child.error(f"{p.file}:{p.line}: {p.message}" if p.line else p.message)


def _inline_cascade(r: Reader) -> Any:
    """Validate an inline cascade spec with the cascade loader, keeping file:line:col.

    The node's own text is loaded at its original lines and columns (blank lines and spaces
    in front), so the loader's problems point into the experiment file; paths get the prefix.
    """
    from attnsim.einsum_ir import load_cascade_text

    node = r.node
    assert node is not None
    text = Path(r.file).read_text(encoding="utf-8")
    start, end = node.start_mark, node.end_mark
    body = "\n" * start.line + " " * start.column + text[start.index : end.index]
    try:
        return load_cascade_text(body, r.file)
    except SpecError as exc:
        for p in exc.problems:
            path = f"{r.path}.{p.path}" if p.path else r.path
            r.problems.append(dataclasses.replace(p, path=path))
        return None


def _file_entry(entry: dict[str, Any], path: Path, load: Any) -> Any:
    path = path.resolve()
    cascade = load(path)
    entry["file"] = str(path)
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return cascade


def read_workloads(r: Reader | None, t: Tables) -> None:
    """`workloads: {label: model name | {model, seq_len, kv_len, sizes}}`."""
    for label, child in r.items() if r else ():
        w: dict[str, Any] = {"label": label, "model": None, "seq_len": None, "kv_len": None}
        w["sizes"] = {}
        if not child.is_map:
            if child.check("str"):
                value = normalize(child, "workload.model", child.value, t, False)
                if value is not INVALID:
                    w["model"] = value
                    t.workloads[label] = w
            continue
        child.done(WORKLOAD_KEYS)
        for key in ("model", "seq_len", "kv_len"):
            k = child.get(key)
            if k is not None:
                value = normalize(k, f"workload.{key}", k.value, t, False)
                w[key] = None if value is INVALID else value
        sizes = child.opt("sizes", "map")
        for rank, s in sizes.items() if sizes else ():
            value = normalize(s, f"workload.sizes.{rank}", s.value, t, False)
            if value is not INVALID:
                w["sizes"][rank] = value
        if w["model"] is None and not w["sizes"] and child.get("model") is None:
            child.error("expected `model:` (one of the built-in models) or `sizes:`")
        t.workloads[label] = w


def read_mappers(r: Reader | None, t: Tables, skip: tuple[str, ...] = ()) -> None:
    """`mappers: {label: mapper name | {mapper, options}}`; open options are searched."""
    from attnsim.mappers.registry import mapper_names

    for label, child in r.items() if r else ():
        name_r = child if not child.is_map else child.req("mapper", "str")
        if child.is_map:
            child.done(MAPPER_KEYS)
        if name_r is None or not name_r.check("str"):
            continue
        name = str(name_r.value)
        entry: dict[str, Any] = {"label": label, "name": name, "options": {}}
        t.mappers[label] = entry
        if name in skip:
            continue
        if name not in mapper_names():
            _unknown(name_r, "mapper", name, mapper_names())
            continue
        opts = child.opt("options", "map") if child.is_map else None
        for key, o in opts.items() if opts else ():
            value = normalize(o, f"mapper.options.{key}", o.value, t, False, mapper=name)
            if value is not INVALID:
                entry["options"][key] = value


def read_designs(r: Reader | None, t: Tables) -> None:
    """`designs: {label: {arch, cascade, mapper[, sizes]}}` naming entries of the other sections.

    `cascade` may also name a built-in cascade directly (an entry of that name is added);
    `sizes` sets sizes of this design's cascade over the workload's (see `design_sizes`).
    """
    tables = {"arch": t.archs, "cascade": t.cascades, "mapper": t.mappers}
    for label, child in r.items() if r else ():
        if not child.check("map"):
            continue
        d: dict[str, Any] = {}
        for key in DESIGN_KEYS:
            k = child.req(key, "str")
            if k is None:
                continue
            if key == "cascade" and str(k.value) not in t.cascades:
                _builtin_cascade(str(k.value), t)
            if str(k.value) not in tables[key]:
                _unknown(k, key, str(k.value), list(tables[key]))
            d[key] = str(k.value)
        sizes = child.opt("sizes", "map")
        if sizes is not None:
            d["sizes"] = _read_design_sizes(sizes)
        child.done(DESIGN_KEYS + DESIGN_OPTIONAL)
        t.designs[label] = d
    if r is not None and not t.designs and not r.problems:
        r.error("expected at least one design")


def _builtin_cascade(name: str, t: Tables) -> None:
    """A design's `cascade:` naming a built-in cascade directly: its entry, named by itself."""
    from attnsim.einsum_ir import builtin_names, load_cascade

    if name in builtin_names():
        t.cascades[name] = {"label": name, "builtin": name}
        t.cascade_objs[name] = load_cascade(name)


def _read_design_sizes(r: Reader) -> dict[str, Any]:
    """A design's `sizes:`: each rank or param to a positive integer, an expression, or null."""
    out: dict[str, Any] = {}
    for rank, s in r.items():
        value = s.value
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            if value is not None and not 0 < value <= MAX_SIZE:
                s.error(f"expected a positive integer of at most 2^40, got {value!r}")
                continue
            out[rank] = value
        elif isinstance(value, str):
            try:
                size_expression(value, set())
            except ValueError as exc:
                s.error(str(exc))
                continue
            out[rank] = value
        else:
            s.error(
                f"expected a positive integer, an expression over the workload's sizes such as "
                f"'P + M - 1' or 'M / 32', or null (the workload's {rank} is not this cascade's), "
                f"got {value!r}"
            )
    return out


# ----------------------------------------------------------------------------- paths


def known_paths(t: Tables) -> list[str]:
    """Every concrete dotted path a sweep may set (for suggestions)."""
    from attnsim.mappers.options import mapper_options
    from attnsim.mappers.registry import get_mapper, mapper_names

    paths = list(SELECTORS)
    paths += [f"arch.overrides.{o.name}" for o in O.OVERRIDES if not o.per_array]
    for arch in t.arch_objs.values():
        for o in (o for o in O.OVERRIDES if o.per_array):
            paths += [f"arch.overrides.{o.name}.{a}" for a in O.array_names(arch, o.name)]
    paths += ["arch.preset", "workload.model", "workload.seq_len", "workload.kv_len"]
    paths += [f"workload.sizes.{r}" for r in RANKS]
    for m in {e["name"] for e in t.mappers.values() if e["name"] in mapper_names()}:
        paths += [f"mapper.options.{name}" for name in mapper_options(get_mapper(m))]
    return list(dict.fromkeys(paths))


def check_path(r: Reader, path: str, t: Tables, skip: bool = False) -> bool:
    """Whether `path` is a settable dotted path; records a problem (with a hint) if not."""
    if skip and path.startswith("mapper."):
        return True
    known = known_paths(t)
    if path in known:
        return True
    per_array = tuple(f"arch.overrides.{o.name}." for o in O.OVERRIDES if o.per_array)
    pattern_ok = path.startswith(per_array) and path.count(".") == 3
    if pattern_ok:
        r.error(f"unknown array {path.rsplit('.', 1)[1]!r} in {path!r}; {_hint(path, known)}")
        return False
    r.error(f"unknown sweep path {path!r}; {_hint(path, known)}known: {', '.join(known)}")
    return False


def _hint(path: str, known: list[str]) -> str:
    return did_you_mean(path, known)


def normalize(
    r: Reader, path: str, value: Any, t: Tables, skip: bool, arch: str = "", mapper: str = ""
) -> Any:
    """`value` for `path` in canonical form (lengths and byte sizes as ints), or INVALID."""
    leaf = path.rsplit(".", 1)[-1]

    def bad(expected: str) -> Any:
        r.error(f"expected {expected}, got {value!r}")
        return INVALID

    if path in SELECTORS:
        table = {"design": t.designs, "arch": t.archs, "cascade": t.cascades}.get(path)
        table = table if table is not None else {"mapper": t.mappers}.get(path, t.workloads)
        if not isinstance(value, str) or value not in table:
            r.error(
                f"unknown {path} {value!r}; {did_you_mean(str(value), list(table))}"
                f"known: {', '.join(table)}"
            )
            return INVALID
        return value
    if path in ("workload.seq_len", "workload.kv_len"):
        from attnsim.mappers.workloads import parse_length

        if isinstance(value, bool) or not isinstance(value, (int, str)):
            return bad("a length such as 4096, 4K or 1M")
        try:
            length = parse_length(str(value))
        except ValueError as exc:
            r.error(str(exc))
            return INVALID
        return length if length <= MAX_SIZE else bad(f"a length of at most 2^40 ({MAX_SIZE:,})")
    if path == "workload.model":
        from attnsim.mappers.workloads import MODELS

        if value not in MODELS:
            r.error(
                f"unknown model {value!r}; {did_you_mean(str(value), list(MODELS))}"
                f"known: {', '.join(MODELS)}"
            )
            return INVALID
        return value
    if path.startswith("workload.sizes."):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            return bad("a positive integer")
        return value if value <= MAX_SIZE else bad(f"a size of at most 2^40 ({MAX_SIZE:,})")
    if path.startswith("arch.overrides.") and path.split(".")[2] in O.BY_NAME:
        try:
            return O.parse_value(path.split(".")[2], value)
        except ValueError as exc:
            r.error(str(exc))
            return INVALID
    if path == "arch.preset":
        return _swept_preset(r, value, t) if isinstance(value, str) else bad("a preset name")
    if path.startswith("mapper.options."):
        return value if skip else _option(r, leaf, value, t, mapper)
    return value


def _swept_preset(r: Reader, value: str, t: Tables) -> Any:
    """A swept `arch.preset`: a preset name as is, or an architecture file (made absolute)."""
    from attnsim.archs.load import load_arch, preset_names

    if value in preset_names():
        return value
    file = (t.base / value).resolve()
    if not value.endswith((".yaml", ".yml")) or not file.is_file():
        _unknown(r, "preset", value, preset_names())
        return INVALID
    try:
        load_arch(file)
    except SpecError as exc:
        for p in exc.problems:
            r.error(f"{p}")
        return INVALID
    return str(file)


def _option(r: Reader, key: str, value: Any, t: Tables, mapper: str) -> Any:
    """A mapper option's value checked by value against the schema of every mapper having it.

    `mapper` names the one mapper (an entry's `options:`); a swept `mapper.options.KEY` is
    checked against each mapper of the experiment that has KEY (each problem says which).
    """
    from attnsim.mappers.options import coerce, mapper_options
    from attnsim.mappers.registry import get_mapper, mapper_names

    names = [mapper] if mapper else list(dict.fromkeys(e["name"] for e in t.mappers.values()))
    found, out = False, value
    for name in (n for n in names if n in mapper_names()):
        fields = mapper_options(get_mapper(name))
        if key not in fields:
            if mapper:
                _unknown(r, f"option of mapper {name!r}", key, list(fields))
                return INVALID
            continue
        found = True
        try:
            out = coerce(fields[key], value)
        except ValueError as exc:
            r.error(str(exc) if mapper else f"mapper {name!r}: {exc}")
            return INVALID
    if not found:
        r.error(f"no mapper in this experiment has an option {key!r}")
        return INVALID
    return list(out) if isinstance(out, tuple) else out


def read_sampler(r: Reader, path: str, t: Tables, skip: bool) -> Sampler | None:
    """A random-block axis: a list of choices, or `{uniform: [lo, hi]}` / `{log_uniform: ...}`."""
    if r.is_map:
        items = list(r.items())
        r.done(SAMPLER_KEYS)
        if len(items) != 1 or items[0][0] not in SAMPLER_KEYS:
            if len(items) != 1:
                r.error("expected one of uniform, log_uniform")
            return None
        kind, b = items[0]
        bounds = b.value
        numbers = (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in bounds)
        )
        positive = kind != "log_uniform" or (numbers and bounds[0] > 0)
        if not numbers or not positive or not bounds[0] < bounds[1]:
            extra = " and low > 0" if kind == "log_uniform" else ""
            b.error(f"expected [low, high] with low < high{extra}, got {bounds!r}")
            return None
        for x in bounds:
            if normalize(b, path, x, t, skip) is INVALID:
                return None
        return Sampler(kind, list(bounds), all(isinstance(x, int) for x in bounds))
    if not r.check("list"):
        return None
    values = [normalize(item, path, item.value, t, skip) for item in r.each()]
    if not values:
        r.error("expected at least one value")
    if not values or any(v is INVALID for v in values):
        return None
    return Sampler("choice", values)


def check_selection(r: Reader, t: Tables, fixed: dict[str, Any], block: Any) -> None:
    """Record a problem when a block leaves the design or workload ambiguous, or unresolvable."""
    swept = set(fixed) | set(block.grid) | set(block.space)
    for row in block.rows:
        swept |= set(row)
    for sel, table in (("design", t.designs), ("workload", t.workloads)):
        if sel not in swept and len(table) != 1:
            r.error(
                f"no {sel} chosen: set `{sel}` in `fixed` or sweep it "
                f"({len(table)} {sel}s are defined)"
            )
            return
    if r.problems:
        return
    try:
        first = next(iter(block.assignments()), None)
        if first is not None:
            resolve(t, fixed, first)
    except (KeyError, ValueError) as exc:
        r.error(f"cannot resolve the first point: {str(exc).strip(chr(39))}")


# ----------------------------------------------------------------------------- resolution


def resolve(t: Tables, fixed: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The fully resolved design point for a block's fixed and swept values."""
    assign = {**fixed, **values}
    design = assign.get("design") or next(iter(t.designs))
    d = t.designs[design]
    point: dict[str, Any] = {
        "design": design,
        "arch": copy.deepcopy(t.archs[assign.get("arch", d["arch"])]),
        "cascade": t.cascades[assign.get("cascade", d["cascade"])],
        "mapper": copy.deepcopy(t.mappers[assign.get("mapper", d["mapper"])]),
        "workload": copy.deepcopy(t.workloads[assign.get("workload") or next(iter(t.workloads))]),
    }
    for path, value in assign.items():
        if path not in SELECTORS:
            _set(point, path.split("."), value)
    point["workload"] = finalize_workload(point["workload"])
    if d.get("sizes"):  # applied when the point is mapped (`design_sizes`): a bad value fails it
        point["design_sizes"] = dict(d["sizes"])
    return point


def _set(node: dict[str, Any], keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def finalize_workload(w: dict[str, Any]) -> dict[str, Any]:
    """A workload's rank sizes from its model, lengths and explicit sizes (those win)."""
    from attnsim.mappers.workloads import MODELS

    seq, kv = w.get("seq_len"), w.get("kv_len")
    sizes: dict[str, int] = {}
    if w.get("model"):
        if seq is None:
            raise ValueError(f"workload {w['label']!r}: no seq_len (set workload.seq_len)")
        sizes = MODELS[w["model"]].attention_sizes(seq, kv)
    elif seq is not None:
        sizes = {"P": seq, "M": seq if kv is None else kv}
    sizes.update(w.get("sizes", {}))
    return {**w, "sizes": dict(sorted(sizes.items()))}
