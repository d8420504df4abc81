"""FLAT-class hardware running linear attention: the chunked causal form and the non-causal one.

FLAT (Kao et al., ASPLOS 2023) fuses a block of query rows through the global buffer: the
block's operands come in once, its scores stay on chip between the two matmuls, and the 2D
array, the 1D array and DRAM overlap. Linear attention has no M-long score row: what
crosses from one block to the next is its recurrent state (E x F words per head, read from
the structure by `einsum_ir.analysis.recurrent.find_states`). The same dataflow, applied to
the cascade's own Einsums:

- **Blocks.** The chunked form (a state recurring over the key chunks M1 of M = M1 x M0 and
  conditions that read the offset m0: Lightning-2, GLA, causal linear attention's chunked
  form) runs one block per (batch-like instance, chunk): the chunk's M0 keys and the
  min(M0, P) queries at its positions. The non-causal form (the state is one sum over every
  key) runs blocks of the 2D array's rows: the keys' blocks build the state, the queries'
  blocks read it. The recurrent form (a state after every key, a recurrence over M itself)
  is refused: one rank-1 E x F update per key is no block dataflow.
- **Binding.** FLAT's rule (`unfused.bind_by_contraction`): contractions on the 2D array,
  every other Einsum on the 1D array at one element per lane per cycle; the mask at tiles
  of one block's queries x its keys (`mask_cost`: the chunk's diagonal block is computed
  whole, one compare-select per pair of a partial tile, the rest skipped). A contraction
  whose condition pins its key (a gather such as Lightning-2's `QD = DQ * Q where m == p + M
  - P`) is element-wise work at its own pairs and streams through the 1D array instead.
- **2D nests.** Each contraction runs FLAT's loop nest (`flat_cost.array_loops`) at one
  block's extents: its ranks besides the batch-like ones and the chunk rank M1 (the block's
  query rows, its keys, E, F: two or three of them), the stationary tensor's ranks spatial
  over the columns and rows, the others temporal. Every stationarity (the output, either
  operand) is tried; the fewest steps, then the fewest buffer words, is kept. A block
  smaller than the array leaves lanes idle: cycles are the block's steps times the blocks
  computed (the Einsum's work over one block's points), so small chunks pay for the lanes
  they leave idle and large ones for their quadratic intra-chunk work.
- **Global buffer.** Every tensor of one block is held at once (the chunk's Q, K, V tiles,
  its score blocks, its outputs, the decay tables) beside the states, one iterate each: the
  block's footprint, checked against the capacity. Accesses: each DRAM fill written once;
  a contraction's operands read as its nest delivers them into the PEs, its output written
  per delivery and its partial sums (beyond the final words) read back; a 1D Einsum reads
  each element of an input once (registers serve broadcasts) and writes each element it
  produces once (a cascade output goes to DRAM, bypassing the buffer).
- **DRAM.** Each input read once, each output written once; the state never leaves the
  chip. A block that does not fit spills its key x query intermediates (then every
  intermediate but the states) through DRAM, each written once and read once per consumer,
  and the Result says so; a state larger than the buffer is refused.
- **Latency.** FLAT's: the two arrays and DRAM overlap fully (the max of the three), so
  consecutive chunks overlap except through the state; pipeline fill and drain ignored.

The chunk size is the cascade's M0; the mapper's `chunk_search` maps every power-of-two
chunk and keeps the fastest that fits the buffer (`mappers.spatial.chunks.search_chunk`),
refusing when none fits, as FLAT's own dataflow search refuses a point where nothing fits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from attnsim.archs.model import SpatialArch
from attnsim.einsum_ir.analysis.recurrent import RecurrentState, find_states
from attnsim.einsum_ir.ir import Cascade, Einsum, RankName, TensorName
from attnsim.mappers.memo import by_identity
from attnsim.mappers.result import (
    EinsumCost,
    EnergyItem,
    Occupancy,
    Result,
    Scalar,
    Traffic,
    UnitCost,
)
from attnsim.mappers.spatial import cost
from attnsim.mappers.spatial.chunks import tiled_by_the_mask
from attnsim.mappers.spatial.compute import cascade_work, cycles_on, lower_work, unsupported
from attnsim.mappers.spatial.flat_cost import array_loops
from attnsim.mappers.spatial.loopnest import TensorShape, refills, tile_elements
from attnsim.mappers.spatial.mask_cost import MaskCost, mask_cost
from attnsim.mappers.spatial.unfused import (
    ELEMENT_STREAM_WARNING,
    Binding,
    bind_by_contraction,
    compute_energy_items,
    element_stream_cycles,
    unit_costs,
)
from attnsim.mappers.spatial.view import (
    CascadeView,
    MappingError,
    reads_key_chunk,
    spatial_result,
    view,
)

OVERLAP_WARNING = "FLAT: 2D and 1D arrays and DRAM overlap fully (latency = max of the three)"


def linear_states(cv: CascadeView) -> tuple[RecurrentState, ...]:
    """The recurrent states of the cascade over its key rank (none: not linear attention)."""
    return _states(cv.cascade, cv.key_rank)


@by_identity(maxsize=64)
def _states(cascade: Cascade, key: RankName) -> tuple[RecurrentState, ...]:
    return find_states(cascade, key)


@dataclass(frozen=True, slots=True)
class ChunkBlock:
    """One block of the dataflow: its query positions and its keys."""

    queries: int
    keys: int
    chunked: bool


@dataclass(frozen=True, slots=True)
class BlockNest:
    """One contraction's loop nest at one block's extents.

    Attributes:
        stationary: The tensor held in the PEs (the output or an operand).
        extents: The array ranks and their extents in one block.
        steps: Temporal steps of one block (its cycles).
        used_lanes: Lanes of the 2D array it uses.
        block_points: Iteration points of one block (the product of the extents).
        reads: Buffer words into the PEs per block (operands).
        writes: Buffer words out of the PEs per block (the output, partial sums included).
    """

    stationary: TensorName
    extents: tuple[tuple[str, int], ...]
    steps: int
    used_lanes: int
    block_points: int
    reads: float
    writes: float

    def describe(self, einsum: str, lanes: int) -> str:
        """One line for the Result's warnings."""
        dims = " x ".join(f"{r} {n}" for r, n in self.extents)
        return (
            f"{einsum} ({dims}) {self.stationary}-stationary: {self.steps} steps per block on "
            f"{self.used_lanes} of {lanes} lanes"
        )


# ----------------------------------------------------------------------------- structure


def _block(cv: CascadeView, arch: SpatialArch, states: Sequence[RecurrentState]) -> ChunkBlock:
    """The dataflow's block, or MappingError naming what the structure does not allow."""
    key, parts = cv.key_rank, cv.key_parts
    recurrent = [s for s in states if s.over == key]
    held = ", ".join(f"{s.tensor}[{','.join(s.ranks)}]" for s in states)
    if recurrent:
        raise MappingError(
            f"FLAT: cascade {cv.cascade.name} is linear attention in its recurrent form: its "
            f"state ({held}, per head) recurs over every key {key}, one rank-1 E x F update "
            "per key read by that key's query, a sequential dataflow with no block for FLAT's "
            "fused tiling; map the chunked form (attention-linear-causal-chunked, "
            "attention-lightning-2; option chunk_search searches the chunk size)"
        )
    p, m = cv.sizes[cv.query_rank], cv.sizes[key]
    if all(s.over is None for s in states):
        rows = arch.array_2d.rows
        return ChunkBlock(min(rows, p), min(rows, m), False)
    if not reads_key_chunk(cv.cascade, parts) or any(s.over != parts[0] for s in states):
        raise MappingError(
            f"FLAT: cascade {cv.cascade.name}: its state ({held}) recurs over "
            f"{', '.join(sorted({str(s.over) for s in states}))}, not over the chunks "
            f"{parts[0]} of a key rank cut into chunks it computes with (M -> M1 x M0 whose "
            "offset its conditions read, as attention-lightning-2's); FLAT's chunked "
            "dataflow has no block for it"
        )
    chunk = cv.sizes[parts[-1]]
    return ChunkBlock(min(chunk, p), chunk, True)


def _extent(cv: CascadeView, block: ChunkBlock, rank: RankName) -> int:
    """Elements of `rank` in one block (1 for the ranks the blocks iterate)."""
    if rank == cv.query_rank:
        return block.queries * cv.query_group
    if rank in (cv.key_rank, cv.key_parts[-1]):
        return block.keys
    if rank in cv.instance_ranks or rank in cv.group_ranks or rank in cv.key_parts:
        return 1
    return cv.sizes[rank]


def _block_words(cv: CascadeView, block: ChunkBlock, tensor: TensorName) -> int:
    return math.prod(_extent(cv, block, r) for r in cv.ranks[tensor])


def _full_words(cv: CascadeView, tensor: TensorName) -> int:
    """Elements of `tensor`, every iterate of a recurrence counted."""
    return math.prod(cv.sizes[r] for r in cv.ranks[tensor])


def _check_2d(cv: CascadeView, arch: SpatialArch) -> None:
    """Refuse a contraction computing what the 2D array has no unit for (GLA's gate)."""
    two_d = arch.array_2d
    for e, work in zip(cv.cascade.einsums, cascade_work(cv.cascade, cv.sizes, two_d), strict=True):
        if not work.count("mac"):
            continue
        missing = unsupported(lower_work(work, two_d)[0], two_d)
        if missing:
            ops = ", ".join(missing)
            raise MappingError(
                f"FLAT: {e}: the contraction applies {ops} inside its sum, at every one of "
                f"its points (per head-dim element of each key x query pair: a per-feature "
                f"gate such as GLA's exp(BQ - BC)), and {two_d.name} of {arch.name} has no "
                f"{ops} unit; FLAT-class hardware computes {ops} on its 1D array, which "
                "needs the gate factored out of the sum into the queries and keys (as GLA's "
                "chunked kernels do), a different cascade; where the 2D array composes "
                f"{ops} (the fusemax preset) the cascade is priced as stated"
            )


def _bind(cv: CascadeView, arch: SpatialArch, mask: MaskCost) -> tuple[Binding, list[str]]:
    """FLAT's binding, with the work of what the mask does not tile at its own points.

    `bind_by_contraction` gives every Einsum over the keys the visited share of its dense
    work; an Einsum over the keys but not the queries (a chunk's K^T V, the state update,
    the queries' product with the state laid out by key position) does its own work
    whatever the (query, key) tiles: it gets its own points back. A pinned contraction (a
    gather) moves to the 1D array.
    """
    binding = bind_by_contraction(cv, arch, mask)
    one_d = arch.array_1d
    units, works, cycles = list(binding.units), list(binding.work), list(binding.cycles)
    notes: list[str] = []
    own = {a.name: cascade_work(cv.cascade, cv.sizes, a) for a in arch.arrays}
    for i, e in enumerate(cv.cascade.einsums):
        pinned = bool(e.where) and cv.pins_key(e)
        if units[i].is_2d and pinned:
            work, lowered = lower_work(own[one_d.name][i], one_d)
            if not unsupported(work, one_d):
                units[i], works[i] = one_d, work
                notes += lowered
                notes.append(
                    f"{e.output}: a product that pins one key per query (a gather), "
                    f"element-wise at its own pairs: streamed on {one_d.name}"
                )
        elif mask.is_masked and cv.iterates_key(e) and not tiled_by_the_mask(cv, e):
            works[i] = lower_work(own[units[i].name][i], units[i])[0]
        if not units[i].is_2d:
            cycles[i] = element_stream_cycles(works[i], units[i])
    return Binding(tuple(units), tuple(works), tuple(cycles), binding.notes), notes


def block_nest(cv: CascadeView, arch: SpatialArch, e: Einsum, block: ChunkBlock) -> BlockNest:
    """The best of FLAT's nests of contraction `e` at one block (module docstring)."""
    drop = {*cv.instance_ranks, *cv.group_ranks, *cv.key_parts[:-1]}
    ranks = tuple(
        dict.fromkeys(r for v in e.iteration_vars if (r := RankName(v.upper())) not in drop)
    )
    if not 1 < len(ranks) <= 3:
        raise MappingError(
            f"FLAT: {e}: iterates {', '.join(ranks) or 'nothing'} besides the batch-like ranks "
            "and the chunks; FLAT's array nest takes two or three ranks"
        )
    extents: dict[str, int] = {r: _extent(cv, block, r) for r in ranks}

    def own(t: TensorName) -> tuple[str, ...]:
        """`t`'s array ranks, a key rank read in its chunks (K[e,m1,m0]) in its pieces."""
        pieces = (p for r in cv.ranks[t] for p in cv.cascade.expand(r))
        return tuple(dict.fromkeys(r for r in pieces if r in extents))

    inputs = list(dict.fromkeys(a.tensor for a in e.inputs))
    operands = [t for t in inputs if own(t)]
    scalars = len(inputs) - len(operands)  # per block (a per-head factor): one word each
    sides = list(dict.fromkeys(frozenset(own(t)) for t in operands))
    if len(sides) != 2:
        shapes = "; ".join(f"{t}[{','.join(own(t))}]" for t in operands)
        raise MappingError(
            f"FLAT: {e}: its operands take {len(sides)} shapes on the array ({shapes}); "
            "FLAT's nest multiplies two"
        )
    held = [e.output, *(next(t for t in operands if frozenset(own(t)) == s) for s in sides)]
    best: BlockNest | None = None
    for stationary in held:
        if not 0 < len(own(stationary)) <= 2:
            continue
        temporal, spatial = array_loops(ranks, own(stationary), extents, arch)
        live = tuple(lp for lp in reversed(temporal) if lp.factor > 1)
        words = {}
        for t in (*operands, e.output):
            shape = TensorShape(t, tuple((r, extents[r]) for r in own(t)))
            words[t] = (tile_elements(shape, spatial) * refills(shape, live), shape.elements)
        pe, final = words[e.output]
        nest = BlockNest(
            stationary,
            tuple(extents.items()),
            math.prod(lp.factor for lp in temporal),
            math.prod(lp.factor for lp in spatial),
            math.prod(extents.values()),
            sum(words[t][0] for t in operands) + scalars + max(0, pe - final),
            float(pe),
        )
        if best is None or (nest.steps, nest.reads + nest.writes) < (
            best.steps,
            best.reads + best.writes,
        ):
            best = nest
    assert best is not None  # the output has at most two of the (two or three) ranks
    return best


# ----------------------------------------------------------------------------- the mapping


@dataclass(slots=True)
class _Counts:
    """Mutable tally of one `map_linear` call."""

    cycles: list[float]
    effective: list[float]
    buffer_reads: float = 0.0
    buffer_writes: float = 0.0


def map_linear(
    cascade: Cascade,
    arch: SpatialArch,
    sizes: dict[str, int],
    options: tuple[tuple[str, Scalar], ...],
    identity: object,
    skip_empty_tiles: bool,
    notes: Sequence[str] = (),
) -> Result:
    """FLAT's dataflow on a linear-attention cascade (module docstring); `notes` are warnings."""
    cv = view(cascade, sizes, None)
    states = linear_states(cv)
    if not states:
        raise MappingError(f"FLAT: cascade {cascade.name} has no recurrent state")
    block = _block(cv, arch, states)
    _check_2d(cv, arch)
    rows = block.queries * cv.query_group
    mask = mask_cost(cv, rows, block.keys, skip_empty_tiles, "flat")
    binding, moved = _bind(cv, arch, mask)
    lanes = arch.array_2d.lanes
    tally = _Counts(list(binding.cycles), list(binding.cycles))
    nests: list[str] = []
    for i, e in enumerate(cascade.einsums):
        unit, work = binding.units[i], binding.work[i]
        if unit.is_2d:
            nest = block_nest(cv, arch, e, block)
            blocks = work.points / nest.block_points
            tally.cycles[i] = cycles_on(work, unit) * unit.lanes * nest.steps / nest.block_points
            tally.effective[i] = tally.cycles[i] * nest.used_lanes / lanes
            written = nest.writes * blocks
            final = _full_words(cv, e.output) * _share(cv, mask, e.output)
            tally.buffer_reads += nest.reads * blocks + max(0.0, written - final)
            tally.buffer_writes += written
            nests.append(nest.describe(e.output, lanes))
            continue
        for t in dict.fromkeys(a.tensor for a in e.inputs):
            tally.buffer_reads += min(work.points, _full_words(cv, t) * _share(cv, mask, t))
        if e.output not in cascade.outputs:
            tally.buffer_writes += work.output_points
    footprint, state_words, spilled = _fit(cv, arch, block, states)
    wb = arch.word_bytes
    reads = {t: float(cv.words(t)) for t in cascade.input_names}
    writes = {t: float(cv.words(t)) for t in cascade.outputs}
    tally.buffer_writes += sum(reads.values())  # DRAM fills land in the buffer
    for t in spilled:
        moved_words = _full_words(cv, t) * _share(cv, mask, t)
        writes[t] = moved_words
        reads[t] = moved_words * len(cv.who_reads.get(t, ()))
    two_d = sum(c for c, u in zip(tally.cycles, binding.units, strict=True) if u.is_2d)
    one_d = sum(c for c, u in zip(tally.cycles, binding.units, strict=True) if not u.is_2d)
    dram_r, dram_w = sum(reads.values()), sum(writes.values())
    memory = cost.memory_cycles(arch, (dram_r + dram_w) * wb)
    compute = max(two_d, one_d)
    latency = max(memory, compute)
    traffic = tuple(
        Traffic("dram", t, reads.get(t, 0.0) * wb, writes.get(t, 0.0) * wb)
        for t in dict.fromkeys([*reads, *writes])
    )
    spilled_bytes = sum(t.total_bytes for t in traffic if t.tensor in spilled)
    capacity = float(arch.buffer.capacity_bytes)
    occupancy = (
        Occupancy(arch.buffer.name, "total", footprint * wb, capacity, spilled_bytes),
        *(
            Occupancy(arch.buffer.name, s.tensor, _block_words(cv, block, s.tensor) * wb, capacity)
            for s in states
        ),
    )
    warnings = [
        ELEMENT_STREAM_WARNING,
        OVERLAP_WARNING,
        _block_note(cv, block, states, state_words * wb),
        "2D nests at one block's extents: " + "; ".join(nests),
        *mask.warnings,
        *binding.notes,
        *moved,
        *notes,
    ]
    if spilled:
        warnings.append(
            f"the block's tensors ({footprint * wb:.0f} B) exceed the {capacity:.0f} B "
            f"{arch.buffer.name}: {', '.join(spilled)} spilled through DRAM (written once, read "
            "once per consumer); the states stay on chip"
        )
    energy = energy_items(arch, binding, dram_r, dram_w, tally.buffer_reads, tally.buffer_writes)
    return spatial_result(
        cv,
        arch,
        "flat",
        options,
        latency_cycles=latency,
        compute_cycles=compute,
        memory_cycles=memory,
        bound="memory:dram" if memory > compute else "compute",
        traffic=traffic,
        energy=energy,
        occupancy=occupancy,
        per_einsum=einsum_records(cv, binding, tally.cycles, tally.effective, latency),
        units=unit_records(arch, binding, tally.cycles, tally.effective, latency),
        schedule="overlapped",
        identity=identity,
        extras=(
            ("p1", float(rows)),
            ("block_keys", float(block.keys)),
            ("state_bytes", float(state_words * wb)),
            ("block_bytes", float(footprint * wb)),
        ),
        warnings=warnings,
    )


def energy_items(
    arch: SpatialArch,
    binding: Binding,
    dram_read_words: float,
    dram_write_words: float,
    buffer_read_words: float,
    buffer_write_words: float,
) -> tuple[EnergyItem, ...]:
    """A FLAT mapping's energy: every Einsum's compute, DRAM and global-buffer accesses."""
    wb = arch.word_bytes
    items = compute_energy_items(arch, binding)
    items.extend(cost.dram_energy(arch, dram_read_words * wb, dram_write_words * wb))
    items.extend(cost.buffer_energy(arch, arch.buffer, buffer_read_words, buffer_write_words))
    return tuple(items)


def _share(cv: CascadeView, mask: MaskCost, tensor: TensorName) -> float:
    """Share of a tensor's elements the mapping moves: key x query ones, the visited tiles."""
    keyed = cv.is_key_indexed(tensor) and cv.is_query_indexed(tensor)
    return mask.visited if keyed else 1.0


def _fit(
    cv: CascadeView, arch: SpatialArch, block: ChunkBlock, states: Sequence[RecurrentState]
) -> tuple[int, int, tuple[TensorName, ...]]:
    """(block footprint words, state words, intermediates spilled to make it fit)."""
    c = cv.cascade
    capacity = arch.buffer.capacity_bytes // arch.word_bytes
    held = {t: _block_words(cv, block, t) for t in c.tensor_ranks}
    state = sum(held[s.tensor] for s in states)
    if state > capacity:
        names = ", ".join(s.tensor for s in states)
        raise MappingError(
            f"FLAT: the state ({names}, {state * arch.word_bytes} B per head) does not fit "
            f"the {arch.buffer.capacity_bytes} B {arch.buffer.name}; FLAT's linear dataflow "
            "keeps it on chip across the blocks"
        )
    footprint = sum(held.values())
    inner = [t for t in held if t not in c.input_names and t not in c.outputs]
    inner = [t for t in inner if t not in {s.tensor for s in states}]
    keyed = [t for t in inner if cv.is_key_indexed(t) and cv.is_query_indexed(t)]
    for spill in ((), keyed, inner):
        if footprint - sum(held[t] for t in spill) <= capacity:
            return footprint, state, tuple(spill)
    return footprint, state, tuple(inner)


def _block_note(
    cv: CascadeView, block: ChunkBlock, states: Sequence[RecurrentState], state_bytes: int
) -> str:
    held = ", ".join(f"{s.tensor}[{','.join(s.ranks)}]" for s in states)
    if block.chunked:
        what = (
            f"one block per chunk: its {block.keys} keys ({cv.key_parts[-1]}) and "
            f"{block.queries} queries, fused through the buffer with the state"
        )
    else:
        what = (
            f"non-causal: blocks of {block.keys} keys build the state, then blocks of "
            f"{block.queries} queries read it"
        )
    return (
        f"FLAT linear attention, {what}: state {held} ({state_bytes} B per head, independent "
        f"of {cv.key_rank}) kept in the buffer across the blocks, never in DRAM; the "
        "buffer holds every tensor of one block at once"
    )


def einsum_records(
    cv: CascadeView,
    binding: Binding,
    cycles: Sequence[float],
    effective: Sequence[float],
    latency_cycles: float,
) -> tuple[EinsumCost, ...]:
    """Per Einsum: its array, pass, operations, cycles and lane utilization over the latency."""
    lat = latency_cycles
    return tuple(
        EinsumCost(
            e.output,
            binding.units[i].name,
            cv.pass_of(i),
            float(sum(n for _, n in binding.work[i].actions)),
            cycles[i],
            effective[i] / lat if lat else 0.0,
        )
        for i, e in enumerate(cv.cascade.einsums)
    )


def unit_records(
    arch: SpatialArch,
    binding: Binding,
    cycles: Sequence[float],
    effective: Sequence[float],
    latency_cycles: float,
) -> tuple[UnitCost, ...]:
    """Per array: busy cycles and lane utilization (`effective` lane-cycles over its lanes)."""
    busy: dict[str, float] = {}
    eff: dict[str, float] = {}
    for i, unit in enumerate(binding.units):
        busy[unit.name] = busy.get(unit.name, 0.0) + cycles[i]
        eff[unit.name] = eff.get(unit.name, 0.0) + effective[i]
    return unit_costs(arch, busy, eff, latency_cycles)


__all__ = [
    "OVERLAP_WARNING",
    "einsum_records",
    "energy_items",
    "linear_states",
    "map_linear",
    "unit_records",
]
