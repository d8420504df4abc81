"""Pass counting: how many sweeps over a rank a cascade needs, and what crosses between them.

A pass is one sweep over the rank (e.g. the key positions M). A value that depends on the
whole rank (a max or sum over it) is only known after the sweep ends, so anything combining
it with per-element data of the rank needs another sweep. Recurrences over a part of the rank
(the running max of FuseMax) carry state across tiles and never force an extra pass.

A split-K cascade (FlashDecoding) splits the rank three ways, M -> M2 x M1 x M0, runs a
recurrence over M1 inside each split and merges the splits' final states over M2. The
merge iterates only the split rank M2, which lies outside the recurrence: it reads M2
partial states, never the rank's elements, so it is a *merge* after the pass, not another
pass (`EinsumPass.is_merge`, `PassReport.merge_ranks`).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass

from attnsim.einsum_ir.check import pinned_vars
from attnsim.einsum_ir.ir import (
    Access,
    Cascade,
    Einsum,
    Final,
    Gather,
    RankName,
    TensorName,
    Var,
)


class Availability(enum.Enum):
    """When the elements of a tensor can be read, relative to the passes over the rank."""

    CONST = "const"  # independent of the rank: available before pass 1 (pass 0)
    STREAM = "stream"  # indexed by the rank: element available while pass k visits it
    DONE = "done"  # reduced over the rank: available only after pass k ends


@dataclass(frozen=True, slots=True)
class EinsumPass:
    """Where one Einsum runs.

    Attributes:
        index: Position of the Einsum in the cascade.
        output: The tensor it defines.
        pass_number: The pass it runs in when `iterates_rank`; otherwise the pass after which
            it runs (0: before the first pass, or with no dependence on the rank at all).
        iterates_rank: Whether its iteration space includes the rank or a part of it.
        availability: How its output becomes available (CONST, STREAM or DONE).
        text: The Einsum's printed form.
        is_merge: Whether it merges per-split partial state over a split rank outside a
            recurrence (split-K's M2): it runs after its pass and does not iterate the
            rank's elements (`iterates_rank` is False).
    """

    index: int
    output: TensorName
    pass_number: int
    iterates_rank: bool
    availability: Availability
    text: str
    is_merge: bool = False


@dataclass(frozen=True, slots=True)
class Boundary:
    """What must survive from pass `after_pass` into a later pass.

    Attributes:
        after_pass: The pass that has just ended (1 .. passes - 1).
        buffered: Intermediates indexed by the rank, produced in a pass <= `after_pass` and read
            in a later pass: they are buffered on chip (size growing with the rank) or written
            to and re-read from memory.
        carried: Intermediates not indexed by the rank (or final iterates of a recurrence over
            it) that cross the boundary, such as the global max of a row.
    """

    after_pass: int
    buffered: tuple[TensorName, ...]
    carried: tuple[TensorName, ...]


@dataclass(frozen=True, slots=True)
class InputRead:
    """Which passes read a cascade input indexed by the rank, and which Einsums read it.

    Attributes:
        tensor: The input.
        passes: The passes whose Einsums read it (one entry: it is streamed once).
        readers: Outputs of the Einsums reading it in those passes (MLA absorbed's latent
            CKV: the scores SC and the values SLNV, one read serving both).
    """

    tensor: TensorName
    passes: tuple[int, ...]
    readers: tuple[TensorName, ...]


@dataclass(frozen=True, slots=True)
class PassReport:
    """Pass structure of a cascade over one rank (see `count_passes`).

    Attributes:
        rank: The rank analysed.
        passes: Number of passes over the rank (0 when no Einsum iterates it).
        einsum_passes: One record per Einsum, in cascade order.
        boundaries: One record per boundary between consecutive passes.
        merge_ranks: Split ranks whose per-split partial states are merged after a pass
            (split-K's M2); empty for a cascade without splits.
        input_reads: For each input indexed by the rank, the passes that stream it and the
            Einsums reading it there.
    """

    rank: RankName
    passes: int
    einsum_passes: tuple[EinsumPass, ...]
    boundaries: tuple[Boundary, ...]
    merge_ranks: tuple[RankName, ...] = ()
    input_reads: tuple[InputRead, ...] = ()

    def pass_of(self, tensor: str) -> int:
        """The pass of the Einsum defining `tensor` (0 for an input); KeyError if unknown."""
        for record in self.einsum_passes:
            if record.output == tensor:
                return record.pass_number
        raise KeyError(f"no Einsum defines {tensor!r}")

    def __str__(self) -> str:
        lines = [f"passes over {self.rank}: {self.passes}"]
        width = max([6] + [len(r.output) for r in self.einsum_passes])
        lines.append(f"  {'#':>3}  {'tensor':<{width}}  pass  {'kind':<14}  einsum")
        for r in self.einsum_passes:
            where = "merge" if r.is_merge else "in" if r.iterates_rank else "after"
            kind = f"{where} / {r.availability.value}"
            lines.append(
                f"  {r.index:>3}  {r.output:<{width}}  {r.pass_number:>4}  {kind:<14}  {r.text}"
            )
        for b in self.boundaries:
            lines.append(
                f"  after pass {b.after_pass}: buffered [{', '.join(b.buffered)}]"
                f" carried [{', '.join(b.carried)}]"
            )
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _State:
    availability: Availability
    pass_number: int


_UNKNOWN = _State(Availability.CONST, 0)


@functools.lru_cache(maxsize=2048)  # bounded: tests and sweeps parse many cascades
def count_passes(cascade: Cascade, rank: str = "M") -> PassReport:
    """Count the passes a cascade makes over `rank` and what crosses each pass boundary.

    Each tensor is CONST (independent of the rank, pass 0), STREAM(k) (indexed by the rank or
    a part of it: an element is available while pass k visits it; recurrence iterates X[m1],
    X[m1+1] included) or DONE(k) (depends on the whole rank: available after pass k; a final
    iterate X[M1] is DONE). An Einsum iterating any part of the rank runs in pass
    max(1, k of STREAM(k) inputs, k + 1 of DONE(k) inputs); one that does not runs after pass
    max(k of its inputs). Recurrences are resolved by monotone fixpoint iteration. Inputs of
    the cascade are CONST: they live in memory and any pass may read them.

    Args:
        cascade: A checked cascade.
        rank: The rank to analyse: a root rank (M), a partition part (M1) or any other rank.

    Returns:
        The pass report; `passes` is 0 when no Einsum iterates the rank.

    Raises:
        ValueError: If `rank` is not a rank of the cascade, or the passes do not converge
            (a recurrence that would need its own final value).
    """
    known = tuple(
        dict.fromkeys(
            list(cascade.all_ranks)
            + [r for ranks in cascade.tensor_ranks.values() for r in ranks]
            + [RankName(v.upper()) for e in cascade.einsums for v in e.iteration_vars]
        )
    )
    if rank not in known:
        raise ValueError(f"unknown rank {rank} (ranks of {cascade.name}: {', '.join(known)})")
    leaves = frozenset(cascade.expand(RankName(rank)))
    picks = {g.tensor: g for g in cascade.gathers if _over(cascade, g.source, leaves)}
    # a gathered input's picked rank (HCAM's N selected keys) is a selection of the rank
    for g in picks.values():
        leaves |= frozenset(cascade.expand(g.rank))
    declared = cascade.tensor_ranks
    indexed: dict[str, bool] = {
        t: bool(leaves & {leaf for r in ranks for leaf in cascade.expand(r)})
        for t, ranks in declared.items()
    }
    split = _split_leaves(cascade, leaves)
    merges = tuple(_is_merge(cascade, e, leaves, split) for e in cascade.einsums)
    iterates = tuple(
        _iterates(cascade, e, leaves) and not m
        for e, m in zip(cascade.einsums, merges, strict=True)
    )
    states = _solve(cascade, leaves, indexed, iterates, tuple(picks.values()))
    records = tuple(
        EinsumPass(
            index=i,
            output=e.output,
            pass_number=states[e.output].pass_number,
            iterates_rank=iterates[i],
            availability=states[e.output].availability,
            text=str(e),
            is_merge=merges[i],
        )
        for i, e in enumerate(cascade.einsums)
    )
    passes = max((r.pass_number for r in records if r.iterates_rank), default=0)
    boundaries = _boundaries(cascade, leaves, indexed, records, passes)
    merged = tuple(r for r in cascade.expand(RankName(rank)) if r in split and any(merges))
    reads = _input_reads(cascade, indexed, records)
    return PassReport(RankName(rank), passes, records, boundaries, merged, reads)


def _input_reads(
    cascade: Cascade, indexed: Mapping[str, bool], records: tuple[EinsumPass, ...]
) -> tuple[InputRead, ...]:
    result = []
    for name in cascade.input_names:
        if not indexed.get(name):
            continue
        readers = [
            r
            for r, e in zip(records, cascade.einsums, strict=True)
            if r.iterates_rank and any(a.tensor == name for a in e.inputs)
        ]
        passes = tuple(sorted({r.pass_number for r in readers}))
        result.append(InputRead(name, passes, tuple(r.output for r in readers)))
    return tuple(result)


def _split_leaves(cascade: Cascade, leaves: frozenset[RankName]) -> frozenset[RankName]:
    """Leaves of the rank outside a recurrence that runs per split (M2 of M2 x M1 x M0).

    A recurrence over a leaf L whose output is also indexed by leaves outer to L keeps one
    running state per element of those outer leaves: they are splits, each ending with its
    own final state.
    """
    order = [r for p in cascade.partitions for r in cascade.expand(p.rank) if r in leaves]
    found: set[RankName] = set()
    recurring: set[RankName] = set()
    for e in cascade.einsums:
        var = e.recurrence_var
        if var is None or RankName(var.upper()) not in leaves:
            continue
        recurring.add(RankName(var.upper()))
        outer = order[: order.index(RankName(var.upper()))] if var.upper() in order else []
        found |= {r for r in e.out.ranks if r in outer}
    # A leaf that a recurrence itself iterates is swept in order (chunks of GLA, whose
    # per-chunk cumulative gate recurs over M0 inside each M1 chunk), not split.
    return frozenset(found - recurring)


def _is_merge(
    cascade: Cascade, einsum: Einsum, leaves: frozenset[RankName], split: frozenset[RankName]
) -> bool:
    """Whether `einsum` iterates only split leaves of the rank (a merge of partial states)."""
    if not split:
        return False
    mine = {
        leaf
        for v in einsum.iteration_vars
        for leaf in _rank_leaves(cascade, RankName(v.upper()))
        if leaf in leaves
    }
    return bool(mine) and mine <= split


def _rank_leaves(cascade: Cascade, rank: RankName) -> frozenset[RankName]:
    return frozenset(cascade.expand(rank))


def _iterates(cascade: Cascade, einsum: Einsum, leaves: frozenset[RankName]) -> bool:
    return any(_rank_leaves(cascade, RankName(v.upper())) & leaves for v in einsum.iteration_vars)


def _reads_final(cascade: Cascade, access: Access, leaves: frozenset[RankName]) -> bool:
    return any(
        isinstance(i, Final) and _rank_leaves(cascade, i.rank) & leaves for i in access.indices
    )


def _input_state(
    cascade: Cascade,
    access: Access,
    leaves: frozenset[RankName],
    states: Mapping[str, _State],
    iterates: bool = False,
) -> _State:
    state = states.get(access.tensor, _UNKNOWN)
    if state.availability is Availability.STREAM and _reads_final(cascade, access, leaves):
        if iterates and _per_part(cascade, access, leaves):
            return state  # the last iterate of each chunk, while the pass visits the chunk
        return _State(Availability.DONE, state.pass_number)
    return state


def _per_part(cascade: Cascade, access: Access, leaves: frozenset[RankName]) -> bool:
    """Whether a final-iterate read still indexes a part of the rank (BC[m1,M0,e]: per chunk)."""
    return any(
        isinstance(i, Var) and _rank_leaves(cascade, i.rank) & leaves for i in access.indices
    )


def _einsum_state(
    cascade: Cascade,
    einsum: Einsum,
    leaves: frozenset[RankName],
    indexed: Mapping[str, bool],
    iterates: bool,
    states: Mapping[str, _State],
) -> _State:
    inputs = [_input_state(cascade, a, leaves, states, iterates) for a in einsum.inputs]
    depends = any(s.availability is not Availability.CONST for s in inputs)
    has_done = any(s.availability is Availability.DONE for s in inputs)
    if not iterates:
        label = max((s.pass_number for s in inputs), default=0)
        return _State(Availability.DONE if has_done else Availability.CONST, label)
    pass_number = max(
        [1]
        + [s.pass_number for s in inputs if s.availability is Availability.STREAM]
        + [s.pass_number + 1 for s in inputs if s.availability is Availability.DONE]
    )
    if indexed[einsum.output] or _is_gather(cascade, einsum, leaves):
        return _State(Availability.STREAM, pass_number)
    reduced = any(_rank_leaves(cascade, RankName(v.upper())) & leaves for v in einsum.reduced_vars)
    if reduced or depends:
        return _State(Availability.DONE, pass_number)
    return _State(Availability.CONST, pass_number)


def _is_gather(cascade: Cascade, einsum: Einsum, leaves: frozenset[RankName]) -> bool:
    """Whether the Einsum reduces the rank only over points its where clause pins.

    `QKV[f,p] = FQ[e,p] * KV[m+1,e,f] where m == p + M - P` reads one element of the rank
    per output point (the state at the query's own key): a gather, available while the pass
    visits that element, not a complete reduction over the rank that needs the pass to end.
    """
    mine = [v for v in einsum.reduced_vars if _rank_leaves(cascade, RankName(v.upper())) & leaves]
    return bool(mine) and set(mine) <= pinned_vars(cascade, einsum)


def _over(cascade: Cascade, tensor: TensorName, leaves: frozenset[RankName]) -> bool:
    """Whether `tensor` is declared over a rank whose parts include one of `leaves`."""
    return any(set(cascade.expand(r)) & leaves for r in cascade.tensor_ranks.get(tensor, ()))


def _picked(g: Gather, states: Mapping[str, _State]) -> _State:
    """A gathered input streams in the pass after its picks' tensors are complete.

    The picks are a selection over the whole of `by` (a top-k, a sort, a cluster
    assignment), so they are known when `by` is: after the pass that streams or reduces it.
    Reading the picked elements then reads the source again (HCAM's chosen chunks after the
    summary scores, the Routing Transformer's clusters after the assignment): a pass of its
    own. Picks from rank-free tensors are known before the first pass.
    """
    after = [
        s.pass_number + 1
        for s in (states.get(b, _UNKNOWN) for b in g.by)
        if s.availability is not Availability.CONST
    ]
    return _State(Availability.STREAM, max([1, *after]))


def _solve(
    cascade: Cascade,
    leaves: frozenset[RankName],
    indexed: Mapping[str, bool],
    iterates: tuple[bool, ...],
    picks: tuple[Gather, ...] = (),
) -> dict[str, _State]:
    """Fixpoint over the Einsums in list order; lagged reads see the previous round's state."""
    states: dict[str, _State] = {}
    # Each Einsum adds at most one pass to its inputs' latest, so a converging cascade never
    # exceeds this many rounds; more means a cycle through a DONE value.
    limit = len(cascade.einsums) + 2 + len(picks)
    for _ in range(limit + 1):
        changed = False
        for g in picks:
            new = _picked(g, states)
            if states.get(g.tensor) != new:
                states[g.tensor] = new
                changed = True
        for e, it in zip(cascade.einsums, iterates, strict=True):
            new = _einsum_state(cascade, e, leaves, indexed, it, states)
            if states.get(e.output) != new:
                states[e.output] = new
                changed = True
        if not changed:
            return states
    raise ValueError(
        f"pass count of {cascade.name} over {''.join(sorted(leaves))} does not converge: "
        "a recurrence depends on a value that needs its own completed pass"
    )


def _boundaries(
    cascade: Cascade,
    leaves: frozenset[RankName],
    indexed: Mapping[str, bool],
    records: tuple[EinsumPass, ...],
    passes: int,
) -> tuple[Boundary, ...]:
    # Times: an Einsum in pass k runs at k; one after pass k runs at k + 0.5. A value crosses
    # boundary k when produced at time <= k + 0.5 (in or right after pass k) and consumed later
    # than k + 0.5, i.e. in pass k + 1 or after it.
    produced: dict[str, float] = {}
    for r in records:
        if r.availability is not Availability.CONST:
            produced.setdefault(r.output, r.pass_number + (0.0 if r.iterates_rank else 0.5))
    uses: list[tuple[str, bool, float]] = []  # (tensor, buffered?, consumer time)
    for e, r in zip(cascade.einsums, records, strict=True):
        time = r.pass_number + (0.0 if r.iterates_rank else 0.5)
        for a in e.inputs:
            if a.tensor in produced:
                big = indexed[a.tensor] and not _reads_final(cascade, a, leaves)
                uses.append((a.tensor, big, time))
    result: list[Boundary] = []
    for k in range(1, passes):
        buffered: dict[str, None] = {}
        carried: dict[str, None] = {}
        for tensor, big, time in uses:
            if produced[tensor] <= k + 0.5 < time:
                (buffered if big else carried)[tensor] = None
        result.append(
            Boundary(
                after_pass=k,
                buffered=tuple(TensorName(t) for t in buffered),
                carried=tuple(TensorName(t) for t in carried if t not in buffered),
            )
        )
    return tuple(result)
