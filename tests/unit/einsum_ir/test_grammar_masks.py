"""Size symbols, disjunctions, index/size values and new functions, end to end.

Each executor result is checked against an independent numpy computation.
"""

from __future__ import annotations

import numpy as np
import pytest

from attnsim.einsum_ir import SizeError, SpecError, load_cascade_text, resolve_sizes
from attnsim.einsum_ir.analysis.ops import OpKind, count_ops
from attnsim.einsum_ir.analysis.points import count_points
from attnsim.einsum_ir.execute import evaluate, evaluate_all
from attnsim.einsum_ir.ir import (
    AnyOf,
    CmpOp,
    Condition,
    IndexName,
    IndexValue,
    LinearExpr,
    SizeValue,
    SymbolError,
    Unary,
    UnaryOp,
    bind_where,
    free_vars,
    walk,
    where_symbols,
)
from attnsim.einsum_ir.parse import ParseError, parse_einsum


def cascade(einsums: list[str], inputs: str, outputs: str, extra: str = "") -> object:
    body = "\n".join(f"  - {e}" for e in einsums)
    text = f"cascade: test\ninputs: {inputs}\n{extra}einsums:\n{body}\noutputs: {outputs}\n"
    return load_cascade_text(text, "<test>")


def problems(einsums: list[str], inputs: str, extra: str = "") -> list[str]:
    try:
        cascade(einsums, inputs, "[" + einsums[-1].split("[")[0] + "]", extra)
    except SpecError as exc:
        return [p.message for p in exc.problems]
    return []


def softmax_rows(scores: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Softmax over m (axis 0) of scores[m, p] restricted to visible points."""
    masked = np.where(visible, scores, -np.inf)
    with np.errstate(invalid="ignore"):  # rows with no visible key are NaN, not compared
        weights = np.exp(masked - masked.max(axis=0, keepdims=True))
        return weights / weights.sum(axis=0, keepdims=True)


THREE_PASS = [
    "QK[m,p] = Q[e,p] * K[e,m] where {w}",
    "GM[p] = max[m](QK[m,p]) where {w}",
    "SN[m,p] = exp(QK[m,p] - GM[p]) where {w}",
    "SD[p] = SN[m,p] where {w}",
    "A[m,p] = SN[m,p] / SD[p] where {w}",
    "AV[f,p] = A[m,p] * V[f,m] where {w}",
]
QKV = "{Q: [E, P], K: [E, M], V: [F, M]}"


def attention(where: str, extra: str = "") -> object:
    return cascade([e.format(w=where) for e in THREE_PASS], QKV, "[AV]", extra)


def run_attention(c: object, sizes: dict[str, int], seed: int = 0) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    e, f = sizes["E"], sizes["F"]
    q = rng.standard_normal((e, sizes["P"]))
    k = rng.standard_normal((e, sizes["M"]))
    v = rng.standard_normal((f, sizes["M"]))
    out = evaluate(c, {"Q": q, "K": k, "V": v}, sizes)  # type: ignore[arg-type]
    return {"Q": q, "K": k, "V": v}, out["AV"]


# ----------------------------------------------------------------------------- IR and grammar


def test_symbols_are_not_vars_and_bind_into_const() -> None:
    e = parse_einsum("X[m,p] = A[m,p] where m <= p + M - 2 * P + 1")
    (cond,) = e.where
    assert isinstance(cond, Condition)
    assert cond.rhs.vars == ("p",)
    assert cond.rhs.symbols == (("M", 1), ("P", -2))
    assert cond.symbols == ("M", "P")
    bound = cond.bind({"M": 10, "P": 3})
    assert bound.rhs == LinearExpr(((IndexName("p"), 1),), 10 - 6 + 1)
    assert bind_where(e.where, {"M": 10, "P": 3}) == (bound,)


def test_bind_names_the_missing_symbol() -> None:
    e = parse_einsum("X[m,p] = A[m,p] where p - m < W")
    with pytest.raises(KeyError, match="W"):
        bind_where(e.where, {"M": 4})
    with pytest.raises(ValueError, match="size symbol W has no value"):
        bind_where(e.where, {"M": 4})
    with pytest.raises(SymbolError):
        e.where[0].bind({})


def test_or_binds_looser_than_and_and_groups_nest() -> None:
    e = parse_einsum("X[m,p] = A[m,p] where m <= p and (p - m < W or m < S)")
    first, second = e.where
    assert isinstance(first, Condition) and isinstance(second, AnyOf)
    assert [len(o) for o in second.options] == [1, 1]
    assert where_symbols(e.where) == ("W", "S")
    top = parse_einsum("X[m,p] = A[m,p] where p - m < W and m <= p or m < S")
    (any_of,) = top.where
    assert isinstance(any_of, AnyOf)
    assert [len(o) for o in any_of.options] == [2, 1]
    assert str(top) == "X[m,p] = A[m,p] where p - m < W and m <= p or m < S"
    assert str(e) == "X[m,p] = A[m,p] where m <= p and (p - m < W or m < S)"


def test_nested_or_inside_an_option_is_distributed() -> None:
    e = parse_einsum("X[m,p] = A[m,p] where (m < 1 or p < 1) and m != p or m == 3")
    (any_of,) = e.where
    assert isinstance(any_of, AnyOf)
    assert [len(o) for o in any_of.options] == [2, 2, 1]
    assert parse_einsum(str(e)) == e


def test_any_of_needs_two_options() -> None:
    cond = parse_einsum("X[m] = A[m] where m < 2").where[0]
    assert isinstance(cond, Condition)
    with pytest.raises(ValueError, match="at least two options"):
        AnyOf(((cond,),))
    with pytest.raises(ValueError):
        AnyOf(((cond,), ()))


def test_bare_names_are_index_and_size_values() -> None:
    e = parse_einsum("S[h,m,p] = QK[h,m,p] - SL[h] * (p - m) + C * tanh(abs(X[p]) / log(M))")
    nodes = {type(n).__name__ for n in walk(e.expr)}
    assert {"IndexValue", "SizeValue", "Unary"} <= nodes
    assert "p" in free_vars(e.expr) and "m" in free_vars(e.expr)
    assert parse_einsum(str(e)) == e
    v = parse_einsum("X[p] = p")
    assert v.expr == IndexValue(IndexName("p")) and v.iteration_vars == ("p",)
    assert parse_einsum("X[p] = A[p] * W").expr.right == SizeValue("W")  # type: ignore[union-attr]
    t = parse_einsum("X[p] = log(tanh(A[p]))")
    assert isinstance(t.expr, Unary) and t.expr.op is UnaryOp.LOG


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("X[p] = A[p] + Ab", 14, "lowercase index (its value) or an UPPERCASE size symbol"),
        ("X[p] = A[p] + where", 14, "reserved"),
        ("X[p] = A[p] where p < Ww", 22, "lowercase index variables or UPPERCASE"),
        ("X[p] = A[p] where (p < 2 or p > 3", 33, "')' closing the group"),
        ("X[p] = A[p] where p < 2 or", 26, "expected an index variable or an integer"),
        ("X[p] = A[p] where p < 2 p", 24, "'and', 'or' or end of text"),
        ("X[p] = A[p] where p < or", 22, "reserved"),
    ],
)
def test_new_syntax_errors_point_at_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_einsum(text)
    assert fragment in info.value.message
    assert info.value.column == column


# ----------------------------------------------------------------------------- checks and sizes


def test_unknown_size_symbols_are_reported_with_hints() -> None:
    msgs = problems(
        ["Y[m,p] = X[m,p] where p - m < WN", "Z[m,p] = Y[m,p] * CX"],
        "{X: [M, P]}",
        "params: {W: 4, C: 2}\n",
    )
    # The declared W and C are then unused: reported too, each pointing at the other name.
    assert len(msgs) == 4
    assert "params sets W, which is neither a rank nor a size symbol used" in msgs[0]
    msgs = msgs[2:]
    assert "Y[m,p] = X[m,p] where p - m < WN: unknown size symbol WN in the where clause" in msgs[0]
    assert "(did you mean W?)" in msgs[0]
    assert "Z[m,p] = Y[m,p] * CX: unknown size symbol CX: not a rank or a param" in msgs[1]
    assert "did you mean C?" in msgs[1]


def test_unused_non_rank_param_is_reported() -> None:
    msgs = problems(["Y[m] = X[m]"], "{X: [M]}", "params: {WX: 4}\n")
    assert msgs == ["params sets WX, which is neither a rank nor a size symbol used by any Einsum"]


def test_index_value_of_a_split_rank_needs_its_parts() -> None:
    msgs = problems(
        ["Y[m1,m0] = X[m1,m0] * m"], "{X: [M]}", "partitions: {M: [M1, M0]}\nparams: {M0: 4}\n"
    )
    assert any("write m from its parts: (m1 * M0 + m0)" in m for m in msgs)


def test_params_size_symbols_resolve_and_are_overridable() -> None:
    c = attention("m <= p and p - m < W", "params: {W: 3}\n")
    sizes = resolve_sizes(c, {"M": 8, "P": 8, "E": 2, "F": 2})  # type: ignore[arg-type]
    assert sizes["W"] == 3
    assert resolve_sizes(c, {"M": 8, "P": 8, "E": 2, "F": 2, "W": 5})["W"] == 5  # type: ignore[arg-type]
    with pytest.raises(SizeError, match="size of W must be a positive integer"):
        resolve_sizes(c, {"M": 8, "P": 8, "E": 2, "F": 2, "W": 0})  # type: ignore[arg-type]
    with pytest.raises(SizeError, match=r"unknown rank Z .*; params: W\)"):
        resolve_sizes(c, {"M": 8, "P": 8, "E": 2, "F": 2, "Z": 1})  # type: ignore[arg-type]


def test_yaml_exponent_floats_are_numbers() -> None:
    c = cascade(["RM[m+1] = max(RM[m], X[m])"], "{X: [M]}", "[RM]", "init: {RM: -1.0e30}\n")
    assert c.init_values == {"RM": -1e30}  # type: ignore[attr-defined]
    c2 = cascade(["RM[m+1] = min(RM[m], X[m])"], "{X: [M]}", "[RM]", "init: {RM: 1e30}\n")
    out = evaluate(c2, {"X": np.array([3.0, 1.0])}, {"M": 2})  # type: ignore[arg-type]
    np.testing.assert_array_equal(out["RM"], [1e30, 3.0, 1.0])


# ----------------------------------------------------------------------------- executor


@pytest.mark.parametrize(("m", "p", "w", "s"), [(9, 9, 3, 2), (12, 5, 4, 1), (6, 8, 2, 1)])
def test_sliding_window_with_sinks_matches_numpy(m: int, p: int, w: int, s: int) -> None:
    # Bottom-right aligned causal window plus S sink keys: see keys m <= p + M - P that are
    # within W of the aligned diagonal or among the first S keys.
    where = "m <= p + M - P and (p + M - P - m < W or m < S)"
    c = attention(where, "params: {W: 1, S: 1}\n")
    sizes = {"M": m, "P": p, "E": 3, "F": 2, "W": w, "S": s}
    inputs, got = run_attention(c, sizes)
    mm, pp = np.arange(m)[:, None], np.arange(p)[None, :]
    diag = pp + m - p
    visible = (mm <= diag) & ((diag - mm < w) | (mm < s))
    weights = softmax_rows(inputs["K"].T @ inputs["Q"], visible)
    want = inputs["V"] @ np.nan_to_num(weights)
    has_key = visible.any(axis=0)
    np.testing.assert_allclose(got[:, has_key], want[:, has_key], rtol=1e-12)


def test_alibi_bias_uses_index_values() -> None:
    c = cascade(
        ["S[h,m,p] = QK[h,m,p] - SL[h] * (p - m) where m <= p"],
        "{QK: [H, M, P], SL: [H]}",
        "[S]",
    )
    rng = np.random.default_rng(1)
    qk, sl = rng.standard_normal((2, 5, 5)), np.array([0.5, 0.25])
    got = evaluate(c, {"QK": qk, "SL": sl}, {"H": 2, "M": 5, "P": 5})["S"]  # type: ignore[arg-type]
    mm, pp = np.arange(5)[:, None], np.arange(5)[None, :]
    want = np.where(mm <= pp, qk - sl[:, None, None] * (pp - mm), 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_index_value_of_split_rank_from_parts_and_tail() -> None:
    c = cascade(
        ["Y[m1,m0] = X[m1,m0] + m1 * M0 + m0"],
        "{X: [M]}",
        "[Y]",
        "partitions: {M: [M1, M0]}\nparams: {M0: 4}\n",
    )
    x = np.arange(10.0) * 10
    got = evaluate(c, {"X": x}, {"M": 10})["Y"]  # type: ignore[arg-type]
    np.testing.assert_array_equal(got, x + np.arange(10))


def test_softcap_with_size_value_param() -> None:
    c = cascade(["S[m,p] = C * tanh(QK[m,p] / C)"], "{QK: [M, P]}", "[S]", "params: {C: 30}\n")
    qk = np.random.default_rng(2).standard_normal((4, 3)) * 100
    for cap in (30, 5):
        got = evaluate(c, {"QK": qk}, {"M": 4, "P": 3, "C": cap})["S"]  # type: ignore[arg-type]
        np.testing.assert_allclose(got, cap * np.tanh(qk / cap), rtol=1e-14)


def test_sigmoid_attention_with_log_of_size() -> None:
    c = cascade(
        [
            "QK[m,p] = Q[e,p] * K[e,m]",
            "SA[m,p] = sigmoid(QK[m,p] - log(M))",
            "AV[f,p] = SA[m,p] * V[f,m]",
        ],
        QKV,
        "[AV]",
    )
    sizes = {"M": 7, "P": 3, "E": 4, "F": 2}
    inputs, got = run_attention(c, sizes)
    scores = inputs["K"].T @ inputs["Q"]
    want = inputs["V"] @ (1.0 / (1.0 + np.exp(-(scores - np.log(7)))))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_abs_and_log_functions() -> None:
    c = cascade(["Y[p] = log(abs(X[p]))"], "{X: [P]}", "[Y]")
    x = np.array([-2.0, 0.5, 3.0])
    np.testing.assert_allclose(evaluate(c, {"X": x}, {"P": 3})["Y"], np.log(np.abs(x)))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- recurrences


def test_masked_recurrence_step_carries_previous_iterate() -> None:
    # Steps 0 and 1 add, later steps are masked: the state carries, it does not reset to 0.
    c = cascade(
        ["C[m+1] = C[m] + X[m] where m < 2", "F[] = C[M]"],
        "{X: [M]}",
        "[C, F]",
        "init: {C: 5}\n",
    )
    out = evaluate(c, {"X": np.array([1.0, 2.0, 4.0, 8.0])}, {"M": 4})  # type: ignore[arg-type]
    np.testing.assert_array_equal(out["C"], [5.0, 6.0, 8.0, 8.0, 8.0])
    assert out["F"] == 8.0


def test_masked_step_of_a_recurrence_not_reading_itself_carries() -> None:
    c = cascade(["C[m+1] = X[m] where m != 1 and m != 2"], "{X: [M]}", "[C]", "init: {C: -1}\n")
    out = evaluate(c, {"X": np.array([1.0, 2.0, 4.0, 8.0])}, {"M": 4})  # type: ignore[arg-type]
    np.testing.assert_array_equal(out["C"], [-1.0, 1.0, 1.0, 1.0, 8.0])


def test_masked_recurrence_per_output_point() -> None:
    # Running max over key tiles that skips tiles wholly after the query (m1 * M0 > p).
    c = cascade(
        [
            "LM[m1,p] = max[m0](X[m1,m0,p])",
            "RM[m1+1,p] = max(RM[m1,p], LM[m1,p]) where m1 * 2 <= p",
        ],
        "{X: [M, P]}",
        "[RM]",
        "partitions: {M: [M1, M0]}\nparams: {M0: 2}\ninit: {RM: -1.0e30}\n",
    )
    x = np.random.default_rng(4).standard_normal((6, 5))
    rm = evaluate_all(c, {"X": x}, {"M": 6, "P": 5})["RM"]  # type: ignore[arg-type]
    for p in range(5):
        state = -1e30
        for m1 in range(3):
            if m1 * 2 <= p:
                state = max(state, x[2 * m1 : 2 * m1 + 2, p].max())
            assert rm[m1 + 1, p] == state


def test_one_pass_window_with_tile_skipping_matches_reference() -> None:
    # FuseMax 1-pass with a sliding window: tiles wholly outside the window are skipped by a
    # tile-level condition on the recurrences, which then carry their state unchanged.
    visible = "m <= p and p - m < W"
    # Key tile m1 holds keys 2*m1 .. 2*m1 + 1 (M0 = 2): it has a visible key when its first
    # key is not after p and its last key is within the window.
    tile = "2 * m1 <= p and p - 2 * m1 - 1 < W"
    c = cascade(
        [
            f"QK[m1,m0,p] = Q[e,p] * K[e,m1,m0] where {visible}",
            f"LM[m1,p] = max[m0](QK[m1,m0,p]) where {visible}",
            f"RM[m1+1,p] = max(RM[m1,p], LM[m1,p]) where {tile}",
            f"SLN[m1,m0,p] = exp(QK[m1,m0,p] - RM[m1+1,p]) where {visible}",
            f"SLD[m1,p] = SLN[m1,m0,p] where {visible}",
            f"PRM[m1,p] = exp(RM[m1,p] - RM[m1+1,p]) where {tile}",
            f"SPD[m1,p] = PRM[m1,p] * RD[m1,p] where {tile}",
            f"RD[m1+1,p] = SPD[m1,p] + SLD[m1,p] where {tile}",
            f"SLNV[m1,f,p] = SLN[m1,m0,p] * V[f,m1,m0] where {visible}",
            f"SPNV[m1,f,p] = PRM[m1,p] * RNV[m1,f,p] where {tile}",
            f"RNV[m1+1,f,p] = SPNV[m1,f,p] + SLNV[m1,f,p] where {tile}",
            "AV[f,p] = RNV[M1,f,p] / RD[M1,p]",
        ],
        QKV,
        "[AV]",
        "partitions: {M: [M1, M0]}\nparams: {M0: 2, W: 3}\ninit: {RM: -inf, RD: 0, RNV: 0}\n",
    )
    sizes = {"M": 11, "P": 11, "E": 3, "F": 2}
    inputs, got = run_attention(c, sizes, seed=5)
    mm, pp = np.arange(11)[:, None], np.arange(11)[None, :]
    weights = softmax_rows(inputs["K"].T @ inputs["Q"], (mm <= pp) & (pp - mm < 3))
    np.testing.assert_allclose(got, inputs["V"] @ weights, rtol=1e-12)
    assert np.isfinite(got).all()


# ----------------------------------------------------------------------------- counting


def test_op_counts_for_new_functions_and_window() -> None:
    c = cascade(
        [
            "S[m,p] = C * tanh(QK[m,p] / C) where m <= p and (p - m < W or m < S)",
            "L[m,p] = log(abs(S[m,p])) where m <= p",
        ],
        "{QK: [M, P]}",
        "[L]",
        "params: {C: 30, W: 4, S: 2}\n",
    )
    n = 50
    counts = count_ops(c, {"M": n, "P": n})  # type: ignore[arg-type]
    mm, pp = np.arange(n)[:, None], np.arange(n)[None, :]
    window = int(((mm <= pp) & ((pp - mm < 4) | (mm < 2))).sum())
    causal = int((mm <= pp).sum())
    s, lg = counts.per_einsum
    assert s.counts[OpKind.TANH] == window and s.points == window
    assert s.counts[OpKind.MULTIPLY] == window and s.counts[OpKind.DIVIDE] == window
    assert lg.counts[OpKind.LOG] == causal and lg.counts[OpKind.ABS] == causal
    wider = count_ops(c, {"M": n, "P": n, "W": 10})  # type: ignore[arg-type]
    assert wider.per_einsum[0].counts[OpKind.TANH] > window


def test_count_points_requires_bound_symbols() -> None:
    where = parse_einsum("X[m,p] = A[m,p] where p - m < W or m < S").where
    with pytest.raises(ValueError, match="unbound size symbols W, S"):
        count_points({"m": 4, "p": 4}, where)
    # p <= m (10 points) or m == 0 with p > 0 (3 more).
    assert count_points({"m": 4, "p": 4}, bind_where(where, {"W": 1, "S": 1})) == 10 + 3


def test_count_points_window_with_sinks_at_a_million() -> None:
    n, w, s = 1 << 20, 4096, 4
    where = bind_where(
        parse_einsum("X[m,p] = A[m,p] where m <= p and (p - m < W or m < S)").where,
        {"W": w, "S": s},
    )
    window = w * (w + 1) // 2 + (n - w) * w
    # Sink keys m < S lie outside the window only for queries p >= W + m.
    sinks = sum(n - (w + m) for m in range(s))
    assert count_points({"m": n, "p": n}, where) == window + sinks
    assert count_points({"m": n, "p": n}, where, keep=["p"]) == n


def test_unused_condition_symbol_check() -> None:
    cond = Condition(LinearExpr((), 0, (("W", 1),)), CmpOp.LT, LinearExpr((), 3))
    assert cond.vars == () and cond.symbols == ("W",)
