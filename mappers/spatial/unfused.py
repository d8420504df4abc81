"""Unfused attention: every phase reads its inputs from and writes its outputs to DRAM.

Binding reads the cascade's structure: contractions (Einsums whose work has a `mac`) run on
the 2D array, every other Einsum on the 1D array. Each contraction is a phase of its own; a
maximal run of consecutive 1D Einsums is one phase (the softmax of 3-pass attention), whose
intermediates stay on chip. Phases run one after another (`sequential` schedule), each taking
max(its memory time, its compute time). Traffic is compulsory per phase: every tensor a phase
reads from outside is read once, every tensor it produces for a later phase (or as a cascade
output) is written once.

Masks (`skip_empty_tiles`, default on): tiles are the 2D array's output tiles (its rows of
queries x its columns of keys), classified by `attention_problem(...).tiles`. With skipping,
Einsums that iterate the key rank work on the visited tiles only (each computed whole), the
score Einsum pays one compare-select per pair of a partial tile, and key x query tensors
(scores, weights) move to and from DRAM and the buffer for visited tiles only; K and V are
read from DRAM once either way (compulsory), from the buffer once per visited tile. Without
skipping every tile is computed and the Result's warnings say so; a mask outside the band
family is refused unless skipping is off.

Global buffer: a contraction reads the operands it re-uses across tiles from the buffer
(Q, K, V, filled once) and keeps partial sums there (AV across key tiles), as its 2D loop
nest dictates (`mappers.spatial.unfused_nest`, which derives the counts for any head dim);
a 1D phase follows `stream_buffer_words`. The phase grouping, the 1D cost rule and the
phase buffer rule are shared with `flat`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from attnsim.archs.model import ComputeArray, SpatialArch
from attnsim.einsum_ir.ir import Cascade, TensorName
from attnsim.mappers.memo import by_identity
from attnsim.mappers.registry import register_mapper
from attnsim.mappers.result import (
    EnergyItem,
    Occupancy,
    Result,
    Traffic,
    UnitCost,
)
from attnsim.mappers.spatial import cost, unfused_nest
from attnsim.mappers.spatial.chunks import search_chunk, tiled_by_the_mask
from attnsim.mappers.spatial.compute import (
    EinsumWork,
    cascade_work,
    cycles_on,
    dense_cascade,
    lower_work,
    primitive_counts,
    scale_work,
    unsupported,
)
from attnsim.mappers.spatial.mask_cost import (
    MaskCost,
    mask_cost,
    select_actions,
)
from attnsim.mappers.spatial.serving_cost import unfused_serving_notes
from attnsim.mappers.spatial.view import (
    CascadeView,
    MappingError,
    einsum_costs,
    pinned_note,
    require_spatial,
    score_index,
    spatial_result,
    view,
)

ELEMENT_STREAM_WARNING = (
    "1D cost rule: a non-contraction Einsum takes one 1D-array cycle per iteration-space point "
    "per lane (pipelined function units, one element per cycle, whatever its op mix)"
)


def element_stream_cycles(work: EinsumWork, array: ComputeArray) -> float:
    """Cycles of a non-contraction Einsum on FLAT-style 1D hardware: points / lanes.

    Each 1D PE streams one element per cycle through pipelined function units (max, exp,
    add, divide), so the op mix does not change the rate (FLAT; NOTES "Architectures").
    """
    return work.points / array.lanes


@dataclass(frozen=True, slots=True)
class Binding:
    """Each Einsum's array and work; contractions on the 2D array, the rest on the 1D array."""

    units: tuple[ComputeArray, ...]
    work: tuple[EinsumWork, ...]
    cycles: tuple[float, ...]
    notes: tuple[str, ...] = ()  # operations lowered onto other units (compute.lower_work)

    def is_contraction(self, i: int) -> bool:
        """Whether Einsum `i` is bound to a 2D array."""
        return self.units[i].is_2d


def bind_by_contraction(
    cv: CascadeView, arch: SpatialArch, mask: MaskCost | None = None
) -> Binding:
    """Bind contractions (work with a `mac`) to the 2D array, the others to the 1D array.

    With a `mask`, Einsums iterating the key rank do the dense work of the visited tiles
    (and the score Einsum the mask's compare-selects); see `mappers.spatial.mask_cost.MaskCost`.
    """
    if not any(a.is_2d for a in arch.arrays) or all(a.is_2d for a in arch.arrays):
        raise MappingError(
            f"needs a 2D and a 1D array; {arch.name} has {[a.name for a in arch.arrays]}"
        )
    two_d, one_d = arch.array_2d, arch.array_1d
    on_2d = cascade_work(cv.cascade, cv.sizes, two_d)
    on_1d = cascade_work(cv.cascade, cv.sizes, one_d)
    masked = mask is not None and mask.is_masked
    score = score_index(cv) if masked else None
    units, works, cycles = [], [], []
    notes: list[str] = []
    for i, e in enumerate(cv.cascade.einsums):
        is_mac = on_2d[i].count("mac") > 0
        unit, work = (two_d, on_2d[i]) if is_mac else (one_d, on_1d[i])
        work, lowered = lower_work(work, unit)
        missing = unsupported(work, unit)
        if missing:
            raise MappingError(
                f"{e}: {unit.name} of {arch.name} cannot perform {', '.join(missing)}"
            )
        notes.extend(lowered)
        if mask is not None and masked and mask.skip and cv.iterates_key(e) and cv.pins_key(e):
            notes.append(pinned_note(e))  # its own pairs (`work`), not per tile
        elif mask is not None and masked and tiled_by_the_mask(cv, e):
            dense = lower_work(cascade_work(dense_cascade(cv.cascade), cv.sizes, unit)[i], unit)
            extra = select_actions(cv, mask, unit) if i == score else None
            work = scale_work(dense[0], mask.visited, extra)
        units.append(unit)
        works.append(work)
        cycles.append(cycles_on(work, unit) if is_mac else element_stream_cycles(work, unit))
    return Binding(tuple(units), tuple(works), tuple(cycles), tuple(notes))


def group_phases(binding: Binding) -> tuple[tuple[int, ...], ...]:
    """Contractions alone; maximal runs of consecutive 1D Einsums together."""
    phases: list[list[int]] = []
    for i in range(len(binding.units)):
        if binding.is_contraction(i) or not phases or binding.is_contraction(phases[-1][-1]):
            phases.append([i])
        else:
            phases[-1].append(i)
    return tuple(tuple(p) for p in phases)


def phase_io(
    cv: CascadeView, phase: tuple[int, ...]
) -> tuple[tuple[TensorName, ...], tuple[TensorName, ...]]:
    """(tensors the phase reads from outside, tensors it produces for outside), in order."""
    c = cv.cascade
    members = set(phase)
    ins = [
        a.tensor
        for i in phase
        for a in c.einsums[i].inputs
        if cv.producer.get(a.tensor) not in members
    ]
    outs = [
        c.einsums[i].output
        for i in phase
        if c.einsums[i].output in c.outputs
        or any(j not in members for j in cv.who_reads.get(c.einsums[i].output, ()))
    ]
    return tuple(dict.fromkeys(ins)), tuple(dict.fromkeys(outs))


@dataclass(frozen=True, slots=True)
class StreamBuffer:
    """Global-buffer words of a 1D phase, split into rows (key x query) and per-query vectors.

    Attributes:
        fill_writes: Words written into the buffer from DRAM.
        row_reads: Reads of tensors indexed by both the key and the query rank.
        row_writes: Writes of such tensors (not counting DRAM fills).
        vector_reads: Reads of the other tensors (per-query maxima, sums).
        vector_writes: Writes of the other tensors.
    """

    fill_writes: float
    row_reads: float
    row_writes: float
    vector_reads: float
    vector_writes: float

    @property
    def reads(self) -> float:
        """All buffer reads."""
        return self.row_reads + self.vector_reads

    @property
    def writes(self) -> float:
        """All buffer writes."""
        return self.fill_writes + self.row_writes + self.vector_writes


def stream_buffer_words(
    cv: CascadeView,
    phase: tuple[int, ...],
    dram_inputs: frozenset[TensorName],
    onchip_outputs: frozenset[TensorName],
    row_share: float = 1.0,
) -> StreamBuffer:
    """Buffer accesses of a 1D phase (the physical rule; no fitted numbers).

    - every element filled from DRAM (`dram_inputs`) is written into the buffer once;
    - every tensor from outside the phase is read once per consuming Einsum;
    - a tensor produced inside the phase is read once per consumer, except by a consumer of
      the same pass that iterates exactly its elements: that consumer takes it from the
      producer's PE stream (registers), e.g. the softmax sum of the exponentials;
    - a produced tensor is written once if some consumer reads it from the buffer or it leaves
      the phase on chip (`onchip_outputs`); a tensor leaving for DRAM bypasses the buffer.

    Key x query tensors count `row_share` of their words (the visited tiles of a mask).
    """
    rows, reads, writes = _phase_accesses(cv, phase)
    fill = row_r = row_w = vec_r = vec_w = 0.0
    for name in dram_inputs:
        fill += cv.words(name) * row_share if name in rows else cv.words(name)
    for name, words, always in writes:
        if always or name in onchip_outputs:
            if name in rows:
                row_w += words * row_share
            else:
                vec_w += words
    for name, words in reads:
        if name in rows:
            row_r += words * row_share
        else:
            vec_r += words
    return StreamBuffer(fill, row_r, row_w, vec_r, vec_w)


@by_identity(maxsize=64)
def _phase_accesses(
    cv: CascadeView, phase: tuple[int, ...]
) -> tuple[
    frozenset[TensorName],
    tuple[tuple[TensorName, float], ...],
    tuple[tuple[TensorName, float, bool], ...],
]:
    """What `stream_buffer_words` needs besides the DRAM and on-chip choices.

    The cascade's key x query tensors, the phase's buffer reads (name, words) in order, and
    its produced tensors (name, words, whether a consumer reads it from the buffer): one walk
    per phase, shared by every on-chip choice a search prices.
    """
    c = cv.cascade
    members = set(phase)
    rows = frozenset(t for t in cv.ranks if cv.is_key_indexed(t) and cv.is_query_indexed(t))
    reads: list[tuple[TensorName, float]] = []
    writes: list[tuple[TensorName, float, bool]] = []

    for i in phase:
        e = c.einsums[i]
        readers = [j for j in cv.who_reads.get(e.output, ()) if j in members]
        buffered = [j for j in readers if not _forwarded(cv, i, j)]
        if cv.producer.get(e.output) is not None:
            writes.append((e.output, float(cv.words(e.output)), bool(buffered)))
        for name in dict.fromkeys(a.tensor for a in e.inputs):
            j = cv.producer.get(name)
            if j is None or j not in members or not _forwarded(cv, j, i):
                reads.append((name, float(cv.words(name))))
    return rows, tuple(reads), tuple(writes)


def _forwarded(cv: CascadeView, producer: int, consumer: int) -> bool:
    """Whether `consumer` takes `producer`'s output straight from the PE stream."""
    c = cv.cascade
    p, q = c.einsums[producer], c.einsums[consumer]
    same_space = set(q.iteration_vars) == set(p.out_vars)
    return same_space and cv.pass_of(producer) == cv.pass_of(consumer)


def unit_costs(
    arch: SpatialArch,
    busy: Mapping[str, float],
    effective: Mapping[str, float],
    latency_cycles: float,
) -> tuple[UnitCost, ...]:
    """Per array: busy cycles and lane utilization (`effective` lane-cycles / lanes)."""
    return tuple(
        UnitCost(
            a.name,
            busy.get(a.name, 0.0),
            float(a.lanes),
            effective.get(a.name, 0.0) / latency_cycles if latency_cycles else 0.0,
        )
        for a in arch.arrays
    )


def compute_energy_items(arch: SpatialArch, binding: Binding) -> list[EnergyItem]:
    """Compute energy of every Einsum's primitive operations on its array."""
    items: list[EnergyItem] = []
    for array in arch.arrays:
        prims: dict[str, float] = {}
        for i, unit in enumerate(binding.units):
            if unit is array:
                for op, n in primitive_counts(binding.work[i], array).items():
                    prims[op] = prims.get(op, 0.0) + n
        items.extend(cost.compute_energy(array, prims))
    return items


@dataclass(frozen=True, slots=True)
class UnfusedOptions:
    """Options of the unfused mapper.

    Attributes:
        skip_empty_tiles: Skip the 2D array's output tiles a mask leaves empty (on by
            default, so a mask is priced; unmasked cascades cost the same either way); off
            computes every tile and says so in the Result's warnings.
        chunk_search: For a cascade that cuts its keys into chunks itself: map every
            power-of-two chunk and keep the fastest that fits (`mappers.spatial.chunks`).
    """

    skip_empty_tiles: bool = True
    chunk_search: bool = False


@register_mapper("unfused")
class UnfusedMapper:
    """Unfused attention; see the module docstring."""

    Options = UnfusedOptions

    name = "unfused"
    arch_kind = "spatial"

    def __init__(self, options: UnfusedOptions | None = None, **kwargs: bool) -> None:
        self.options = options or UnfusedOptions(**kwargs)

    def map(self, cascade: Cascade, arch: SpatialArch, sizes: dict[str, int]) -> Result:
        """Map `cascade` at `sizes` onto `arch`, one phase after another."""
        require_spatial(arch, "unfused")
        if self.options.chunk_search:
            one = UnfusedMapper(dataclasses.replace(self.options, chunk_search=False))
            return search_chunk(lambda at: one.map(cascade, arch, at), cascade, arch, sizes)
        cv = view(cascade, sizes, None)
        two_d = arch.array_2d if any(a.is_2d for a in arch.arrays) else arch.arrays[0]
        mask = mask_cost(cv, two_d.rows, two_d.cols, self.options.skip_empty_tiles, "unfused")
        binding = bind_by_contraction(cv, arch, mask)
        wb = arch.word_bytes

        def words(t: TensorName) -> float:
            """Words moved of `t`: key x query tensors only for the visited tiles."""
            row = cv.is_key_indexed(t) and cv.is_query_indexed(t)
            return cv.words(t) * mask.visited if row else float(cv.words(t))

        reads: dict[str, float] = {}
        writes: dict[str, float] = {}
        buf_r = buf_w = 0.0
        latency = compute_total = memory_total = 0.0
        for phase in group_phases(binding):
            ins, outs = phase_io(cv, phase)
            phase_bytes = sum(words(t) for t in ins + outs) * wb
            for t in ins:
                reads[t] = reads.get(t, 0.0) + words(t) * wb
            for t in outs:
                writes[t] = writes.get(t, 0.0) + words(t) * wb
            if binding.is_contraction(phase[0]):
                for i in phase:  # visited is 1 unless empty tiles are skipped
                    unit = binding.units[i]
                    reads_w, writes_w = unfused_nest.buffer_words(cv, i, unit, mask.visited)
                    buf_r += reads_w
                    buf_w += writes_w
            else:
                sb = stream_buffer_words(cv, phase, frozenset(ins), frozenset(), mask.visited)
                buf_r += sb.reads
                buf_w += sb.writes
            compute = sum(binding.cycles[i] for i in phase)
            memory = cost.memory_cycles(arch, phase_bytes)
            latency += max(compute, memory)
            compute_total += compute
            memory_total += memory
        traffic = tuple(
            Traffic("dram", t, reads.get(t, 0.0), writes.get(t, 0.0))
            for t in dict.fromkeys([*reads, *writes])
        )
        energy = compute_energy_items(arch, binding)
        energy.extend(cost.dram_energy(arch, sum(reads.values()), sum(writes.values())))
        energy.extend(cost.buffer_energy(arch, arch.buffer, buf_r, buf_w))
        return self._result(
            cv,
            arch,
            binding,
            traffic,
            tuple(energy),
            (latency, compute_total, memory_total),
            mask.warnings,
        )

    def _result(
        self,
        cv: CascadeView,
        arch: SpatialArch,
        binding: Binding,
        traffic: tuple[Traffic, ...],
        energy: tuple[EnergyItem, ...],
        times: tuple[float, float, float],
        mask_warnings: tuple[str, ...],
    ) -> Result:
        c = cv.cascade
        latency, compute, memory = times
        per_einsum = einsum_costs(cv, binding.units, binding.work, binding.cycles, latency)
        busy: dict[str, float] = {}
        for i, unit in enumerate(binding.units):
            busy[unit.name] = busy.get(unit.name, 0.0) + binding.cycles[i]
        warnings = [
            ELEMENT_STREAM_WARNING,
            "unfused: every phase round-trips DRAM; phases do not overlap",
            *unfused_serving_notes(cv),
            *binding.notes,
            *mask_warnings,
        ]
        bound = "memory:dram" if memory > compute else "compute"
        stream_words = max(
            (
                cv.per_query_words(t, keep_key=True)
                for t in c.tensor_ranks
                if cv.is_key_indexed(t) and cv.is_query_indexed(t)
            ),
            default=0,
        )
        peak = stream_words * min(arch.array_1d.lanes, cv.query_rows) * arch.word_bytes
        if peak > arch.buffer.capacity_bytes:
            warnings.append(
                f"1D phase keeps one key row per lane ({peak} B), more than the "
                f"{arch.buffer.capacity_bytes} B {arch.buffer.name}; modeled as "
                "if it fit (rows read from DRAM once)"
            )
        occupancy = Occupancy(
            arch.buffer.name, "total", float(peak), float(arch.buffer.capacity_bytes)
        )
        return spatial_result(
            cv,
            arch,
            "unfused",
            tuple(asdict(self.options).items()),
            latency_cycles=latency,
            compute_cycles=compute,
            memory_cycles=memory,
            bound=bound,
            traffic=traffic,
            energy=energy,
            occupancy=(occupancy,),
            per_einsum=per_einsum,
            units=unit_costs(arch, busy, busy, latency),
            schedule="sequential",
            identity=self.options,
            warnings=warnings,
        )


__all__ = [
    "ELEMENT_STREAM_WARNING",
    "UnfusedMapper",
    "UnfusedOptions",
    "bind_by_contraction",
    "element_stream_cycles",
    "group_phases",
    "phase_io",
    "stream_buffer_words",
]
