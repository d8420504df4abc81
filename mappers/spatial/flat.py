"""FLAT (Kao et al., ASPLOS 2023): fused attention with on-chip score rows.

This module holds FLAT's options and mapper. `mappers.spatial.flat_problem` reads the cascade (rank
roles from its structure, the binding, the two matmuls, the mask's share of FLAT's tiles)
and builds the explicit sizes and roles of FLAT's cost model (`mappers.spatial.flat_cost`, shared
with the dataflow search in `mappers.spatial.flat_search`). Roles of the six on-chip choices: the
score matmul's query-indexed operand is `Q`, its other operand `K`, its output `QK`; the
value matmul's operands are `A` and `V`, its output `AV`. Which cascades FLAT accepts, and
what it refuses, is in `mappers.spatial.flat_cost`'s docstring. A linear-attention cascade
(a recurrent state, `einsum_ir.analysis.recurrent.find_states`) takes FLAT's dataflow
applied to its blocks instead: `mappers.spatial.flat_linear` (the chunked causal form with
its chunk searched under the buffer by `chunk_search`, and the non-causal form). A backward
(gradient) cascade takes FLAT's dataflow applied to FlashAttention-2's backward:
`mappers.spatial.flat_bwd` (key blocks held on chip, query row blocks streamed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from attnsim.archs.model import SpatialArch
from attnsim.einsum_ir.ir import Cascade
from attnsim.mappers.options import option
from attnsim.mappers.options import problems as option_problems
from attnsim.mappers.registry import register_mapper
from attnsim.mappers.result import (
    EnergyItem,
    Occupancy,
    Result,
    Traffic,
)
from attnsim.mappers.spatial.chunks import chunk_rank, search_chunk
from attnsim.mappers.spatial.flat_cost import Breakdown, evaluate_one, loop_nest
from attnsim.mappers.spatial.flat_linear import (
    einsum_records,
    energy_items,
    linear_states,
    map_linear,
    unit_records,
)
from attnsim.mappers.spatial.flat_problem import Problem, problem
from attnsim.mappers.spatial.unfused import (
    ELEMENT_STREAM_WARNING,
    Binding,
)
from attnsim.mappers.spatial.view import (
    MappingError,
    require_spatial,
    spatial_result,
    view,
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
        skip_empty_tiles: Skip the (row tile, key span) tiles a mask leaves empty, as a
            sequencer that computes each row tile's key range could (on by default, as for
            `fusemax` and `unfused`; unmasked cascades cost the same either way); off
            computes every tile and says so in the warnings. See `mappers.spatial.flat_problem`.
        chunk_search: For a cascade that cuts its keys into chunks itself (chunked linear
            attention's M -> M1 x M0): map every power-of-two chunk M0 that divides M and
            keep the fastest whose block fits the buffer, refusing when none fits
            (`mappers.spatial.chunks`); the Result's warnings list every candidate. Off: the
            cascade's own M0. As on `fusemax` and `unfused`.
    """

    onchip: tuple[str, ...] = option(("QK", "A"), choices=ROLES)
    qk_stationarity: str = option("output", choices=STATIONARITIES)
    av_stationarity: str = option("output", choices=STATIONARITIES)
    granularity: str = option("head", choices=GRANULARITIES)
    p1: int = option(0, minimum=0, zero="the 2D array's rows")
    spilled_fraction: float = option(0.0, minimum=0.0, maximum=1.0)
    artifact_compat: bool = False
    search_budget: int = option(0, minimum=0, zero="every candidate")
    skip_empty_tiles: bool = True
    chunk_search: bool = False

    def __post_init__(self) -> None:
        bad = option_problems(self)
        if bad:
            raise MappingError("flat options: " + "; ".join(bad))


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


def _energy(pb: Problem, binding: Binding, ev: Breakdown) -> tuple[EnergyItem, ...]:
    reads, writes = sum(ev.reads.values()), sum(ev.writes.values())
    return energy_items(pb.arch, binding, reads, writes, ev.buffer_reads, ev.buffer_writes)


# ----------------------------------------------------------------------------- search


SEARCHED_FIELDS = ("onchip", "qk_stationarity", "av_stationarity", "granularity", "p1")


# ----------------------------------------------------------------------------- mapper


@register_mapper("flat")
class FlatMapper:
    """FLAT; see the module docstring. Without options, a search picks the dataflow."""

    Options = FlatOptions

    name = "flat"
    arch_kind = "spatial"

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
        if cv.backward:  # a gradient cascade: FLAT's dataflow on FlashAttention-2's backward
            from attnsim.mappers.spatial.flat_bwd import map_backward

            return map_backward(cv, arch, self.base, self.fixed)
        if linear_states(cv):
            return self._map_linear(cascade, arch, sizes)
        if self.base.chunk_search:
            chunk_rank(cascade, sizes)  # refuses a cascade without chunks, saying why
        pb = problem(cascade, cv, arch, sizes, self.base.skip_empty_tiles)
        stats: dict[str, float] = {}
        rows = pb.query_rows
        if self.options is None:
            # imported here: the search module builds on this one's problem
            from attnsim.mappers.spatial.flat_search import search

            opts, ev, stats = search(
                pb, self.fixed, self.base.search_budget, self.search_artifact_compat
            )
            opts = replace(opts, skip_empty_tiles=self.base.skip_empty_tiles)
            p1 = opts.p1 or rows
        else:
            opts = self.options
            p1 = opts.p1 or arch.array_2d.rows
            p1 = rows if opts.granularity == "head" else p1
            if opts.granularity == "row" and rows % p1:
                raise MappingError(f"p1 = {p1} does not divide P = {rows} (query rows)")
            flat = pb.at(p1)
            nests = (
                loop_nest(flat, arch, flat.scores, opts.qk_stationarity, p1),
                loop_nest(flat, arch, flat.values, opts.av_stationarity, p1),
            )
            kept = {pb.role_tensors[r] for r in opts.onchip}
            ev = evaluate_one(
                flat,
                arch,
                nests,
                [t in kept for t in flat.operands],
                opts.spilled_fraction,
                opts.artifact_compat,
            )
            if opts.granularity == "row" and not opts.p1:
                opts = replace(opts, p1=p1)
        binding = pb.binding(p1)
        return _result(pb, p1, opts, ev, _energy(pb, binding, ev), stats)

    def _map_linear(self, cascade: Cascade, arch: SpatialArch, sizes: dict[str, int]) -> Result:
        """Linear attention on FLAT's dataflow (`mappers.spatial.flat_linear`)."""
        base = self.base
        unused = [f for f in SEARCHED_FIELDS if f in self.fixed]
        unused += [f for f in ("spilled_fraction", "artifact_compat") if getattr(base, f)]
        notes = (
            [
                f"FLAT options {', '.join(unused)} describe the softmax dataflow (its roles Q, "
                "K, QK, A, V, AV); linear attention's dataflow holds each block on chip and "
                "picks every contraction's stationarity itself: not used"
            ]
            if unused
            else []
        )
        options = asdict(base)
        options["onchip"] = ",".join(base.onchip)

        def one(at: dict[str, int]) -> Result:
            return map_linear(
                cascade, arch, at, tuple(options.items()), base, base.skip_empty_tiles, notes
            )

        if base.chunk_search:
            return search_chunk(one, cascade, arch, sizes, require_fit=True)
        return one(sizes)


def _result(
    pb: Problem,
    p1: int,
    opts: FlatOptions,
    ev: Breakdown,
    energy: tuple[EnergyItem, ...],
    stats: dict[str, float],
) -> Result:
    cv, arch, binding = pb.cv, pb.arch, pb.binding(p1)
    wb = arch.word_bytes
    lat = ev.latency_cycles
    lanes_2d = arch.array_2d.lanes
    cycles = list(binding.cycles)
    effective = list(binding.cycles)
    for k, con in enumerate(pb.pair):
        cycles[con.index] = ev.cycles_2d[k]
        effective[con.index] = ev.cycles_2d[k] * ev.used_lanes[k] / lanes_2d
    per_einsum = einsum_records(cv, binding, cycles, effective, lat)
    names = list(dict.fromkeys([*ev.reads, *ev.writes]))
    traffic = tuple(
        Traffic("dram", t, ev.reads.get(t, 0.0) * wb, ev.writes.get(t, 0.0) * wb) for t in names
    )
    warnings = [
        ELEMENT_STREAM_WARNING,
        "FLAT: 2D and 1D arrays and DRAM overlap fully (latency = max of the three)",
        *pb.mask(p1).warnings,
        *binding.notes,
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
    extras = tuple(stats.items()) + (("p1", float(p1)),)
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
        units=unit_records(arch, binding, cycles, effective, lat),
        schedule="overlapped",
        identity=opts,
        extras=extras,
        warnings=warnings,
    )


__all__ = ["ARTIFACT_READ_WARNING", "FlatMapper", "FlatOptions", "flat_dataflow_from_row"]
