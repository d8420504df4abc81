"""FLAT-class hardware running the attention backward: FLAT's fused dataflow on the gradients.

`flat` maps a backward (gradient) cascade here (`map_backward`). What the cascade holds is
read from its structure by `fusemax_bwd_structure.read_backward` (key-side inputs K, V,
per-query inputs Q, DO, LSE, O, the pre-pass D = rowsum(DO o O), the key x query tensors S,
A, DA, DS and the gradients DQ, DK, DV, whatever their names); the 3-pass backward (a stored
A), a second pass over the keys and the other shapes it names are refused there. FLAT's
dataflow discipline (Kao et al., ASPLOS 2023), applied to FlashAttention-2's backward
(Dao, arXiv 2307.08691, Algorithm 2):

- **Binding.** FLAT's rule (`unfused.bind_by_contraction`): the loop's contractions (S = Q
  K^T recomputed, DV += A^T DO, DA = DO V^T, DK += DS^T Q, DQ += DS K) on the 2D array;
  its element-wise Einsums (A = exp(S - LSE): FLAT's exp unit is on the 1D array; DS = A o
  (DA - D)) and the pre-pass (D, a per-row reduction) on the 1D array, one element per
  lane per cycle.
- **Blocks.** Per batch-like instance a key block of `key_block` keys is held in the global
  buffer with its gradient accumulators (K, V, DK, DV); query row blocks of p1 rows (the
  2D array's rows, or option `p1`; a GQA group's query heads packed into them, so DK, DV
  sum over the group on chip) stream past it: Q, DO, LSE, D are loaded once per visited key
  block, the block's key x query rows (S, A, DA, DS: p1 x key_block words each) are fused
  through the buffer between the arrays and never stored, DQ is read, updated and written
  back once per key block, DK and DV written once. DRAM counts are FuseMax's backward's
  (`fusemax_bwd_cost.dram_traffic`: the same tensors move the same number of times).
- **2D nests.** Each loop contraction runs FLAT's loop nest (`flat_cost.array_loops`, through
  `flat_linear`'s per-block nest) at one (query block, key block)'s extents (p1 rows, a
  multiple of the GQA group, key_block keys, the head dim): the
  stationary tensor's ranks spatial over the columns and rows, the others temporal. Every
  stationarity (the output, either operand) is tried per contraction; the fewest steps,
  then the fewest buffer words, is kept (the Result's warnings name it). Cycles are the
  block's steps times the blocks computed.
- **Global buffer.** DRAM fills written once, write-backs read once; a contraction's
  operands read as its nest delivers them into the PEs, its output written per delivery
  and its partial sums read back; a 1D Einsum reads each input element once and writes
  each result once. The footprint (key block, query block, the block's key x query rows)
  must fit: the key block is searched over the multiples of the array's columns that
  divide the keys, the fastest fitting one kept (then the fewest DRAM bytes, the largest);
  when none fits the mapping is refused, as FLAT's own search refuses a point.
- **Masks.** Tiles are FLAT's (p1 query rows x one key block, `mask_cost`): a block pair
  none of whose pairs is visible is skipped whole (its query block is not loaded), a
  partial one computed whole with one compare-select per pair.
- **Latency.** FLAT's: the 2D array, the 1D array and DRAM overlap fully within a phase
  (the max of the three); the pre-pass and the key loop run one after the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from attnsim.archs.model import SpatialArch
from attnsim.mappers.result import Result
from attnsim.mappers.spatial import cost
from attnsim.mappers.spatial.compute import cascade_work, lower_work, unsupported
from attnsim.mappers.spatial.flat_linear import (  # FLAT's nest at one block's extents
    OVERLAP_WARNING,
    BlockNest,
    ChunkBlock,
    block_nest,
    einsum_records,
    energy_items,
    unit_records,
)
from attnsim.mappers.spatial.fusemax_bwd import (
    BwdPlan,
    BwdTiling,
    bwd_occupancy,
    recompute_note,
)
from attnsim.mappers.spatial.fusemax_bwd_cost import PhaseTraffic, dram_traffic
from attnsim.mappers.spatial.fusemax_bwd_structure import BackwardStructure, read_backward
from attnsim.mappers.spatial.mask_cost import mask_cost
from attnsim.mappers.spatial.unfused import (
    ELEMENT_STREAM_WARNING,
    Binding,
    bind_by_contraction,
    element_stream_cycles,
)
from attnsim.mappers.spatial.view import CascadeView, MappingError, spatial_result

if TYPE_CHECKING:
    from attnsim.mappers.spatial.flat import FlatOptions

NAME = "flat"
FIX = (
    "flat's backward is FlashAttention-2's dataflow on FLAT hardware (one pass over key "
    "blocks, scores recomputed from the saved LSE): map a 1-pass backward "
    "(attention-1pass-bwd*), or this cascade with the unfused mapper (Einsum by Einsum)"
)
UNUSED = ("onchip", "qk_stationarity", "av_stationarity", "granularity")  # when given
UNUSED_ON = ("spilled_fraction", "artifact_compat", "chunk_search")  # when set


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One key block priced: its tiling, plan, DRAM traffic, cycles and buffer words."""

    tiling: BwdTiling
    plan: BwdPlan
    traffic: PhaseTraffic
    nests: Mapping[int, BlockNest]
    cycles: tuple[float, ...]
    effective: tuple[float, ...]
    times: tuple[float, float, float, float, float]  # pre 1D, loop 2D, loop 1D, pre/loop DRAM
    buffer_words: tuple[float, float]

    @property
    def latency(self) -> float:
        """FLAT's overlap per phase (module docstring), the phases in sequence."""
        pre_1d, loop_2d, loop_1d, pre_m, loop_m = self.times
        return max(pre_1d, pre_m) + max(loop_2d, loop_1d, loop_m)


def map_backward(
    cv: CascadeView, arch: SpatialArch, opts: FlatOptions, fixed: Mapping[str, object]
) -> Result:
    """Map the backward cascade of `cv` onto FLAT hardware (see the module docstring)."""
    bs = read_backward(cv, NAME, FIX)
    cv = bs.cv
    group = cv.query_group  # a query block packs whole groups of query heads per position
    rows = max(group, min(opts.p1 or arch.array_2d.rows, cv.query_rows) // group * group)
    key_tile = min(arch.array_2d.cols, cv.sizes[cv.key_rank])
    key_tiles = math.ceil(cv.sizes[cv.key_rank] / key_tile)
    small = [d for d in range(1, math.isqrt(key_tiles) + 1) if key_tiles % d == 0]
    divisors = sorted({*small, *(key_tiles // d for d in small)})
    capacity = arch.buffer.capacity_bytes // arch.word_bytes
    options = [_evaluate(bs, arch, opts, rows, key_tile, d) for d in divisors]
    feasible = [ev for ev in options if ev.tiling.occupancy_words <= capacity]
    if not feasible:
        t = options[0].tiling
        raise MappingError(
            f"{NAME}: {cv.cascade.name}: the smallest key block ({t.key_block} keys) with a "
            f"query block of {rows} rows needs {t.occupancy_words} words of the "
            f"{arch.buffer.name} ({', '.join((*bs.key_inputs, *bs.key_outputs))} "
            f"{t.block_words}, query block {t.tile_words}, key x query rows {t.pair_words}), "
            f"more than its {capacity}; give a smaller p1 or a larger buffer"
        )
    best = min(
        feasible,
        key=lambda ev: (ev.latency, ev.traffic.loop_bytes, -ev.tiling.key_block),
    )
    tiling = replace(best.tiling, candidates=len(options), feasible=len(feasible))
    return _result(replace(best, tiling=tiling), opts, fixed)


def _binding(bs: BackwardStructure, arch: SpatialArch, binding: Binding) -> Binding:
    """FLAT's binding with the pre-pass (a per-row reduction) moved to the 1D array."""
    cv, one_d = bs.cv, arch.array_1d
    units, works, cycles = list(binding.units), list(binding.work), list(binding.cycles)
    notes = list(binding.notes)
    on_1d = cascade_work(cv.cascade, cv.sizes, one_d)
    for i in bs.prepass:
        work, lowered = lower_work(on_1d[i], one_d)
        missing = unsupported(work, one_d)
        if missing:
            e = cv.cascade.einsums[i]
            raise MappingError(f"{NAME}: {e}: {one_d.name} cannot perform {', '.join(missing)}")
        units[i], works[i], cycles[i] = one_d, work, element_stream_cycles(work, one_d)
        notes += lowered
    return Binding(tuple(units), tuple(works), tuple(cycles), tuple(notes))


def _evaluate(
    bs: BackwardStructure,
    arch: SpatialArch,
    opts: FlatOptions,
    rows: int,
    key_tile: int,
    tiles_per_block: int,
) -> Evaluation:
    """Price one key block of `tiles_per_block` key tiles (module docstring)."""
    cv = bs.cv
    c = cv.cascade
    keys = cv.sizes[cv.key_rank]
    key_block = min(tiles_per_block * key_tile, keys)
    key_blocks = math.ceil(keys / key_block)
    mask = mask_cost(cv, rows, key_block, opts.skip_empty_tiles, NAME)
    binding = _binding(bs, arch, bind_by_contraction(cv, arch, mask))
    plan = BwdPlan(bs, arch, mask, warnings=list(binding.notes))  # operations lowered
    for i in range(len(c.einsums)):
        plan.units[i], plan.work[i] = binding.units[i], binding.work[i]
        plan.cycles[i] = binding.cycles[i]
    plan.crossing = bs.pair_tensors  # every key x query row block is fused through the buffer
    per_key = sum(cv.per_query_words(t, False) for t in (*bs.key_inputs, *bs.key_outputs))
    per_row = sum(cv.per_query_words(t, False) for t in (*bs.streamed, *bs.query_outputs))
    pair = rows * key_block * sum(cv.per_query_words(t, False) for t in bs.pair_tensors)
    visited = mask.visited
    tiling = BwdTiling(
        rows, key_tile, key_block, key_blocks, visited, key_block * per_key, rows * per_row,
        pair, True,
    )  # fmt: skip
    traffic = dram_traffic(plan, tiling)
    block = ChunkBlock(rows // cv.query_group, key_block, False)  # a GQA group packed per row
    blocks = cv.instances * math.ceil(cv.query_rows / rows) * key_blocks * visited
    cycles, effective = list(binding.cycles), list(binding.cycles)
    nests: dict[int, BlockNest] = {}
    lanes = arch.array_2d.lanes
    for i in bs.loop:
        if binding.units[i].is_2d:
            nest = nests[i] = block_nest(cv, arch, c.einsums[i], block)
            selects = max(0.0, binding.cycles[i] - binding.work[i].count("mac") / lanes)
            cycles[i] = nest.steps * blocks + selects
            effective[i] = cycles[i] * nest.used_lanes / lanes
    merged = traffic.merged()
    wb = arch.word_bytes
    b_writes = sum(t.read_bytes for t in merged) / wb
    b_reads = sum(t.write_bytes for t in merged) / wb
    for i, e in enumerate(c.einsums):
        if i in nests:
            b_reads += nests[i].reads * blocks
            b_writes += nests[i].writes * blocks
        else:
            share = visited if cv.iterates_key(e) else 1.0
            ins = dict.fromkeys(a.tensor for a in e.inputs)
            b_reads += sum(cv.words(t) for t in ins) * share
            b_writes += cv.words(e.output) * share
    pre_1d = sum(cycles[i] for i in bs.prepass)
    loop_2d = sum(cycles[i] for i in bs.loop if binding.units[i].is_2d)
    loop_1d = sum(cycles[i] for i in bs.loop if not binding.units[i].is_2d)
    pre_m = cost.memory_cycles(arch, traffic.prepass_bytes)
    loop_m = cost.memory_cycles(arch, traffic.loop_bytes)
    return Evaluation(
        tiling,
        plan,
        traffic,
        nests,
        tuple(cycles),
        tuple(effective),
        (pre_1d, loop_2d, loop_1d, pre_m, loop_m),
        (b_reads, b_writes),
    )


def _result(ev: Evaluation, opts: FlatOptions, fixed: Mapping[str, object]) -> Result:
    plan, tiling, traffic = ev.plan, ev.tiling, ev.traffic
    bs, arch = plan.bs, plan.arch
    cv = bs.cv
    c = cv.cascade
    order = sorted(plan.units)
    binding = Binding(
        tuple(plan.units[i] for i in order),
        tuple(plan.work[i] for i in order),
        tuple(ev.cycles),
    )
    lat = ev.latency
    pre_1d, loop_2d, loop_1d, pre_m, loop_m = ev.times
    note, recomputed_ops = recompute_note(plan, tiling)
    unused = [f for f in UNUSED if f in fixed] + [f for f in UNUSED_ON if getattr(opts, f)]
    lanes = arch.array_2d.lanes
    warnings = [
        *bs.notes,
        *plan.mask.warnings,
        *plan.warnings,
        ELEMENT_STREAM_WARNING,
        OVERLAP_WARNING + " within the pre-pass and within the key loop, run one after the other",
        f"dataflow: FLAT's fused dataflow on FlashAttention-2's backward; key blocks of "
        f"{tiling.key_block} keys ({tiling.key_blocks} per instance) hold "
        f"{', '.join((*bs.key_inputs, *bs.key_outputs))} in the {arch.buffer.name}; query "
        f"blocks of {tiling.rows} rows stream past them; the block's key x query rows "
        f"({', '.join(bs.pair_tensors)}) fused through the buffer between the arrays; "
        f"key block searched: {tiling.feasible} of {tiling.candidates} fit",
        note,
        *(f"2D nest: {n.describe(str(c.einsums[i]), lanes)}" for i, n in sorted(ev.nests.items())),
        *binding_notes(plan),
        f"accumulators ({', '.join((*bs.key_outputs, *bs.query_outputs))}) held and moved as "
        f"{arch.word_bytes}-byte words, the architecture's one word size",
        f"schedule: pre-pass ({pre_1d:,.0f} 1D / {pre_m:,.0f} DRAM cycles) then the key loop "
        f"({loop_2d:,.0f} 2D / {loop_1d:,.0f} 1D / {loop_m:,.0f} DRAM cycles)",
    ]
    if unused:
        warnings.append(
            f"FLAT options {', '.join(unused)} describe the forward's dataflow (its roles Q, "
            "K, QK, A, V, AV, its spills, the artifact's counts, a cascade's chunks); the "
            "backward holds each key block on chip, searches it under the buffer and picks "
            "every contraction's stationarity itself: not used"
        )
    compute = pre_1d + max(loop_2d, loop_1d)
    memory = pre_m + loop_m
    options = asdict(opts)
    options["onchip"] = ",".join(opts.onchip)
    options["granularity"], options["p1"] = "row", tiling.rows  # query row blocks of p1
    extras = [
        ("key_block", float(tiling.key_block)),
        ("key_blocks", float(tiling.key_blocks)),
        ("query_tile_rows", float(tiling.rows)),
        ("p1", float(tiling.rows)),
        ("streamed_share", tiling.streamed_share),
        ("prepass_cycles", max(pre_1d, pre_m)),
        ("loop_cycles", max(loop_2d, loop_1d, loop_m)),
        ("recomputed_ops", recomputed_ops),
        ("search_candidates", float(tiling.candidates)),
        ("search_feasible", float(tiling.feasible)),
    ]
    return spatial_result(
        cv,
        arch,
        NAME,
        tuple(options.items()),
        latency_cycles=lat,
        compute_cycles=compute,
        memory_cycles=memory,
        bound="memory:dram" if loop_m > max(loop_2d, loop_1d) else "compute",
        traffic=traffic.merged(),
        energy=energy_items(
            arch,
            binding,
            sum(t.read_bytes for t in traffic.merged()) / arch.word_bytes,
            sum(t.write_bytes for t in traffic.merged()) / arch.word_bytes,
            *ev.buffer_words,
        ),
        occupancy=bwd_occupancy(plan, tiling),
        per_einsum=einsum_records(cv, binding, ev.cycles, ev.effective, lat),
        units=unit_records(arch, binding, ev.cycles, ev.effective, lat),
        schedule="overlapped",
        identity=opts,
        extras=tuple(extras),
        warnings=warnings,
    )


def binding_notes(plan: BwdPlan) -> list[str]:
    """Where the pre-pass and the element-wise Einsums run (FLAT's exp on the 1D array)."""
    c = plan.bs.cv.cascade
    one_d = [c.einsums[i].output for i in sorted(plan.units) if not plan.units[i].is_2d]
    return [
        f"binding: contractions on {plan.arch.array_2d.name}, {', '.join(one_d)} on "
        f"{plan.arch.array_1d.name} (FLAT's exp and per-row reductions are 1D work)"
    ]


__all__ = ["map_backward"]
