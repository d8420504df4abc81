"""The recurrent state of linear attention, read from a cascade's structure (never its names).

A *state* summarises the keys for every query: an intermediate without a query rank that
is either a recurrence over a part of the key rank carried across the whole sequence
(`KV[m1+1,e,f] = ... KV[m1,e,f] ...`, not indexed by an outer part: a per-chunk scan that
restarts each chunk is not one) or a complete reduction over the key rank
(`KV[e,f] = sum_m phi(K)[e,m] V[f,m]`). Its size per head is the product of its ranks other
than the head (batch) ranks and the key rank: E x F words, independent of M. Softmax
cascades have none (their running max and sums carry the query rank).

For a chunked form (the state recurs over M1 of M = M1 x M0), the chunk size C = M0 trades
intra-chunk quadratic work (Einsums iterating the chunk offset m0 and the query rank, about
S C (E + F) / 2 multiplies per head with a causal mask) against inter-chunk state work
(about 2 S E F: the chunk's K^T V and the queries times the state) and, were the state
spilled between chunks, (S / C) E F words written and read back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from attnsim.einsum_ir.analysis.ops import OpKind, count_ops
from attnsim.einsum_ir.analysis.passes import count_passes
from attnsim.einsum_ir.check import pinned_vars
from attnsim.einsum_ir.ir import Binary, BinaryOp, Cascade, Einsum, RankName, Read, TensorName, walk
from attnsim.einsum_ir.sizes import resolve_sizes

CHUNK_SIZES = (16, 32, 64, 128, 256)


@dataclass(frozen=True, slots=True)
class RecurrentState:
    """One state tensor (structure only).

    Attributes:
        tensor: Its name.
        over: The part of the key rank its recurrence iterates (M, M1), or None for a
            complete reduction over the key rank.
        ranks: Its ranks per head (without the head ranks and the key rank): E, F.
    """

    tensor: TensorName
    over: RankName | None
    ranks: tuple[RankName, ...]

    @property
    def form(self) -> str:
        """How it is built: a recurrence over a part of the key rank, or one sum over it."""
        return f"recurrence over {self.over}" if self.over else "sum over the keys"


@dataclass(frozen=True, slots=True)
class ChunkCost:
    """Work per head of a chunked form at one chunk size.

    Attributes:
        chunk: The chunk size C (keys per chunk, the inner part M0).
        chunks: Chunks over the sequence, ceil(S / C).
        intra_multiplies: Multiplies of the Einsums that iterate the chunk offset and a
            query rank (the masked quadratic term inside a chunk), per head.
        inter_multiplies: Multiplies of every other Einsum iterating the key rank (the chunk
            states, the queries times the state), per head.
        spill_words: Words of the states written and read back once per chunk were they
            spilled between chunks: chunks x state words, per head.
    """

    chunk: int
    chunks: int
    intra_multiplies: int
    inter_multiplies: int
    spill_words: int


@dataclass(frozen=True, slots=True)
class StateReport:
    """The states of a cascade at sizes, its passes and (chunked) its chunk trade-off.

    Attributes:
        rank: The key rank analysed.
        passes: Passes over it (`count_passes`).
        head_ranks: Ranks every key-indexed input and the output carry (B, H): per head
            means per element of these.
        states: The state tensors found.
        words: Words per head of each state at the sizes, in `states` order.
        words_doubled: The same at twice the key rank's size (equal: independent of M).
        sizes: The sizes analysed (rank -> size).
        chunk_rank: The inner part of the key rank the chunks are made of (M0), if chunked.
        chunk_costs: The trade-off over `CHUNK_SIZES` (C <= S), if chunked.
    """

    rank: RankName
    passes: int
    head_ranks: tuple[RankName, ...]
    states: tuple[RecurrentState, ...]
    words: tuple[int, ...]
    words_doubled: tuple[int, ...]
    sizes: tuple[tuple[RankName, int], ...]
    chunk_rank: RankName | None = None
    chunk_costs: tuple[ChunkCost, ...] = ()

    def describe(self) -> list[str]:
        """Lines for `cascade passes` and `cascade show`."""
        if not self.states:
            return []
        size = dict(self.sizes)
        seq = size[self.rank]
        heads = ", ".join(self.head_ranks) or "-"
        lines = [f"recurrent state (per head = per element of {heads}):"]
        for state, words, doubled in zip(self.states, self.words, self.words_doubled, strict=True):
            dims = " x ".join(state.ranks) or "1"
            lines.append(
                f"  {state.tensor}: {dims} = {words:,} words per head ({state.form}); "
                f"at {self.rank} = {seq:,} and {2 * seq:,}: {words:,} and {doubled:,} words"
                + (" (independent of " + self.rank + ")" if words == doubled else "")
            )
        lines.append(
            f"  passes over {self.rank}: {self.passes} (every key read once; the state is the "
            "only value carried from one position or chunk to the next)"
        )
        if self.chunk_costs:
            lines += self._chunk_lines(seq)
        return lines

    def _chunk_lines(self, seq: int) -> list[str]:
        lines = [
            f"  chunk size C = {self.chunk_rank} trades intra-chunk quadratic work against "
            f"inter-chunk state work and traffic (per head, S = {self.rank} = {seq:,}):",
            f"  {'C':>6}  {'chunks':>7}  {'intra mul':>14}  {'inter mul':>14}  {'spill words':>13}",
        ]
        for c in self.chunk_costs:
            lines.append(
                f"  {c.chunk:>6}  {c.chunks:>7,}  {c.intra_multiplies:>14,}  "
                f"{c.inter_multiplies:>14,}  {c.spill_words:>13,}"
            )
        return lines


def find_states(cascade: Cascade, rank: str = "M") -> tuple[RecurrentState, ...]:
    """The state tensors of `cascade` over the key rank `rank` (see the module docstring).

    `rank` must be the key rank (M; a part such as M1 has none): another rank of the
    cascade would read its contractions (over E) as states.
    """
    if RankName(rank) in cascade.part_parent:
        return ()
    leaves = frozenset(cascade.expand(RankName(rank)))
    queries = query_ranks(cascade, rank)
    heads = set(head_ranks(cascade, rank))
    found: list[RecurrentState] = []
    maxima: set[TensorName] = set()  # running maxima over the keys and what they rescale
    for einsum in cascade.einsums:
        out_roots = {cascade.root(r) for r in einsum.out.ranks}
        if out_roots & set(queries) or einsum.output in cascade.outputs:
            continue
        if _softmax_statistic(einsum, maxima):
            maxima.add(einsum.output)  # a one-query softmax's row state (DCAL's CLS row)
            continue
        over = _state_rank(cascade, einsum, leaves)
        if over is None and not (
            _sums_the_keys(cascade, einsum, leaves)
            and _reaches_queries(cascade, einsum.output, leaves)
        ):
            continue
        if any(s.tensor == einsum.output for s in found):
            continue
        ranks = tuple(r for r in einsum.out.ranks if r not in heads and r not in leaves)
        found.append(RecurrentState(einsum.output, over, ranks))
    return tuple(found)


def _softmax_statistic(einsum: Einsum, maxima: set[TensorName]) -> bool:
    """A running max (max of the state and a new maximum) or a state read beside one.

    Linear attention's states are sums (KV, the normalizer K-sum) or decayed sums; a
    recurrence through max is a softmax's row statistic, however few queries the row has.
    """
    if einsum.recurrence_var is None:
        return False
    expr = einsum.expr
    if isinstance(expr, Binary) and expr.op == BinaryOp.MAX:
        return True
    return any(r.access.tensor in maxima for r in walk(expr) if isinstance(r, Read))


def state_summary(cascade: Cascade, rank: str = "M") -> str | None:
    """Why a cascade with a state states no score per (query, key) pair; None without one."""
    states = find_states(cascade, rank)
    if not states:
        return None
    names = ", ".join(f"{s.tensor}[{','.join(s.ranks)}]" for s in states)
    return (
        f"linear attention: the keys reach the queries through the recurrent state {names} "
        f"(per head, independent of {rank}), not through a score per (query, key) pair "
        "(`cascade passes` reports the state)"
    )


def _state_rank(cascade: Cascade, einsum: Einsum, leaves: frozenset[RankName]) -> RankName | None:
    """The key part a carried recurrence iterates (not one restarting per outer part)."""
    var = einsum.recurrence_var
    if var is None or RankName(var.upper()) not in leaves:
        return None
    others = {r for r in einsum.out.ranks if r in leaves} - {RankName(var.upper())}
    return None if others else RankName(var.upper())


def _sums_the_keys(cascade: Cascade, einsum: Einsum, leaves: frozenset[RankName]) -> bool:
    """A complete reduction over the key rank (not a gather pinned to one key)."""
    if einsum.recurrence_var is not None or {r for r in einsum.out.ranks if r in leaves}:
        return False
    mine = [v for v in einsum.reduced_vars if set(cascade.expand(RankName(v.upper()))) & leaves]
    return bool(mine) and not set(mine) <= pinned_vars(cascade, einsum)


def _reaches_queries(cascade: Cascade, tensor: TensorName, leaves: frozenset[RankName]) -> bool:
    """Whether `tensor` meets the queries' data before the keys are iterated again.

    True when an Einsum that does not iterate the keys reads it (directly or through such
    Einsums) together with a tensor derived from a key-free input (Q): linear attention's
    sum over the keys meets the queries there. A key statistic that only comes back to the
    keys (KDGQA's key norms, deciding which keys each head reads in a later pass)
    summarises nothing for the queries: no state.
    """

    def over_keys(ranks: Sequence[RankName]) -> bool:
        return bool({leaf for r in ranks for leaf in cascade.expand(r)} & leaves)

    queried = {n for n, ranks in cascade.inputs if not over_keys(ranks)}
    for e in cascade.einsums:
        if {a.tensor for a in e.inputs} & queried:
            queried.add(e.output)
    todo, seen = [tensor], {tensor}
    while todo:
        name = todo.pop()
        for e in cascade.einsums:
            reads = {a.tensor for a in e.inputs}
            if name not in reads or e.output in seen:
                continue
            if over_keys([RankName(v.upper()) for v in e.iteration_vars]):
                continue
            if reads & queried:
                return True
            seen.add(e.output)
            todo.append(e.output)
    return False


def _key_inputs(cascade: Cascade, rank: str) -> list[tuple[RankName, ...]]:
    leaves = set(cascade.expand(RankName(rank))) | {RankName(rank)}
    return [ranks for _, ranks in cascade.inputs if set(ranks) & leaves]


def query_ranks(cascade: Cascade, rank: str = "M") -> tuple[RankName, ...]:
    """Output ranks an input without the key rank carries (Q's P), but not every keyed input.

    A bias over keys x queries carries P too; P is still the query rank since K and V lack it.
    """
    keyed = _key_inputs(cascade, rank)
    leaves = set(cascade.expand(RankName(rank))) | {RankName(rank)}
    free = {
        cascade.root(r) for _, ranks in cascade.inputs if not set(ranks) & leaves for r in ranks
    }
    heads = set(head_ranks(cascade, rank))
    out = cascade.tensor_ranks[cascade.outputs[0]] if cascade.outputs else ()
    roots = [cascade.root(r) for r in out]
    return tuple(dict.fromkeys(r for r in roots if r in free and r not in heads and keyed))


def head_ranks(cascade: Cascade, rank: str = "M") -> tuple[RankName, ...]:
    """Output ranks every input indexed by the key rank carries (B, H)."""
    keyed = _key_inputs(cascade, rank)
    out = cascade.tensor_ranks[cascade.outputs[0]] if cascade.outputs else ()
    return tuple(r for r in out if keyed and all(r in ranks for ranks in keyed))


def state_report(
    cascade: Cascade,
    sizes: Mapping[str, int],
    rank: str = "M",
    chunk_sizes: Sequence[int] = CHUNK_SIZES,
) -> StateReport:
    """The states of `cascade` sized at `sizes`, its passes and its chunk trade-off.

    Words per head are the product of a state's per-head ranks; they are also computed at
    twice the key rank's size, which shows whether they depend on it. A state recurring
    over the outer part of the key rank (M1 of M1 x M0) makes the cascade chunked: its
    work per head (multiplies of `count_ops`, divided by the head ranks' sizes) is split
    into intra- and inter-chunk Einsums at each chunk size C <= S of `chunk_sizes`.
    """
    states = find_states(cascade, rank)
    resolved = resolve_sizes(cascade, sizes)
    root = cascade.root(RankName(rank))  # a derived part (M1) grows with its rank (M)
    doubled = resolve_sizes(cascade, {**sizes, root: 2 * resolved[root]}) if states else resolved
    heads = head_ranks(cascade, rank)
    words = tuple(math.prod(resolved[r] for r in s.ranks) for s in states)
    words2 = tuple(math.prod(doubled[r] for r in s.ranks) for s in states)
    chunk_rank = _chunk_rank(cascade, states, rank)
    costs: tuple[ChunkCost, ...] = ()
    if chunk_rank is not None:
        seq = resolved[RankName(rank)]
        fitting = [c for c in chunk_sizes if c <= seq]
        costs = tuple(_chunk_cost(cascade, sizes, rank, chunk_rank, c, sum(words)) for c in fitting)
    return StateReport(
        rank=RankName(rank),
        passes=count_passes(cascade, rank).passes,
        head_ranks=heads,
        states=states,
        words=words,
        words_doubled=words2,
        sizes=tuple(resolved.items()),
        chunk_rank=chunk_rank,
        chunk_costs=costs,
    )


def _chunk_rank(cascade: Cascade, states: tuple[RecurrentState, ...], rank: str) -> RankName | None:
    """The inner part (M0) when a state recurs over the outer part of the key rank."""
    part = cascade.partition_of.get(RankName(rank))
    if part is None or len(part.parts) != 2:
        return None
    return part.parts[1] if any(s.over == part.parts[0] for s in states) else None


def _chunk_cost(
    cascade: Cascade,
    sizes: Mapping[str, int],
    rank: str,
    chunk_rank: RankName,
    chunk: int,
    state_words: int,
) -> ChunkCost:
    at = {**sizes, chunk_rank: chunk}
    resolved = resolve_sizes(cascade, at)
    per_head = math.prod(resolved[r] for r in head_ranks(cascade, rank))
    queries = set(query_ranks(cascade, rank))
    leaves = set(cascade.expand(RankName(rank)))
    offset = chunk_rank.lower()
    intra = inter = 0
    for einsum, ops in zip(cascade.einsums, count_ops(cascade, at).per_einsum, strict=True):
        ranks = {RankName(v.upper()) for v in einsum.iteration_vars}
        if not ranks & leaves:
            continue
        pinned = pinned_vars(cascade, einsum)
        quadratic = offset in einsum.iteration_vars and offset not in pinned
        if quadratic and {cascade.root(r) for r in ranks} & queries:
            intra += ops.counts[OpKind.MULTIPLY]
        else:
            inter += ops.counts[OpKind.MULTIPLY]
    chunks = resolved[cascade.partition_of[RankName(rank)].parts[0]]
    return ChunkCost(chunk, chunks, intra // per_head, inter // per_head, chunks * state_words)
