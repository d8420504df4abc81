"""count_points with disjunctions (AnyOf) and size symbols against numpy brute force."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from attnsim.einsum_ir.analysis.points import Split, count_points
from attnsim.einsum_ir.ir import AnyOf, CmpOp, Condition, IndexName, LinearExpr, bind_where
from attnsim.einsum_ir.parse import parse_einsum

UFUNCS = {
    CmpOp.LT: np.less,
    CmpOp.LE: np.less_equal,
    CmpOp.GT: np.greater,
    CmpOp.GE: np.greater_equal,
    CmpOp.EQ: np.equal,
    CmpOp.NE: np.not_equal,
}
VARS = ["a", "b", "c"]
SYMBOLS = ["W", "S"]
Item = Condition | AnyOf


def _value(lin: LinearExpr, grid: dict[str, np.ndarray]) -> np.ndarray:
    total = np.asarray(lin.const)
    for v, c in lin.terms:
        total = total + c * grid[v]
    return total


def _holds(item: Item, grid: dict[str, np.ndarray]) -> np.ndarray:
    if isinstance(item, Condition):
        return UFUNCS[item.op](_value(item.lhs, grid), _value(item.rhs, grid))
    result = np.asarray(False)
    for option in item.options:
        both = np.asarray(True)
        for cond in option:
            both = both & _holds(cond, grid)
        result = result | both
    return result


def brute(
    extents: dict[str, int],
    where: tuple[Item, ...],
    splits: tuple[Split, ...] = (),
    keep: list[str] | None = None,
) -> int:
    """Enumerate the whole box with numpy broadcasting; project with np.unique."""
    names = list(extents)
    axes = np.meshgrid(*(np.arange(extents[v]) for v in names), indexing="ij")
    grid = dict(zip(names, axes, strict=True))
    ok = np.ones(tuple(extents[v] for v in names), dtype=bool)
    for s in splits:
        grid[s.whole] = sum(stride * grid[p] for p, stride in s.parts)
        ok &= grid[s.whole] < s.extent
    for item in where:
        ok &= _holds(item, grid)
    if keep is None:
        return int(ok.sum())
    if not keep:
        return int(ok.any())
    points = np.stack([grid[v][ok] for v in keep], axis=1)
    return len(np.unique(points, axis=0))


@st.composite
def conditions(draw: st.DrawFn, names: list[str]) -> Condition:
    used = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
    lhs_terms = tuple((IndexName(v), draw(st.integers(-2, 2))) for v in used)
    syms = draw(st.dictionaries(st.sampled_from(SYMBOLS), st.integers(-1, 1), max_size=1))
    lhs = LinearExpr(lhs_terms, draw(st.integers(-3, 3)), tuple(syms.items()))
    rhs_var = draw(st.sampled_from(names))
    rhs_syms = draw(st.dictionaries(st.sampled_from(SYMBOLS), st.integers(-1, 1), max_size=1))
    rhs = LinearExpr(
        ((IndexName(rhs_var), draw(st.integers(-1, 1))),),
        draw(st.integers(-3, 3)),
        tuple(rhs_syms.items()),
    )
    return Condition(lhs, draw(st.sampled_from(list(CmpOp))), rhs)


@st.composite
def any_ofs(draw: st.DrawFn, names: list[str]) -> AnyOf:
    options = draw(
        st.lists(st.lists(conditions(names), min_size=1, max_size=2), min_size=2, max_size=3)
    )
    return AnyOf(tuple(tuple(o) for o in options))


Problem = tuple[dict[str, int], tuple[Item, ...], dict[str, int], list[str] | None]


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    names = VARS[: draw(st.integers(1, 3))]
    extents = {v: draw(st.integers(1, 6)) for v in names}
    items: list[Item] = [draw(conditions(names)) for _ in range(draw(st.integers(0, 2)))]
    items += [draw(any_ofs(names)) for _ in range(draw(st.integers(1, 2)))]
    values = {s: draw(st.integers(0, 6)) for s in SYMBOLS}
    keep = draw(st.none() | st.lists(st.sampled_from(names), unique=True))
    return extents, tuple(draw(st.permutations(items))), values, keep


@settings(max_examples=300, deadline=None)
@given(problems())
def test_any_of_and_symbols_match_brute_force(problem: Problem) -> None:
    extents, where, values, keep = problem
    bound = bind_where(where, values)
    assert count_points(extents, bound, keep=keep) == brute(extents, bound, keep=keep)


WINDOWS = [
    "m <= p and (p - m < W or m < S)",
    "p - m < W or m < S",
    "(m1 < S or m0 == 0) and (p < W or m != p)",
    "m <= p + M - P and p + M - P - m < W or m0 < S and m1 == 0",
]


@settings(max_examples=200, deadline=None)
@given(
    m=st.integers(1, 17),
    m0=st.integers(1, 5),
    p=st.integers(1, 7),
    w=st.integers(1, 6),
    s=st.integers(0, 3),
    text=st.sampled_from(WINDOWS),
    keep=st.sampled_from([None, ["m1", "p"], ["p"], ["m1"], ["m0", "p"], []]),
)
def test_windows_over_split_ranks_match_brute_force(
    m: int, m0: int, p: int, w: int, s: int, text: str, keep: list[str] | None
) -> None:
    m1 = -(-m // m0)
    extents = {"m1": m1, "m0": m0, "p": p}
    splits = (Split("m", (("m1", m0), ("m0", 1)), m),)
    where = bind_where(
        parse_einsum(f"X[] = A[] where {text}").where, {"W": w, "S": s, "M": m, "P": p}
    )
    assert count_points(extents, where, splits, keep) == brute(extents, where, splits, keep)


def test_window_with_sinks_over_tiles_at_scale_is_fast() -> None:
    n, m0, w, s = 1 << 20, 128, 4096, 4
    where = bind_where(
        parse_einsum("X[] = A[] where m <= p and (p - m < W or m < S)").where, {"W": w, "S": s}
    )
    extents = {"m1": n // m0, "m0": m0, "p": n}
    splits = (Split("m", (("m1", m0), ("m0", 1)), n),)
    start = time.perf_counter()
    full = count_points(extents, where, splits)
    tiles = count_points(extents, where, splits, keep=["m1", "p"])
    assert time.perf_counter() - start < 5.0
    assert full == w * (w + 1) // 2 + (n - w) * w + sum(n - (w + k) for k in range(s))
    # Per query: the tiles its window touches plus tile 0 (the sinks) once it leaves.
    pp = np.arange(n)
    lo, hi = np.maximum(pp - w + 1, 0) // m0, pp // m0
    assert tiles == int((hi - lo + 1).sum() + (lo > 0).sum())
