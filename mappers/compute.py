"""What an Einsum costs on a compute array: PE actions per kind, cycles and energy.

Expression nodes become PE operations of the array's operation table:

- a sum over a product (`Q[e,p] * K[e,m]` summed over e) is one `mac` per reduced point;
- other sums are `add`s, max/min reductions and `max(x, y)`/`min(x, y)` are `max`es;
- `+`/`-` are `add`, `*` is `mul`, `/` is `divide`, and unary functions keep their names
  (`exp`, `sigmoid`, `sqrt`, `recip`); negation is free (a sign flip);
- an operation whose table entry `absorbs` an operation of its argument (FuseMax's exp
  absorbs the subtraction of the running max) makes that argument node free.

Each node counts once per point of its own iteration space, masked points excluded (the
same convention as `einsum_ir.analysis.count_ops`). Cycles on an array are
sum(count x cycles per op) / lanes: every PE performs one operation stream.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from archs.model import ComputeArray
from einsum_ir.analysis.ops import einsum_splits
from einsum_ir.analysis.points import count_points
from einsum_ir.ir import (
    Binary,
    BinaryOp,
    Cascade,
    Einsum,
    Expr,
    RankName,
    Reduce,
    ReduceOp,
    Unary,
    UnaryOp,
)

_BINARY = {
    BinaryOp.ADD: "add",
    BinaryOp.SUB: "sub",
    BinaryOp.MUL: "mul",
    BinaryOp.DIV: "divide",
    BinaryOp.MAX: "max",
    BinaryOp.MIN: "max",
}
_UNARY = {
    UnaryOp.EXP: "exp",
    UnaryOp.SIGMOID: "sigmoid",
    UnaryOp.SQRT: "sqrt",
    UnaryOp.RECIP: "recip",
}
_REDUCE = {ReduceOp.SUM: "add", ReduceOp.MAX: "max", ReduceOp.MIN: "max"}
# "sub" is performed by the adder unless an operation absorbs it.
_EXECUTED_AS = {"sub": "add"}


@dataclass(frozen=True, slots=True)
class EinsumWork:
    """PE operations one Einsum needs, before binding it to lanes.

    Attributes:
        index: Position in the cascade.
        output: Tensor the Einsum defines.
        points: Unmasked iteration-space points.
        output_points: Unmasked output points (elements produced).
        actions: (operation, count) pairs, operations named as in the array's table.
    """

    index: int
    output: str
    points: int
    output_points: int
    actions: tuple[tuple[str, int], ...]

    def count(self, op: str) -> int:
        """Number of `op` actions (0 if none)."""
        return dict(self.actions).get(op, 0)


def einsum_work(
    cascade: Cascade,
    rank_sizes: Mapping[RankName, int],
    index: int,
    absorbs: Mapping[str, frozenset[str]] | None = None,
) -> EinsumWork:
    """PE operations of Einsum `index` at resolved `rank_sizes`.

    Args:
        cascade: A checked cascade.
        rank_sizes: Every rank's size (`einsum_ir.sizes.resolve_sizes`).
        index: Which Einsum.
        absorbs: For each operation, the argument operations it absorbs (from the array).
    """
    key = tuple(sorted((absorbs or {}).items()))
    return _einsum_work(cascade, tuple(sorted(rank_sizes.items())), index, key)


def cascade_work(
    cascade: Cascade, rank_sizes: Mapping[RankName, int], array: ComputeArray
) -> tuple[EinsumWork, ...]:
    """`einsum_work` of every Einsum with `array`'s absorbs table (one cache lookup)."""
    key = tuple(sorted(array_absorbs(array).items()))
    return _cascade_work(cascade, tuple(sorted(rank_sizes.items())), key)


@functools.lru_cache(maxsize=1024)
def _cascade_work(
    cascade: Cascade,
    sizes: tuple[tuple[RankName, int], ...],
    absorbs: tuple[tuple[str, frozenset[str]], ...],
) -> tuple[EinsumWork, ...]:
    return tuple(_einsum_work(cascade, sizes, i, absorbs) for i in range(len(cascade.einsums)))


def array_absorbs(array: ComputeArray) -> dict[str, frozenset[str]]:
    """The `absorbs` table of an array's operations."""
    return {o.name: frozenset(getattr(o, "absorbs", ())) for o in array.operations}


def _einsum_work(
    cascade: Cascade,
    sizes: tuple[tuple[RankName, int], ...],
    index: int,
    absorbs: tuple[tuple[str, frozenset[str]], ...],
) -> EinsumWork:
    rank_sizes = dict(sizes)
    einsum = cascade.einsums[index]
    iteration = einsum.iteration_vars
    extents: dict[str, int] = {v: rank_sizes[RankName(v.upper())] for v in iteration}
    splits = einsum_splits(cascade, einsum, rank_sizes)
    memo: dict[frozenset[str], int] = {}

    def points(context: frozenset[str]) -> int:
        if context not in memo:
            keep = None if context == frozenset(iteration) else context
            memo[context] = count_points(extents, einsum.where, splits, keep)
        return memo[context]

    counts: dict[str, int] = {}
    _walk_top(einsum, points, counts, dict(absorbs))
    actions = tuple(sorted((op, n) for op, n in counts.items() if n))
    out_points = points(frozenset(einsum.out_vars))
    return EinsumWork(index, einsum.output, points(frozenset(iteration)), out_points, actions)


def _add(counts: dict[str, int], op: str, n: int) -> None:
    op = _EXECUTED_AS.get(op, op)
    counts[op] = counts.get(op, 0) + n


def _walk_top(
    einsum: Einsum,
    points: Callable[[frozenset[str]], int],
    counts: dict[str, int],
    absorbs: dict[str, frozenset[str]],
) -> None:
    base = frozenset(einsum.out_vars) | frozenset(einsum.implicit_reduced_vars)
    expr = einsum.expr
    if einsum.implicit_reduced_vars:
        if isinstance(expr, Binary) and expr.op is BinaryOp.MUL:
            _add(counts, "mac", points(base))
            _walk(expr.left, base, points, counts, absorbs)
            _walk(expr.right, base, points, counts, absorbs)
            return
        _add(counts, "add", points(base))
    _walk(expr, base, points, counts, absorbs)


def _walk(
    expr: Expr,
    context: frozenset[str],
    points: Callable[[frozenset[str]], int],
    counts: dict[str, int],
    absorbs: dict[str, frozenset[str]],
) -> None:
    if isinstance(expr, Reduce):
        inner = context | frozenset(expr.over)
        body = expr.body
        if expr.op is ReduceOp.SUM and isinstance(body, Binary) and body.op is BinaryOp.MUL:
            _add(counts, "mac", points(inner))
            _walk(body.left, inner, points, counts, absorbs)
            _walk(body.right, inner, points, counts, absorbs)
            return
        _add(counts, _REDUCE[expr.op], points(inner))
        _walk(body, inner, points, counts, absorbs)
    elif isinstance(expr, Unary):
        if expr.op is not UnaryOp.NEG:
            op = _UNARY[expr.op]
            _add(counts, op, points(context))
            _walk_argument(expr.arg, absorbs.get(op, frozenset()), context, points, counts, absorbs)
        else:
            _walk(expr.arg, context, points, counts, absorbs)
    elif isinstance(expr, Binary):
        op = _BINARY[expr.op]
        _add(counts, op, points(context))
        for child in (expr.left, expr.right):
            _walk_argument(child, absorbs.get(op, frozenset()), context, points, counts, absorbs)


def _walk_argument(
    arg: Expr,
    absorbed: frozenset[str],
    context: frozenset[str],
    points: Callable[[frozenset[str]], int],
    counts: dict[str, int],
    absorbs: dict[str, frozenset[str]],
) -> None:
    if isinstance(arg, Binary) and _BINARY[arg.op] in absorbed:
        # The parent operation performs this one for free; still walk its operands.
        _walk(arg.left, context, points, counts, absorbs)
        _walk(arg.right, context, points, counts, absorbs)
        return
    _walk(arg, context, points, counts, absorbs)


def cycles_on(work: EinsumWork, array: ComputeArray) -> float:
    """Cycles for `work` on `array`: total PE-operation cycles spread over all lanes."""
    return sum(n * array.cycles(op) for op, n in work.actions) / array.lanes


def unsupported(work: EinsumWork, array: ComputeArray) -> list[str]:
    """Operations of `work` the array cannot perform."""
    return [op for op, _ in work.actions if not array.supports(op)]


def primitive_counts(work: EinsumWork, array: ComputeArray) -> dict[str, float]:
    """`work`'s actions expanded into the array's primitive operations (for energy)."""
    prims: dict[str, float] = {}
    for op, n in work.actions:
        for prim, k in array.primitive_actions(op).items():
            prims[prim] = prims.get(prim, 0.0) + n * k
    return prims
