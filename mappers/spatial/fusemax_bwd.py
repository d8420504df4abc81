"""FuseMax's fused backward: FlashAttention-2's backward pass as a spatial dataflow.

`fusemax` maps a backward (gradient) cascade here (`map_backward`); what the cascade holds
is read from its structure (`fusemax_bwd_structure`): key-side inputs K, V, per-query
inputs Q, DO, LSE, O, the pre-pass D = rowsum(DO o O), the key x query tensors S, A, DA, DS
and the gradients DQ, DK, DV, whatever their names. The dataflow (FlashAttention-2, Dao,
arXiv 2307.08691, Algorithm 2):

1. **pre-pass** (the 1D array, one PE per query row): D from DO and O, written to DRAM;
2. **key loop**: per batch-like instance, a key block of `key_block` keys is held in the
   global buffer with its gradient accumulators (K, V, DK, DV); query tiles of P0 rows (the
   2D array's rows; a GQA group's query heads packed into them, so DK, DV sum over the group
   on chip) stream past it: Q, DO, LSE, D are loaded, and for every key tile of M0 keys (the
   2D array's columns) the tile recomputes S = Q K^T, A = exp(S - LSE), then DV += A^T DO,
   DA = DO V^T, DS = A o (DA - D), DK += DS^T Q and DQ += DS K. DQ is accumulated through
   DRAM: read, updated and written back once per key block. DK, DV are written once.

Binding follows FuseMax's ablation steps (`step`): at `binding` and `arch` every Einsum of
the key loop works inside a key tile and goes to the 2D array (exp on its MACs, as the
forward's), the pre-pass to the 1D array (per-row work; the backward has no running max and
no carries, so `arch` binds and schedules as `binding`); at `cascade` only the loop's
contractions use the 2D array and its element-wise Einsums (A, DS) run on the 1D array
(FLAT-like binding). Key x query tensors produced on one array and read on the other are
buffered per tile (P0 x M0 words each). Across query tiles the arrays overlap (no carries
bind consecutive tiles); the pre-pass and the key loop run one after the other, each taking
max(its compute time, its DRAM time).

Key block search (`key_block` 0): every multiple of M0 that divides the key tiles, kept when
K, V, DK, DV of the block plus the query tile's working set (Q, DO, LSE, D and the DQ
partial sums per row; the crossing key x query tiles) fit the buffer budget; the one moving
the fewest DRAM bytes wins (the largest, unmasked). When none fits, one key tile per block
is priced and the Result says the state exceeds the buffer. Masks (`skip_empty_tiles`): the
compute tiles (P0 query rows x M0 keys) are classified as in the forward
(`mask_cost`); a query tile is loaded for a key block only when one of its pairs is visible.
Traffic, buffer accesses and energy: `mappers.spatial.fusemax_bwd_cost`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from attnsim.archs.model import ComputeArray, SpatialArch
from attnsim.einsum_ir.ir import TensorName
from attnsim.mappers.result import Occupancy, Result
from attnsim.mappers.spatial import cost
from attnsim.mappers.spatial.compute import EinsumWork, cascade_work, cycles_on
from attnsim.mappers.spatial.fusemax_bind import place_einsum
from attnsim.mappers.spatial.fusemax_bwd_cost import PhaseTraffic, dram_traffic, energy
from attnsim.mappers.spatial.fusemax_bwd_structure import BackwardStructure, read_backward
from attnsim.mappers.spatial.mask_cost import MaskCost, mask_cost
from attnsim.mappers.spatial.schedule import Task, overlapped_cycles
from attnsim.mappers.spatial.unfused import unit_costs
from attnsim.mappers.spatial.view import (
    CascadeView,
    MappingError,
    einsum_costs,
    spatial_result,
)

if TYPE_CHECKING:
    from attnsim.mappers.spatial.fusemax import FuseMaxOptions

NAME = "fusemax"


@dataclass(slots=True)
class BwdPlan:
    """Mutable scratch of one `map_backward` call (never escapes it)."""

    bs: BackwardStructure
    arch: SpatialArch
    mask: MaskCost
    units: dict[int, ComputeArray] = field(default_factory=dict)
    work: dict[int, EinsumWork] = field(default_factory=dict)
    cycles: dict[int, float] = field(default_factory=dict)
    crossing: tuple[TensorName, ...] = ()  # key x query tensors buffered between arrays
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BwdTiling:
    """One key-block choice: sizes in keys and query rows, buffer words per instance.

    Attributes:
        rows: Query rows per tile (P0).
        key_tile: Keys per compute tile (M0).
        key_block: Keys held on chip per block (a multiple of M0).
        key_blocks: Key blocks per instance.
        streamed_share: Share of (query tile, key block) pairs the mask leaves visited.
        block_words: K, V, DK, DV of one key block.
        tile_words: The query tile's per-row tensors (Q, DO, LSE, D, DQ partial sums).
        pair_words: Key x query tiles buffered between the arrays.
        fits: Whether the three fit the buffer budget.
        candidates: Key blocks considered by the search (0: given by the options).
        feasible: How many of them fit.
    """

    rows: int
    key_tile: int
    key_block: int
    key_blocks: int
    streamed_share: float
    block_words: int
    tile_words: int
    pair_words: int
    fits: bool
    candidates: int = 0
    feasible: int = 0

    @property
    def occupancy_words(self) -> int:
        """Words the buffer holds for one instance."""
        return self.block_words + self.tile_words + self.pair_words


def map_backward(cv: CascadeView, arch: SpatialArch, opts: FuseMaxOptions) -> Result:
    """Map the backward cascade of `cv` onto FuseMax hardware (see the module docstring)."""
    bs = read_backward(cv, NAME)
    cv = bs.cv
    rows = min(arch.array_2d.rows, cv.query_rows)
    key_tile = min(opts.key_tile or arch.array_2d.cols, cv.sizes[cv.key_rank])
    mask = mask_cost(cv, rows, key_tile, opts.skip_empty_tiles, NAME)
    plan = BwdPlan(bs, arch, mask, warnings=[*bs.notes, *mask.warnings, *_option_notes(opts)])
    _bind(plan, opts.step)
    tiling = _search(plan, opts, rows, key_tile)
    traffic = dram_traffic(plan, tiling)
    pre_c = sum(plan.cycles[i] for i in bs.prepass)
    loop_c = overlapped_cycles(
        [Task(cv.cascade.einsums[i].output, plan.units[i].name, plan.cycles[i]) for i in bs.loop]
    )
    pre_m = cost.memory_cycles(arch, traffic.prepass_bytes)
    loop_m = cost.memory_cycles(arch, traffic.loop_bytes)
    latency = max(pre_c, pre_m) + max(loop_c, loop_m)
    return _result(plan, opts, tiling, traffic, (pre_c, loop_c, pre_m, loop_m), latency)


def _option_notes(opts: FuseMaxOptions) -> list[str]:
    notes = []
    if opts.p1:
        notes.append(
            f"p1={opts.p1} ignored: the backward streams its query tiles past each key block "
            "(the key block is the searched tiling: option key_block)"
        )
    if opts.artifact_compat:
        notes.append("artifact_compat: no quirk of the FuseMax artifact applies to a backward")
    if opts.step == "arch":
        notes.append(
            "step arch binds and schedules the backward as binding (no running max to wait "
            "for, no carries)"
        )
    return notes


# ----------------------------------------------------------------------------- binding


def _bind(plan: BwdPlan, step: str) -> None:
    """Bind the loop to the 2D array (contractions only at `cascade`), the pre-pass to 1D.

    `place_einsum` lowers what an array lacks, or moves the Einsum to the other array (a
    warning), and prices the mask's visited tiles.
    """
    bs, arch = plan.bs, plan.arch
    cv = bs.cv
    two_d, one_d = arch.array_2d, arch.array_1d
    works = cascade_work(cv.cascade, cv.sizes, two_d)
    for i in range(len(cv.cascade.einsums)):
        if i in bs.prepass:
            unit = one_d
        elif step == "cascade":
            unit = two_d if works[i].count("mac") else one_d
        else:
            unit = two_d
        unit, work = place_einsum(cv, i, unit, arch, plan.mask, plan.warnings)
        plan.units[i], plan.work[i], plan.cycles[i] = unit, work, cycles_on(work, unit)
    producer = cv.producer
    plan.crossing = tuple(
        t
        for t in bs.pair_tensors
        if any(plan.units[j] is not plan.units[producer[t]] for j in cv.who_reads.get(t, ()))
    )


# ----------------------------------------------------------------------------- key blocks


def _tiling(
    plan: BwdPlan, rows: int, key_tile: int, tiles_per_block: int, capacity_words: int
) -> BwdTiling:
    cv = plan.bs.cv
    bs = plan.bs
    key_tiles = math.ceil(cv.sizes[cv.key_rank] / key_tile)
    key_block = tiles_per_block * key_tile
    per_key = sum(cv.per_query_words(t, False) for t in (*bs.key_inputs, *bs.key_outputs))
    per_row = sum(cv.per_query_words(t, False) for t in (*bs.streamed, *bs.query_outputs))
    pair = rows * key_tile * sum(cv.per_query_words(t, False) for t in plan.crossing)
    share = 1.0
    if plan.mask.is_masked and plan.mask.skip:
        share = mask_cost(cv, rows, key_block, True, NAME).visited
    block_words, tile_words = key_block * per_key, rows * per_row
    fits = block_words + tile_words + pair <= capacity_words
    blocks = math.ceil(key_tiles / tiles_per_block)
    return BwdTiling(rows, key_tile, key_block, blocks, share, block_words, tile_words, pair, fits)


def _search(plan: BwdPlan, opts: FuseMaxOptions, rows: int, key_tile: int) -> BwdTiling:
    """The key block (see the module docstring); budget notes and a fit warning appended."""
    arch, cv = plan.arch, plan.bs.cv
    budget = opts.buffer_budget_bytes or arch.buffer.capacity_bytes
    if budget != arch.buffer.capacity_bytes:
        plan.warnings.append(
            f"key block planned for {budget} B of the {arch.buffer.capacity_bytes} B "
            f"{arch.buffer.name}"
            + (" (more than its capacity)" if budget > arch.buffer.capacity_bytes else "")
        )
    capacity = budget // arch.word_bytes
    key_tiles = math.ceil(cv.sizes[cv.key_rank] / key_tile)
    if opts.key_block:
        if opts.key_block % key_tile:
            raise MappingError(
                f"{NAME}: key_block={opts.key_block} is not a multiple of the key tile "
                f"({key_tile} keys, the 2D array's columns or option key_tile)"
            )
        chosen = _tiling(plan, rows, key_tile, min(opts.key_block // key_tile, key_tiles), capacity)
    else:
        small = [d for d in range(1, math.isqrt(key_tiles) + 1) if key_tiles % d == 0]
        divisors = sorted({*small, *(key_tiles // d for d in small)})
        options = [_tiling(plan, rows, key_tile, d, capacity) for d in divisors]
        feasible = [t for t in options if t.fits]
        if feasible:
            best = min(feasible, key=lambda t: (dram_traffic(plan, t).loop_bytes, -t.key_block))
        else:
            best = options[0]
        chosen = replace(best, candidates=len(options), feasible=len(feasible))
    if not chosen.fits:
        bs = plan.bs
        plan.warnings.append(
            f"on-chip state of one key block of {chosen.key_block} keys and a query tile "
            f"({chosen.occupancy_words} words: {', '.join((*bs.key_inputs, *bs.key_outputs))} "
            f"{chosen.block_words}, query tile {chosen.tile_words}, tiles between arrays "
            f"{chosen.pair_words}) exceeds the {arch.buffer.name} capacity ({capacity} words)"
        )
    return chosen


# ----------------------------------------------------------------------------- result


def bwd_occupancy(plan: BwdPlan, tiling: BwdTiling) -> tuple[Occupancy, ...]:
    bs, arch = plan.bs, plan.arch
    level, capacity, wb = arch.buffer.name, float(arch.buffer.capacity_bytes), arch.word_bytes
    parts = [
        (f"{', '.join((*bs.key_inputs, *bs.key_outputs))} (key block)", tiling.block_words),
        (f"{', '.join((*bs.streamed, *bs.query_outputs))} (query tile)", tiling.tile_words),
    ]
    if plan.crossing:
        parts.append((f"{', '.join(plan.crossing)} (tiles between arrays)", tiling.pair_words))
    parts.append(("total", tiling.occupancy_words))
    return tuple(Occupancy(level, name, float(w * wb), capacity) for name, w in parts)


def recompute_note(plan: BwdPlan, tiling: BwdTiling) -> tuple[str, float]:
    """What the loop recomputes and keeps on chip instead of storing, and the recompute ops."""
    from attnsim.einsum_ir.analysis.training import training_report
    from attnsim.einsum_ir.library.training import training_entry
    from attnsim.einsum_ir.load import load_cascade

    bs, cv = plan.bs, plan.bs.cv
    pair_words = sum(cv.words(t) for t in bs.pair_tensors) * plan.mask.visited
    text = (
        f"recompute vs store: key x query tensors {', '.join(bs.pair_tensors)} stay on chip "
        f"per tile ({pair_words:,.0f} words computed; none stored to DRAM); per-query "
        f"{', '.join(bs.streamed)} re-read from DRAM once per visited key block "
        f"({tiling.key_blocks} blocks x {tiling.streamed_share:.3g} visited), "
        f"{', '.join(bs.query_outputs)} read and written back per block"
    )
    entry = training_entry(cv.cascade.name)
    if entry is None:
        return (
            text + " (forward unknown: which of them the forward also computed is not named)",
            0.0,
        )
    sizes = {str(k): v for k, v in cv.sizes.items()}
    report = training_report(load_cascade(entry.forward.name), cv.cascade, entry.saved_from, sizes)
    recomputed = [t for t in report.recomputed if t in bs.pair_tensors]
    ops = sum(sum(n for _, n in plan.work[cv.producer[t]].actions) for t in recomputed)
    return text + (
        f"; recomputed from the forward's inputs instead of stored: {', '.join(recomputed)} "
        f"({ops:,.0f} PE operations; the forward stored "
        f"{', '.join(entry.saved) or 'nothing'})"
    ), float(ops)


def _result(
    plan: BwdPlan,
    opts: FuseMaxOptions,
    tiling: BwdTiling,
    traffic: PhaseTraffic,
    times: tuple[float, float, float, float],
    latency: float,
) -> Result:
    bs, arch = plan.bs, plan.arch
    cv = bs.cv
    pre_c, loop_c, pre_m, loop_m = times
    order = sorted(plan.units)
    busy: dict[str, float] = {}
    for i in order:
        busy[plan.units[i].name] = busy.get(plan.units[i].name, 0.0) + plan.cycles[i]
    note, recomputed_ops = recompute_note(plan, tiling)
    warnings = [
        *plan.warnings,
        f"dataflow: FlashAttention-2 backward; key blocks of {tiling.key_block} keys "
        f"({tiling.key_blocks} per instance) hold {', '.join((*bs.key_inputs, *bs.key_outputs))}; "
        f"query tiles of {tiling.rows} rows stream past them; compute tiles of {tiling.rows} "
        f"rows x {tiling.key_tile} keys",
        note,
        f"accumulators ({', '.join((*bs.key_outputs, *bs.query_outputs))}) held and moved as "
        f"{arch.word_bytes}-byte words, the architecture's one word size",
        (
            f"schedule: pre-pass ({pre_c:,.0f} compute / {pre_m:,.0f} DRAM cycles) then the "
            if bs.prepass
            else "schedule: "
        )
        + "key loop, whose arrays overlap across query tiles (fill and drain ignored)",
    ]
    loop_bound = "memory:dram" if loop_m > loop_c else "compute"
    merged = traffic.merged()
    extras = [
        ("key_block", float(tiling.key_block)),
        ("key_blocks", float(tiling.key_blocks)),
        ("query_tile_rows", float(tiling.rows)),
        ("key_tile", float(tiling.key_tile)),
        ("streamed_share", tiling.streamed_share),
        ("prepass_cycles", max(pre_c, pre_m)),
        ("loop_cycles", max(loop_c, loop_m)),
        ("recomputed_ops", recomputed_ops),
    ]
    if tiling.candidates:  # the key block was searched
        extras += [("search_candidates", tiling.candidates), ("search_feasible", tiling.feasible)]
    return spatial_result(
        cv,
        arch,
        NAME,
        tuple(asdict(opts).items()),
        latency_cycles=latency,
        compute_cycles=pre_c + loop_c,
        memory_cycles=pre_m + loop_m,
        bound=loop_bound,
        traffic=merged,
        energy=energy(plan, tiling, traffic),
        occupancy=bwd_occupancy(plan, tiling),
        per_einsum=einsum_costs(
            cv,
            [plan.units[i] for i in order],
            [plan.work[i] for i in order],
            [plan.cycles[i] for i in order],
            latency,
        ),
        units=unit_costs(arch, busy, busy, latency),
        schedule="overlapped",
        identity=opts,
        extras=tuple((name, float(value)) for name, value in extras),
        warnings=warnings,
    )


__all__ = ["BwdPlan", "BwdTiling", "map_backward"]
