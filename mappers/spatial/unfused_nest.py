"""Global-buffer accesses of one contraction in the unfused mapper's 2D-array loop nest.

The nest is the FuseMax artifact's unfused baseline (`baselines/unfused-constraints/qk.yaml`
and `av.yaml` of FPSG-UIUC/micro24-fusemax-artifact): one depth-one register per operand in
each PE; query rows across the array's `rows`, keys across its `cols`; every other rank
temporal. Per instance (batch-like ranks outermost), outermost first:

    for q in ceil(P'/rows)          query tiles (P' = positions x query-group heads)
      for m in ceil(M/cols)         key tiles (outer key pieces loop just outside)
        for t in T                  every other rank: E for QK, F for AV (declared order)
          spatial: rows queries x cols keys

A tensor moves `d` words into (an output: out of) the PE registers: its size times the trips
of every loop over other ranks outside the innermost loop over one of its own (loops inside
that one are reuse: Timeloop's stationarity, as in `loopnest.deliveries`). Then:

- an input with d = its size (A in AV: each weight is used by one PE once) streams from DRAM
  straight into the PEs and never touches the buffer;
- an input with d > size (Q, K, V) is filled into the buffer once and read d times;
- an output with d = size (QK) leaves the PE registers once, straight to DRAM;
- an output with d > size (AV, reduced over key tiles outside its innermost loop) keeps
  partial sums in the buffer: d writes and d - size reads (the first tile's needs none).

With N = P x M scores per instance and a rows x cols array:

    QK  reads  Q: E * P * ceil(M/cols)   K: E * M * ceil(P/rows)   (2 * E * N / 256 at 256x256)
        writes Q: E * P (fill)           K: E * M (fill)           QK: none (to DRAM)
    AV  reads  V: F * M * ceil(P/rows)   AV: F * P * (ceil(M/cols) - 1)
        writes V: F * M (fill)           AV: F * P * ceil(M/cols)  A: none (from DRAM)

So QK's buffer reads grow linearly in E and AV's reads and writes linearly in F, for every
head dim: the head dim is a temporal loop, never spread over the array, so there is no step
when it passes an array side (it only lengthens the innermost loop); ceil division enters
through the query and key tiles only (a partial tile moves only its own words). With a
single tile along a side nothing is re-read across it: at M <= cols, Q and the AV sums pass
the buffer by (each element moves once); at P <= rows, K and V do.

This replaces a rule that charged each contraction one buffer write per output element and
no operand reads. That rule does not depend on E; on the 32 MiB FLAT buffer (93.2 pJ a word
read, 105.8 pJ written) it charged 105.8 pJ a score against the derived (2E + 2F) / 256
reads and F / 256 writes a score: 119.7 pJ at E = F = 64 (the old rule 0.4% short in total)
but 239.3 pJ at E = F = 128 (2.4% short on XLM). The derived counts reproduce every unfused
energy of the artifact up to 64K, head dim 64 and 128 alike, within 0.01%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from attnsim.archs.model import ComputeArray
from attnsim.einsum_ir.ir import RankName, TensorName
from attnsim.mappers.spatial.view import CascadeView

_QUERY = "<query rows>"  # pseudo-rank: the query positions with the query-group heads packed
_KEY = "<key tile>"  # pseudo-rank: the innermost key piece the contraction iterates


@dataclass(frozen=True, slots=True)
class OperandAccess:
    """One tensor of a contraction in the unfused nest, in words.

    Attributes:
        tensor: The tensor.
        is_output: Whether it is the contraction's output.
        size: Its words (the whole tensor, all instances).
        pe_words: Words moved into the PE registers (out of them, for the output).
        buffer_reads: Global-buffer words read (operand re-reads or partial sums).
        buffer_writes: Global-buffer words written (fills from DRAM or partial sums).
    """

    tensor: TensorName
    is_output: bool
    size: float
    pe_words: float
    buffer_reads: float
    buffer_writes: float


def contraction_accesses(
    cv: CascadeView, index: int, array: ComputeArray, visited: float = 1.0
) -> tuple[OperandAccess, ...]:
    """Buffer accesses of contraction `index` on 2D `array` (see the module docstring).

    Args:
        cv: The cascade at concrete sizes.
        index: The Einsum, a contraction bound to `array`.
        array: The 2D array (its rows take query rows, its columns keys).
        visited: Share of (query tile, key tile) pairs computed (a mask's visited tiles);
            applies to Einsums that iterate the key rank. A key x query tensor's fill is its
            visited share; other fills are whole (read once whatever the mask).

    Returns:
        One record per distinct input, then the output, in words over all instances.
    """
    e = cv.cascade.einsums[index]
    pseudo, loops = _nest(cv, index, array)
    share = visited if _KEY in pseudo.values() else 1.0
    records: list[OperandAccess] = []
    seen: set[TensorName] = set()
    for acc in (*e.inputs, e.out):
        is_output = acc is e.out
        if acc.tensor in seen and not is_output:
            continue
        seen.add(acc.tensor)
        # the size times the trips of every loop over other ranks outside the innermost loop
        # over one of its own (a partial tile moves only its own words: nothing is padded)
        own = {pseudo[v.rank] for v in acc.vars}
        size = float(math.prod(cv.sizes[v.rank] for v in acc.vars))
        inner = max((k for k, (name, _) in enumerate(loops) if name in own), default=-1)
        moved = size * math.prod(trips for name, trips in loops[: inner + 1] if name not in own)
        pe = moved * share
        reads = writes = 0.0
        if moved > size and is_output:  # partial sums round-trip the buffer
            writes = pe
            reads = max(0.0, pe - size)
        elif moved > size:  # a re-read operand: filled once, read per delivery
            key_query = cv.is_key_indexed(acc.tensor) and cv.is_query_indexed(acc.tensor)
            writes = size * (share if key_query else 1.0)
            reads = pe
        records.append(OperandAccess(acc.tensor, is_output, size, pe, reads, writes))
    return tuple(records)


def _nest(
    cv: CascadeView, index: int, array: ComputeArray
) -> tuple[dict[RankName, str], list[tuple[str, int]]]:
    """Each iterated rank's loop name, and the loops (name, trips) outermost first.

    Query-side ranks share one name (they are packed into the array's rows), as does the
    innermost key piece (across its columns); each array side loops over ceil(extent /
    side) tiles. Batch-like ranks loop outermost, other key pieces just outside the key
    tiles, every other rank innermost in declared order.
    """
    e = cv.cascade.einsums[index]
    ranks = tuple(dict.fromkeys(RankName(v.upper()) for v in e.iteration_vars))
    query_side = {cv.query_rank, *cv.group_ranks}
    key_side = [r for r in ranks if cv.cascade.root(r) == cv.key_rank]
    key_tile = key_side[-1] if key_side else None
    pseudo: dict[RankName, str] = {
        r: _QUERY if cv.cascade.root(r) in query_side else _KEY if r == key_tile else r
        for r in ranks
    }

    def tiles(name: str, side: int) -> list[tuple[str, int]]:
        members = [r for r in ranks if pseudo[r] == name]
        extent = math.prod(cv.sizes[r] for r in members)
        return [(name, -(-extent // side))] if members else []

    loops = [
        *((r, cv.sizes[r]) for r in ranks if r in cv.instance_ranks),
        *tiles(_QUERY, array.rows),
        *((r, cv.sizes[r]) for r in key_side[:-1]),
        *tiles(_KEY, array.cols),
        *(
            (r, cv.sizes[r])
            for r in ranks
            if pseudo[r] == r and r not in cv.instance_ranks and r not in key_side
        ),
    ]
    return pseudo, loops


def buffer_words(
    cv: CascadeView, index: int, array: ComputeArray, visited: float = 1.0
) -> tuple[float, float]:
    """(reads, writes) of the global buffer by contraction `index`, in words."""
    records = contraction_accesses(cv, index, array, visited)
    return (
        math.fsum(r.buffer_reads for r in records),
        math.fsum(r.buffer_writes for r in records),
    )


__all__ = ["OperandAccess", "buffer_words", "contraction_accesses"]
