"""Einsum grammar: parsing, printing, and error columns."""

from __future__ import annotations

import math

import pytest

from attnsim.einsum_ir.ir import (
    Binary,
    BinaryOp,
    CmpOp,
    Final,
    Literal,
    Read,
    Reduce,
    ReduceOp,
    Unary,
    UnaryOp,
    Var,
)
from attnsim.einsum_ir.parse import ParseError, parse_einsum


def test_matmul_sums_contracted_index() -> None:
    e = parse_einsum("QK[m,p] = Q[e,p] * K[e,m]")
    assert e.output == "QK"
    assert e.out_vars == ("m", "p")
    assert e.implicit_reduced_vars == ("e",)
    assert e.reduce_op is ReduceOp.SUM
    assert isinstance(e.expr, Binary) and e.expr.op is BinaryOp.MUL


def test_explicit_reduction_and_recurrence() -> None:
    lm = parse_einsum("LM[m1,p] = max[m0](QK[m1,m0,p])")
    assert isinstance(lm.expr, Reduce) and lm.expr.over == ("m0",)
    assert lm.reduce_op is ReduceOp.MAX
    rm = parse_einsum("RM[m1+1,p] = max(RM[m1,p], LM[m1,p])")
    assert rm.recurrence_var == "m1"
    assert rm.out.indices[0] == Var("m1", 1)
    assert not rm.has_reduction


def test_final_iterate_index() -> None:
    e = parse_einsum("AV[f,p] = RNV[M1,f,p] / RD[M1,p]")
    first = e.inputs[0]
    assert first.indices[0] == Final("M1")
    assert first.reads_final


def test_precedence_and_unary_minus() -> None:
    e = parse_einsum("X[p] = -A[p] * B[p] + C[p] / D[p] - 2")
    assert isinstance(e.expr, Binary) and e.expr.op is BinaryOp.SUB
    left = e.expr.left
    assert isinstance(left, Binary) and left.op is BinaryOp.ADD
    mul = left.left
    assert isinstance(mul, Binary) and isinstance(mul.left, Unary)
    assert mul.left.op is UnaryOp.NEG


def test_negative_infinity_literal_is_folded() -> None:
    e = parse_einsum("X[p] = max(A[p], -inf)")
    assert isinstance(e.expr, Binary)
    assert e.expr.right == Literal(-math.inf)


def test_where_clause_linear_forms() -> None:
    e = parse_einsum("S[m,p] = exp(QK[m,p]) where p - m < 256 and m <= p")
    assert len(e.where) == 2
    window, causal = e.where
    assert dict(window.lhs.terms) == {"p": 1, "m": -1}
    assert window.rhs.const == 256 and window.op is CmpOp.LT
    assert causal.op is CmpOp.LE


@pytest.mark.parametrize(
    "text",
    [
        "QK[m,p] = Q[e,p] * K[e,m]",
        "LM[m1,p] = max[m0](QK[m1,m0,p])",
        "SLN[m1,m0,p] = exp(QK[m1,m0,p] - RM[m1+1,p])",
        "AV[f,p] = RNV[M1,f,p] / RD[M1,p]",
        "X[p] = A[p] - (B[p] - C[p])",
        "X[p] = A[p] / (B[p] * C[p])",
        "X[p] = -(A[p] + B[p]) * sigmoid(C[p])",
        "X[p] = sqrt(recip(A[p])) + min(A[p], 0.5)",
        "X[p] = A[p] * -2.5e-07",
        "S[m,p] = QK[m,p] where 2 * p - m >= -3 and m != p",
        "X[] = sum[m](A[m])",
    ],
)
def test_print_round_trip(text: str) -> None:
    e = parse_einsum(text)
    again = parse_einsum(str(e))
    assert again == e
    assert str(again) == str(e)


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("QK[m,p] = Q[e,p] * * K[e,m]", 19, "expected a value"),
        ("QK[m,p] = Q[e,p] * K[e,m", 24, "',' or ']'"),
        ("QK[m,p] = erf(Q[e,p])", 10, "unknown function 'erf'"),
        ("QK[m,p] Q[e,p]", 8, "expected '='"),
        ("X[p] = A[p] where m <", 21, "expected an index variable or an integer"),
        ("X[p] = A[p] $ 2", 12, "unexpected character"),
        ("X[p,p] = A[p]", 0, "index repeated"),
        ("exp[p] = A[p]", 0, "reserved"),
        ("X[Mp] = A[p]", 2, "lowercase variables or UPPERCASE"),
    ],
)
def test_syntax_errors_point_at_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_einsum(text)
    assert fragment in info.value.message
    assert info.value.column == column
    caret_line = info.value.caret().splitlines()[1]
    assert caret_line.index("^") == 4 + column


def test_reads_lists_every_access() -> None:
    e = parse_einsum("RNV[m1+1,f,p] = SPNV[m1,f,p] + SLNV[m1,f,p]")
    assert [a.tensor for a in e.inputs] == ["SPNV", "SLNV"]
    assert isinstance(e.expr, Binary) and isinstance(e.expr.left, Read)
