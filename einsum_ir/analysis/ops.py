"""Operation counts by kind for a cascade at given sizes, with masked points excluded.

Counting convention (no hoisting, no common-subexpression elimination):

- Every expression node counts one operation of its kind per point of its own iteration
  space: the Einsum's output indices plus its implicitly summed indices, extended by the
  indices of every explicit reduction (`max[m0](...)`) enclosing the node.
- Every reduction counts one operation per reduced point, i.e. per point of the space it
  reduces over (accumulating into the identity): sum -> add, max -> max, min -> max. So
  `QK[m,p] = Q[e,p] * K[e,m]` is P*M*E multiplies and P*M*E adds.
- Points excluded by `where` conditions, and the padded tail of a partitioned rank
  (m1*M0 + m0 >= M when an Einsum iterates both m1 and m0), count nothing. A node outside
  every reduction of an Einsum that has explicit reductions counts the output points that
  keep at least one unmasked reduction point.
- FLOPs are all operations added up, so a multiply-add counts 2 and an exp counts 1.
- Index and size values (`p - m`, `log(M)`) are operands, not operations: the subtraction
  and the log count, reading `p`, `m` or `M` does not.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from attnsim.einsum_ir.analysis.points import Split, count_points
from attnsim.einsum_ir.ir import (
    Binary,
    BinaryOp,
    Cascade,
    Einsum,
    Expr,
    IndexName,
    RankName,
    Reduce,
    ReduceOp,
    TensorName,
    Unary,
    UnaryOp,
    bind_where,
)
from attnsim.einsum_ir.sizes import resolve_sizes


class OpKind(enum.StrEnum):
    """Kinds of scalar operations counted."""

    MULTIPLY = "multiply"
    ADD = "add"  # includes subtract and sum reductions
    DIVIDE = "divide"
    MAX = "max"  # includes min and max/min reductions
    EXP = "exp"
    SIGMOID = "sigmoid"
    SQRT = "sqrt"
    RECIP = "recip"
    NEG = "neg"
    TANH = "tanh"
    ABS = "abs"
    LOG = "log"
    STEP = "step"
    ROUND = "round"
    COS = "cos"
    SIN = "sin"


_BINARY_KIND = {
    BinaryOp.ADD: OpKind.ADD,
    BinaryOp.SUB: OpKind.ADD,
    BinaryOp.MUL: OpKind.MULTIPLY,
    BinaryOp.DIV: OpKind.DIVIDE,
    BinaryOp.MAX: OpKind.MAX,
    BinaryOp.MIN: OpKind.MAX,
}
_UNARY_KIND = {
    UnaryOp.NEG: OpKind.NEG,
    UnaryOp.EXP: OpKind.EXP,
    UnaryOp.SIGMOID: OpKind.SIGMOID,
    UnaryOp.SQRT: OpKind.SQRT,
    UnaryOp.RECIP: OpKind.RECIP,
    UnaryOp.TANH: OpKind.TANH,
    UnaryOp.ABS: OpKind.ABS,
    UnaryOp.LOG: OpKind.LOG,
    UnaryOp.STEP: OpKind.STEP,
    UnaryOp.ROUND: OpKind.ROUND,
    UnaryOp.COS: OpKind.COS,
    UnaryOp.SIN: OpKind.SIN,
}
_PointsFn = Callable[[frozenset[str]], int]
_REDUCE_KIND = {ReduceOp.SUM: OpKind.ADD, ReduceOp.MAX: OpKind.MAX, ReduceOp.MIN: OpKind.MAX}


@dataclass(frozen=True, slots=True)
class EinsumOps:
    """Operation counts of one Einsum.

    Attributes:
        index: Position of the Einsum in the cascade.
        output: The tensor it defines.
        points: Size of its unmasked iteration space (all its index variables).
        counts: Operations by kind (every kind present, zero included).
    """

    index: int
    output: TensorName
    points: int
    counts: Mapping[OpKind, int]

    @property
    def flops(self) -> int:
        """All operations of this Einsum (a multiply-add counts 2)."""
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class OpCounts:
    """Operation counts of a cascade (see the module docstring for the convention).

    Attributes:
        total: Operations by kind over all Einsums (every kind present, zero included).
        per_einsum: One record per Einsum, in cascade order.
        flops: All operations added up (a multiply-add counts 2).
    """

    total: Mapping[OpKind, int]
    per_einsum: tuple[EinsumOps, ...]
    flops: int


def count_ops(cascade: Cascade, sizes: Mapping[str, int]) -> OpCounts:
    """Count scalar operations by kind, excluding masked points; never enumerates a full space.

    Args:
        cascade: A checked cascade.
        sizes: Rank sizes as for `resolve_sizes` (cascade params fill the rest); derived
            outer partition parts (M1) may be present and are recomputed.

    Returns:
        Counts per kind, per Einsum, and FLOPs (every operation counts 1, so a multiply-add
        is 2 FLOPs). Memoized on the cascade and the resolved sizes.
    """
    derived = {p.parts[0] for p in cascade.partitions}
    resolved = resolve_sizes(cascade, {k: v for k, v in sizes.items() if k not in derived})
    return _count_ops(cascade, tuple(sorted(resolved.items())))


@functools.lru_cache(maxsize=2048)  # bounded: tests and sweeps parse many cascades
def _count_ops(cascade: Cascade, sizes: tuple[tuple[RankName, int], ...]) -> OpCounts:
    rank_sizes = dict(sizes)
    records = tuple(_einsum_ops(cascade, i, e, rank_sizes) for i, e in enumerate(cascade.einsums))
    total = {k: sum(r.counts[k] for r in records) for k in OpKind}
    return OpCounts(MappingProxyType(total), records, sum(total.values()))


def einsum_splits(
    cascade: Cascade, einsum: Einsum, rank_sizes: Mapping[RankName, int]
) -> tuple[Split, ...]:
    """The partitions an Einsum iterates completely (all parts), innermost first.

    Such an Einsum excludes the padded tail (m1*M0 + m0 >= M) and may use m in conditions.
    """
    available = set(einsum.iteration_vars)
    result: list[Split] = []
    pending = list(cascade.partitions)
    while pending:
        ready = [p for p in pending if all(q.lower() in available for q in p.parts)]
        waiting = [p for p in pending if p not in ready]
        if not ready:
            break
        for part in ready:
            strides = []
            for i in range(len(part.parts)):
                stride = 1
                for q in part.parts[i + 1 :]:
                    stride *= rank_sizes[q]
                strides.append(stride)
            names = tuple(q.lower() for q in part.parts)
            result.append(
                Split(
                    part.rank.lower(),
                    tuple(zip(names, strides, strict=True)),
                    rank_sizes[part.rank],
                )
            )
            available.add(IndexName(part.rank.lower()))
        pending = waiting
    return tuple(result)


def _einsum_ops(
    cascade: Cascade, index: int, einsum: Einsum, rank_sizes: Mapping[RankName, int]
) -> EinsumOps:
    iteration = einsum.iteration_vars
    extents: dict[str, int] = {v: rank_sizes[RankName(v.upper())] for v in iteration}
    splits = einsum_splits(cascade, einsum, rank_sizes)
    where = bind_where(einsum.where, rank_sizes)
    counted: dict[frozenset[str], int] = {}

    def points(context: frozenset[str]) -> int:
        if context not in counted:
            keep = None if context == frozenset(iteration) else context
            counted[context] = count_points(extents, where, splits, keep)
        return counted[context]

    counts = dict.fromkeys(OpKind, 0)
    base = frozenset(einsum.out_vars) | frozenset(einsum.implicit_reduced_vars)
    if einsum.implicit_reduced_vars:
        counts[OpKind.ADD] += points(base)
    _count_node(einsum.expr, base, points, counts)
    return EinsumOps(index, einsum.output, points(frozenset(iteration)), MappingProxyType(counts))


def _count_node(
    expr: Expr,
    context: frozenset[str],
    points: _PointsFn,
    counts: dict[OpKind, int],
) -> None:
    if isinstance(expr, Unary):
        counts[_UNARY_KIND[expr.op]] += points(context)
        _count_node(expr.arg, context, points, counts)
    elif isinstance(expr, Binary):
        counts[_BINARY_KIND[expr.op]] += points(context)
        _count_node(expr.left, context, points, counts)
        _count_node(expr.right, context, points, counts)
    elif isinstance(expr, Reduce):
        inner = context | frozenset(expr.over)
        counts[_REDUCE_KIND[expr.op]] += points(inner)
        _count_node(expr.body, inner, points, counts)
