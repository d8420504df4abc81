"""Score-function and normalization built-ins against numpy written from each paper.

The references (`einsum_ir.reference_scores`) build each paper's weight matrix explicitly;
here each built-in also meets its limiting cases (a sink logit of -inf is plain softmax,
GPSA's gate at 0 and 1, RCMHA without the positional term, ACT with beta = 1 and beta =
0, Kronecker attention with one all-ones second key) and GPSA runs on the positional
attention built from ConViT's v_pos and relative patch offsets.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from attnsim.einsum_ir import count_passes, load_cascade
from attnsim.einsum_ir.analysis.structure import StructureError, attention_problem
from attnsim.einsum_ir.execute import evaluate, random_inputs
from attnsim.einsum_ir.library import ZOO
from attnsim.einsum_ir.library.zoo_base import SCORES
from attnsim.einsum_ir.reference import REFERENCES
from attnsim.einsum_ir.reference_scores import gaam, gpsa_positional, softmax_rows
from attnsim.einsum_ir.reference_zoo import masked_softmax_attention

Array = npt.NDArray[np.float64]
TOL = {"rtol": 1e-12, "atol": 1e-12}
NAMES = [e.name for e in ZOO if e.family == SCORES]
# (M, P, M0): whole tiles, a partial last tile with P < M, P > M, one tile larger than M,
# a single key and query, tiles of one key.
SHAPES = [(16, 16, 4), (11, 5, 4), (6, 9, 3), (7, 7, 16), (1, 1, 4), (13, 13, 1)]


def run(
    name: str, sizes: dict[str, int], seed: int = 0, **override: Array
) -> tuple[dict[str, Array], Array]:
    cascade = load_cascade(name)
    sizes = {k: v for k, v in sizes.items() if k in cascade.size_symbols}
    inputs = {**random_inputs(cascade, sizes, seed=seed), **override}
    output = cascade.outputs[0]
    return inputs, np.asarray(evaluate(cascade, inputs, sizes)[output])


def mh_sizes(m: int, p: int, m0: int, **extra: int) -> dict[str, int]:
    return {"B": 2, "H": 3, "E": 3, "F": 4, "M": m, "P": p, "M0": m0, **extra}


def plain(inputs: dict[str, Array]) -> Array:
    q, k, v = (inputs[n] for n in ("Q", "K", "V"))
    return masked_softmax_attention(q, k, v, np.ones((q.shape[-1], k.shape[-1]), dtype=bool))


def test_the_family_is_registered_with_sources_and_passes() -> None:
    assert NAMES == sorted(
        [
            "attention-sink-logit",
            "attention-gpsa",
            "attention-rcmha",
            "attention-act",
            "attention-gaam",
            "attention-kronecker",
        ]
    )
    for entry in ZOO:
        if entry.family == SCORES:
            assert "arXiv" in entry.notes
            assert count_passes(load_cascade(entry.name)).passes == entry.passes
            assert entry.passes == (3 if entry.name == "attention-gaam" else 1)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "M{}-P{}-M0{}".format(*s))
@pytest.mark.parametrize("name", [n for n in NAMES if n != "attention-gaam"])
def test_each_matches_its_reference(name: str, shape: tuple[int, int, int]) -> None:
    m, p, m0 = shape
    sizes = mh_sizes(m, p, m0, N=3, S=2, D=m + p - 1)
    inputs, got = run(name, sizes, seed=sum(shape))
    resolved = {**sizes, "S": 2}
    np.testing.assert_allclose(got, REFERENCES[name].compute(inputs, resolved), **TOL)


# ----------------------------------------------------------------------------- sink logit


def test_sink_logit_limits() -> None:
    sizes = mh_sizes(10, 6, 4)
    low = np.full(3, -800.0)  # e^b = 0: plain softmax
    inputs, got = run("attention-sink-logit", sizes, seed=1, SB=low)
    np.testing.assert_allclose(got, plain(inputs), **TOL)
    high = np.full(3, 800.0)  # the sink takes all the mass: exp overflows, output 0
    with np.errstate(over="ignore"):
        _, got = run("attention-sink-logit", sizes, seed=1, SB=high)
    assert np.all(got == 0)


def test_sink_logit_is_softmax_over_one_more_key_of_value_zero() -> None:
    # The sink as an explicit key: K gets a column whose score is b_h, V a zero column.
    sizes = mh_sizes(9, 4, 4)
    inputs, got = run("attention-sink-logit", sizes, seed=2)
    q, k, v, sb = (inputs[n] for n in ("Q", "K", "V", "SB"))
    scores = np.einsum("bhep,bhem->bhpm", q, k)
    full = np.concatenate([scores, np.broadcast_to(sb[None, :, None, None], (2, 3, 4, 1))], -1)
    weights = softmax_rows(full)
    v0 = np.concatenate([v, np.zeros((2, 3, 4, 1))], axis=-1)
    np.testing.assert_allclose(got, np.einsum("bhpm,bhfm->bhfp", weights, v0), **TOL)
    assert np.all(weights[..., :-1].sum(-1) < 1)


# ----------------------------------------------------------------------------- GPSA


def test_gpsa_on_convits_positional_attention() -> None:
    side = 3  # a 3 x 3 patch grid: M = P = 9
    sizes = mh_sizes(side * side, side * side, 4)
    v_pos = np.random.default_rng(5).normal(size=(3, 3))
    pp = gpsa_positional(v_pos, side)
    np.testing.assert_allclose(pp.sum(axis=1), 1.0, **TOL)  # a softmax over the keys
    inputs, got = run("attention-gpsa", sizes, seed=3, PP=pp)
    q, k, v, gl = (inputs[n] for n in ("Q", "K", "V", "GL"))
    g = 1 / (1 + np.exp(-gl))
    for h in range(3):  # ConViT Eq. 5, one head at a time, queries as rows
        content = softmax_rows(q[:, h].transpose(0, 2, 1) @ k[:, h])
        weights = (1 - g[h]) * content + g[h] * pp[h].T
        np.testing.assert_allclose(weights.sum(-1), 1.0, **TOL)
        want = (weights @ v[:, h].transpose(0, 2, 1)).transpose(0, 2, 1)
        np.testing.assert_allclose(got[:, h], want, **TOL)


def test_gpsa_gate_limits() -> None:
    sizes = mh_sizes(8, 5, 4)
    inputs, got = run("attention-gpsa", sizes, seed=4, GL=np.full(3, -800.0))
    np.testing.assert_allclose(got, plain(inputs), **TOL)
    inputs, got = run("attention-gpsa", sizes, seed=4, GL=np.full(3, 800.0))
    want = np.einsum("hmp,bhfm->bhfp", inputs["PP"], inputs["V"])
    np.testing.assert_allclose(got, want, **TOL)


# ----------------------------------------------------------------------------- RCMHA


def test_rcmha_relative_term_by_explicit_pairs() -> None:
    m, p = 7, 5
    sizes = mh_sizes(m, p, 3, D=m + p - 1)
    inputs, got = run("attention-rcmha", sizes, seed=6)
    q, k, v, u, w, r = (inputs[n] for n in ("Q", "K", "V", "UB", "WB", "R"))
    out = np.zeros_like(got)
    for b in range(2):
        for h in range(3):
            scores = np.zeros((p, m))
            for i in range(p):
                for j in range(m):  # Transformer-XL: (q + u) . k_j + (q + w) . R_(i - j)
                    offset = i - j
                    scores[i, j] = (q[b, h, :, i] + u[h]) @ k[b, h, :, j]
                    scores[i, j] += (q[b, h, :, i] + w[h]) @ r[h, :, offset + m - 1]
            out[b, h] = (softmax_rows(scores) @ v[b, h].T).T
    np.testing.assert_allclose(got, out, **TOL)


def test_rcmha_without_position_is_softmax_of_q_plus_u() -> None:
    sizes = mh_sizes(9, 9, 4, D=17)
    zeros = np.zeros((3, 3, 17))
    inputs, got = run("attention-rcmha", sizes, seed=7, R=zeros, UB=np.zeros((3, 3)))
    np.testing.assert_allclose(got, plain(inputs), **TOL)


# ----------------------------------------------------------------------------- ACT


@pytest.mark.parametrize(("m", "s", "m0"), [(12, 1, 4), (12, 6, 4), (5, 5, 2), (3, 4, 2)])
def test_act_limits(m: int, s: int, m0: int) -> None:
    sizes = mh_sizes(m, 4, m0, S=s)
    inputs, got = run("attention-act", sizes, seed=8, CB=np.ones(3))
    np.testing.assert_allclose(got, plain(inputs), **TOL)  # beta = 1: no calibration
    inputs, got = run("attention-act", sizes, seed=8, CB=np.zeros(3))
    q, k, v = (inputs[n] for n in ("Q", "K", "V"))
    rest = np.arange(m) >= s  # beta = 0: the sinks' mass goes to the rest, in proportion
    want = masked_softmax_attention(q, k, v, np.broadcast_to(rest, (4, m)))
    np.testing.assert_allclose(got, want, **TOL)


def test_act_rows_keep_unit_mass() -> None:
    sizes = mh_sizes(10, 3, 4, S=3)
    ones = np.ones((2, 3, 4, 10))
    _, got = run("attention-act", sizes, seed=9, V=ones, CB=np.array([0.4, 0.7, 1.3]))
    np.testing.assert_allclose(got, 1.0, **TOL)


# ----------------------------------------------------------------------------- GAAM


@pytest.mark.parametrize("m", [1, 2, 7, 16])
def test_gaam_matches_the_authors_module(m: int) -> None:
    sizes = {"B": 2, "H": 3, "F": 4, "M": m, "I": 3}
    inputs, got = run("attention-gaam", sizes, seed=m)
    np.testing.assert_allclose(got, gaam(inputs["X"], inputs["DG"], inputs["CG"]), **TOL)
    np.testing.assert_allclose(got, REFERENCES["attention-gaam"].compute(inputs, sizes), **TOL)


def test_gaam_one_gaussian_by_hand() -> None:
    # One Gaussian per head, offset 0, c = 1: weights exp(-(x - mu)^2 / (2 var)), normalized
    sizes = {"B": 1, "H": 1, "F": 2, "M": 6, "I": 1}
    cg, dg = np.ones((1, 1)), np.zeros((1, 1))
    inputs, got = run("attention-gaam", sizes, seed=3, CG=cg, DG=dg)
    x = inputs["X"][0, 0]
    var = x.var(axis=-1, ddof=1, keepdims=True) + 1e-8
    weight = np.exp(-((x - x.mean(axis=-1, keepdims=True)) ** 2) / (2 * var))
    np.testing.assert_allclose(got[0, 0], x * weight / weight.sum(-1, keepdims=True), **TOL)


def test_gaam_has_no_attention_problem_and_three_passes() -> None:
    cascade = load_cascade("attention-gaam")
    report = count_passes(cascade)
    assert report.passes == 3
    with pytest.raises(StructureError, match="no key rank"):
        attention_problem(cascade, {"B": 1, "H": 1, "F": 4, "M": 16})


# ----------------------------------------------------------------------------- Kronecker


def test_kronecker_with_a_trivial_second_key_is_plain_attention() -> None:
    sizes = mh_sizes(10, 6, 4, N=1)
    ones_k, ones_v = np.ones((2, 3, 3, 1)), np.ones((2, 3, 4, 1))
    inputs, got = run("attention-kronecker", sizes, seed=10, K2=ones_k, V2=ones_v)
    q, k, v = (inputs[n] for n in ("Q", "K1", "V1"))
    want = masked_softmax_attention(q, k, v, np.ones((6, 10), dtype=bool))
    np.testing.assert_allclose(got, want, **TOL)


def test_kronecker_by_explicit_pairs() -> None:
    sizes = mh_sizes(5, 3, 2, N=4)
    inputs, got = run("attention-kronecker", sizes, seed=11)
    q, k1, k2, v1, v2 = (inputs[n] for n in ("Q", "K1", "K2", "V1", "V2"))
    scores = np.einsum("bhep,bhem,bhen->bhpmn", q, k1, k2)
    weights = softmax_rows(scores.reshape(2, 3, 3, 20)).reshape(scores.shape)
    want = np.einsum("bhpmn,bhfm,bhfn->bhfp", weights, v1, v2)
    np.testing.assert_allclose(got, want, **TOL)
