"""Targeted tests of the numpy reference executor on small user cascades."""

from __future__ import annotations

import numpy as np
import pytest

from attnsim.einsum_ir import SizeError, load_cascade, load_cascade_text
from attnsim.einsum_ir.execute import evaluate, evaluate_all, random_inputs
from attnsim.einsum_ir.ir import Cascade


def cascade(einsums: list[str], inputs: str, outputs: str, extra: str = "") -> Cascade:
    body = "\n".join(f"  - {e}" for e in einsums)
    text = f"cascade: test\ninputs: {inputs}\n{extra}einsums:\n{body}\noutputs: {outputs}\n"
    return load_cascade_text(text, "<test>")


# ----------------------------------------------------------------------------- recurrences


def test_cumulative_sum_recurrence_matches_cumsum() -> None:
    c = cascade(["C[m+1] = C[m] + X[m]", "S[m] = C[m+1]"], "{X: [M]}", "[S, C]", "init: {C: 0}\n")
    x = np.arange(1.0, 8.0)
    out = evaluate(c, {"X": x}, {"M": 7})
    np.testing.assert_array_equal(out["S"], np.cumsum(x))
    np.testing.assert_array_equal(out["C"], np.concatenate([[0.0], np.cumsum(x)]))


def test_recurrence_init_is_iterate_zero() -> None:
    c = cascade(["C[m+1] = C[m] * X[m]"], "{X: [M]}", "[C]", "init: {C: 2.5}\n")
    out = evaluate(c, {"X": np.full(3, 2.0)}, {"M": 3})
    np.testing.assert_array_equal(out["C"], [2.5, 5.0, 10.0, 20.0])


def test_recurrence_spanning_two_einsums_steps_in_order() -> None:
    # Y[n+1] = A[n] * Y[n] + X[n]: a decayed running sum split over two Einsums.
    c = cascade(
        ["D[n] = A[n] * Y[n]", "Y[n+1] = D[n] + X[n]", "OUT[] = Y[N]"],
        "{A: [N], X: [N]}",
        "[OUT, Y]",
        "init: {Y: 1}\n",
    )
    rng = np.random.default_rng(3)
    a, x = rng.standard_normal(6), rng.standard_normal(6)
    want = [1.0]
    for k in range(6):
        want.append(a[k] * want[-1] + x[k])
    out = evaluate(c, {"A": a, "X": x}, {"N": 6})
    np.testing.assert_allclose(out["Y"], want, rtol=1e-14)
    np.testing.assert_allclose(out["OUT"], want[-1], rtol=1e-14)


def test_recurrence_over_tiles_reads_final_iterate() -> None:
    c = cascade(
        ["T[m1] = X[m1,m0]", "C[m1+1] = C[m1] + T[m1]", "TOTAL[] = C[M1]"],
        "{X: [M]}",
        "[TOTAL, T]",
        "partitions: {M: [M1, M0]}\ninit: {C: 0}\n",
    )
    x = np.arange(10.0)
    out = evaluate(c, {"X": x}, {"M": 10, "M0": 4})
    np.testing.assert_allclose(out["TOTAL"], x.sum())
    np.testing.assert_allclose(out["T"], [6.0, 22.0, 17.0])  # last tile: 8 + 9 only


# ----------------------------------------------------------------------------- reductions


def test_nested_reduction_sum_of_tile_max_ignores_tail() -> None:
    c = cascade(
        ["Y[p] = sum[m1](max[m0](X[m1,m0,p]))"],
        "{X: [M, P]}",
        "[Y]",
        "partitions: {M: [M1, M0]}\n",
    )
    x = -1.0 - np.abs(np.random.default_rng(0).standard_normal((10, 3)))  # padding 0 would win
    want = sum(x[k : k + 4].max(axis=0) for k in range(0, 10, 4))
    np.testing.assert_allclose(evaluate(c, {"X": x}, {"M": 10, "P": 3, "M0": 4})["Y"], want)


def test_sibling_and_implicit_reductions() -> None:
    c = cascade(
        ["R[p] = max[m](X[m,p]) - min[m](X[m,p])", "W[p] = X[m,p] * max[e](Y[e,p])"],
        "{X: [M, P], Y: [E, P]}",
        "[R, W]",
    )
    inputs = random_inputs(c, {"M": 5, "P": 4, "E": 3}, seed=1)
    x, y = inputs["X"], inputs["Y"]
    out = evaluate(c, inputs, {"M": 5, "P": 4, "E": 3})
    np.testing.assert_allclose(out["R"], x.max(0) - x.min(0))
    np.testing.assert_allclose(out["W"], x.sum(0) * y.max(0))


def test_fully_masked_rows_hold_reduction_identities() -> None:
    c = cascade(
        [
            "MX[p] = max[m](X[m,p]) where m < p",
            "MN[p] = min[m](X[m,p]) where m < p",
            "SM[p] = X[m,p] where m < p",
            "MAP[m,p] = exp(X[m,p]) where m < p",
        ],
        "{X: [M, P]}",
        "[MX, MN, SM, MAP]",
    )
    x = np.random.default_rng(2).standard_normal((3, 3))
    out = evaluate(c, {"X": x}, {"M": 3, "P": 3})
    below = np.arange(3)[:, None] < np.arange(3)[None, :]
    assert out["MX"][0] == -np.inf and out["MN"][0] == np.inf and out["SM"][0] == 0.0
    np.testing.assert_allclose(out["MX"][1:], np.where(below, x, -np.inf).max(0)[1:])
    np.testing.assert_allclose(out["MN"][1:], np.where(below, x, np.inf).min(0)[1:])
    np.testing.assert_allclose(out["SM"], np.where(below, x, 0.0).sum(0))
    np.testing.assert_allclose(out["MAP"], np.where(below, np.exp(x), 0.0))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_masked_garbage_never_leaks() -> None:
    # Y is -inf where masked; exp(Y - Y) there is NaN and must be replaced by 0.
    c = cascade(
        ["Y[m,p] = max[e](X[e,m,p]) where m <= p", "Z[p] = exp(Y[m,p] - Y[m,p]) where m <= p"],
        "{X: [E, M, P]}",
        "[Z]",
    )
    out = evaluate(c, random_inputs(c, {"E": 2, "M": 4, "P": 3}), {"E": 2, "M": 4, "P": 3})
    np.testing.assert_array_equal(out["Z"], [1.0, 2.0, 3.0])


# ----------------------------------------------------------------------------- partitions


def test_partition_tail_is_outside_the_iteration_space() -> None:
    c = cascade(
        ["T[m1,p] = X[m1,m0,p]", "QK[m1,m0,p] = X[m1,m0,p] * 2"],
        "{X: [M, P]}",
        "[T, QK]",
        "partitions: {M: [M1, M0]}\nparams: {M0: 256}\n",
    )
    x = np.random.default_rng(4).standard_normal((10, 2))
    out = evaluate(c, {"X": x}, {"M": 10, "P": 2, "M0": 4})
    np.testing.assert_allclose(out["T"], [x[0:4].sum(0), x[4:8].sum(0), x[8:10].sum(0)])
    assert out["QK"].shape == (10, 2)  # (M1, M0) merged back to M, tail sliced off
    np.testing.assert_allclose(out["QK"], 2 * x)


def test_access_through_parts_and_back() -> None:
    c = cascade(
        ["T[m1,m0] = K[m1,m0] + 1", "U[m] = T[m] * K[m]", "W[m1,p] = U[m1,m0] * Q[p]"],
        "{K: [M], Q: [P]}",
        "[U, W]",
        "partitions: {M: [M1, M0]}\n",
    )
    k, q = np.arange(7.0), np.array([1.0, -2.0])
    out = evaluate(c, {"K": k, "Q": q}, {"M": 7, "P": 2, "M0": 3})
    np.testing.assert_allclose(out["U"], (k + 1) * k)
    tiles = [((k + 1) * k)[s : s + 3].sum() for s in range(0, 7, 3)]
    np.testing.assert_allclose(out["W"], np.outer(tiles, q))


def test_nested_partition_merges_hierarchically() -> None:
    c = cascade(
        ["Y[m1,m01,m00] = X[m1,m01,m00] * 1", "S[] = X[m1,m01,m00]"],
        "{X: [M]}",
        "[Y, S]",
        "partitions: {M: [M1, M0], M0: [M01, M00]}\n",
    )
    x = np.arange(11.0)
    out = evaluate(c, {"X": x}, {"M": 11, "M0": 5, "M00": 2})
    np.testing.assert_array_equal(out["Y"], x)
    assert out["S"] == x.sum()


# ----------------------------------------------------------------------------- user cascades


def test_layer_norm_with_sqrt_and_recip() -> None:
    c = cascade(
        [
            "MU[p] = X[d,p] / 8",
            "XC[d,p] = X[d,p] - MU[p]",
            "VAR[p] = XC[d,p] * XC[d,p] / 8",
            "INV[p] = recip(sqrt(VAR[p] + 0.00001))",
            "Y[d,p] = XC[d,p] * INV[p] * G[d]",
        ],
        "{X: [D, P], G: [D]}",
        "[Y]",
    )
    inputs = random_inputs(c, {"D": 8, "P": 5}, seed=7)
    x, g = inputs["X"], inputs["G"]
    want = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) * g[:, None]
    np.testing.assert_allclose(evaluate(c, inputs, {"D": 8, "P": 5})["Y"], want, rtol=1e-12)


def test_sigmoid_gating_and_min_reduction() -> None:
    c = cascade(
        ["GATE[d] = sigmoid(W[d]) * min[n](X[d,n])", "BIG[d] = sigmoid(-W[d] * 1000)"],
        "{W: [D], X: [D, N]}",
        "[GATE, BIG]",
    )
    inputs = {"W": np.array([-1.0, 0.0, 2.0]), "X": np.arange(12.0).reshape(3, 4)}
    out = evaluate(c, inputs, {"D": 3, "N": 4})
    sig = 1 / (1 + np.exp(-inputs["W"]))
    np.testing.assert_allclose(out["GATE"], sig * inputs["X"].min(1), rtol=1e-14)
    assert np.all(np.isfinite(out["BIG"]))


def test_evaluate_all_returns_every_tensor() -> None:
    c = load_cascade("attention-1pass")
    sizes = {"M": 10, "P": 3, "E": 2, "F": 2, "M0": 4}
    tensors = evaluate_all(c, random_inputs(c, sizes), sizes)
    assert set(tensors) == set(c.tensor_ranks)
    assert tensors["QK"].shape == (10, 3)
    assert tensors["RM"].shape == (4, 3)  # M1 + 1 iterates
    assert np.all(tensors["RM"][0] == -np.inf)


# ----------------------------------------------------------------------------- validation


def test_input_problems_are_all_reported() -> None:
    c = load_cascade("attention-3pass")
    bad = {"Q": np.zeros((3, 4)), "V": np.zeros((2, 5)), "KK": np.zeros(1)}
    with pytest.raises(ValueError) as info:
        evaluate(c, bad, {"M": 5, "P": 3, "E": 4, "F": 2})
    message = str(info.value)
    assert "missing input K over [E, M]" in message
    assert "unknown input KK (inputs of attention-3pass: Q, K, V)" in message
    assert "input Q: expected shape (4, 3) (E=4, P=3), got (3, 4)" in message


def test_bad_sizes_raise_size_error() -> None:
    c = load_cascade("attention-3pass")
    with pytest.raises(SizeError, match="missing sizes for"):
        evaluate(c, {}, {"M": 5})


def test_random_inputs_are_reproducible_standard_normal() -> None:
    c = load_cascade("attention-2pass-tilemax-mh")
    sizes = {"B": 2, "H": 3, "E": 4, "F": 5, "P": 6, "M": 7}
    a, b = random_inputs(c, sizes, seed=5), random_inputs(c, sizes, seed=5)
    assert {n: x.shape for n, x in a.items()} == {
        "Q": (2, 3, 4, 6),
        "K": (2, 3, 4, 7),
        "V": (2, 3, 5, 7),
    }
    assert all(x.dtype == np.float64 and np.array_equal(x, b[n]) for n, x in a.items())


def test_condition_split_across_sibling_reductions_is_rejected() -> None:
    c = cascade(
        ["Y[p] = sum[m](X[m,p]) + sum[n](Z[n,p]) where m < n"], "{X: [M, P], Z: [N, P]}", "[Y]"
    )
    with pytest.raises(ValueError, match="no reduction binds all of m, n"):
        evaluate(c, random_inputs(c, {"M": 2, "N": 2, "P": 2}), {"M": 2, "N": 2, "P": 2})


def test_invalid_cascade_is_rejected_with_its_problems() -> None:
    c = cascade(["Y[p] = X[m,p]"], "{X: [M, P]}", "[Y]")
    broken = Cascade(c.name, c.inputs, c.einsums, ("NOPE",))
    with pytest.raises(ValueError, match="unknown output tensor NOPE"):
        evaluate(broken, random_inputs(c, {"M": 2, "P": 2}), {"M": 2, "P": 2})
