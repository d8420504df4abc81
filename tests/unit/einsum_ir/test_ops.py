"""count_ops: closed-form attention FLOPs, brute force on small sizes, and speed at 1M tokens."""

from __future__ import annotations

import itertools
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnsim.einsum_ir import builtin_names, load_cascade, load_cascade_text
from attnsim.einsum_ir.analysis import OpCounts, count_ops
from attnsim.einsum_ir.analysis.ops import OpKind
from attnsim.einsum_ir.ir import (
    AnyOf,
    Binary,
    BinaryOp,
    Cascade,
    CmpOp,
    Condition,
    Einsum,
    Expr,
    LinearExpr,
    RankName,
    Reduce,
    ReduceOp,
    Unary,
    UnaryOp,
    bind_where,
)
from attnsim.einsum_ir.sizes import resolve_sizes

ATTENTION = [n for n in builtin_names() if n.startswith("attention-")]
BRUTE_POINTS = 200_000  # the most points one brute-force enumeration may visit (memory)


def sizes_for(cascade: Cascade, **sizes: int) -> dict[str, int]:
    known = set(cascade.all_ranks)
    return {k: v for k, v in sizes.items() if k in known}


def causal_pairs(m: int, p: int) -> int:
    """Number of (m, p) with m <= p, 0 <= m < M, 0 <= p < P."""
    return sum(min(q + 1, m) for q in range(p))


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("causal", [False, True])
def test_three_pass_closed_form(causal: bool) -> None:
    m, p, e, f = 37, 29, 8, 5
    name = "attention-3pass-causal" if causal else "attention-3pass"
    counts = count_ops(load_cascade(name), {"M": m, "P": p, "E": e, "F": f})
    mp = causal_pairs(m, p) if causal else m * p
    per = {r.output: r for r in counts.per_einsum}
    assert per["QK"].counts[OpKind.MULTIPLY] == e * mp
    assert per["QK"].counts[OpKind.ADD] == e * mp
    assert per["QK"].points == e * mp
    assert per["GM"].counts[OpKind.MAX] == mp
    assert per["SN"].counts[OpKind.EXP] == mp and per["SN"].counts[OpKind.ADD] == mp
    assert per["SD"].counts[OpKind.ADD] == mp
    assert per["A"].counts[OpKind.DIVIDE] == mp
    assert per["AV"].counts[OpKind.MULTIPLY] == f * mp
    assert counts.total[OpKind.MULTIPLY] == (e + f) * mp
    assert counts.total[OpKind.ADD] == (e + f + 2) * mp
    assert counts.total[OpKind.DIVIDE] == mp
    assert counts.total[OpKind.MAX] == mp
    assert counts.total[OpKind.EXP] == mp
    assert counts.flops == (2 * e + 2 * f + 5) * mp
    assert counts.flops == sum(r.flops for r in counts.per_einsum)


def test_multi_head_scales_by_batch_and_heads() -> None:
    single = count_ops(load_cascade("attention-3pass-causal"), {"M": 20, "P": 20, "E": 4, "F": 4})
    multi = count_ops(
        load_cascade("attention-3pass-mh-causal"),
        {"M": 20, "P": 20, "E": 4, "F": 4, "B": 3, "H": 2},
    )
    assert multi.flops == 6 * single.flops
    assert all(multi.total[k] == 6 * single.total[k] for k in OpKind)


@pytest.mark.parametrize("causal", [False, True])
def test_one_pass_tiles_exclude_the_padded_tail(causal: bool) -> None:
    m, m0, p, e, f = 1000, 256, 300, 4, 3  # M is not a multiple of M0: 4 tiles, the last short
    name = "attention-1pass-causal" if causal else "attention-1pass"
    counts = count_ops(load_cascade(name), {"M": m, "M0": m0, "P": p, "E": e, "F": f})
    per = {r.output: r for r in counts.per_einsum}
    mp = causal_pairs(m, p) if causal else m * p
    assert per["QK"].counts[OpKind.MULTIPLY] == e * mp
    assert per["LM"].counts[OpKind.MAX] == mp
    assert per["SLN"].counts[OpKind.EXP] == mp
    assert per["SLNV"].counts[OpKind.MULTIPLY] == f * mp
    m1 = 4
    assert per["RM"].counts[OpKind.MAX] == m1 * p
    assert per["PRM"].counts[OpKind.EXP] == m1 * p
    assert per["RNV"].counts[OpKind.ADD] == m1 * f * p
    assert per["AV"].counts[OpKind.DIVIDE] == f * p
    # The score and value contractions match the 3-pass cascade exactly.
    three = count_ops(
        load_cascade("attention-3pass-causal" if causal else "attention-3pass"),
        {"M": m, "P": p, "E": e, "F": f},
    )
    assert per["QK"].counts == {r.output: r for r in three.per_einsum}["QK"].counts


def test_derived_outer_part_in_sizes_is_recomputed() -> None:
    cascade = load_cascade("attention-1pass")
    plain = count_ops(cascade, {"M": 600, "P": 8, "E": 2, "F": 2})
    with_m1 = count_ops(cascade, {"M": 600, "M1": 99, "P": 8, "E": 2, "F": 2})
    assert plain == with_m1


def test_every_unary_kind_and_projection_outside_a_reduction() -> None:
    cascade = load_cascade_text(
        """
cascade: kinds
inputs: {A: [M, P]}
einsums:
  - X[p] = exp(max[m](A[m,p])) where m <= p - 2
  - Y[m,p] = sigmoid(A[m,p]) + sqrt(A[m,p]) - recip(-A[m,p])
  - Z[p] = min[m](A[m,p]) / 2
outputs: [X, Y, Z]
""",
        "<test>",
    )
    counts = count_ops(cascade, {"M": 6, "P": 5})
    x, y, z = counts.per_einsum
    # Queries p >= 2 keep at least one key: 3 exps; reduced points: m <= p - 2.
    assert x.counts[OpKind.EXP] == 3
    assert x.counts[OpKind.MAX] == sum(max(0, q - 1) for q in range(5))
    assert x.points == x.counts[OpKind.MAX]
    for kind in (OpKind.SIGMOID, OpKind.SQRT, OpKind.RECIP, OpKind.NEG):
        assert y.counts[kind] == 30
    assert y.counts[OpKind.ADD] == 60
    assert z.counts[OpKind.MAX] == 30 and z.counts[OpKind.DIVIDE] == 5


def test_huge_sizes_in_milliseconds() -> None:
    sizes = {"M": 1 << 20, "P": 1 << 20, "E": 64, "F": 64, "B": 64, "H": 16}
    cascades = [load_cascade(n) for n in ATTENTION]
    start = time.perf_counter()
    results = [count_ops(c, sizes_for(c, **sizes)) for c in cascades]
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5 * len(cascades) / 10  # about 50 ms per cascade at most
    per = {c.name: r for c, r in zip(cascades, results, strict=True)}
    n = 1 << 20
    qk = per["attention-3pass-mh-causal"].per_einsum[0]
    assert qk.counts[OpKind.MULTIPLY] == 64 * 16 * 64 * n * (n + 1) // 2


# ----------------------------------------------------------------------------- brute force

COMPARE = {
    CmpOp.LT: lambda a, b: a < b,
    CmpOp.LE: lambda a, b: a <= b,
    CmpOp.GT: lambda a, b: a > b,
    CmpOp.GE: lambda a, b: a >= b,
    CmpOp.EQ: lambda a, b: a == b,
    CmpOp.NE: lambda a, b: a != b,
}
BINARY = {
    BinaryOp.ADD: OpKind.ADD,
    BinaryOp.SUB: OpKind.ADD,
    BinaryOp.MUL: OpKind.MULTIPLY,
    BinaryOp.DIV: OpKind.DIVIDE,
    BinaryOp.MAX: OpKind.MAX,
    BinaryOp.MIN: OpKind.MAX,
}
UNARY = {op: OpKind(op.value) for op in UnaryOp if op is not UnaryOp.NEG} | {
    UnaryOp.NEG: OpKind.NEG
}
REDUCE = {ReduceOp.SUM: OpKind.ADD, ReduceOp.MAX: OpKind.MAX, ReduceOp.MIN: OpKind.MAX}


def linear(lin: LinearExpr, point: dict[str, int]) -> int:
    return sum(c * point[v] for v, c in lin.terms) + lin.const


def holds(item: Condition | AnyOf, point: dict[str, int]) -> bool:
    """A where item (size symbols bound) at one point; a disjunction holds if an option does."""
    if isinstance(item, AnyOf):
        return any(all(holds(c, point) for c in option) for option in item.options)
    return COMPARE[item.op](linear(item.lhs, point), linear(item.rhs, point))


def brute_einsum(
    cascade: Cascade, e: Einsum, ranks: dict[RankName, int]
) -> tuple[int, dict[OpKind, int]]:
    names = list(e.iteration_vars)
    valid: list[dict[str, int]] = []
    for combo in itertools.product(*(range(ranks[RankName(v.upper())]) for v in names)):
        point = dict(zip(names, combo, strict=True))
        ok = True
        for part in cascade.partitions:
            parts = [q.lower() for q in part.parts]
            if all(q in point for q in parts):
                whole = 0
                for q in part.parts:
                    whole = whole * ranks[q] + point[q.lower()]
                point[part.rank.lower()] = whole
                ok = ok and whole < ranks[part.rank]
        if ok and all(holds(c, point) for c in bind_where(e.where, ranks)):
            valid.append(point)

    def proj(context: frozenset[str]) -> int:
        return len({tuple(pt[v] for v in sorted(context)) for pt in valid})

    counts = dict.fromkeys(OpKind, 0)

    def visit(node: Expr, context: frozenset[str]) -> None:
        if isinstance(node, Unary):
            counts[UNARY[node.op]] += proj(context)
            visit(node.arg, context)
        elif isinstance(node, Binary):
            counts[BINARY[node.op]] += proj(context)
            visit(node.left, context)
            visit(node.right, context)
        elif isinstance(node, Reduce):
            inner = context | frozenset(node.over)
            counts[REDUCE[node.op]] += proj(inner)
            visit(node.body, inner)

    base = frozenset(e.out_vars) | frozenset(e.implicit_reduced_vars)
    if e.implicit_reduced_vars:
        counts[OpKind.ADD] += proj(base)
    visit(e.expr, base)
    return len(valid), counts


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(ATTENTION),
    m=st.integers(1, 7),
    m0=st.integers(1, 4),
    p=st.integers(1, 6),
    e=st.integers(1, 2),
)
def test_builtins_match_brute_force(name: str, m: int, m0: int, p: int, e: int) -> None:
    cascade = load_cascade(name)
    # the zoo's other sizes (Routing's clusters, RCMHA's offsets, HiP's blocks) at most 3:
    # at their defaults the enumeration below takes millions of points and gigabytes
    drawn = {"M": m, "M0": m0, "P": p, "E": e, "F": 2, "B": 1, "H": 2}
    sizes = sizes_for(cascade, **({k: min(v, 3) for k, v in cascade.params} | drawn))
    ranks = resolve_sizes(cascade, sizes)
    space = max(
        math.prod(ranks[RankName(v.upper())] for v in x.iteration_vars) for x in cascade.einsums
    )
    assert space <= BRUTE_POINTS, f"{name}: {space} points to enumerate"
    counts: OpCounts = count_ops(cascade, sizes)
    for record, einsum in zip(counts.per_einsum, cascade.einsums, strict=True):
        points, expected = brute_einsum(cascade, einsum, ranks)
        assert record.points == points, str(einsum)
        assert dict(record.counts) == expected, str(einsum)


def test_user_cascade_with_conditions_on_tile_parts_matches_brute_force() -> None:
    cascade = load_cascade_text(
        """
cascade: banded
inputs: {S: [M, P]}
partitions: {M: [M1, M0]}
params: {M0: 3}
einsums:
  - T[m1,p] = max[m0](S[m1,m0,p]) where m <= p and m1 != 1
  - U[m1,m0,p] = exp(S[m1,m0,p] - T[m1,p]) where m > p - 4 and m0 < 2
  - W[p] = U[m1,m0,p] / (1 + U[m1,m0,p]) where 2*m >= p
outputs: [W]
""",
        "<test>",
    )
    for m, p in [(10, 7), (9, 9), (1, 3)]:
        ranks = resolve_sizes(cascade, {"M": m, "P": p})
        counts = count_ops(cascade, {"M": m, "P": p})
        for record, einsum in zip(counts.per_einsum, cascade.einsums, strict=True):
            points, expected = brute_einsum(cascade, einsum, ranks)
            assert (record.points, dict(record.counts)) == (points, expected), str(einsum)
