"""FLAT (Kao et al., ASPLOS 2023): fused attention with on-chip score rows, 3 passes.

Roles come from the cascade's structure, never its tensor names: the first contraction
(Einsum whose work has a `mac`) is the score matmul, its query-indexed operand the *input*
(role `Q`), the other operand the *weight* (`K`), its output `QK`; the second contraction's
operands are `A` (input) and `V` (weight), its output `AV`. The Einsums between them run on
the 1D array as one phase (see `mappers.unfused`).

Each contraction gets a Timeloop-style loop nest on the 2D array (depth-one PE registers):
an `X`-stationary nest's innermost temporal loop is the rank that does not index `X`, then
`X`'s own two ranks in declared order; the innermost loop runs its full extent (P1 for the
query rank), the other two extent / array side, clamped to [1, extent]; the two outer ranks
are spatial (array columns, rows). Outside: query blocks P2 = P / P1, then heads, batch.
Words delivered = distinct spatial words x loops from the innermost relevant one outward
(`loopnest.deliveries`). Latency = max(memory, 2D, 1D), the arrays overlapping fully.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from archs.model import SpatialArch
from einsum_ir.ir import Cascade, RankName, TensorName
from mappers import cost
from mappers.loopnest import Loop, TensorShape, deliveries, tile_elements
from mappers.registry import register_mapper
from mappers.result import (
    EinsumCost,
    EnergyItem,
    Occupancy,
    Result,
    Traffic,
)
from mappers.spatial import (
    QUERY_RANK,
    CascadeView,
    MappingError,
    require_spatial,
    spatial_result,
    view,
)
from mappers.unfused import (
    ELEMENT_STREAM_WARNING,
    Binding,
    StreamBuffer,
    bind_by_contraction,
    compute_energy_items,
    group_phases,
    phase_io,
    stream_buffer_words,
    unit_costs,
)

ROLES = ("Q", "K", "QK", "A", "V", "AV")
STATIONARITIES = ("output", "weight", "input")
GRANULARITIES = ("head", "row")
SPILL = "1d-phase-rows"  # Traffic record of the 1D phase's spilled key-by-query rows
ARTIFACT_READ_WARNING = (
    "artifact-compat: one extra global-buffer read per score element (B*H*M*P words) because "
    "the value matmul's output is on chip; the FuseMax artifact's Timeloop counts carry it "
    "(a counting quirk, not a physical access)"
)


@dataclass(frozen=True, slots=True)
class FlatOptions:
    """A FLAT dataflow.

    Attributes:
        onchip: Roles kept in the global buffer (of Q, K, QK, A, V, AV; see module docstring).
        qk_stationarity: Stationary operand of the score matmul: output, weight or input.
        av_stationarity: Stationary operand of the value matmul.
        granularity: `head` (a whole head's queries at once) or `row` (p1 query rows).
        p1: Query rows per block at `row` granularity (0: the 2D array's rows).
        spilled_fraction: Fraction of the on-chip tensors' buffer traffic that spills to DRAM.
        artifact_compat: Reproduce the FuseMax artifact's counting quirk (see
            `ARTIFACT_READ_WARNING`; recorded in the Result's warnings when applied).
        search_budget: When the dataflow is searched: evaluate at most this many candidates,
            a seeded random sample of the space (0 = every candidate).
    """

    onchip: tuple[str, ...] = ("QK", "A")
    qk_stationarity: str = "output"
    av_stationarity: str = "output"
    granularity: str = "head"
    p1: int = 0
    spilled_fraction: float = 0.0
    artifact_compat: bool = False
    search_budget: int = 0

    def __post_init__(self) -> None:
        problems = [
            f"unknown role {r!r} in onchip (roles: {', '.join(ROLES)})"
            for r in self.onchip
            if r not in ROLES
        ]
        for name in ("qk_stationarity", "av_stationarity"):
            if getattr(self, name) not in STATIONARITIES:
                problems.append(f"{name} must be one of {STATIONARITIES}")
        if self.granularity not in GRANULARITIES:
            problems.append(f"granularity must be one of {GRANULARITIES}")
        if self.p1 < 0 or not 0.0 <= self.spilled_fraction <= 1.0:
            problems.append("p1 must be >= 0 and spilled_fraction in [0, 1]")
        if problems:
            raise MappingError("; ".join(problems))


def flat_dataflow_from_row(row: dict[str, str], artifact_compat: bool = False) -> FlatOptions:
    """FLAT's own chosen dataflow from a `flat_validation.csv` row."""
    onchip = tuple(r for r in ROLES if row[f"{r}_loc"].strip() == "onchip")
    return FlatOptions(
        onchip=onchip,
        qk_stationarity=row["QK_stationarity"].strip(),
        av_stationarity=row["AV_stationarity"].strip(),
        granularity=row["fusion_granularity"].strip(),
        p1=int(float(row["P1"])),
        spilled_fraction=float(row["proportion_spilled"]),
        artifact_compat=artifact_compat,
    )


# ----------------------------------------------------------------------------- structure


@dataclass(frozen=True, slots=True)
class _Contraction:
    index: int
    input: TensorName
    weight: TensorName
    output: TensorName
    ranks: tuple[RankName, ...]  # iteration ranks without batch-like ranks


def _contractions(cv: CascadeView, binding: Binding) -> tuple[_Contraction, _Contraction]:
    c = cv.cascade
    found = []
    inst = set(cv.instance_ranks)
    for i, e in enumerate(c.einsums):
        if not binding.is_contraction(i):
            continue
        names = list(dict.fromkeys(a.tensor for a in e.inputs))
        query = [t for t in names if cv.is_query_indexed(t)]
        other = [t for t in names if not cv.is_query_indexed(t)]
        if len(names) != 2 or len(query) != 1:
            raise MappingError(f"FLAT: {e} must multiply a query-indexed operand by another")
        ranks = tuple(r for r in (RankName(v.upper()) for v in e.iteration_vars) if r not in inst)
        if len(ranks) != 3:
            raise MappingError(f"FLAT: {e} must iterate three ranks besides batch and heads")
        found.append(_Contraction(i, query[0], other[0], e.output, ranks))
    if len(found) != 2:
        raise MappingError(
            f"FLAT maps two contractions (scores, weighted values); {c.name} has {len(found)}"
        )
    return found[0], found[1]


def _roles(pair: tuple[_Contraction, _Contraction]) -> dict[str, TensorName]:
    qk, av = pair
    return {
        "Q": qk.input,
        "K": qk.weight,
        "QK": qk.output,
        "A": av.input,
        "V": av.weight,
        "AV": av.output,
    }


# ----------------------------------------------------------------------------- loop nests


@dataclass(frozen=True, slots=True)
class _TensorCounts:
    pe_words: float
    fill: float
    footprint: float
    final: float


@dataclass(frozen=True, slots=True)
class _Nest:
    cycles: float
    used_lanes: float
    tensors: tuple[tuple[TensorName, _TensorCounts], ...]


def _nest(
    cv: CascadeView, arch: SpatialArch, con: _Contraction, stationarity: str, p1: int
) -> _Nest:
    """Loop-nest counts of one contraction (see the module docstring)."""
    tensor_ranks = cv.cascade.tensor_ranks  # a property that builds a dict: read it once
    stationary = {"output": con.output, "weight": con.weight, "input": con.input}[stationarity]
    own = tuple(r for r in tensor_ranks[stationary] if r in con.ranks)
    perm = tuple(r for r in con.ranks if r not in own) + own
    full = {r: cv.sizes[r] for r in con.ranks}
    shape = {r: (p1 if r == QUERY_RANK else n) for r, n in full.items()}
    side = (1, arch.array_2d.cols, arch.array_2d.rows)

    def clamp(r: RankName, n: int) -> int:
        return max(1, min(n, full[r]))

    l3 = [Loop(r, clamp(r, shape[r] // side[k])) for k, r in enumerate(perm)]
    spatial = [Loop(r, clamp(r, side[k]), spatial=True) for k, r in enumerate(perm) if k]
    dram = [Loop(QUERY_RANK, max(1, cv.sizes[QUERY_RANK] // p1))]
    dram += [Loop(r, cv.sizes[r]) for r in reversed(cv.instance_ranks)]
    temporal = tuple(reversed(l3 + dram))  # outermost first
    tensors = []
    for name in (con.input, con.weight, con.output):
        shp = TensorShape(name, tuple((str(r), cv.sizes[r]) for r in tensor_ranks[name]))
        footprint = tile_elements(shp, spatial + l3)
        fill = footprint * deliveries(shp, (), tuple(reversed(dram)))
        tensors.append(
            (
                name,
                _TensorCounts(
                    float(deliveries(shp, spatial, temporal)),
                    float(fill),
                    float(footprint),
                    float(cv.words(name)),
                ),
            )
        )
    return _Nest(
        float(math.prod(lp.factor for lp in l3 + dram)),
        float(math.prod(lp.factor for lp in spatial)),
        tuple(tensors),
    )


# ----------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class _Eval:
    reads: dict[str, float]
    writes: dict[str, float]
    buffer_reads: float
    buffer_writes: float
    footprint_words: float
    cycles_2d: tuple[float, float]
    used_lanes: tuple[float, float]
    cycles_1d: float
    memory_cycles: float
    latency_cycles: float
    has_quirk: bool
    spilled_words: float


@dataclass(frozen=True, slots=True)
class _Problem:
    cv: CascadeView
    arch: SpatialArch
    binding: Binding
    pair: tuple[_Contraction, _Contraction]
    roles: dict[str, TensorName]
    stream_phases: tuple[
        tuple[tuple[int, ...], tuple[TensorName, ...], tuple[TensorName, ...]], ...
    ]
    memo: dict[tuple[tuple[int, ...], frozenset[TensorName], frozenset[TensorName]], StreamBuffer]
    input_set: frozenset[TensorName]


def _evaluate(pb: _Problem, opts: FlatOptions, nests: tuple[_Nest, _Nest]) -> _Eval:
    cv, arch = pb.cv, pb.arch
    c = cv.cascade
    onchip = {pb.roles[r] for r in opts.onchip}
    spill = opts.spilled_fraction
    reads: dict[str, float] = {}
    writes: dict[str, float] = {}
    buf_r = buf_w = spilled = 0.0
    footprint: dict[str, float] = {}

    def move(store: dict[str, float], name: str, words: float) -> None:
        if words:
            store[name] = store.get(name, 0.0) + words

    for con, nest in zip(pb.pair, nests, strict=True):
        for name, t in nest.tensors:
            on = name in onchip
            if on:
                footprint[name] = max(footprint.get(name, 0.0), t.footprint)
            if name == con.output:
                partial = max(0.0, t.pe_words - t.final)
                if not on:
                    move(writes, name, t.pe_words)
                    move(reads, name, partial)
                    continue
                buf_w += t.pe_words
                buf_r += partial
                if name in c.outputs:
                    move(writes, name, t.final * (1 - spill))
                move(writes, name, t.pe_words * spill)
                move(reads, name, partial * spill)
                spilled += (t.pe_words + partial) * spill
            elif not on:
                move(reads, name, t.pe_words)
            else:
                buf_r += t.pe_words
                if name in pb.input_set:
                    buf_w += t.fill
                    move(reads, name, t.fill * (1 - spill))
                move(reads, name, t.pe_words * spill)
                spilled += t.pe_words * spill
    used = sum(footprint.values())
    cycles_1d = 0.0
    for phase, ins, outs in pb.stream_phases:
        from_dram = frozenset(name for name in ins if name not in onchip)
        kept = frozenset(name for name in outs if name in onchip)
        key = (phase, from_dram, kept)
        if key not in pb.memo:
            pb.memo[key] = stream_buffer_words(cv, phase, from_dram, kept)
        sb = pb.memo[key]
        for name in from_dram:
            move(reads, name, cv.words(name))
        for name in outs:
            if name not in kept:
                move(writes, name, cv.words(name))
        phase_spill = spill if len(from_dram) < len(ins) else _row_spill(pb, used)
        move(reads, SPILL, sb.row_reads * phase_spill)
        move(writes, SPILL, sb.row_writes * phase_spill)
        spilled += (sb.row_reads + sb.row_writes) * phase_spill
        buf_r += sb.reads
        buf_w += sb.writes
        cycles_1d += sum(pb.binding.cycles[i] for i in phase)
    quirk = opts.artifact_compat and pb.roles["AV"] in onchip
    if quirk:
        buf_r += cv.words(pb.roles["QK"])
    wb = arch.word_bytes
    mem = cost.memory_cycles(arch, (sum(reads.values()) + sum(writes.values())) * wb)
    cyc = (nests[0].cycles, nests[1].cycles)
    return _Eval(
        reads,
        writes,
        buf_r,
        buf_w,
        used,
        cyc,
        (nests[0].used_lanes, nests[1].used_lanes),
        cycles_1d,
        mem,
        max(mem, sum(cyc), cycles_1d),
        quirk,
        spilled,
    )


def _row_spill(pb: _Problem, used_words: float) -> float:
    """Fraction of one query's key row that does not fit beside the contractions' tiles."""
    cv = pb.cv
    row_bytes = cv.per_query_words(pb.roles["QK"], keep_key=True) * pb.arch.word_bytes
    free = pb.arch.buffer.capacity_bytes - used_words * pb.arch.word_bytes
    return 1.0 - min(1.0, max(0.0, free) / row_bytes)


def _energy(pb: _Problem, ev: _Eval) -> tuple[EnergyItem, ...]:
    arch = pb.arch
    wb = arch.word_bytes
    items = compute_energy_items(arch, pb.binding)
    items.extend(cost.dram_energy(arch, sum(ev.reads.values()) * wb, sum(ev.writes.values()) * wb))
    items.extend(cost.buffer_energy(arch, arch.buffer, ev.buffer_reads, ev.buffer_writes))
    return tuple(items)


# ----------------------------------------------------------------------------- search


SEARCHED_FIELDS = ("onchip", "qk_stationarity", "av_stationarity", "granularity", "p1")


# ----------------------------------------------------------------------------- mapper


@register_mapper("flat")
class FlatMapper:
    """FLAT; see the module docstring. Without options, a search picks the dataflow."""

    Options = FlatOptions

    name = "flat"

    def __init__(
        self,
        options: FlatOptions | None = None,
        *,
        search_artifact_compat: bool = False,
        **kwargs: object,
    ) -> None:
        """A full `FlatOptions` fixes the dataflow; keyword fields fix only what they name.

        Dataflow fields left open (`onchip`, the two stationarities, `granularity`, `p1`) are
        searched per design point; the fields given constrain the search.
        """
        if options is not None and kwargs:
            raise MappingError("give FLAT options either as FlatOptions or as fields, not both")
        base = options or FlatOptions(**kwargs)  # type: ignore[arg-type]
        given = set(SEARCHED_FIELDS) if options is not None else set(kwargs)
        self.base = base
        self.fixed = {f: getattr(base, f) for f in SEARCHED_FIELDS if f in given}
        complete = {"onchip", "qk_stationarity", "av_stationarity", "granularity"} <= given
        self.options = base if complete else None
        self.search_artifact_compat = search_artifact_compat or base.artifact_compat

    def map(self, cascade: Cascade, arch: SpatialArch, sizes: dict[str, int]) -> Result:
        """Map `cascade` at `sizes` onto `arch` with the given (or searched) dataflow."""
        require_spatial(arch, "flat")
        cv = view(cascade, sizes, None)
        binding = bind_by_contraction(cv, arch)
        pair = _contractions(cv, binding)
        streams = tuple(
            (p, *phase_io(cv, p)) for p in group_phases(binding) if not binding.is_contraction(p[0])
        )
        pb = _Problem(
            cv, arch, binding, pair, _roles(pair), streams, {}, frozenset(cascade.input_names)
        )
        stats: dict[str, float] = {}
        if self.options is None:
            # imported here: the search module builds on this one's model
            from mappers.flat_search import search

            opts, ev, stats = search(
                pb, self.fixed, self.base.search_budget, self.search_artifact_compat
            )
        else:
            opts = self.options
            p1 = opts.p1 or arch.array_2d.rows
            p1 = cv.sizes[QUERY_RANK] if opts.granularity == "head" else p1
            if opts.granularity == "row" and cv.sizes[QUERY_RANK] % p1:
                raise MappingError(f"p1 = {p1} does not divide P = {cv.sizes[QUERY_RANK]}")
            nests = (
                _nest(cv, arch, pair[0], opts.qk_stationarity, p1),
                _nest(cv, arch, pair[1], opts.av_stationarity, p1),
            )
            ev = _evaluate(pb, opts, nests)
            if opts.granularity == "row" and not opts.p1:
                opts = replace(opts, p1=p1)
        return _result(pb, opts, ev, _energy(pb, ev), stats)


def _result(
    pb: _Problem,
    opts: FlatOptions,
    ev: _Eval,
    energy: tuple[EnergyItem, ...],
    stats: dict[str, float],
) -> Result:
    cv, arch, binding = pb.cv, pb.arch, pb.binding
    c = cv.cascade
    wb = arch.word_bytes
    lat = ev.latency_cycles
    lanes_2d = arch.array_2d.lanes
    cycles = list(binding.cycles)
    effective = list(binding.cycles)
    for k, con in enumerate(pb.pair):
        cycles[con.index] = ev.cycles_2d[k]
        effective[con.index] = ev.cycles_2d[k] * ev.used_lanes[k] / lanes_2d
    per_einsum = tuple(
        EinsumCost(
            e.output,
            binding.units[i].name,
            cv.pass_of(i),
            float(sum(n for _, n in binding.work[i].actions)),
            cycles[i],
            effective[i] / lat if lat else 0.0,
        )
        for i, e in enumerate(c.einsums)
    )
    busy: dict[str, float] = {}
    eff: dict[str, float] = {}
    for i, unit in enumerate(binding.units):
        busy[unit.name] = busy.get(unit.name, 0.0) + cycles[i]
        eff[unit.name] = eff.get(unit.name, 0.0) + effective[i]
    names = list(dict.fromkeys([*ev.reads, *ev.writes]))
    traffic = tuple(
        Traffic("dram", t, ev.reads.get(t, 0.0) * wb, ev.writes.get(t, 0.0) * wb) for t in names
    )
    warnings = [
        ELEMENT_STREAM_WARNING,
        "FLAT: 2D and 1D arrays and DRAM overlap fully (latency = max of the three)",
    ]
    if ev.has_quirk:
        warnings.append(ARTIFACT_READ_WARNING)
    capacity = arch.buffer.capacity_bytes
    if ev.footprint_words * wb > capacity:
        warnings.append(
            f"on-chip tiles ({ev.footprint_words * wb:.0f} B) exceed the "
            f"{capacity} B {arch.buffer.name}; spilled fraction "
            f"{opts.spilled_fraction} of their buffer traffic goes to DRAM"
        )
    spilled = ev.spilled_words * wb
    options = asdict(opts)
    options["onchip"] = ",".join(opts.onchip)
    mem = ev.memory_cycles
    compute = max(sum(ev.cycles_2d), ev.cycles_1d)
    extras = tuple(stats.items()) + (("p1", float(opts.p1 or cv.sizes[QUERY_RANK])),)
    occupancy = Occupancy(
        arch.buffer.name, "total", ev.footprint_words * wb, float(capacity), spilled
    )
    return spatial_result(
        cv,
        arch,
        "flat",
        tuple(options.items()),
        latency_cycles=lat,
        compute_cycles=compute,
        memory_cycles=mem,
        bound="memory:dram" if mem > compute else "compute",
        traffic=traffic,
        energy=energy,
        occupancy=(occupancy,),
        per_einsum=per_einsum,
        units=unit_costs(arch, busy, eff, lat),
        schedule="overlapped",
        identity=opts,
        extras=extras,
        warnings=warnings,
    )


__all__ = ["ARTIFACT_READ_WARNING", "FlatMapper", "FlatOptions", "flat_dataflow_from_row"]
