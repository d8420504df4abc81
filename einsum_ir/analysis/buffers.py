"""Tensor sizes in elements, and what must be held across the pass boundaries of a rank."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from attnsim.einsum_ir.analysis.passes import count_passes
from attnsim.einsum_ir.ir import Cascade, RankName, TensorName, Var
from attnsim.einsum_ir.sizes import resolve_sizes


def tensor_sizes(cascade: Cascade, sizes: Mapping[str, int]) -> dict[str, int]:
    """Elements of every tensor (inputs, then intermediates in definition order), as declared.

    A tensor's size is the product of its declared ranks, so a tensor over (M1, M0) holds
    M1 * M0 elements, padded tail included. A recurrence tensor `X[m1+1, p]` holds the
    iterates 0..M1 along its iterative rank: (M1 + 1) * P elements.

    Args:
        cascade: A checked cascade.
        sizes: Rank sizes as for `resolve_sizes`; derived outer parts (M1) are recomputed.

    Returns:
        Elements per tensor name (not bytes: multiply by the word size).
    """
    ranks = _resolved(cascade, sizes)
    result: dict[str, int] = {}
    for name, declared in cascade.inputs:
        result[name] = math.prod(ranks[r] for r in declared)
    for e in cascade.einsums:
        if e.output in result:
            continue
        result[e.output] = math.prod(
            ranks[r] + (1 if isinstance(i, Var) and i.offset else 0)
            for r, i in zip(e.out.ranks, e.out.indices, strict=True)
        )
    return result


@dataclass(frozen=True, slots=True)
class BoundaryFootprint:
    """Elements that survive one pass boundary (whole tensors; tile them to get on-chip needs).

    Attributes:
        after_pass: The pass that has just ended.
        buffered_elements: Elements of the buffered tensors (indexed by the rank).
        carried_elements: Elements of the carried tensors; a final iterate read through
            `X[M1, ...]` counts one iterate.
    """

    after_pass: int
    buffered_elements: int
    carried_elements: int


def boundary_footprints(
    cascade: Cascade, sizes: Mapping[str, int], rank: str = "M"
) -> tuple[BoundaryFootprint, ...]:
    """Live elements at each boundary of `count_passes(cascade, rank)`."""
    report = count_passes(cascade, rank)
    elements = tensor_sizes(cascade, sizes)
    ranks = _resolved(cascade, sizes)
    leaves = set(cascade.expand(RankName(rank)))
    declared = cascade.tensor_ranks

    def one_iterate(tensor: TensorName) -> int:
        return math.prod(ranks[r] for r in declared[tensor] if not set(cascade.expand(r)) & leaves)

    return tuple(
        BoundaryFootprint(
            b.after_pass,
            sum(elements[t] for t in b.buffered),
            sum(one_iterate(t) for t in b.carried),
        )
        for b in report.boundaries
    )


def _resolved(cascade: Cascade, sizes: Mapping[str, int]) -> dict[RankName, int]:
    derived = {p.parts[0] for p in cascade.partitions}
    return resolve_sizes(cascade, {k: v for k, v in sizes.items() if k not in derived})
