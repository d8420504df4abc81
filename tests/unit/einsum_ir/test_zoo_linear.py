"""Linear and recurrent attention built-ins against numpy written from each paper.

The references (`einsum_ir.reference_linear`) are token loops over the state recurrence or
the papers' dense forms; here the three causal forms of linear attention are checked
against each other and against the RNN loop, Lightning-2's chunked cascade against its
quadratic decay-masked form and its token recurrence, GLA against its gated recurrence at
several chunk sizes, and LightNet's one-scan form against its additive recurrence.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from attnsim.einsum_ir import count_passes, load_cascade
from attnsim.einsum_ir.execute import evaluate, random_inputs
from attnsim.einsum_ir.library import ZOO
from attnsim.einsum_ir.library.zoo_base import LINEAR
from attnsim.einsum_ir.library.zoo_linear import BACKWARD_OF
from attnsim.einsum_ir.reference import REFERENCES
from attnsim.einsum_ir.reference_linear import (
    causal_linear_attention,
    gla_gates,
    lightnet,
    lightnet_recurrent,
    lightning_decay,
    lightning_dense,
    lightning_recurrent,
)

Array = npt.NDArray[np.float64]
TOL = {"rtol": 1e-11, "atol": 1e-11}
# the forwards (attention-lightning-2-bwd, the family's backward: tests/unit/einsum_ir/
# test_lightning_backward.py)
NAMES = [e.name for e in ZOO if e.family == LINEAR and e.name not in BACKWARD_OF]
CAUSAL_FORMS = [
    "attention-linear-causal-quadratic",
    "attention-linear-causal-recurrent",
    "attention-linear-causal-chunked",
]
# (M, P, M0): self-attention with whole chunks, a partial last chunk, P < M (the last P
# tokens), P > M (leading queries see no key), one chunk larger than M, chunks of one key.
SHAPES = [(16, 16, 4), (11, 11, 4), (13, 5, 4), (6, 9, 3), (7, 7, 16), (9, 9, 1)]


def run(name: str, m: int, p: int, m0: int, seed: int = 0) -> tuple[dict[str, Array], Array]:
    cascade = load_cascade(name)
    sizes = {"B": 2, "H": 3, "E": 3, "F": 4, "M": m, "P": p}
    if "M0" in cascade.size_symbols:
        sizes["M0"] = m0
    inputs = random_inputs(cascade, sizes, seed=seed)
    return inputs, np.asarray(evaluate(cascade, inputs, sizes)["AV"])


def test_the_family_is_registered_with_sources() -> None:
    assert set(NAMES) == {
        "attention-linear",
        *CAUSAL_FORMS,
        "attention-lightning-2",
        "attention-gla",
        "attention-lightnet",
    }
    for entry in ZOO:
        if entry.family == LINEAR:
            assert "arXiv" in entry.notes and entry.passes == 1
            assert count_passes(load_cascade(entry.name)).passes == entry.passes


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "M{}-P{}-M0{}".format(*s))
@pytest.mark.parametrize("name", NAMES)
def test_each_matches_its_reference(name: str, shape: tuple[int, int, int]) -> None:
    inputs, got = run(name, *shape, seed=sum(shape))
    sizes = {"M": shape[0], "P": shape[1]}
    np.testing.assert_allclose(got, REFERENCES[name].compute(inputs, sizes), **TOL)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "M{}-P{}-M0{}".format(*s))
def test_three_causal_forms_are_one_function(shape: tuple[int, int, int]) -> None:
    outputs = []
    for name in CAUSAL_FORMS:
        inputs, got = run(name, *shape, seed=7)  # same seed and layout: the same inputs
        outputs.append(got)
    q, k, v = (inputs[n] for n in ("Q", "K", "V"))
    rnn = causal_linear_attention(q, k, v)  # the token loop, Katharopoulos Eq. 16-20
    for got in outputs:
        np.testing.assert_allclose(got, rnn, **TOL)
    np.testing.assert_allclose(outputs[0], outputs[1], **TOL)
    np.testing.assert_allclose(outputs[1], outputs[2], **TOL)
    m, p, _ = shape
    if p > m:  # queries before the first key output 0
        assert np.all(outputs[2][..., : p - m] == 0)
    assert np.any(outputs[2] != 0)


def test_causal_forms_see_only_earlier_keys() -> None:
    # Changing the last key and value changes only the last query's output.
    name = "attention-linear-causal-chunked"
    cascade = load_cascade(name)
    sizes = {"B": 1, "H": 1, "E": 2, "F": 2, "M": 10, "P": 10, "M0": 4}
    inputs = random_inputs(cascade, sizes, seed=2)
    before = np.asarray(evaluate(cascade, inputs, sizes)["AV"])
    inputs["K"][..., -1] += 1.0
    inputs["V"][..., -1] -= 2.0
    after = np.asarray(evaluate(cascade, inputs, sizes)["AV"])
    np.testing.assert_array_equal(before[..., :-1], after[..., :-1])
    assert not np.allclose(before[..., -1], after[..., -1])


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "M{}-P{}-M0{}".format(*s))
def test_lightning_chunks_equal_the_decay_masked_quadratic_form(
    shape: tuple[int, int, int],
) -> None:
    inputs, got = run("attention-lightning-2", *shape, seed=3)
    q, k, v = (inputs[n] for n in ("Q", "K", "V"))
    lam = lightning_decay(inputs["DL"])
    assert np.all((lam > 0) & (lam < 1))
    dense = lightning_dense(q, k, v, lam)  # ((Q^T K) * D) V, D = lambda^(q - m), m <= q
    np.testing.assert_allclose(got, dense, **TOL)
    np.testing.assert_allclose(dense, lightning_recurrent(q, k, v, lam), **TOL)


def test_lightning_decay_is_per_head() -> None:
    # Head 0 with a decay near 0 sees only its own key; head 1 with a decay near 1 is plain
    # causal (unnormalized) linear attention without a feature map.
    cascade = load_cascade("attention-lightning-2")
    sizes = {"B": 2, "H": 2, "E": 3, "F": 4, "M": 8, "P": 8, "M0": 4}
    inputs = random_inputs(cascade, sizes, seed=4)
    inputs["DL"] = np.array([-60.0, 60.0])
    got = np.asarray(evaluate(cascade, inputs, sizes)["AV"])
    q, k, v = (inputs[n] for n in ("Q", "K", "V"))
    own = np.einsum("bep,bep,bfp->bfp", q[:, 0], k[:, 0], v[:, 0])
    np.testing.assert_allclose(got[:, 0], own, rtol=1e-9, atol=1e-9)
    causal = np.tril(np.einsum("bep,bem->bpm", q[:, 1], k[:, 1]))
    np.testing.assert_allclose(got[:, 1], np.einsum("bpm,bfm->bfp", causal, v[:, 1]), rtol=1e-9)


@pytest.mark.parametrize("m0", [1, 3, 8, 32])
def test_gla_is_its_gated_recurrence_at_any_chunk_size(m0: int) -> None:
    inputs, got = run("attention-gla", 13, 13, m0, seed=5)
    alpha = gla_gates(inputs["GL"])
    assert np.all((alpha > 0) & (alpha < 1))
    np.testing.assert_allclose(got, REFERENCES["attention-gla"].compute(inputs, {}), **TOL)


def test_gla_gates_are_per_feature() -> None:
    # Feature 0's gate near 1 keeps every earlier key; feature 1's near 0 forgets them: the
    # output is the sum of a causal term over feature 0 and an own-key term over feature 1.
    cascade = load_cascade("attention-gla")
    sizes = {"B": 1, "H": 1, "E": 2, "F": 3, "M": 9, "P": 9, "M0": 4}
    inputs = random_inputs(cascade, sizes, seed=6)
    inputs["GL"][..., 0, :] = 800.0  # alpha = sigmoid(800)^(1/16) = 1
    inputs["GL"][..., 1, :] = -800.0  # alpha = exp(-50) ~ 0
    got = np.asarray(evaluate(cascade, inputs, sizes)["AV"])[0, 0]
    q, k, v = (inputs[n][0, 0] for n in ("Q", "K", "V"))
    kept = np.tril(np.outer(q[0], k[0])) @ v.T
    own = (q[1] * k[1])[:, None] * v.T
    np.testing.assert_allclose(got, (kept + own).T, rtol=1e-9, atol=1e-9)


def test_lightnet_one_scan_is_its_additive_recurrence() -> None:
    inputs, got = run("attention-lightnet", 12, 5, 4, seed=8)
    q, k, v = (inputs[n] for n in ("Q", "K", "V"))
    w = np.exp(inputs["WL"])
    np.testing.assert_allclose(got, lightnet(q, k, v, w), **TOL)
    np.testing.assert_allclose(got, lightnet_recurrent(q, k, v, w), **TOL)
