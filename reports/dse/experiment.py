"""Experiment YAML: load and validate a design-space study, and expand its sweep lazily.

An experiment names architectures, cascades, workloads and mappers, combines them into
designs, and sweeps dotted paths of the resolved design point (see `examples/*.yaml`).
Every spec problem is reported as `file:line:col: path: message`, all at once.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnsim.einsum_ir.spec import Reader
from attnsim.mappers.result import VERSION
from attnsim.reports.dse import compat
from attnsim.reports.dse import design_space as P
from attnsim.reports.dse.feasibility import Constraint

TOP_KEYS = (
    "name",
    "description",
    "requires",
    "architectures",
    "cascades",
    "workloads",
    "mappers",
    "designs",
    "baseline",
    "sweep",
    "objectives",
    "constraints",
    "outputs",
    "refusals",
)
# What `run` does with a point whose mapper refuses it (raises MappingError): `fail` counts
# it as a failed point (exit status 1; the default), `record` stores it as `refused` with the
# mapper's reason, a finished outcome that is listed but never ranked.
REFUSALS = ("fail", "record")
BLOCK_KEYS = ("name", "fixed", "grid", "list", "random")
RANDOM_KEYS = ("samples", "seed", "space")
OUTPUT_KEYS = ("dir", "formats", "report")
FORMATS = ("csv", "jsonl")
# Short metric names and the row column each one means.
METRICS = {
    "latency": "latency_s",
    "energy": "energy_pj",
    "edp": "edp_js",
    "area": "area_um2",
    "traffic": "dram_traffic_bytes",
    "buffer": "buffer_bytes",
    "utilization": "util.array_2d",
}
COLUMNS = (
    "latency_s",
    "latency_cycles",
    "compute_cycles",
    "memory_cycles",
    "energy_pj",
    "edp_js",
    "area_um2",
    "dram_traffic_bytes",
    "buffer_bytes",
    "flops",
    "passes",
    "onchip_peak_bytes",
    "seq_len",
)
COLUMN_PREFIXES = ("util.", "einsum_util.", "size.", "option.", "point.")

Value = Any  # a plain YAML value (str, int, float, bool, list, dict)


@dataclass(frozen=True, slots=True)
class Point:
    """One design point: its position in the sweep, stable id, resolved inputs, swept values."""

    seq: int
    point_id: str
    resolved: dict[str, Any]
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Block:
    """One sweep block: fixed assignments plus a grid, an explicit list, or random samples."""

    name: str
    fixed: dict[str, Value]
    grid: dict[str, list[Value]] = field(default_factory=dict)
    rows: list[dict[str, Value]] = field(default_factory=list)
    space: dict[str, P.Sampler] = field(default_factory=dict)
    samples: int = 0
    seed: int = 0

    @property
    def count(self) -> int:
        """Number of points this block expands to."""
        if self.space:
            return self.samples
        if self.rows:
            return len(self.rows)
        return math.prod(len(v) for v in self.grid.values())

    def assignments(self) -> Iterator[dict[str, Value]]:
        """The swept values of each point, lazily (grid order: last path varies fastest)."""
        if self.space:
            rng = random.Random(self.seed)
            for _ in range(self.samples):
                yield {path: s.sample(rng) for path, s in self.space.items()}
        elif self.rows:
            yield from (dict(r) for r in self.rows)
        else:
            keys = list(self.grid)
            for combo in itertools.product(*(self.grid[k] for k in keys)):
                yield dict(zip(keys, combo, strict=True))


@dataclass(frozen=True, slots=True)
class Experiment:
    """A validated experiment: named entries, designs, sweep blocks, objectives, constraints."""

    name: str
    file: str
    description: str
    tables: P.Tables
    blocks: tuple[Block, ...]
    objectives: tuple[tuple[str, str], ...]
    constraints: tuple[Constraint, ...]
    out_dir: str
    formats: tuple[str, ...]
    report: bool
    missing_mappers: tuple[str, ...] = ()
    baseline: str = ""  # the design others are compared with (default: the first design)
    refusals: str = "fail"  # `record`: a point its mapper refuses is stored as refused

    @property
    def records_refusals(self) -> bool:
        """Whether a point its mapper refuses is a finished `refused` point (not a failure)."""
        return self.refusals == "record"

    @property
    def sweep(self) -> dict[str, list[Value]]:
        """Every swept dotted path -> its values over all blocks (random ranges as [lo, hi])."""
        out: dict[str, list[Value]] = {}
        for b in self.blocks:
            spaces = {k: s.values for k, s in b.space.items()}
            listed: dict[str, list[Value]] = {}
            for r in b.rows:
                for k, v in r.items():
                    listed.setdefault(k, []).append(v)
            for k, vals in {**b.grid, **listed, **spaces}.items():
                bucket = out.setdefault(k, [])
                bucket.extend(v for v in vals if v not in bucket)
        return out

    @property
    def count(self) -> int:
        """Number of design points the sweep expands to (duplicates included)."""
        return sum(b.count for b in self.blocks)

    @property
    def points_hash(self) -> str:
        """A hash of everything that decides the points (tables, sweep blocks, version).

        Objectives, constraints, outputs and the description are left out: editing them does
        not change which points a run evaluates.
        """
        tables = {k: getattr(self.tables, k) for k in P.Tables.__dataclass_fields__}
        tables.pop("arch_objs", None)
        tables.pop("cascade_objs", None)
        tables.pop("base", None)
        content = {"version": VERSION, "code": code_fingerprint(), "tables": tables,
                   "blocks": self.blocks}  # fmt: skip
        text = json.dumps(content, sort_keys=True, default=_plain, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def points(self) -> Iterator[Point]:
        """Every design point, resolved, lazily and in a fixed order."""
        seq = 0
        for block in self.blocks:
            for values in block.assignments():
                resolved = P.resolve(self.tables, block.fixed, values)
                yield Point(seq, point_id(resolved), resolved, values)
                seq += 1


def _plain(obj: Any) -> Any:
    """JSON form of the records inside an experiment (blocks, samplers)."""
    if hasattr(obj, "__dataclass_fields__"):
        return {k: getattr(obj, k) for k in obj.__dataclass_fields__}
    return repr(obj)


# What decides a point's numbers besides the point itself: the models and their data.
MODEL_SOURCES = (("einsum_ir", "*.py"), ("mappers", "*.py"), ("archs", "*.py"),
                 ("archs", "*.yaml"), ("kernels", "spec*.py"))  # fmt: skip


@functools.lru_cache(maxsize=4)
def code_fingerprint(root: Path | None = None) -> str:
    """A hash of the model code and data this process runs.

    einsum_ir, mappers, archs with its presets and calibrations, and kernels/spec*.py under
    `root` (default: this package): stored points priced by other code are not resumed
    (`point_id`).
    """
    root = root or Path(__file__).resolve().parents[2]  # attnsim/ (or the checkout)
    digest = hashlib.sha256(VERSION.encode())
    for folder, pattern in MODEL_SOURCES:
        for path in sorted((root / folder).rglob(pattern)):
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def point_id(resolved: dict[str, Any]) -> str:
    """A stable hash of a resolved design point and the model code that prices it.

    A point stored by other code (an edited model or calibration, another release) has
    another id: a resumed run does not mix it into its tables (`runner.claim_store`).
    """
    text = json.dumps(
        {"version": VERSION, "code": code_fingerprint(), "point": resolved},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def load_experiment(path: str | Path) -> Experiment:
    """Load and validate an experiment file; `SpecError` lists every problem."""
    root = Reader.from_file(path)
    if root.node is not None and not root.is_map:
        root.error("expected a mapping with keys " + ", ".join(TOP_KEYS))
    root.finish()
    exp = _build(root, Path(path).resolve().parent)
    root.finish()
    return exp


def _build(root: Reader, base: Path) -> Experiment:
    name_r = root.req("name", "str")
    desc_r = root.opt("description", "str")
    missing = _requires(root.opt("requires", "map"), _used_mappers(root.get("mappers")))
    tables = P.Tables(base=base)
    before = len(root.problems)
    P.read_architectures(root.req("architectures", "map"), tables)
    P.read_cascades(root.req("cascades", "map"), tables)
    P.read_workloads(root.req("workloads", "map"), tables)
    P.read_mappers(root.req("mappers", "map"), tables, skip=missing)
    P.read_designs(root.req("designs", "map"), tables)
    baseline = _baseline(root.opt("baseline", "str"), tables)
    # Cross-checks of the sweep's selections against the tables assume tables that read
    # cleanly; on half-read tables they would only add noise, or fail. Overrides are checked
    # in any case (each against the presets that did read).
    cross = len(root.problems) == before
    blocks = _blocks(root.req("sweep", "any"), tables, skip=bool(missing), cross=cross)
    objectives = _objectives(root.opt("objectives", "list"))
    constraints = _constraints(root.opt("constraints", "list"))
    out = root.opt("outputs", "map")
    out_dir, formats, report = _outputs(out)
    refusals = _refusals(root.opt("refusals", "str"))
    root.done(TOP_KEYS)
    name = str(name_r.value) if name_r else "experiment"
    return Experiment(
        name=name,
        file=root.file,
        description=str(desc_r.value) if desc_r else "",
        tables=tables,
        blocks=tuple(blocks),
        objectives=tuple(objectives),
        constraints=tuple(constraints),
        out_dir=out_dir or f"runs/{name}",
        formats=formats,
        report=report,
        missing_mappers=missing,
        baseline=baseline,
        refusals=refusals,
    )


def _refusals(r: Reader | None) -> str:
    """`refusals: fail | record` (default fail)."""
    if r is None:
        return REFUSALS[0]
    value = str(r.value)
    if value not in REFUSALS:
        r.error(
            f"expected fail (a point its mapper refuses is a failed point) or record (it is "
            f"stored as refused, with the mapper's reason), got {value!r}"
        )
        return REFUSALS[0]
    return value


def _baseline(r: Reader | None, tables: P.Tables) -> str:
    """`baseline: DESIGN`, one of the designs; default the first design ('' when none)."""
    first = next(iter(tables.designs), "")
    if r is None:
        return first
    name = str(r.value)
    if name not in tables.designs:
        if tables.designs:  # designs that did not read are reported where they are
            known = ", ".join(tables.designs)
            r.error(f"unknown design {name!r}; expected one of the designs: {known}")
        return first
    return name


def _requires(r: Reader | None, used: set[str]) -> tuple[str, ...]:
    """`requires: {mappers: [...]}`: mappers this experiment needs; those not registered.

    An experiment whose required mappers are not registered is skipped. A required name
    that none of its `mappers:` entries uses, or one that is not registered but close to a
    registered name, is a typo: an error, not a reason to skip.
    """
    if r is None:
        return ()
    from attnsim.mappers.registry import mapper_names

    missing: list[str] = []
    m = r.opt("mappers", "list")
    for item in m.each() if m else ():
        if not item.check("str"):
            continue
        name = str(item.value)
        close = P.did_you_mean(name, mapper_names())
        if name not in used:
            uses = ", ".join(sorted(used)) or "none"
            item.error(f"{name!r} is not a mapper of this experiment's `mappers:` ({uses})")
        elif name not in mapper_names() and close:
            item.error(f"unknown mapper {name!r}; {close}known: {', '.join(mapper_names())}")
        elif name not in mapper_names():
            missing.append(name)
    r.done(("mappers",))
    return tuple(missing)


def _used_mappers(r: Reader | None) -> set[str]:
    """The mapper names the `mappers:` section's entries name (read again by read_mappers)."""
    used = set()
    for _, child in r.items() if r is not None and r.is_map else ():
        value = child.value.get("mapper") if isinstance(child.value, dict) else child.value
        if isinstance(value, str):
            used.add(value)
    return used


# ----------------------------------------------------------------------------- sweep blocks


def _blocks(r: Reader | None, tables: P.Tables, skip: bool, cross: bool = True) -> list[Block]:
    if r is None:
        return []
    if r.is_map:  # a single block may be written without the list
        readers = [r]
    elif r.check("list"):
        readers = list(r.each())
        if not readers:
            r.error("expected at least one sweep block")
    else:
        return []
    blocks = []
    for i, b in enumerate(readers):
        if b.check("map"):
            block = _block(b, tables, i, skip, cross)
            if block is not None:
                blocks.append(block)
    return blocks


def _block(r: Reader, tables: P.Tables, index: int, skip: bool, cross: bool) -> Block | None:
    name_r = r.opt("name", "str")
    fixed = _assignments(r.opt("fixed", "map"), tables, skip) or {}
    kinds = [k for k in ("grid", "list", "random") if r.get(k) is not None]
    r.done(BLOCK_KEYS)
    if len(kinds) != 1:
        r.error("expected exactly one of grid, list, random" + (f"; got {kinds}" if kinds else ""))
        return None
    name = str(name_r.value) if name_r else f"block{index}"
    kind = kinds[0]
    block: Block | None = None
    if kind == "grid":
        grid = _grid(r.opt("grid", "map"), tables, skip)
        block = Block(name, fixed, grid=grid)
    elif kind == "list":
        rows = []
        lst = r.opt("list", "list")
        for item in lst.each() if lst else ():
            if item.check("map"):
                rows.append(_assignments(item, tables, skip) or {})
        if lst is not None and not rows:
            lst.error("expected at least one point")
        block = Block(name, fixed, rows=rows)
    else:
        block = _random(r.opt("random", "map"), name, fixed, tables, skip)
    if block is not None and block.count == 0 and not r.problems:
        r.error("this sweep block expands to no points")  # `run` would do nothing and succeed
    if block is not None and not skip:
        compat.check_overrides(r, tables)
        if cross:  # selections are checked against tables that read cleanly
            P.check_selection(r, tables, fixed, block)
            compat.check_block(r, tables, block)
    return block


def _assignments(r: Reader | None, tables: P.Tables, skip: bool) -> dict[str, Value] | None:
    if r is None:
        return None
    out: dict[str, Value] = {}
    for path, child in r.items():
        if P.check_path(child, path, tables, skip):
            value = P.normalize(child, path, child.value, tables, skip)
            if value is not P.INVALID:
                out[path] = value
    return out


def _grid(r: Reader | None, tables: P.Tables, skip: bool) -> dict[str, list[Value]]:
    grid: dict[str, list[Value]] = {}
    for path, child in r.items() if r else ():
        if not P.check_path(child, path, tables, skip) or not child.check("list"):
            continue
        values = []
        for item in child.each():
            value = P.normalize(item, path, item.value, tables, skip)
            if value is not P.INVALID:
                values.append(value)
        if not values and not child.problems:
            child.error("expected at least one value")
        grid[path] = values
    if r is not None and not grid and not r.problems:
        r.error("expected at least one swept path")
    return grid


def _random(
    r: Reader | None, name: str, fixed: dict[str, Value], tables: P.Tables, skip: bool
) -> Block | None:
    if r is None:
        return None
    samples_r = r.req("samples", "int")
    seed_r = r.req("seed", "int")
    space_r = r.req("space", "map")
    r.done(RANDOM_KEYS)
    samples = int(samples_r.value) if samples_r else 0
    if samples_r is not None and samples <= 0:
        samples_r.error(f"expected a positive integer, got {samples}")
    space: dict[str, P.Sampler] = {}
    for path, child in space_r.items() if space_r else ():
        if P.check_path(child, path, tables, skip):
            sampler = P.read_sampler(child, path, tables, skip)
            if sampler is not None:
                space[path] = sampler
    if space_r is not None and not list(space_r.items()):
        space_r.error("expected at least one sampled path")
    return Block(name, fixed, space=space, samples=samples, seed=int(seed_r.value) if seed_r else 0)


# ----------------------------------------------------------------------------- objectives


def metric_column(r: Reader) -> str | None:
    """A metric name (alias such as `latency`, or a row column); None with a problem if unknown."""
    if not r.check("str"):
        return None
    name = str(r.value)
    if name in METRICS:
        return METRICS[name]
    if name in COLUMNS or name.startswith(COLUMN_PREFIXES):
        return name
    known = [*METRICS, *COLUMNS]
    hint = P.did_you_mean(name, known)
    r.error(
        f"unknown metric {name!r}; {hint}known: {', '.join(known)}, or a column starting "
        f"with {', '.join(COLUMN_PREFIXES)}"
    )
    return None


def _objectives(r: Reader | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in r.each() if r else ():
        if item.is_map:  # {metric: energy, direction: min}
            m = item.req("metric", "str")
            d = item.opt("direction", "str")
            item.done(("metric", "direction"))
            direction = str(d.value) if d else "min"
            if d is not None and direction not in ("min", "max"):
                d.error(f"expected min or max, got {direction!r}")
            column = metric_column(m) if m else None
        else:
            column, direction = metric_column(item), "min"
        if column is not None:
            out.append((column, direction))
    return out


def _constraints(r: Reader | None) -> list[Constraint]:
    out: list[Constraint] = []
    for item in r.each() if r else ():
        if not item.check("map"):
            continue
        m = item.req("metric", "str")
        bounds = [(op, item.opt(op, "number")) for op in ("max", "min") if item.get(op)]
        item.done(("metric", "max", "min"))
        column = metric_column(m) if m else None
        if not bounds:
            item.error("expected `max:` or `min:` with a number")
        for op, b in bounds:
            if column is not None and b is not None:
                out.append(Constraint(column, op, float(b.value)))
    return out


def _outputs(r: Reader | None) -> tuple[str, tuple[str, ...], bool]:
    if r is None:
        return "", FORMATS, True
    d = r.opt("dir", "str")
    f = r.opt("formats", "list")
    rep = r.opt("report", "bool")
    r.done(OUTPUT_KEYS)
    formats: list[str] = []
    for item in f.each() if f else ():
        if item.check("str"):
            if item.value in FORMATS:
                formats.append(str(item.value))
            else:
                item.error(f"unknown format {item.value!r}; known: {', '.join(FORMATS)}")
    out_dir = ""
    if d is not None:
        out_dir = str(Path(r.file).resolve().parent / str(d.value))
    return out_dir, tuple(formats) if f else FORMATS, bool(rep.value) if rep else True
