"""The `cos` and `sin` functions: parsed, printed back, executed, counted and priced."""

from __future__ import annotations

import numpy as np
import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import count_ops, parse_einsum
from attnsim.einsum_ir.analysis.ops import OpKind
from attnsim.einsum_ir.execute import evaluate
from attnsim.einsum_ir.ir import Cascade, RankName, TensorName, Unary, UnaryOp
from attnsim.einsum_ir.library.zoo_base import einsums
from attnsim.einsum_ir.parse import format_einsum
from attnsim.mappers.spatial.compute import einsum_work, lower_work


@pytest.mark.parametrize(
    "text",
    [
        "Y[p] = cos(X[p] * 0.5)",
        "Y[p] = X[p] * cos(p * X[p]) - sin(P * X[p])",
        "Y[] = sum[p](sin(cos(X[p])))",
    ],
)
def test_cos_and_sin_print_back(text: str) -> None:
    einsum = parse_einsum(text)
    assert parse_einsum(format_einsum(einsum)) == einsum


def test_cos_and_sin_parse_to_their_ops() -> None:
    expr = parse_einsum("Y[p] = cos(sin(X[p]))").expr
    assert isinstance(expr, Unary) and expr.op is UnaryOp.COS
    assert isinstance(expr.arg, Unary) and expr.arg.op is UnaryOp.SIN


def _cascade(text: str) -> Cascade:
    return Cascade(
        name="t",
        inputs=((TensorName("X"), (RankName("P"),)),),
        einsums=einsums([text]),
        outputs=(TensorName("Y"),),
    )


def test_cos_and_sin_take_radians() -> None:
    x = np.array([0.0, np.pi / 6, np.pi / 2, np.pi, 1000.25, -3.0])
    cos = evaluate(_cascade("Y[p] = cos(X[p])"), {"X": x}, {"P": 6})["Y"]
    sin = evaluate(_cascade("Y[p] = sin(X[p])"), {"X": x}, {"P": 6})["Y"]
    np.testing.assert_allclose(cos, np.cos(x), rtol=0, atol=1e-15)
    np.testing.assert_allclose(sin, np.sin(x), rtol=0, atol=1e-15)
    np.testing.assert_allclose(cos**2 + sin**2, 1.0, rtol=0, atol=1e-15)
    assert sin[1] == pytest.approx(0.5) and cos[2] == pytest.approx(0.0, abs=1e-15)


def test_a_rotation_at_index_positions_executes() -> None:
    # RoPE of one pair at position p with frequency 0.1: (x cos - y sin, x sin + y cos)
    text = "Y[p] = X[p] * cos(0.1 * p) - 2 * sin(0.1 * p)"
    x = np.arange(5.0)
    got = evaluate(_cascade(text), {"X": x}, {"P": 5})["Y"]
    pos = np.arange(5)
    np.testing.assert_allclose(got, x * np.cos(0.1 * pos) - 2 * np.sin(0.1 * pos), rtol=1e-15)


def test_cos_and_sin_are_counted_as_their_own_kinds() -> None:
    ops = count_ops(_cascade("Y[p] = cos(X[p]) * sin(X[p])"), {"P": 5})
    assert ops.total[OpKind.COS] == 5 and ops.total[OpKind.SIN] == 5
    assert ops.total[OpKind.MULTIPLY] == 5 and ops.flops == 15


@pytest.mark.parametrize("arch", ["fusemax", "flat"])
def test_cos_and_sin_are_lowered_to_a_mac_polynomial(arch: str) -> None:
    cascade = _cascade("Y[p] = cos(X[p]) + sin(X[p])")
    for array in load_arch(arch).arrays:
        work = einsum_work(cascade, {RankName("P"): 4}, 0)
        lowered, notes = lower_work(work, array)
        counts = dict(lowered.actions)
        for op in ("cos", "sin"):
            assert not array.supports(op)
            assert any(f"{op} approximated" in n for n in notes)
        # per element and function: range reduction, r^2, both polynomials, quadrant select
        assert counts["mac"] == 2 * 4 * 8
        assert counts["mul"] == 2 * 4 * 3
        assert counts["add"] == 2 * 4 * 2 + 4  # the roundings' two adds each, and the +
        assert counts["max"] == 2 * 4 * 2
