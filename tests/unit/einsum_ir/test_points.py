"""count_points against brute-force enumeration (hypothesis) and at huge sizes."""

from __future__ import annotations

import itertools
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from attnsim.einsum_ir.analysis.points import Split, count_points
from attnsim.einsum_ir.ir import CmpOp, Condition, IndexName, LinearExpr
from attnsim.einsum_ir.parse import parse_einsum

OPS = {
    CmpOp.LT: lambda a, b: a < b,
    CmpOp.LE: lambda a, b: a <= b,
    CmpOp.GT: lambda a, b: a > b,
    CmpOp.GE: lambda a, b: a >= b,
    CmpOp.EQ: lambda a, b: a == b,
    CmpOp.NE: lambda a, b: a != b,
}


def where(text: str) -> tuple[Condition, ...]:
    return parse_einsum(f"X[] = A[] where {text}").where


def value(lin: LinearExpr, point: dict[str, int]) -> int:
    return sum(c * point[v] for v, c in lin.terms) + lin.const


def brute(
    extents: dict[str, int],
    conds: tuple[Condition, ...],
    splits: tuple[Split, ...] = (),
    keep: list[str] | None = None,
) -> int:
    names = list(extents)
    seen: set[tuple[int, ...]] = set()
    count = 0
    for combo in itertools.product(*(range(extents[v]) for v in names)):
        point = dict(zip(names, combo, strict=True))
        ok = True
        for s in splits:
            point[s.whole] = sum(point[p] * stride for p, stride in s.parts)
            ok = ok and point[s.whole] < s.extent
        if not ok or not all(OPS[c.op](value(c.lhs, point), value(c.rhs, point)) for c in conds):
            continue
        if keep is None:
            count += 1
        else:
            seen.add(tuple(point[v] for v in keep))
    return count if keep is None else len(seen)


VARS = ["a", "b", "c", "d"]


Problem = tuple[dict[str, int], tuple[Condition, ...], list[str] | None]


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    n = draw(st.integers(1, 4))
    names = VARS[:n]
    extents = {v: draw(st.integers(1, 6)) for v in names}
    conds = []
    for _ in range(draw(st.integers(0, 3))):
        used = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
        lhs = LinearExpr(
            tuple((IndexName(v), draw(st.integers(-3, 3))) for v in used), draw(st.integers(-4, 4))
        )
        rhs_var = draw(st.sampled_from(names))
        rhs_coef = draw(st.integers(-2, 2))
        rhs = LinearExpr(((IndexName(rhs_var), rhs_coef),), draw(st.integers(-4, 4)))
        conds.append(Condition(lhs, draw(st.sampled_from(list(CmpOp))), rhs))
    keep = draw(st.none() | st.lists(st.sampled_from(names), unique=True))
    return extents, tuple(conds), keep


@settings(max_examples=400, deadline=None)
@given(problems())
def test_matches_brute_force(problem: Problem) -> None:
    extents, conds, keep = problem
    assert count_points(extents, conds, keep=keep) == brute(extents, conds, keep=keep)


@settings(max_examples=200, deadline=None)
@given(
    m=st.integers(1, 23),
    m0=st.integers(1, 6),
    p=st.integers(1, 8),
    text=st.sampled_from(
        ["m <= p", "m < 2*p + 1", "m != p and m >= p - 3", "m1 < p", "m0 == p", "m >= 0"]
    ),
    keep=st.sampled_from([None, ["m1", "p"], ["p"], ["m1", "m0"], ["m0"], []]),
)
def test_splits_match_brute_force(
    m: int, m0: int, p: int, text: str, keep: list[str] | None
) -> None:
    m1 = -(-m // m0)
    extents = {"m1": m1, "m0": m0, "p": p}
    splits = (Split("m", (("m1", m0), ("m0", 1)), m),)
    conds = where(text)
    assert count_points(extents, conds, splits, keep) == brute(extents, conds, splits, keep)


def test_nested_split_matches_brute_force() -> None:
    # M = 20 as [M1, M0] with M0 = 6 split again as [M01, M00] with M00 = 4 (M01 = 2).
    extents = {"m1": 4, "m01": 2, "m00": 4, "p": 9}
    splits = (
        Split("m0", (("m01", 4), ("m00", 1)), 6),
        Split("m", (("m1", 6), ("m0", 1)), 20),
    )
    for text in ["m <= p", "m0 < 3", "m01 == 1"]:
        conds = where(text)
        for keep in (None, ["m1", "p"], ["m1", "m01", "p"]):
            assert count_points(extents, conds, splits, keep) == brute(extents, conds, splits, keep)


def test_padded_tail_has_exactly_m_points() -> None:
    splits = (Split("m", (("m1", 256), ("m0", 1)), 1000),)
    assert count_points({"m1": 4, "m0": 256}, (), splits) == 1000
    assert count_points({"m1": 4, "m0": 256}, (), splits, keep=["m1"]) == 4
    assert count_points({"m1": 4}, ()) == 4


def test_causal_count_at_a_million_is_fast() -> None:
    n = 1 << 20
    start = time.perf_counter()
    got = count_points({"m": n, "p": n, "e": 64, "b": 64, "h": 16}, where("m <= p"))
    split = count_points(
        {"m1": n // 256, "m0": 256, "p": n, "e": 64},
        where("m <= p"),
        (Split("m", (("m1", 256), ("m0", 1)), n),),
        keep=["m1", "p"],
    )
    assert time.perf_counter() - start < 1.0
    assert got == 64 * 64 * 16 * n * (n + 1) // 2
    # Tile m1 is visible to query p when its first key m1*256 <= p.
    assert split == sum(n - 256 * t for t in range(n // 256))


def test_empty_and_contradictory() -> None:
    assert count_points({"m": 0, "p": 3}, ()) == 0
    assert count_points({"m": 5}, where("m < 0")) == 0
    assert count_points({"m": 5}, where("3 < 2")) == 0
    assert count_points({}, ()) == 1


@settings(max_examples=300, deadline=None)
@given(
    nx=st.integers(1, 40),
    ny=st.integers(1, 40),
    raw=st.lists(
        st.tuples(
            st.sampled_from([-1, 0, 1]),
            st.integers(-5, 5),
            st.integers(-30, 30),
            st.sampled_from([CmpOp.LT, CmpOp.LE, CmpOp.GT, CmpOp.GE, CmpOp.EQ]),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_closed_form_pair_counts_match_brute_force(
    nx: int, ny: int, raw: list[tuple[int, int, int, CmpOp]]
) -> None:
    # Unit coefficients on x and no `!=`: the closed-form piecewise-affine sum is used.
    conds = tuple(
        Condition(LinearExpr(((IndexName("x"), a), (IndexName("y"), b)), k), op, LinearExpr((), 0))
        for a, b, k, op in raw
    )
    extents = {"x": nx, "y": ny}
    assert count_points(extents, conds) == brute(extents, conds)


@settings(max_examples=150, deadline=None)
@given(
    d=st.integers(1, 9),
    p=st.integers(1, 6),
    m=st.integers(1, 6),
    text=st.sampled_from(
        [
            "d == p - m + 3",
            "d + m == p + 5 and m <= p",
            "d == p - m + 2 and d != 3",
            "2*d == p + m",
            "d == p - m + 4 and m < 2 and p > 1",
        ]
    ),
    keep=st.sampled_from([None, ["p", "m"], ["d"], ["d", "p"], []]),
)
def test_equalities_match_brute_force(
    d: int, p: int, m: int, text: str, keep: list[str] | None
) -> None:
    """A rank pinned by an equality (RCMHA's relative offset d == p - m + M - 1)."""
    extents = {"d": d, "p": p, "m": m}
    conds = where(text)
    assert count_points(extents, conds, (), keep) == brute(extents, conds, (), keep)


def test_a_pinned_offset_rank_counts_in_milliseconds() -> None:
    n = 1 << 20
    start = time.perf_counter()
    got = count_points({"d": 2 * n - 1, "p": n, "m": n}, where(f"d == p - m + {n - 1}"))
    assert got == n * n
    assert time.perf_counter() - start < 1.0
