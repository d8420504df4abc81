"""Spatial mappers bind Einsums by shape and price sigmoid on the arrays' own units."""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade, load_cascade_text
from attnsim.einsum_ir.analysis.structure import ScoreKind, attention_problem
from attnsim.mappers.spatial.compute import cascade_work, lower_work
from attnsim.mappers.spatial.fusemax import FuseMaxMapper
from attnsim.mappers.spatial.unfused import UnfusedMapper

SIGMOID = """
cascade: sigmoid-attention
inputs: {Q: [E, P], K: [E, M], V: [F, M]}
params: {BIAS: 8}
einsums:
  - QK[m,p] = Q[e,p] * K[e,m]
  - SA[m,p] = sigmoid(QK[m,p] - BIAS)
  - AV[f,p] = SA[m,p] * V[f,m]
outputs: [AV]
"""
# the same weights written out: 1 / (1 + exp(BIAS - QK))
EXP_FORM = SIGMOID.replace("sigmoid(QK[m,p] - BIAS)", "1.0 / (1.0 + exp(BIAS - QK[m,p]))")
SIZES = {"E": 64, "F": 64, "P": 4096, "M": 4096}


def cycles(result) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {e.einsum: e.compute_cycles for e in result.per_einsum}


def test_sigmoid_maps_on_the_2d_array_like_exp() -> None:
    arch = load_arch("fusemax")
    cascade = load_cascade_text(SIGMOID)
    assert attention_problem(cascade, SIZES).score.kind == ScoreKind.SIGMOID
    r = FuseMaxMapper().map(cascade, arch, SIZES)
    units = {e.einsum: e.unit for e in r.per_einsum}
    assert units == {"QK": "array_2d", "SA": "array_2d", "AV": "array_2d"}
    two_d = arch.array_2d
    # sigmoid = exp (as the array prices it) + add + reciprocal (6 MACs), plus the bias add
    per_element = two_d.cycles("exp") + two_d.cycles("add") + 6 * two_d.cycles("mac") + 1
    pairs = SIZES["P"] * SIZES["M"]
    assert cycles(r)["SA"] == pytest.approx(pairs * per_element / two_d.lanes)
    assert any("sigmoid approximated on array_2d" in w for w in r.warnings)
    # the exp form of the same function binds to the same array at the same cost
    e = FuseMaxMapper().map(load_cascade_text(EXP_FORM), arch, SIZES)
    assert {x.einsum: x.unit for x in e.per_einsum} == units
    assert cycles(e)["SA"] == cycles(r)["SA"]
    # and it is priced differently from softmax (no max, no sum, one pass)
    for name in ("attention-3pass", "attention-1pass"):
        soft = FuseMaxMapper().map(load_cascade(name), arch, SIZES)
        assert soft.latency_cycles != r.latency_cycles and soft.energy_pj != r.energy_pj


@pytest.mark.parametrize("arch_name", ["fusemax", "flat"])
def test_sigmoid_maps_on_unfused(arch_name: str) -> None:
    arch = load_arch(arch_name)
    r = UnfusedMapper().map(load_cascade_text(SIGMOID), arch, SIZES)
    assert {e.einsum: e.unit for e in r.per_einsum}["SA"] == "array_1d"
    soft = UnfusedMapper().map(load_cascade("attention-3pass"), arch, SIZES)
    assert r.latency_cycles < soft.latency_cycles and r.energy_pj < soft.energy_pj
    assert any("sigmoid approximated on array_1d" in w for w in r.warnings)


def test_lowering_uses_the_units_an_array_has() -> None:
    fusemax, flat = load_arch("fusemax"), load_arch("flat")
    cascade = load_cascade_text(SIGMOID)
    sizes = {"E": 2, "F": 2, "P": 3, "M": 5}
    for array in (fusemax.array_2d, fusemax.array_1d, flat.array_1d):
        work = cascade_work(cascade, sizes, array)[1]
        lowered, notes = lower_work(work, array)
        assert all(array.supports(op) for op, _ in lowered.actions) and notes
        ops = dict(lowered.actions)
        # one exp per element; the reciprocal is the divider where there is one
        assert ops["exp"] == 15
        if array.supports("divide"):
            assert ops["divide"] == 15
        else:
            assert ops["mac"] == 6 * 15
    # no exp unit and no way to build one: the 2D array of FLAT keeps sigmoid unsupported
    work = cascade_work(cascade, sizes, flat.array_2d)[1]
    lowered, _ = lower_work(work, flat.array_2d)
    assert not flat.array_2d.supports("exp") and "sigmoid" in dict(lowered.actions)


def test_division_of_3pass_weights_stays_on_the_2d_array() -> None:
    # A[m,p] = SN / SD is per (key, query) element: bound to the 2D array by shape, its
    # division lowered to a reciprocal and a multiply (was: moved to the 256-lane 1D array)
    arch = load_arch("fusemax")
    r = FuseMaxMapper().map(load_cascade("attention-3pass"), arch, SIZES)
    assert {e.einsum: e.unit for e in r.per_einsum}["A"] == "array_2d"
    per_element = 6 * arch.array_2d.cycles("mac") + arch.array_2d.cycles("mul")
    assert cycles(r)["A"] == pytest.approx(
        SIZES["P"] * SIZES["M"] * per_element / arch.array_2d.lanes
    )
    assert cycles(r)["A"] < cycles(r)["QK"]


def test_log_abs_and_tanh_are_lowered_onto_the_1d_array() -> None:
    """GLA's and Lightning-2's log-sigmoid gates: log as 7 MACs and an add, abs as a max,
    tanh as a multiply, a sigmoid and a MAC (mappers.spatial.compute's docstring)."""
    text = """
cascade: gates
inputs: {G: [E, M]}
einsums:
  - LG[e,m] = log(1 + exp(-abs(G[e,m])))
  - TH[e,m] = tanh(G[e,m])
outputs: [LG, TH]
"""
    array = load_arch("fusemax").array_1d
    sizes = {"E": 2, "M": 5}
    works = cascade_work(load_cascade_text(text), sizes, array)
    (lg, lg_notes), (th, _) = (lower_work(w, array) for w in works)
    assert any("log approximated" in n for n in lg_notes)
    ops, n = dict(lg.actions), 10
    assert ops["mac"] == 7 * n and ops["max"] == n  # log's polynomial; abs as max(x, -x)
    assert ops["exp"] == n and ops["add"] == 2 * n  # the 1 + exp and log's exponent add
    th_ops = dict(th.actions)
    assert th_ops["mul"] == n and th_ops["exp"] == n  # 2x, then sigmoid's exp
