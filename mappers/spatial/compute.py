"""What an Einsum costs on a compute array: PE actions per kind, cycles and energy.

Expression nodes become PE operations of the array's operation table:

- a sum over a product (`Q[e,p] * K[e,m]` summed over e) is one `mac` per reduced point;
- other sums are `add`s, max/min reductions and `max(x, y)`/`min(x, y)` are `max`es;
- `+`/`-` are `add`, `*` is `mul`, `/` is `divide`, and unary functions keep their names
  (`exp`, `sigmoid`, `sqrt`, `recip`, `step`, `round`, `cos`, `sin`, `tanh`, `abs`, `log`);
  negation is free (a
  sign flip);
- an operation whose table entry `absorbs` an operation of its argument (FuseMax's exp
  absorbs the subtraction of the running max) makes that argument node free;
- index and size values (`p - m`, `log(M)`) are operands and cost nothing themselves; a
  function with no PE operation here (`tanh`, `abs`, `log`) is refused with a MappingError.

An operation an array has no unit for is *lowered* onto units it has (`lower_work`), and the
Result's warnings say how: sigmoid(x) = 1 / (1 + exp(-x)) is the array's exp (as the array
prices it, e.g. FuseMax's 6 MACs + 1 add), one add and one reciprocal; a reciprocal is the
array's divide, else 3 Newton-Raphson steps y <- y * (2 - x * y) of 2 MACs each from a
table seed (6 MACs, the same MAC-polynomial convention as FuseMax's exp); a division
without a divider is a reciprocal and a multiply (conservative: a row-broadcast divisor
could share one reciprocal per row); a square root without a unit is x * rsqrt(x), rsqrt
by 3 Newton-Raphson steps y <- y * (1.5 - 0.5 * x * y^2) of 3 MACs each from a table seed
(9 MACs and a multiply); a unit step is one compare on the max unit, and a
rounding to the nearest integer is two adds ((x + 1.5 * 2^52) - 1.5 * 2^52, halves to even).
A cosine or sine without a unit is a Cody-Waite range reduction to [-pi/4, pi/4]
(k = round(x * 2/pi): a multiply and a rounding; r = x - k * pi/2: a MAC), both minimax
polynomials in r^2 (a multiply for r^2; sin r = r (1 + r^2 (s3 + r^2 (s5 + r^2 s7))): 3 MACs
and a multiply; cos r = 1 + r^2 (c2 + r^2 (c4 + r^2 (c6 + r^2 c8))): 4 MACs), and the
quadrant's choice of polynomial and sign (2 compares on the max unit): 8 MACs, 3 multiplies,
a rounding and 2 compares per element, the MAC-polynomial convention of FuseMax's exp.
Conservative: the cos and sin of one angle (RoPE) could share the reduction and both
polynomials. An absolute value is one max (max(x, -x)); tanh(x) = 2 sigmoid(2x) - 1 is a
multiply, a sigmoid (lowered as above) and a MAC; a natural log is the exponent's extraction
(an integer subtract: an add), a degree-6 minimax polynomial of the mantissa (6 MACs) and
e ln 2 + p (a MAC): 7 MACs and an add.

Each node counts once per point of its own iteration space, masked points excluded (the
same convention as `einsum_ir.analysis.count_ops`). Cycles on an array are
sum(count x cycles per op) / lanes: every PE performs one operation stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from attnsim.archs.model import ComputeArray
from attnsim.einsum_ir.analysis.ops import einsum_splits
from attnsim.einsum_ir.analysis.points import count_points
from attnsim.einsum_ir.ir import (
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
    bind_where,
)
from attnsim.mappers.memo import by_identity

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
    UnaryOp.STEP: "step",
    UnaryOp.ROUND: "round",
    UnaryOp.COS: "cos",
    UnaryOp.SIN: "sin",
    UnaryOp.TANH: "tanh",
    UnaryOp.ABS: "abs",
    UnaryOp.LOG: "log",
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
    return _works(cascade, tuple(sorted(rank_sizes.items())), key)[index]


def cascade_work(
    cascade: Cascade, rank_sizes: Mapping[RankName, int], array: ComputeArray
) -> tuple[EinsumWork, ...]:
    """`einsum_work` of every Einsum with `array`'s absorbs table (one cache lookup)."""
    key = tuple(sorted(array_absorbs(array).items()))
    return _works(cascade, tuple(sorted(rank_sizes.items())), key)


@by_identity(maxsize=64)
def dense_cascade(cascade: Cascade) -> Cascade:
    """`cascade` with every `where` condition dropped: the work of computing every pair.

    Used to price tiles computed whole (a lockstep array computes the masked pairs of a
    tile it visits and discards them). Memoized per cascade object, so the work cache hits.
    """
    if not any(e.where for e in cascade.einsums):
        return cascade
    einsums = tuple(dataclasses.replace(e, where=()) for e in cascade.einsums)
    return dataclasses.replace(cascade, einsums=einsums)


def scale_work(
    work: EinsumWork, share: float, extra: Mapping[str, int] | None = None
) -> EinsumWork:
    """`work` done on a `share` of its tiles, plus `extra` actions (e.g. mask selects).

    Counts are rounded to whole operations (the error is below one operation per Einsum).
    """
    counts = {op: round(n * share) for op, n in work.actions}
    for op, n in (extra or {}).items():
        counts[op] = counts.get(op, 0) + n
    return EinsumWork(
        work.index,
        work.output,
        round(work.points * share),
        round(work.output_points * share),
        tuple(sorted((op, n) for op, n in counts.items() if n)),
    )


def array_absorbs(array: ComputeArray) -> dict[str, frozenset[str]]:
    """The `absorbs` table of an array's operations."""
    return {o.name: frozenset(getattr(o, "absorbs", ())) for o in array.operations}


@dataclass(frozen=True, slots=True)
class EinsumVars:
    """An Einsum's index sets, computed once per cascade (IR properties walk the tree)."""

    iteration: frozenset[str]
    ordered_iteration: tuple[str, ...]
    out: frozenset[str]


@by_identity(maxsize=64)
def einsum_vars(cascade: Cascade) -> tuple[EinsumVars, ...]:
    """Index sets of every Einsum of `cascade`."""
    return tuple(
        EinsumVars(frozenset(e.iteration_vars), e.iteration_vars, frozenset(e.out_vars))
        for e in cascade.einsums
    )


_Absorbs = tuple[tuple[str, frozenset[str]], ...]
_Sizes = tuple[tuple[RankName, int], ...]
# Per Einsum: (operation, iteration context) items, independent of sizes.
_Symbolic = tuple[tuple[tuple[str, frozenset[str]], ...], ...]


@by_identity(maxsize=64)
def _symbolic(cascade: Cascade, absorbs: _Absorbs) -> _Symbolic:
    table = dict(absorbs)
    plans = []
    for einsum in cascade.einsums:
        items: list[tuple[str, frozenset[str]]] = []
        try:
            _walk_top(einsum, items, table)
        except _Unpriced as exc:
            from attnsim.mappers.spatial.view import (
                MappingError,  # local: spatial imports this module
            )

            raise MappingError(
                f"{einsum}: no PE operation prices {exc.op} (compute.py has no mapping for it)"
            ) from None
        plans.append(tuple(items))
    return tuple(plans)


class _Unpriced(Exception):
    """An expression operation this module does not map to a PE operation."""

    def __init__(self, op: str) -> None:
        super().__init__(op)
        self.op = op


@by_identity(maxsize=1024)
def _points_table(cascade: Cascade, sizes: _Sizes) -> tuple[dict[frozenset[str], int], ...]:
    """Unmasked points of every context any Einsum node uses, at these sizes."""
    rank_sizes = dict(sizes)
    tables = []
    for einsum, items, ev in zip(
        cascade.einsums, _symbolic(cascade, ()), einsum_vars(cascade), strict=True
    ):
        iteration = ev.iteration
        extents: dict[str, int] = {v: rank_sizes[RankName(v.upper())] for v in iteration}
        splits = einsum_splits(cascade, einsum, rank_sizes)
        where = bind_where(einsum.where, rank_sizes)
        contexts = {ctx for _, ctx in items} | {iteration, ev.out}
        table = {}
        for ctx in contexts:
            keep = None if ctx == iteration else ctx
            table[ctx] = count_points(extents, where, splits, keep)
        tables.append(table)
    return tuple(tables)


@by_identity(maxsize=2048)
def _works(cascade: Cascade, sizes: _Sizes, absorbs: _Absorbs) -> tuple[EinsumWork, ...]:
    points = _points_table(cascade, sizes)
    works = []
    plans = _symbolic(cascade, absorbs)
    for i, (einsum, ev) in enumerate(zip(cascade.einsums, einsum_vars(cascade), strict=True)):
        counts: dict[str, int] = {}
        for op, ctx in plans[i]:
            counts[op] = counts.get(op, 0) + points[i][ctx]
        actions = tuple(sorted((op, n) for op, n in counts.items() if n))
        works.append(
            EinsumWork(i, einsum.output, points[i][ev.iteration], points[i][ev.out], actions)
        )
    return tuple(works)


def _add(items: list[tuple[str, frozenset[str]]], op: str, ctx: frozenset[str]) -> None:
    items.append((_EXECUTED_AS.get(op, op), ctx))


def _walk_top(
    einsum: Einsum, items: list[tuple[str, frozenset[str]]], absorbs: dict[str, frozenset[str]]
) -> None:
    base = frozenset(einsum.out_vars) | frozenset(einsum.implicit_reduced_vars)
    expr = einsum.expr
    if einsum.implicit_reduced_vars:
        if isinstance(expr, Binary) and expr.op is BinaryOp.MUL:
            _add(items, "mac", base)
            _walk(expr.left, base, items, absorbs)
            _walk(expr.right, base, items, absorbs)
            return
        _add(items, "add", base)
    _walk(expr, base, items, absorbs)


def _walk(
    expr: Expr,
    context: frozenset[str],
    items: list[tuple[str, frozenset[str]]],
    absorbs: dict[str, frozenset[str]],
) -> None:
    if isinstance(expr, Reduce):
        inner = context | frozenset(expr.over)
        body = expr.body
        if expr.op is ReduceOp.SUM and isinstance(body, Binary) and body.op is BinaryOp.MUL:
            _add(items, "mac", inner)
            _walk(body.left, inner, items, absorbs)
            _walk(body.right, inner, items, absorbs)
            return
        _add(items, _REDUCE[expr.op], inner)
        _walk(body, inner, items, absorbs)
    elif isinstance(expr, Unary):
        if expr.op is UnaryOp.NEG:
            _walk(expr.arg, context, items, absorbs)
            return
        if expr.op not in _UNARY:
            raise _Unpriced(expr.op.value)
        op = _UNARY[expr.op]
        _add(items, op, context)
        _walk_argument(expr.arg, absorbs.get(op, frozenset()), context, items, absorbs)
    elif isinstance(expr, Binary):
        if expr.op not in _BINARY:
            raise _Unpriced(expr.op.value)
        op = _BINARY[expr.op]
        _add(items, op, context)
        for child in (expr.left, expr.right):
            _walk_argument(child, absorbs.get(op, frozenset()), context, items, absorbs)


def _walk_argument(
    arg: Expr,
    absorbed: frozenset[str],
    context: frozenset[str],
    items: list[tuple[str, frozenset[str]]],
    absorbs: dict[str, frozenset[str]],
) -> None:
    if isinstance(arg, Binary) and _BINARY[arg.op] in absorbed:
        # The parent operation performs this one for free; still walk its operands.
        _walk(arg.left, context, items, absorbs)
        _walk(arg.right, context, items, absorbs)
        return
    _walk(arg, context, items, absorbs)


# Operation kinds of `einsum_ir.analysis.count_ops` that each PE operation performs.
_OP_KINDS = {"mac": ("multiply", "add"), "mul": ("multiply",)}


def operation_counts(works: tuple[EinsumWork, ...]) -> dict[str, float]:
    """Scalar operations by `count_ops` kind (a MAC is a multiply and an add), no absorbs."""
    totals: dict[str, float] = {}
    for work in works:
        for op, n in work.actions:
            for kind in _OP_KINDS.get(op, (op,)):
                totals[kind] = totals.get(kind, 0.0) + n
    return totals


# op -> alternatives, each a tuple of (operation, count); see the module docstring.
_LOWERINGS: dict[str, tuple[tuple[tuple[str, int], ...], ...]] = {
    "sigmoid": ((("exp", 1), ("add", 1), ("recip", 1)),),
    "recip": ((("divide", 1),), (("mac", 6),)),
    "divide": ((("recip", 1), ("mul", 1)),),
    "sqrt": ((("mac", 9), ("mul", 1)),),  # x * rsqrt(x), 3 Newton steps of 3 MACs each
    "step": ((("max", 1),),),  # a comparison with 0 (the max unit's compare) and a select
    "round": ((("add", 2),),),  # (x + 1.5 * 2^52) - 1.5 * 2^52: halves to even, two adds
    # range reduction (mul, round, mac), r^2 (mul), sin and cos polynomials (3 mac + mul,
    # 4 mac), the quadrant's polynomial and sign (2 compares): see the module docstring
    "cos": ((("mac", 8), ("mul", 3), ("round", 1), ("max", 2)),),
    "sin": ((("mac", 8), ("mul", 3), ("round", 1), ("max", 2)),),
    "abs": ((("max", 1),),),  # max(x, -x): the negation is free
    "tanh": ((("mul", 1), ("sigmoid", 1), ("mac", 1)),),  # 2 sigmoid(2 x) - 1
    # exponent e and mantissa m of x (an integer subtract: an add), a degree-6 minimax
    # polynomial of m - 1 (6 MACs, Horner), e ln 2 + p (a MAC)
    "log": ((("mac", 7), ("add", 1)),),
}


def _lowered(op: str, array: ComputeArray, seen: frozenset[str]) -> dict[str, int] | None:
    """`op` as operations `array` performs, or None when no lowering reaches them."""
    if array.supports(op):
        return {op: 1}
    if op in seen:
        return None
    for option in _LOWERINGS.get(op, ()):
        total: dict[str, int] = {}
        for part, k in option:
            sub = _lowered(part, array, seen | {op})
            if sub is None:
                break
            for p, n in sub.items():
                total[p] = total.get(p, 0) + n * k
        else:
            return total
    return None


def lower_work(work: EinsumWork, array: ComputeArray) -> tuple[EinsumWork, tuple[str, ...]]:
    """`work` with operations `array` lacks rewritten onto units it has, and how (notes).

    Operations with no lowering stay as they are (`unsupported` then names them).
    """
    counts: dict[str, int] = {}
    notes: list[str] = []
    for op, n in work.actions:
        parts = _lowered(op, array, frozenset())
        if parts is None or parts == {op: 1}:
            counts[op] = counts.get(op, 0) + n
            continue
        for part, k in parts.items():
            counts[part] = counts.get(part, 0) + n * k
        how = " + ".join(f"{k} {p}" if k > 1 else p for p, k in sorted(parts.items()))
        notes.append(
            f"{work.output}: {op} approximated on {array.name} (no {op} unit) as {how} "
            f"({_cycles(parts, array):g} cycles per element; see mappers.spatial.compute)"
        )
    actions = tuple(sorted((op, n) for op, n in counts.items() if n))
    return EinsumWork(work.index, work.output, work.points, work.output_points, actions), tuple(
        notes
    )


def _cycles(parts: Mapping[str, int], array: ComputeArray) -> float:
    return sum(n * array.cycles(op) for op, n in parts.items())


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
