"""FLAT's cost model: DRAM and buffer words, cycles and energy of FLAT dataflows.

One function, `evaluate`, prices a grid of dataflows (loop-nest pairs x on-chip sets) with
element-wise numpy arithmetic in a fixed order, so one dataflow (a 1 x 1 grid, what
`mappers.spatial.flat` reports) and a whole search space (what
`mappers.spatial.flat_search` ranks) get bit-identical numbers. Its inputs are explicit sizes and
roles (`FlatProblem`): which rank
is the query rank, the key rank, the head dims, the batch-like ranks, which ranks index each
tensor and each tensor's words. No rank letter is interpreted here; `mappers.spatial.flat` builds
the problem from a cascade (and a structure analysis of the cascade can later do the same).

Cascade shapes FLAT accepts (read by `mappers.spatial.flat_problem`, which builds the problem from
the cascade's structure): exactly two contractions on the 2D array that work per (key,
query) element -- scores = input (query-indexed) x weight, then values = scores-derived
input x weight -- each iterating three ranks on the array (query, key or its innermost
piece, one head dim) besides the batch-like ranks, the query-group ranks (GQA's R, packed
into the query rows) and a key-tiled cascade's tile rank (an outer array loop, `outer`);
every other Einsum runs on the 1D array, grouped into element-wise phases. That covers the
3-, 2- and 1-pass softmax forms, sigmoid (one phase), GQA/MQA (K/V, lacking R, are filled
once per KV head when kept on chip) and masks (`visited`). Refused with a MappingError
naming the Einsum: a contraction that does not iterate the key rank (MLA's latent
projections), more or fewer than two key x query contractions,
a contraction over more ranks, an operation an array lacks, and, with tile skipping, a
mask outside the band family. That is FLAT's dataflow as published (Kao et al., ASPLOS
2023): a 2D-array loop nest per matmul with the score rows kept on chip between them.
Linear attention (a recurrent state instead of score rows) takes FLAT's dataflow in
`mappers.spatial.flat_linear`, which places its contractions with `array_loops`.

The loop nest of one contraction is Timeloop-style on the 2D array (depth-one PE
registers): an `X`-stationary nest's innermost temporal loop is the rank that does not
index `X`, then `X`'s own two ranks in declared order, spatial over the array's columns and
rows. Each of the three ranks of extent n (the query rank's extent is the block p1) on an
array side s runs t = ceil(n / s) temporal steps over ceil(n / t) lanes: the steps cover
every element (so work and traffic never fall below the problem's) and the lanes are
balanced (no padded words moved). Outside: query blocks P / p1, then the batch-like ranks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from attnsim.archs.model import SpatialArch
from attnsim.einsum_ir.ir import TensorName
from attnsim.mappers.spatial import cost
from attnsim.mappers.spatial.flat_backends import NEVER, Grid, One
from attnsim.mappers.spatial.loopnest import Loop, TensorShape, refills, tile_elements
from attnsim.mappers.spatial.unfused import StreamBuffer

Floats = npt.NDArray[np.float64]
SPILL = TensorName("1d-phase-rows")  # traffic column of the 1D phases' spilled key x query rows


# ----------------------------------------------------------------------------- the problem


@dataclass(frozen=True, slots=True)
class Contraction:
    """One contraction on the 2D array: `output = input x weight`.

    Attributes:
        input: The operand indexed by the query rank.
        weight: The other operand.
        output: The product.
        ranks: The three ranks on the array (query, key or its innermost piece, one head
            dim), in iteration order.
        outer: Outer key pieces it iterates (a key-tiled cascade's tile rank M1), looped
            outside the three, outermost first.
    """

    input: TensorName
    weight: TensorName
    output: TensorName
    ranks: tuple[str, ...]
    outer: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamPhase:
    """A run of 1D Einsums between contractions: what it reads and produces, and its cycles."""

    inputs: tuple[TensorName, ...]
    outputs: tuple[TensorName, ...]
    cycles: float


@dataclass(frozen=True, slots=True, eq=False)
class FlatProblem:
    """Everything FLAT's cost model reads, as explicit sizes and roles.

    Attributes:
        query_rank: The rank split into query blocks (P = P2 x p1).
        key_rank: The rank the values contraction reduces (scores rows run along it).
        qk_head_rank: The rank the scores contraction reduces (query/key head dim).
        v_head_rank: The values' own head dim.
        batch_ranks: Batch-like ranks, outermost first; a tensor not indexed by one of them is
            shared across it (its multiplicity is the product of those it is indexed by).
        rank_sizes: Extent of every rank above.
        tensor_ranks: The ranks indexing each contraction operand, in declared order.
        tensor_words: Words of every tensor the model moves (operands and phase tensors).
        scores: The first contraction (role names Q x K -> QK).
        values: The second contraction (role names A x V -> AV).
        phases: The 1D phases, in order.
        inputs: The cascade's inputs (filled from DRAM when kept on chip).
        outputs: The cascade's outputs (written to DRAM once when kept on chip).
        score_row_words: Words of one query's row of the scores (the row spill unit).
        stream_buffer: Buffer words of phase `k` given the inputs it reads from DRAM and the
            outputs it keeps on chip (`mappers.spatial.unfused.stream_buffer_words`).
        visited: Share of (row tile, key span) tiles a mask leaves to compute (1: all).
        key_query: Tensors indexed by both the key and the query (their `tensor_words` are
            already the visited share's).
        select_cycles: 2D-array cycles of the mask's compare-selects (scores contraction).
    """

    query_rank: str
    key_rank: str
    qk_head_rank: str
    v_head_rank: str
    batch_ranks: tuple[str, ...]
    rank_sizes: Mapping[str, int]
    tensor_ranks: Mapping[TensorName, tuple[str, ...]]
    tensor_words: Mapping[TensorName, float]
    scores: Contraction
    values: Contraction
    phases: tuple[StreamPhase, ...]
    inputs: frozenset[TensorName]
    outputs: frozenset[TensorName]
    score_row_words: int
    stream_buffer: Callable[[int, frozenset[TensorName], frozenset[TensorName]], StreamBuffer]
    visited: float = 1.0
    key_query: frozenset[TensorName] = frozenset()
    select_cycles: float = 0.0

    @property
    def query_size(self) -> int:
        """Query positions (P)."""
        return self.rank_sizes[self.query_rank]

    @property
    def key_size(self) -> int:
        """Key/value positions (M)."""
        return self.rank_sizes[self.key_rank]

    @property
    def batch_multiplicity(self) -> int:
        """Product of the batch-like ranks (B x H)."""
        return math.prod(self.rank_sizes[r] for r in self.batch_ranks)

    @property
    def role_tensors(self) -> dict[str, TensorName]:
        """Role (Q, K, QK, A, V, AV) -> tensor."""
        s, v = self.scores, self.values
        return {"Q": s.input, "K": s.weight, "QK": s.output, "A": v.input, "V": v.weight,
                "AV": v.output}  # fmt: skip

    @property
    def operands(self) -> tuple[TensorName, ...]:
        """Distinct role tensors in role order: the tensors a dataflow may keep on chip."""
        return tuple(dict.fromkeys(self.role_tensors.values()))


# ----------------------------------------------------------------------------- loop nests


@dataclass(frozen=True, slots=True)
class TensorCounts:
    """One tensor in one contraction's nest, in words.

    Attributes:
        pe_words: Words moved into (or, for the output, out of) the PE registers.
        fill: Words filled into the buffer from DRAM when the tensor is kept on chip.
        footprint: Words of its buffer tile.
        final: Words of the whole tensor.
    """

    pe_words: float
    fill: float
    footprint: float
    final: float


@dataclass(frozen=True, slots=True)
class Nest:
    """Cycles, lanes used and per-tensor counts of one contraction's loop nest."""

    cycles: float
    used_lanes: float
    tensors: tuple[tuple[TensorName, TensorCounts], ...]


def _steps_and_lanes(extent: int, side: int) -> tuple[int, int]:
    """Temporal steps and lanes covering `extent` elements on `side` lanes (see docstring)."""
    steps = max(1, -(-extent // side))
    return steps, max(1, -(-extent // steps))


def array_loops(
    ranks: Sequence[str], own: Sequence[str], extents: Mapping[str, int], arch: SpatialArch
) -> tuple[list[Loop], list[Loop]]:
    """(temporal, spatial) loops of one contraction on the 2D array, innermost first.

    The stationary tensor's own ranks (`own`, at most two) are spatial over the array's
    columns then rows; the other ranks are temporal, inside them (the module docstring's
    rule). Every rank also has a temporal loop of its steps (1 when it fits its side).
    """
    perm = tuple(r for r in ranks if r not in own) + tuple(own)
    sides = (1,) * (len(perm) - len(own)) + (arch.array_2d.cols, arch.array_2d.rows)[: len(own)]
    temporal: list[Loop] = []
    spatial: list[Loop] = []
    for r, side in zip(perm, sides, strict=True):
        steps, lanes = _steps_and_lanes(extents[r], side)
        temporal.append(Loop(r, steps))
        if r in own:
            spatial.append(Loop(r, lanes, spatial=True))
    return temporal, spatial


def loop_nest(
    problem: FlatProblem, arch: SpatialArch, con: Contraction, stationarity: str, p1: int
) -> Nest:
    """Loop-nest counts of one contraction with query blocks of `p1` (module docstring).

    With a mask (`problem.visited` < 1) only the visited tiles are computed: cycles scale
    by the visited share; key x query tensors move only for visited tiles; every other
    tensor moves its words once and its re-deliveries only for visited tiles.
    """
    stationary = {"output": con.output, "weight": con.weight, "input": con.input}[stationarity]
    own = tuple(r for r in problem.tensor_ranks[stationary] if r in con.ranks)
    sizes = problem.rank_sizes
    extents = {r: p1 if r == problem.query_rank else sizes[r] for r in con.ranks}
    l3, spatial = array_loops(con.ranks, own, extents, arch)
    l3 += [Loop(r, sizes[r]) for r in reversed(con.outer)]
    dram = [Loop(problem.query_rank, max(1, problem.query_size // p1))]
    dram += [Loop(r, sizes[r]) for r in reversed(problem.batch_ranks)]
    # loops of one iteration are no loops (`deliveries`); outermost first
    live = tuple(lp for lp in reversed(l3 + dram) if lp.factor > 1)
    live_dram = tuple(lp for lp in reversed(dram) if lp.factor > 1)
    inner = spatial + l3
    v = problem.visited
    tensors = []
    for name in (con.input, con.weight, con.output):
        shape = TensorShape(name, tuple((r, sizes[r]) for r in problem.tensor_ranks[name]))
        footprint = tile_elements(shape, inner)
        # deliveries(shape, spatial, temporal) and deliveries(shape, (), dram), unrolled
        pe = float(tile_elements(shape, spatial) * refills(shape, live))
        fill = float(footprint * refills(shape, live_dram))
        final = float(problem.tensor_words[name])
        if v != 1.0:
            if name in problem.key_query:
                pe, fill = pe * v, fill * v
            else:
                pe = min(pe, final) + v * max(0.0, pe - final)
                fill = min(fill, final) + v * max(0.0, fill - final)
        tensors.append((name, TensorCounts(pe, fill, float(footprint), final)))
    cycles = float(math.prod(lp.factor for lp in l3 + dram))
    if v != 1.0 or problem.select_cycles:
        cycles = cycles * v + (problem.select_cycles if con == problem.scores else 0.0)
    return Nest(cycles, float(math.prod(lp.factor for lp in spatial)), tuple(tensors))


# ----------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class Counts:
    """Counts of a grid of dataflows: G loop-nest pairs x S on-chip sets (arrays G x S).

    Attributes:
        columns: Traffic columns (tensors, then `SPILL`).
        dram_read_words: Per column, G x S x C.
        dram_write_words: Per column, G x S x C.
        read_order: Order in which columns first got read words (G x S x C).
        write_order: Order in which columns first got written words (G x S x C).
        dram_reads: Total DRAM words read.
        dram_writes: Total DRAM words written.
        buffer_reads: Global-buffer words read.
        buffer_writes: Global-buffer words written.
        footprint_words: On-chip tiles (each on-chip tensor once, its larger tile).
        spilled_words: Buffer words that went to DRAM instead.
        cycles_2d: Cycles of the two contractions (G x 2).
        used_lanes: 2D-array lanes each contraction uses (G x 2).
        cycles_1d: Cycles of the 1D phases.
        memory_cycles: DRAM cycles.
        latency_cycles: max(memory, 2D, 1D): the arrays and DRAM overlap fully.
        varying_energy_pj: DRAM plus buffer energy (compute energy is the same for all).
        has_quirk: Whether the artifact's extra score read was charged (S).
    """

    columns: tuple[TensorName, ...]
    dram_read_words: Floats
    dram_write_words: Floats
    read_order: npt.NDArray[np.int64]
    write_order: npt.NDArray[np.int64]
    dram_reads: Floats
    dram_writes: Floats
    buffer_reads: Floats
    buffer_writes: Floats
    footprint_words: Floats
    spilled_words: Floats
    cycles_2d: Floats
    used_lanes: Floats
    cycles_1d: float
    memory_cycles: Floats
    latency_cycles: Floats
    varying_energy_pj: Floats
    has_quirk: npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class _Tally:
    """What `_tally` adds up, on either backend (arrays over a grid, or floats)."""

    columns: tuple[TensorName, ...]
    reads: Any
    writes: Any
    buffer_reads: Any
    buffer_writes: Any
    footprint: Any
    spilled: Any
    cycles_1d: float
    quirk: Any


def _tally(
    problem: FlatProblem,
    arch: SpatialArch,
    ops: Grid | One,
    spilled_fraction: float,
    artifact_compat: bool,
) -> _Tally:
    """The cost model itself, written once for both backends (see `evaluate`).

    Every count is a sum of non-negative terms added in one fixed order, element-wise, so a
    dataflow's numbers do not depend on the grid (or the backend) it is evaluated in.
    """
    s = spilled_fraction
    where, maximum = ops.where, ops.maximum
    operands = problem.operands
    phase_tensors = [n for ph in problem.phases for n in (*ph.inputs, *ph.outputs)]
    columns = tuple(dict.fromkeys([*operands, *phase_tensors, SPILL]))
    col = {n: k for k, n in enumerate(columns)}
    on = ops.on(operands)
    off = ops.off
    reads, writes = ops.ledger(len(columns)), ops.ledger(len(columns))
    buf_r: Any = ops.zeros()
    buf_w: Any = ops.zeros()
    spilled: Any = ops.zeros()
    tiles: dict[TensorName, Any] = {}
    for k, con in enumerate((problem.scores, problem.values)):
        for j, name in enumerate((con.input, con.weight, con.output)):
            pe, fill, tile, final = (
                ops.counts(k, j, f) for f in ("pe_words", "fill", "footprint", "final")
            )
            here = on[name]
            tiles[name] = maximum(tiles.get(name, 0.0), where(here, tile, 0.0))
            if name == con.output:
                partial = maximum(0.0, pe - final)
                kept_final = final * (1 - s) if name in problem.outputs else 0.0
                writes.add(col[name], where(here, kept_final, pe))
                writes.add(col[name], where(here, pe * s, 0.0))
                reads.add(col[name], where(here, partial * s, partial))
                buf_w += where(here, pe, 0.0)
                buf_r += where(here, partial, 0.0)
                spilled += where(here, (pe + partial) * s, 0.0)
                continue
            is_input = name in problem.inputs
            reads.add(col[name], where(here, fill * (1 - s) if is_input else 0.0, pe))
            reads.add(col[name], where(here, pe * s, 0.0))
            buf_r += where(here, pe, 0.0)
            buf_w += where(here, fill if is_input else 0.0, 0.0)
            spilled += where(here, pe * s, 0.0)
    footprint: Any = ops.zeros()
    for tile in tiles.values():
        footprint = footprint + tile
    cycles_1d = 0.0
    for index, phase in enumerate(problem.phases):
        ins = [on.get(n, off) for n in phase.inputs]
        outs = [on.get(n, off) for n in phase.outputs]
        for name, here in zip(phase.inputs, ins, strict=True):
            reads.add(col[name], where(here, 0.0, float(problem.tensor_words[name])))
        for name, here in zip(phase.outputs, outs, strict=True):
            writes.add(col[name], where(here, 0.0, float(problem.tensor_words[name])))
        stream = _stream_words(problem, index, phase, ins, outs)
        phase_spill = where(ops.none_of(ins), _row_spill(problem, arch, footprint, ops), s)
        reads.add(col[SPILL], stream[0] * phase_spill)
        writes.add(col[SPILL], stream[1] * phase_spill)
        spilled += (stream[0] + stream[1]) * phase_spill
        buf_r += stream[2]
        buf_w += stream[3]
        cycles_1d += phase.cycles
    quirk = artifact_compat & on[problem.values.output]
    buf_r += where(quirk, float(problem.tensor_words[problem.scores.output]), 0.0)
    return _Tally(columns, reads, writes, buf_r, buf_w, footprint, spilled, cycles_1d, quirk)


def evaluate(
    problem: FlatProblem,
    arch: SpatialArch,
    nests: Sequence[tuple[Nest, Nest]],
    onchip: npt.NDArray[np.bool_],
    spilled_fraction: float = 0.0,
    artifact_compat: bool = False,
) -> Counts:
    """FLAT's counts for every (loop-nest pair, on-chip set) of a grid.

    Args:
        problem: Sizes and roles.
        arch: The accelerator.
        nests: G (scores, values) nest pairs, e.g. one per query block and stationarities.
        onchip: S x T: which of `problem.operands` each dataflow keeps in the global buffer.
        spilled_fraction: Fraction of the on-chip tensors' buffer traffic spilled to DRAM.
        artifact_compat: Charge the FuseMax artifact's extra buffer read per score element
            when the values' output is on chip.

    `evaluate_one` prices one dataflow with the same formulas (`_tally`) on Python floats,
    bit-identical to its cell of any grid.
    """
    t = _tally(problem, arch, Grid(nests, onchip), spilled_fraction, artifact_compat)
    reads, writes = t.reads, t.writes
    dram_reads, dram_writes = reads.total(), writes.total()
    wb = arch.word_bytes
    memory = cost.memory_cycles(arch, cast(float, (dram_reads + dram_writes) * wb))
    cycles_2d = np.array([[a.cycles, b.cycles] for a, b in nests])
    compute_2d = (0 + cycles_2d[:, 0] + cycles_2d[:, 1])[:, None]
    buf_r, buf_w = t.buffer_reads, t.buffer_writes
    return Counts(
        columns=t.columns,
        dram_read_words=reads.words,
        dram_write_words=writes.words,
        read_order=reads.first,
        write_order=writes.first,
        dram_reads=dram_reads,
        dram_writes=dram_writes,
        buffer_reads=buf_r,
        buffer_writes=buf_w,
        footprint_words=t.footprint,
        spilled_words=t.spilled,
        cycles_2d=cycles_2d,
        used_lanes=np.array([[a.used_lanes, b.used_lanes] for a, b in nests]),
        cycles_1d=t.cycles_1d,
        memory_cycles=np.asarray(memory),
        latency_cycles=np.maximum(np.maximum(memory, compute_2d), t.cycles_1d),
        varying_energy_pj=varying_energy_pj(arch, dram_reads, dram_writes, buf_r, buf_w),
        has_quirk=np.asarray(t.quirk)[0],
    )


def evaluate_one(
    problem: FlatProblem,
    arch: SpatialArch,
    nests: tuple[Nest, Nest],
    onchip: Sequence[bool],
    spilled_fraction: float = 0.0,
    artifact_compat: bool = False,
) -> Breakdown:
    """One dataflow's counts: `breakdown(evaluate(...), 0, 0)` without a 1 x 1 grid.

    `onchip` says, per `problem.operands`, whether the dataflow keeps it in the buffer.
    """
    t = _tally(problem, arch, One(nests, onchip), spilled_fraction, artifact_compat)
    reads, writes = t.reads, t.writes
    dram_reads, dram_writes = reads.total(), writes.total()
    wb = arch.word_bytes
    memory = cost.memory_cycles(arch, (dram_reads + dram_writes) * wb)
    a, b = nests
    compute_2d = 0 + a.cycles + b.cycles
    latency = max(max(memory, compute_2d), t.cycles_1d)
    return Breakdown(
        {t.columns[k]: reads.words[k] for k in reads.order},
        {t.columns[k]: writes.words[k] for k in writes.order},
        float(t.buffer_reads),
        float(t.buffer_writes),
        float(t.footprint),
        float(t.spilled),
        (a.cycles, b.cycles),
        (a.used_lanes, b.used_lanes),
        t.cycles_1d,
        float(memory),
        float(latency),
        bool(t.quirk),
    )


def _stream_words(
    problem: FlatProblem,
    index: int,
    phase: StreamPhase,
    ins: list[Any],
    outs: list[Any],
) -> Any:
    """Phase `index`'s row reads, row writes, buffer reads and writes (4 x S, or 4 floats)."""
    if not any(isinstance(h, np.ndarray) for h in (*ins, *outs)):
        from_dram = frozenset(t for t, h in zip(phase.inputs, ins, strict=True) if not h)
        kept = frozenset(t for t, h in zip(phase.outputs, outs, strict=True) if h)
        sb = problem.stream_buffer(index, from_dram, kept)
        return (sb.row_reads, sb.row_writes, sb.reads, sb.writes)
    n = next(h.shape[-1] for h in (*ins, *outs) if isinstance(h, np.ndarray))
    flags = [
        np.broadcast_to(h, (1, n))[0] if isinstance(h, np.ndarray) else np.full(n, bool(h))
        for h in (*ins, *outs)
    ]
    codes = np.zeros(n, dtype=np.int64)  # each on-chip set's flags as one integer
    for bit, f in enumerate(flags):
        codes |= f.astype(np.int64) << bit
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    table = np.zeros((4, len(first)))
    for u, k in enumerate(first.tolist()):
        kin, kout = flags[: len(ins)], flags[len(ins) :]
        from_dram = frozenset(t for t, f in zip(phase.inputs, kin, strict=True) if not f[k])
        kept = frozenset(t for t, f in zip(phase.outputs, kout, strict=True) if f[k])
        sb = problem.stream_buffer(index, from_dram, kept)
        table[:, u] = (sb.row_reads, sb.row_writes, sb.reads, sb.writes)
    words = table[:, inverse.reshape(-1)]
    return words


def _row_spill(
    problem: FlatProblem, arch: SpatialArch, footprint_words: Any, ops: Grid | One
) -> Any:
    """Fraction of one query's score row that does not fit beside the contractions' tiles."""
    row_bytes = problem.score_row_words * arch.word_bytes
    free = arch.buffer.capacity_bytes - footprint_words * arch.word_bytes
    return 1.0 - ops.minimum(1.0, ops.maximum(0.0, free) / row_bytes)


def varying_energy_pj(
    arch: SpatialArch,
    dram_read_words: Floats,
    dram_write_words: Floats,
    buffer_read_words: Floats,
    buffer_write_words: Floats,
) -> Floats:
    """DRAM plus buffer energy, element-wise (`mappers.spatial.cost`'s formulas and item order)."""
    wb = arch.word_bytes
    items = (
        *cost.dram_energy(
            arch, cast(float, dram_read_words * wb), cast(float, dram_write_words * wb)
        ),
        *cost.buffer_energy(
            arch, arch.buffer, cast(float, buffer_read_words), cast(float, buffer_write_words)
        ),
    )
    return cast(Floats, sum(e.energy_pj for e in items))


@dataclass(frozen=True, slots=True)
class Breakdown:
    """One dataflow's counts (a cell of `Counts`), traffic per tensor in first-use order."""

    reads: dict[str, float]
    writes: dict[str, float]
    buffer_reads: float
    buffer_writes: float
    footprint_words: float
    spilled_words: float
    cycles_2d: tuple[float, float]
    used_lanes: tuple[float, float]
    cycles_1d: float
    memory_cycles: float
    latency_cycles: float
    has_quirk: bool


def breakdown(counts: Counts, g: int, s: int) -> Breakdown:
    """The dataflow in row `g` (loop nests) and column `s` (on-chip set) of `counts`."""

    def used(words: Floats, order: npt.NDArray[np.int64]) -> dict[str, float]:
        cols = sorted((int(order[g, s, k]), k) for k in range(len(counts.columns)))
        return {counts.columns[k]: float(words[g, s, k]) for o, k in cols if o != NEVER}

    return Breakdown(
        used(counts.dram_read_words, counts.read_order),
        used(counts.dram_write_words, counts.write_order),
        float(counts.buffer_reads[g, s]),
        float(counts.buffer_writes[g, s]),
        float(counts.footprint_words[g, s]),
        float(counts.spilled_words[g, s]),
        (float(counts.cycles_2d[g, 0]), float(counts.cycles_2d[g, 1])),
        (float(counts.used_lanes[g, 0]), float(counts.used_lanes[g, 1])),
        counts.cycles_1d,
        float(counts.memory_cycles[g, s]),
        float(counts.latency_cycles[g, s]),
        bool(counts.has_quirk[s]),
    )
