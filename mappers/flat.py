"""FLAT (Kao et al., ASPLOS 2023): fused attention with on-chip score rows, 3 passes.

This module reads the cascade and hands FLAT's cost model (`mappers.flat_cost`, shared with
the dataflow search in `mappers.flat_search`) explicit sizes and roles. Roles come from the
cascade's structure, never its tensor names: the first contraction (Einsum whose work has a
`mac`) is the score matmul, its query-indexed operand the *input* (role `Q`), the other
operand the *weight* (`K`), its output `QK`; the second contraction's operands are `A`
(input) and `V` (weight), its output `AV`. The Einsums between them run on the 1D array as
element-wise phases (see `mappers.unfused`). Which cascades FLAT accepts, and why, is in
`mappers.flat_cost`'s docstring; the loop nests and the latency rule are there too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from archs.model import SpatialArch
from einsum_ir.ir import Cascade, RankName, TensorName
from mappers import cost
from mappers.flat_cost import (
    Breakdown,
    Contraction,
    FlatProblem,
    StreamPhase,
    evaluate_one,
    loop_nest,
)
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


def _problem(
    cv: CascadeView, binding: Binding, pair: tuple[_Contraction, _Contraction]
) -> FlatProblem:
    """The cost model's explicit sizes and roles, read from the cascade view.

    The one place where rank letters meet FLAT: the query rank is `QUERY_RANK`, the
    batch-like ranks are the view's instance ranks; the key rank and the head dims follow
    from the contractions (what each reduces).
    """
    c = cv.cascade
    tensor_ranks = c.tensor_ranks  # a property that builds a dict: read it once
    qk, av = pair
    groups = [p for p in group_phases(binding) if not binding.is_contraction(p[0])]
    phases = tuple(StreamPhase(*phase_io(cv, p), sum(binding.cycles[i] for i in p)) for p in groups)
    memo: dict[tuple[int, frozenset[TensorName], frozenset[TensorName]], StreamBuffer] = {}

    def stream_buffer(
        k: int, from_dram: frozenset[TensorName], kept: frozenset[TensorName]
    ) -> StreamBuffer:
        if (k, from_dram, kept) not in memo:
            memo[(k, from_dram, kept)] = stream_buffer_words(cv, groups[k], from_dram, kept)
        return memo[(k, from_dram, kept)]

    def reduced(con: _Contraction) -> str:
        return next(r for r in con.ranks if r not in tensor_ranks[con.output])

    operands = (qk.input, qk.weight, qk.output, av.input, av.weight, av.output)
    moved = {*operands, *(n for ph in phases for n in (*ph.inputs, *ph.outputs))}
    return FlatProblem(
        query_rank=QUERY_RANK,
        key_rank=reduced(av),
        qk_head_rank=reduced(qk),
        v_head_rank=next(r for r in av.ranks if r != QUERY_RANK and r in tensor_ranks[av.output]),
        batch_ranks=cv.instance_ranks,
        rank_sizes={r: cv.sizes[r] for t in operands for r in tensor_ranks[t]},
        tensor_ranks={t: tuple(tensor_ranks[t]) for t in operands},
        tensor_words={t: cv.words(t) for t in moved},
        scores=Contraction(qk.input, qk.weight, qk.output, qk.ranks),
        values=Contraction(av.input, av.weight, av.output, av.ranks),
        phases=phases,
        inputs=frozenset(c.input_names),
        outputs=frozenset(c.outputs),
        score_row_words=cv.per_query_words(qk.output, keep_key=True),
        stream_buffer=stream_buffer,
    )


@dataclass(frozen=True, slots=True)
class _Problem:
    cv: CascadeView
    arch: SpatialArch
    binding: Binding
    pair: tuple[_Contraction, _Contraction]
    flat: FlatProblem

    @property
    def roles(self) -> dict[str, TensorName]:
        """Role (Q, K, QK, A, V, AV) -> tensor."""
        return self.flat.role_tensors


def _energy(pb: _Problem, ev: Breakdown) -> tuple[EnergyItem, ...]:
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
        pb = _Problem(cv, arch, binding, pair, _problem(cv, binding, pair))
        stats: dict[str, float] = {}
        if self.options is None:
            # imported here: the search module builds on this one's problem
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
                loop_nest(pb.flat, arch, pb.flat.scores, opts.qk_stationarity, p1),
                loop_nest(pb.flat, arch, pb.flat.values, opts.av_stationarity, p1),
            )
            kept = {pb.roles[r] for r in opts.onchip}
            ev = evaluate_one(
                pb.flat,
                arch,
                nests,
                [t in kept for t in pb.flat.operands],
                opts.spilled_fraction,
                opts.artifact_compat,
            )
            if opts.granularity == "row" and not opts.p1:
                opts = replace(opts, p1=p1)
        return _result(pb, opts, ev, _energy(pb, ev), stats)


def _result(
    pb: _Problem,
    opts: FlatOptions,
    ev: Breakdown,
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
