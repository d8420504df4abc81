"""The `step` and `round` functions: parsed, printed back, executed, counted and priced."""

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
    ["Y[p] = step(X[p] - 0.5)", "Y[p] = round(2 * X[p]) + step(p - 1)", "Y[] = max[p](step(X[p]))"],
)
def test_step_and_round_print_back(text: str) -> None:
    einsum = parse_einsum(text)
    assert parse_einsum(format_einsum(einsum)) == einsum


def test_step_and_round_parse_to_their_ops() -> None:
    expr = parse_einsum("Y[p] = round(step(X[p]))").expr
    assert isinstance(expr, Unary) and expr.op is UnaryOp.ROUND
    assert isinstance(expr.arg, Unary) and expr.arg.op is UnaryOp.STEP


def _cascade(text: str) -> Cascade:
    return Cascade(
        name="t",
        inputs=((TensorName("X"), (RankName("P"),)),),
        einsums=einsums([text]),
        outputs=(TensorName("Y"),),
    )


def test_step_is_one_above_zero_and_round_halves_to_even() -> None:
    x = np.array([-1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 2.6])
    step = evaluate(_cascade("Y[p] = step(X[p])"), {"X": x}, {"P": 7})["Y"]
    np.testing.assert_array_equal(step, [0, 0, 0, 1, 1, 1, 1])
    rounded = evaluate(_cascade("Y[p] = round(X[p])"), {"X": x}, {"P": 7})["Y"]
    np.testing.assert_array_equal(rounded, [-2, -0, 0, 0, 2, 2, 3])


def test_step_and_round_are_counted() -> None:
    ops = count_ops(_cascade("Y[p] = round(X[p]) * step(X[p])"), {"P": 5})
    assert ops.total[OpKind.ROUND] == 5 and ops.total[OpKind.STEP] == 5
    assert ops.total[OpKind.MULTIPLY] == 5 and ops.flops == 15


def test_step_round_and_sqrt_are_lowered_on_an_array_without_their_units() -> None:
    cascade = _cascade("Y[p] = round(X[p]) + step(X[p]) + sqrt(X[p])")
    array = load_arch("fusemax").arrays[-1]
    work = einsum_work(cascade, {RankName("P"): 4}, 0)
    lowered, notes = lower_work(work, array)
    for op in ("round", "step", "sqrt"):
        assert any(f"{op} approximated" in n for n in notes) or array.supports(op)
    counts = dict(lowered.actions)
    assert counts.get("max", 0) >= 4  # step: one compare per element
    assert counts.get("add", 0) >= 4 * 2 + 4 * 2  # round: two adds; the two + of the sum
