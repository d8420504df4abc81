"""FuseMax mapper (Nayak et al., MICRO 2024) and its ablation steps.

Mapping: batch-like ranks (B, H) and P2 query blocks are outer DRAM loops; P1 x P0 queries
(P0 = 2D-array rows) stay in the global buffer with their running state; the key rank is
streamed in tiles of M0 = 2D-array columns, each K/V tile read once per query block.

Masks (`skip_empty_tiles`, default on): the tiles are the mapper's own, a query tile of the
P0 rows the 2D array holds and a key tile of M0 keys, classified by
`attention_problem(...).tiles`. With skipping, every Einsum that iterates the key rank
(in-tile work and per-tile bookkeeping alike) works on the visited tiles only, each computed
whole; partial tiles pay one compare-select per pair on the score Einsum's array; K/V tiles
are loaded for a query block (P1 x P0 rows) only when one of its tiles visits them. Without
skipping every tile is computed and masked (the FuseMax paper evaluated full attention), and
the Result's warnings say so. An unmasked cascade costs the same either way, so the paper's
tables do not depend on the option. A mask outside the band family is refused with skipping
on and computed densely (with a warning) with it off.

Steps (the paper's Figure 8 ablation):
- `cascade`: the cascade on FLAT-like hardware; only contraction Einsums (multiply under a
  sum) use the 2D array, everything else the 1D array; in-tile rows that cross between the
  arrays are buffered per query, so the arrays overlap fully (`overlapped` schedule).
- `arch`: FuseMax hardware; Einsums inside a key tile on the 2D array, per-tile bookkeeping
  on the 1D array; the 2D array waits for each tile's row max to cross its columns (a stall
  of columns x the reduction's cycles), and only per-row scalar carries overlap the next tile.
- `binding`: full FuseMax: every carry update overlaps the next tile and the stall is hidden
  (`pipelined` schedule).

A backward (gradient) cascade is mapped by `mappers.spatial.fusemax_bwd` (FlashAttention-2's
backward: key blocks held on chip, query tiles streamed, scores recomputed).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field

from attnsim.archs.model import ComputeArray, SpatialArch
from attnsim.einsum_ir.ir import Cascade, Reduce, ReduceOp, TensorName
from attnsim.mappers.options import option
from attnsim.mappers.options import problems as option_problems
from attnsim.mappers.registry import register_mapper
from attnsim.mappers.result import (
    EnergyItem,
    Occupancy,
    Result,
    Traffic,
    UnitCost,
)
from attnsim.mappers.spatial import cost
from attnsim.mappers.spatial.chunks import search_chunk
from attnsim.mappers.spatial.compute import (
    EinsumWork,
    cascade_work,
    cycles_on,
    scale_work,
)
from attnsim.mappers.spatial.fusemax_bind import place_einsum
from attnsim.mappers.spatial.fusemax_bwd import map_backward
from attnsim.mappers.spatial.fusemax_cost import dram_traffic
from attnsim.mappers.spatial.fusemax_cost import energy as fusemax_energy
from attnsim.mappers.spatial.mask_cost import (
    MaskCost,
    mask_cost,
)
from attnsim.mappers.spatial.schedule import Task, overlapped_cycles, pipelined_cycles
from attnsim.mappers.spatial.serving_cost import (
    LatentPlan,
    latent_plan,
    merge_einsums,
    split_copies,
    split_note,
    with_weights,
)
from attnsim.mappers.spatial.view import (
    CascadeView,
    MappingError,
    einsum_costs,
    is_carry_only,
    require_spatial,
    same_tile_deps,
    spatial_result,
    view,
)

STEPS = ("cascade", "arch", "binding")
# An array with no absorbing operations: counts every scalar operation (for Result.ops).
_NO_ABSORB = ComputeArray("scalar-ops", 1, 1, ())


@dataclass(frozen=True, slots=True)
class FuseMaxOptions:
    """Options of the FuseMax mapper.

    Attributes:
        step: Ablation step: `cascade`, `arch` or `binding` (full FuseMax).
        p1: Query tiles (of P0 rows) held on chip; 0 picks the largest that fits.
        key_tile: Key tile M0; 0 binds it to the 2D array's column count.
        buffer_budget_bytes: Buffer bytes the query tiling may plan for; 0 = the capacity.
        artifact_compat: Reproduce counting quirks of the FuseMax artifact (each one is
            listed in the Result's warnings when it applies).
        skip_empty_tiles: Skip (query tile, key tile) pairs the mask leaves empty, as a
            sequencer that computes each query tile's key range could; off computes every
            tile densely and says so in the warnings. On by default so that a mask is
            priced; unmasked cascades (the FuseMax paper's) cost the same either way.
        chunk_search: For a cascade that cuts its keys into chunks itself (chunked linear
            attention's M -> M1 x M0): map every power-of-two chunk M0 that divides M and
            keep the fastest that fits the buffer (`mappers.spatial.chunks`); the Result's
            warnings list every candidate. Off: the cascade's own M0.
        key_block: Backward cascades only (`mappers.spatial.fusemax_bwd`): keys held on chip
            per block, a multiple of the key tile; 0 searches the one moving the fewest DRAM
            bytes among those that fit the buffer.
    """

    step: str = option("binding", choices=STEPS)
    p1: int = option(0, minimum=0, zero="the largest that fits")
    key_tile: int = option(0, minimum=0, zero="the 2D array's columns")
    buffer_budget_bytes: int = option(0, minimum=0, zero="the buffer's capacity")
    artifact_compat: bool = False
    skip_empty_tiles: bool = True
    chunk_search: bool = False
    key_block: int = option(0, minimum=0, zero="searched (backward cascades only)")

    def __post_init__(self) -> None:
        bad = option_problems(self)
        if bad:
            raise MappingError("fusemax options: " + "; ".join(bad))


@dataclass(slots=True)
class _Plan:
    """Mutable scratch of one `map` call (never escapes it)."""

    cv: CascadeView
    arch: SpatialArch
    mask: MaskCost
    units: dict[int, ComputeArray] = field(default_factory=dict)
    work: dict[int, EinsumWork] = field(default_factory=dict)
    cycles: dict[int, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@register_mapper("fusemax")
class FuseMaxMapper:
    """FuseMax and its ablation steps; see the module docstring."""

    Options = FuseMaxOptions

    name = "fusemax"
    arch_kind = "spatial"

    def __init__(self, options: FuseMaxOptions | None = None, **kwargs: object) -> None:
        self.options = options or FuseMaxOptions(**kwargs)  # type: ignore[arg-type]

    def map(self, cascade: Cascade, arch: SpatialArch, sizes: dict[str, int]) -> Result:
        """Map `cascade` at `sizes` onto `arch`."""
        require_spatial(arch, "fusemax")
        opts = self.options
        if opts.chunk_search:
            one = FuseMaxMapper(dataclasses.replace(opts, chunk_search=False))
            return search_chunk(lambda at: one.map(cascade, arch, at), cascade, arch, sizes)
        if not any(a.is_2d for a in arch.arrays) or all(a.is_2d for a in arch.arrays):
            raise MappingError(
                f"FuseMax needs a 2D and a 1D array; {arch.name} has "
                f"{[a.name for a in arch.arrays]}"
            )
        cv = view(cascade, sizes, opts.key_tile or arch.array_2d.cols)
        if cv.backward:  # a gradient cascade: FlashAttention-2's backward dataflow
            return map_backward(cv, arch, opts)
        if opts.key_block:
            raise MappingError(
                f"fusemax: key_block={opts.key_block} applies to backward cascades only; "
                f"{cascade.name} is a forward (its query tiling is p1)"
            )
        key_tile = (
            cv.sizes[cv.key_parts[-1]]
            if len(cv.key_parts) > 1
            else opts.key_tile or arch.array_2d.cols
        )
        rows = min(arch.array_2d.rows, cv.query_rows)
        mask = mask_cost(cv, rows, key_tile, opts.skip_empty_tiles, "fusemax")
        plan = _Plan(cv, arch, mask, warnings=list(mask.warnings))
        _bind(plan, opts.step)
        tiling = _tile_queries(plan, opts)
        latent = _latent(plan, tiling, opts)
        compute_cycles = sum(_pass_cycles(plan, k, opts.step) for k in _passes(plan))
        traffic = with_weights(dram_traffic(plan, tiling), latent, arch.word_bytes)
        dram_bytes = sum(t.total_bytes for t in traffic)
        mem_cycles = cost.memory_cycles(arch, dram_bytes)
        latency_cycles, bound = cost.bound_latency(compute_cycles, mem_cycles)
        merge_ops = sum(sum(n for _, n in plan.work[i].actions) for i in merge_einsums(cv))
        plan.warnings += split_note(cv, merge_ops)
        reserved = tiling.reserved_words + latent.resident_words
        tiling = dataclasses.replace(tiling, reserved_words=reserved)
        energy = fusemax_energy(plan, tiling, traffic, opts)
        return _result(
            plan, opts, tiling, traffic, energy, compute_cycles, mem_cycles, latency_cycles, bound
        )


# ----------------------------------------------------------------------------- binding


def _bind(plan: _Plan, step: str) -> None:
    """Bind each Einsum to the array its shape suits (see the module docstring).

    Per (key, query) element work (it iterates the innermost key piece) and contractions
    that do not iterate the keys go to the 2D array; per-row and per-tile bookkeeping to
    the 1D array. At the `cascade`
    step only contractions over the keys use the 2D array (FLAT-like binding). Operations
    an array lacks are lowered onto its units (`compute.lower_work`, e.g. sigmoid on the
    MACs); only when no lowering exists does an Einsum move to the other array (a warning).
    """
    cv, arch = plan.cv, plan.arch
    two_d, one_d = arch.array_2d, arch.array_1d
    works = cascade_work(cv.cascade, cv.sizes, two_d)
    for i, e in enumerate(cv.cascade.einsums):
        is_contraction = works[i].count("mac") > 0
        if step == "cascade":
            on_2d = cv.iterates_inner_key(e) and is_contraction
        else:
            # a contraction not over the keys (linear attention's Q x KV) is matrix work;
            # one over key tiles (a per-row rescaled sum over M1) is bookkeeping
            on_2d = cv.iterates_inner_key(e) or (is_contraction and not cv.iterates_key(e))
        unit = two_d if on_2d else one_d
        unit, work = place_einsum(cv, i, unit, arch, plan.mask, plan.warnings)
        plan.units[i], plan.work[i] = unit, work
        plan.cycles[i] = cycles_on(work, unit)


def _latent(plan: _Plan, tiling: _Tiling, opts: FuseMaxOptions) -> LatentPlan:
    """Price MLA's per-key projections for this tiling (serving_cost); scale their work."""
    capacity = (opts.buffer_budget_bytes or plan.arch.buffer.capacity_bytes) // plan.arch.word_bytes
    used = tiling.reserved_words + tiling.p0 * tiling.p1 * tiling.per_query_words
    latent = latent_plan(plan.cv, tiling.p0 * tiling.p1, tiling.p2, capacity - used)
    plan.warnings.extend(latent.warnings)
    for i in latent.key_einsums:
        if latent.recompute > 1:
            plan.work[i] = scale_work(plan.work[i], float(latent.recompute))
            plan.cycles[i] = cycles_on(plan.work[i], plan.units[i])
    return latent


def _passes(plan: _Plan) -> list[int]:
    return sorted({plan.cv.pass_of(i) for i in plan.units})


# ----------------------------------------------------------------------------- schedule


def _pass_cycles(plan: _Plan, pass_number: int, step: str) -> float:
    cv = plan.cv
    members = [i for i in plan.units if cv.pass_of(i) == pass_number]
    merges = merge_einsums(cv)  # split-K's merge over M2 runs after the key loop
    loop = [i for i in members if cv.iterates_key(cv.cascade.einsums[i]) and i not in merges]
    tail = [i for i in members if i not in loop]
    tasks = _tasks(plan, loop, tail, step)
    if step == "cascade":
        return overlapped_cycles(tasks)
    try:
        return pipelined_cycles(tasks)
    except ValueError as exc:  # Einsums of two attention stages in one tile loop (agents)
        raise MappingError(
            f"fusemax: {cv.cascade.name}: its Einsums over the key rank do not form one "
            f"pipeline over key tiles ({exc})"
        ) from None


def _deferred(plan: _Plan, i: int, step: str) -> bool:
    cv = plan.cv
    if not is_carry_only(cv, i):
        return False
    if step == "binding":
        return True
    # Coarse binding (`arch`): only per-row scalar carries overlap the next tile.
    out = cv.cascade.einsums[i].output
    return cv.per_query_words(out, keep_key=False) == 1


def _tasks(plan: _Plan, loop: list[int], tail: list[int], step: str) -> list[Task]:
    cv = plan.cv
    names = {i: cv.cascade.einsums[i].output for i in plan.units}
    member = set(loop) | set(tail)
    ordered = [i for i in loop if not _deferred(plan, i, step)]
    ordered += [i for i in loop if _deferred(plan, i, step)] + tail
    stalls = _stalls(plan, loop) if step == "arch" else {}
    tasks: list[Task] = []
    for i in ordered:
        same, lagged = same_tile_deps(cv, i)
        deps: list[str] = [names[j] for j in same if j in member]
        deps += [f"{names[j]}:stall" for j in same if j in stalls]
        lag = tuple(names[j] for j in lagged if j in member)
        deferred = i in tail or _deferred(plan, i, step)
        tasks.append(Task(names[i], plan.units[i].name, plan.cycles[i], tuple(deps), lag, deferred))
        if i in stalls:
            tasks.append(Task(f"{names[i]}:stall", plan.units[i].name, stalls[i], (names[i],)))
    return tasks


def _stalls(plan: _Plan, loop: list[int]) -> dict[int, float]:
    """2D max-reductions over the in-tile key index feeding the 1D array stall the 2D array."""
    cv = plan.cv
    who_reads = cv.who_reads
    stalls: dict[int, float] = {}
    for i in loop:
        e, unit = cv.cascade.einsums[i], plan.units[i]
        is_row_max = (
            isinstance(e.expr, Reduce)
            and e.expr.op is ReduceOp.MAX
            and cv.inner_key_var in e.expr.over
        )
        feeds_1d = any(not plan.units[j].is_2d for j in who_reads.get(e.output, []))
        if unit.is_2d and is_row_max and feeds_1d:
            stalls[i] = unit.cols * plan.cycles[i]
    return stalls


# ----------------------------------------------------------------------------- tiling


@dataclass(frozen=True, slots=True)
class _Tiling:
    p0: int
    p1: int
    p2: int
    per_query_words: int
    reserved_words: int
    buffered_crossing: tuple[TensorName, ...]
    spilled_crossing: tuple[TensorName, ...]
    in_tile_rows: tuple[TensorName, ...]
    fits: bool
    search_candidates: int = 0  # query tilings considered when p1 was left open
    search_feasible: int = 0


def _crossing(cv: CascadeView) -> tuple[TensorName, ...]:
    return tuple(dict.fromkeys(t for b in cv.passes.boundaries for t in b.buffered))


def _in_tile_rows(plan: _Plan) -> tuple[TensorName, ...]:
    """In-tile tensors produced on one array and read on the other (buffered per query)."""
    cv = plan.cv
    who_reads = cv.who_reads
    rows = []
    for i, unit in plan.units.items():
        e = cv.cascade.einsums[i]
        if cv.inner_key_var not in e.out_vars:
            continue
        if any(plan.units[j].is_2d != unit.is_2d for j in who_reads.get(e.output, [])):
            rows.append(e.output)
    return tuple(rows)


def _resident_words(
    plan: _Plan, crossing: tuple[TensorName, ...], rows: tuple[TensorName, ...]
) -> int:
    cv = plan.cv
    c = cv.cascade
    words = 0
    for name in c.input_names:
        if cv.is_query_indexed(name) and not cv.is_key_indexed(name):
            words += cv.per_query_words(name, keep_key=False)
    for name in cv.recur:  # split-K: each split's final state is held for the merge
        if cv.is_query_indexed(name):
            words += cv.per_query_words(name, keep_key=False) * split_copies(cv, name)
    for name in crossing:
        words += cv.per_query_words(name, keep_key=True)
    m0 = cv.sizes[cv.key_parts[-1]]
    for name in rows:
        words += cv.per_query_words(name, keep_key=False) * m0
    return words


def _reserved_words(cv: CascadeView) -> int:
    """One key tile of every key-indexed input (per batch instance)."""
    m0 = cv.sizes[cv.key_parts[-1]]
    total = 0
    for name in cv.cascade.input_names:
        if cv.is_key_indexed(name):
            total += (
                cv.per_query_words(name, keep_key=False) * m0
                if not cv.is_query_indexed(name)
                else m0
            )
    return total


def _tile_queries(plan: _Plan, opts: FuseMaxOptions) -> _Tiling:
    cv, arch = plan.cv, plan.arch
    p0 = min(arch.array_2d.rows, cv.query_rows)
    blocks = math.ceil(cv.query_rows / p0)
    budget = opts.buffer_budget_bytes or arch.buffer.capacity_bytes
    if budget > arch.buffer.capacity_bytes:
        plan.warnings.append(f"buffer budget {budget} B exceeds the {arch.buffer.name} capacity")
    elif budget < arch.buffer.capacity_bytes:
        plan.warnings.append(
            f"query tiling planned for {budget} B of the "
            f"{arch.buffer.capacity_bytes} B {arch.buffer.name}"
        )
    capacity_words = budget // arch.word_bytes
    reserved = _reserved_words(cv)
    crossing = _crossing(cv)
    rows = _in_tile_rows(plan) if opts.step == "cascade" else ()
    attempts = [(crossing, ()), ((), crossing)] if crossing else [((), ())]
    # Trial division up to sqrt(blocks): O(sqrt P) where listing 1..blocks was O(P), which
    # hung at P = 10^12; the divisors (and so the search's result) are the same.
    small = [d for d in range(1, math.isqrt(blocks) + 1) if blocks % d == 0]
    divisors = sorted({*small, *(blocks // d for d in small)}, reverse=True)
    for buffered, spilled in attempts:
        per_query = _resident_words(plan, buffered, rows)

        def fits(p1: int, per_query: int = per_query) -> bool:
            return reserved + p0 * p1 * per_query <= capacity_words

        if opts.p1:
            p1 = min(opts.p1, blocks)
            if fits(p1):
                p2 = math.ceil(blocks / p1)
                return _Tiling(p0, p1, p2, per_query, reserved, buffered, spilled, rows, True)
            continue
        # K/V traffic falls as P1 grows and compute does not depend on it: the largest
        # feasible divisor is the optimum of this search.
        feasible = [d for d in divisors if fits(d)]
        if feasible:
            p1 = feasible[0]
            return _Tiling(
                p0,
                p1,
                blocks // p1,
                per_query,
                reserved,
                buffered,
                spilled,
                rows,
                True,
                len(divisors),
                len(feasible),
            )
    p1 = min(opts.p1, blocks) if opts.p1 else 1
    per_query = _resident_words(plan, (), rows)
    plan.warnings.append(
        f"on-chip state of {p1} query block(s) ({reserved + p0 * p1 * per_query} words) exceeds "
        f"the {arch.buffer.name} capacity ({capacity_words} words)"
    )
    return _Tiling(
        p0,
        p1,
        math.ceil(blocks / p1),
        per_query,
        reserved,
        (),
        crossing,
        rows,
        False,
        0 if opts.p1 else len(divisors),
        0,
    )


# ----------------------------------------------------------------------------- result


def _result(
    plan: _Plan,
    opts: FuseMaxOptions,
    tiling: _Tiling,
    traffic: tuple[Traffic, ...],
    energy: tuple[EnergyItem, ...],
    compute_cycles: float,
    mem_cycles: float,
    latency_cycles: float,
    bound: str,
) -> Result:
    cv, arch = plan.cv, plan.arch
    order = sorted(plan.units)
    per_einsum = einsum_costs(
        cv,
        [plan.units[i] for i in order],
        [plan.work[i] for i in order],
        [plan.cycles[i] for i in order],
        latency_cycles,
    )
    units = []
    for array in arch.arrays:
        busy = sum(plan.cycles[i] for i, u in plan.units.items() if u is array)
        units.append(
            UnitCost(
                array.name,
                busy,
                float(array.lanes),
                busy / latency_cycles if latency_cycles else 0.0,
            )
        )
    occupancy_words = tiling.reserved_words + tiling.p0 * tiling.p1 * tiling.per_query_words
    capacity = arch.buffer.capacity_bytes
    spilled = sum(t.total_bytes for t in traffic if t.tensor in tiling.spilled_crossing)
    warnings = list(plan.warnings)
    warnings.append("schedule: steady state over key tiles (pipeline fill and drain ignored)")
    if tiling.spilled_crossing:
        warnings.append(
            f"pass-boundary tensors spilled to DRAM: {', '.join(tiling.spilled_crossing)}"
        )
    schedule = "overlapped" if opts.step == "cascade" else "pipelined"
    occupancy = Occupancy(
        arch.buffer.name, "total", occupancy_words * arch.word_bytes, capacity, spilled
    )
    return spatial_result(
        cv,
        arch,
        "fusemax",
        tuple(asdict(opts).items()),
        latency_cycles=latency_cycles,
        compute_cycles=compute_cycles,
        memory_cycles=mem_cycles,
        bound=bound,
        traffic=traffic,
        energy=energy,
        occupancy=(occupancy,),
        per_einsum=per_einsum,
        units=tuple(units),
        schedule=schedule,
        identity=opts,
        extras=(
            ("p0", float(tiling.p0)),
            ("p1", float(tiling.p1)),
            ("p2", float(tiling.p2)),
            *(
                (
                    ("search_candidates", float(tiling.search_candidates)),
                    ("search_feasible", float(tiling.search_feasible)),
                )
                if tiling.search_candidates
                else ()
            ),
        ),
        warnings=warnings,
    )


__all__ = ["FuseMaxMapper", "FuseMaxOptions"]
