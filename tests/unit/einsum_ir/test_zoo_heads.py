"""Head and K/V structure variants against numpy written from each paper's definition.

Sigma is checked with flat head numbers (query head h reads key head h // (H / G_K) and
value head h // (H / G_V)). BAM and MoH are checked end to end: the paper's layer output
(router gates, per-expert or per-head output projections, top-k head routing) computed
densely in numpy equals the cascade's attention with the gates and projections applied to
its output, which is how those built-ins model them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from attnsim.einsum_ir import load_cascade
from attnsim.einsum_ir.analysis.structure import attention_problem
from attnsim.einsum_ir.execute import evaluate, random_inputs
from attnsim.einsum_ir.reference import REFERENCES

Array = npt.NDArray[np.float64]
TOL = {"rtol": 1e-12, "atol": 1e-12}


def softmax_attention(q: Array, k: Array, v: Array) -> Array:
    """One head: q (E, P), k (E, M), v (F, M) -> (F, P), no mask."""
    scores = q.T @ k
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    out: Array = (weights @ v.T).T
    return out


@pytest.mark.parametrize(
    "sizes",
    [
        {"B": 2, "G": 2, "GV": 2, "R": 3, "E": 3, "F": 5, "M": 11, "P": 7, "M0": 4},
        {"B": 1, "G": 1, "GV": 3, "R": 1, "E": 2, "F": 4, "M": 9, "P": 9, "M0": 9},
    ],
)
def test_sigma_heads_read_their_own_key_and_value_heads(sizes: dict[str, int]) -> None:
    cascade = load_cascade("attention-sigma")
    inputs = random_inputs(cascade, sizes, seed=3)
    got = np.asarray(evaluate(cascade, inputs, sizes)["AV"])
    np.testing.assert_allclose(got, REFERENCES["attention-sigma"].compute(inputs, sizes), **TOL)
    g, gv, r = sizes["G"], sizes["GV"], sizes["R"]
    heads = g * gv * r
    q = inputs["Q"].reshape(sizes["B"], heads, sizes["E"], sizes["P"])
    v = inputs["V"].reshape(sizes["B"], g * gv, sizes["F"], sizes["M"])
    flat = got.reshape(sizes["B"], heads, sizes["F"], sizes["P"])
    for b in range(sizes["B"]):
        for h in range(heads):  # explicit loop: key head h // (GV R), value head h // R
            want = softmax_attention(q[b, h], inputs["K"][b, h // (gv * r)], v[b, h // r])
            np.testing.assert_allclose(flat[b, h], want, **TOL)


def test_sigma_shares_keys_more_widely_than_values() -> None:
    sizes = {"B": 1, "M": 64, "P": 64, "E": 8, "F": 16}
    ap = attention_problem(load_cascade("attention-sigma"), sizes)
    assert set(ap.sharing_of("K")) == {"GV", "R"} and set(ap.sharing_of("V")) == {"R"}


def test_bam_layer_is_the_gated_sum_of_expert_outputs() -> None:
    """BAM with shared K/V: Y[d,p] = sum_x GX[x,p] WO_x . Attn_x(Q_x, K, V)."""
    sizes = {"B": 1, "H": 2, "X": 3, "E": 4, "F": 3, "M": 10, "P": 6, "M0": 4}
    cascade = load_cascade("attention-bam")
    inputs = random_inputs(cascade, sizes, seed=5)
    av = np.asarray(evaluate(cascade, inputs, sizes)["AV"])  # (B, H, X, F, P)
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((sizes["X"], sizes["P"]))
    gates = np.exp(logits) / np.exp(logits).sum(axis=0)  # soft routing: softmax over experts
    wo = rng.standard_normal((sizes["X"], sizes["H"], sizes["F"], 8))
    got = np.einsum("xp,hxfp,xhfd->dp", gates, av[0], wo)
    want = np.zeros((8, sizes["P"]))
    for x in range(sizes["X"]):  # every expert: its queries over the shared K and V
        for h in range(sizes["H"]):
            out = softmax_attention(inputs["Q"][0, h, x], inputs["K"][0, h], inputs["V"][0, h])
            want += gates[x] * (wo[x, h].T @ out)
    np.testing.assert_allclose(got, want, **TOL)


def test_moh_layer_is_attention_over_each_heads_routed_queries() -> None:
    """MoH: shared heads see every token, each token picks its top-k routed heads; the
    output is the gated head sum. The cascade runs each head over its active queries only
    (compacted, padded to the longest head), scattered back and gated."""
    tokens, shared, routed, top_k, e, f = 9, 1, 3, 1, 4, 3
    heads = shared + routed
    rng = np.random.default_rng(11)
    q = rng.standard_normal((heads, e, tokens))
    k = rng.standard_normal((heads, e, tokens))
    v = rng.standard_normal((heads, f, tokens))
    shared_gate = np.exp(rng.standard_normal((shared, tokens)))
    shared_gate /= shared_gate.sum(axis=0)
    routed_logits = rng.standard_normal((routed, tokens))
    routed_gate = np.exp(routed_logits) / np.exp(routed_logits).sum(axis=0)
    chosen = np.argsort(-routed_logits, axis=0)[:top_k]  # top-k routed heads per token
    active = np.zeros((routed, tokens), dtype=bool)
    np.put_along_axis(active, chosen, True, axis=0)
    alpha = rng.random((2, tokens))
    gate = np.concatenate([alpha[0] * shared_gate, alpha[1] * routed_gate * active])
    on = np.concatenate([np.ones((shared, tokens), dtype=bool), active])
    want = sum(gate[h] * softmax_attention(q[h], k[h], v[h]) for h in range(heads))

    rows = int(on.sum(axis=1).max())  # P of the cascade: active queries per head
    order = [np.flatnonzero(on[h]) for h in range(heads)]
    compact = np.zeros((1, heads, e, rows))
    for h in range(heads):
        compact[0, h, :, : len(order[h])] = q[h][:, order[h]]
    sizes = {"B": 1, "H": heads, "E": e, "F": f, "M": tokens, "P": rows, "M0": 4}
    cascade = load_cascade("attention-moh")
    out = np.asarray(evaluate(cascade, {"Q": compact, "K": k[None], "V": v[None]}, sizes)["AV"])
    got = np.zeros((f, tokens))
    for h in range(heads):  # scatter the active rows back, gated
        got[:, order[h]] += gate[h, order[h]] * out[0, h, :, : len(order[h])]
    np.testing.assert_allclose(got, want, **TOL)


# ----------------------------------------------------------------------------- KDGQA


def kdgqa_by_loop(q: Array, k: Array, v: Array) -> Array:
    """KDGQA head by head: each query head finds its K/V head from the running sums."""
    from attnsim.einsum_ir.reference_zoo import kdgqa_allocation

    counts = kdgqa_allocation(k, q.shape[1])
    bounds = np.cumsum(counts)
    out = np.zeros((q.shape[0], q.shape[1], v.shape[2], q.shape[3]))
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            g = int(np.searchsorted(bounds, h, side="right"))
            out[b, h] = softmax_attention(q[b, h], k[b, g], v[b, g])
    return out


def test_kdgqa_allocation_follows_the_authors_rounding_and_fix_up() -> None:
    from attnsim.einsum_ir.reference_zoo import kdgqa_allocation

    def keys(norms: list[float]) -> Array:  # one batch, K[0, g] of Frobenius norm norms[g]
        k = np.zeros((1, len(norms), 1, 1))
        k[0, :, 0, 0] = norms
        return k

    # x = (0, 1/3, 2/3, 1), 8 x / 2 = (0, 1.33, 2.67, 4) -> (0, 1, 3, 4): sum 8, no fix-up
    assert list(kdgqa_allocation(keys([1, 2, 3, 4]), 8)) == [0, 1, 3, 4]
    # x = (0, 1, 1): 3 x / 2 = (0, 1.5, 1.5) -> (0, 2, 2) (halves to even); sum 4 > 3: the
    # first largest gives one
    assert list(kdgqa_allocation(keys([1, 5, 5]), 3)) == [0, 1, 2]
    # x = (0, 0.5, 1): 2 x / 1.5 = (0, 0.67, 1.33) -> (0, 1, 1): sum 2, no fix-up
    assert list(kdgqa_allocation(keys([2, 3, 4]), 2)) == [0, 1, 1]
    # equal norms: uniform x, 5 / 3 = 1.67 -> (2, 2, 2); sum 6 > 5: the first largest gives one
    assert list(kdgqa_allocation(keys([2, 2, 2]), 5)) == [1, 2, 2]


@pytest.mark.parametrize(
    "sizes",
    [
        {"B": 2, "H": 8, "G": 4, "E": 3, "F": 2, "M": 11, "P": 5, "M0": 4},
        {"B": 1, "H": 6, "G": 5, "E": 2, "F": 3, "M": 7, "P": 9, "M0": 8},
        {"B": 3, "H": 3, "G": 3, "E": 1, "F": 1, "M": 1, "P": 1, "M0": 4},
        {"B": 1, "H": 5, "G": 1, "E": 2, "F": 2, "M": 6, "P": 3, "M0": 4},
    ],
)
@pytest.mark.parametrize("seed", range(4))
def test_kdgqa_equals_the_per_head_loop(sizes: dict[str, int], seed: int) -> None:
    cascade = load_cascade("attention-kdgqa")
    inputs = random_inputs(cascade, sizes, seed=seed)
    got = evaluate(cascade, inputs, sizes)["AV"]
    np.testing.assert_allclose(got, kdgqa_by_loop(inputs["Q"], inputs["K"], inputs["V"]), **TOL)
    ref = REFERENCES["attention-kdgqa"].compute(inputs, sizes)
    np.testing.assert_allclose(got, ref, **TOL)


def test_kdgqa_allocation_needing_the_fix_up_matches() -> None:
    """Norms chosen so that rounding overshoots: the cascade's loop takes the same steps."""
    from attnsim.einsum_ir.execute import evaluate_all
    from attnsim.einsum_ir.reference_zoo import kdgqa_allocation

    sizes = {"B": 1, "H": 3, "G": 3, "E": 1, "F": 1, "M": 1, "P": 2, "M0": 4}
    cascade = load_cascade("attention-kdgqa")
    inputs = random_inputs(cascade, sizes, seed=0)
    inputs["K"] = np.array([1.0, 5.0, 5.0]).reshape(1, 3, 1, 1)
    counts = evaluate_all(cascade, inputs, sizes)["NQ"]
    assert list(counts) == list(kdgqa_allocation(inputs["K"], 3)) == [0, 1, 2]


def test_kdgqa_reads_the_keys_in_two_passes() -> None:
    from attnsim.einsum_ir import count_passes

    report = count_passes(load_cascade("attention-kdgqa"), "M")
    assert report.passes == 2
    assert report.pass_of("NB") == 1 and report.pass_of("KH") == 2 and report.pass_of("QK") == 2
    assert "S" in report.boundaries[0].carried
