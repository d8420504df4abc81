"""Selection variants against numpy written from each paper's definition, end to end.

The cascades take the selected (gathered) keys and values as inputs, since the grammar has
no top-k or sort. Here the paper's selection runs in numpy on a whole memory (HCAM: the
top-k chunks by relevance; Routing: the top-w queries and keys per centroid), its gathers
are fed to the cascade, and the cascade's output must equal the paper's layer computed
directly: explicit chunk loops for HCAM, attention over the full keys with the cluster
mask for Routing.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from attnsim.einsum_ir import load_cascade
from attnsim.einsum_ir.analysis import count_passes
from attnsim.einsum_ir.execute import evaluate, random_inputs
from attnsim.einsum_ir.library import zoo_selection as zs
from attnsim.einsum_ir.reference import REFERENCES
from attnsim.einsum_ir.reference_selection import (
    chunk_summaries,
    dcal_rollout,
    hcam_layer,
    hip_select,
    rollout_map,
)
from attnsim.einsum_ir.reference_zoo import masked_softmax_attention

Array = npt.NDArray[np.float64]
TOL = {"rtol": 1e-12, "atol": 1e-12}
SELECTION = ("attention-hcam", "attention-routing", "attention-hip")


# ----------------------------------------------------------------------------- HCAM


@pytest.mark.parametrize(
    ("e", "f", "chunk", "chunks", "top", "queries"),
    [(3, 2, 4, 5, 2, 3), (2, 4, 3, 7, 3, 2), (4, 4, 5, 3, 1, 2), (1, 1, 1, 4, 4, 1)],
)
def test_hcam_top_k_chunks_end_to_end(
    e: int, f: int, chunk: int, chunks: int, top: int, queries: int
) -> None:
    """Each query's top-k chunks (numpy) fed to the cascade give HCAM's output."""
    rng = np.random.default_rng(chunk * chunks + top)
    n_mem = chunk * chunks
    q, k, v = (rng.normal(size=s) for s in ((e, queries), (e, n_mem), (f, n_mem)))
    cascade = load_cascade("attention-hcam")
    sizes = {"B": 1, "H": 1, "E": e, "F": f, "P": 1, "M": n_mem, "M0": chunk}
    sizes |= {"N0": chunk, "N": top * chunk}
    for p in range(queries):
        want, kept = hcam_layer(q[:, p : p + 1], k, v, chunk, top)
        spans = [np.arange(u * chunk, (u + 1) * chunk) for u in kept]
        gathered = np.concatenate(spans)
        inputs = {
            "Q": q[None, None, :, p : p + 1],
            "K": k[None, None],
            "KC": k[None, None][..., gathered],
            "VC": v[None, None][..., gathered],
        }
        out = evaluate(cascade, inputs, sizes)
        np.testing.assert_allclose(out["AV"][0, 0], want, **TOL)
        # the selector's output: every chunk's summary score, from which the top-k is taken
        scores = (q[:, p : p + 1].T @ chunk_summaries(k, chunk)).T
        np.testing.assert_allclose(out["CS"][0, 0], scores, **TOL)
        assert set(np.argsort(-scores[:, 0], kind="stable")[:top]) == set(kept)


@pytest.mark.parametrize(
    "sizes",
    [
        {"B": 2, "H": 1, "E": 3, "F": 2, "P": 5, "M": 11, "M0": 4, "N": 10, "N0": 4},
        {"B": 1, "H": 2, "E": 2, "F": 3, "P": 1, "M": 3, "M0": 5, "N": 7, "N0": 7},
        {"B": 1, "H": 1, "E": 1, "F": 1, "P": 2, "M": 1, "M0": 1, "N": 1, "N0": 1},
    ],
)
def test_hcam_partial_chunks_follow_the_zero_padded_summary(sizes: dict[str, int]) -> None:
    cascade = load_cascade("attention-hcam")
    inputs = random_inputs(cascade, sizes, seed=sum(sizes.values()))
    out = evaluate(cascade, inputs, sizes)
    want = REFERENCES["attention-hcam"].compute(inputs, sizes)
    np.testing.assert_allclose(out["AV"], want, **TOL)
    summaries = np.stack(
        [[chunk_summaries(inputs["K"][b, h], sizes["M0"]) for h in range(sizes["H"])]
         for b in range(sizes["B"])]
    )  # fmt: skip
    scores = np.einsum("bhep,bheu->bhup", inputs["Q"], summaries)
    np.testing.assert_allclose(out["CS"], scores, **TOL)


# ----------------------------------------------------------------------------- Routing


def balanced_routes(scores: Array, window: int) -> Array:
    """The `window` highest-scoring tokens of each centroid (rows: centroids), by position."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :window]
    routes: Array = np.sort(top, axis=1)
    return routes


@pytest.mark.parametrize(
    ("e", "f", "tokens", "clusters"), [(3, 2, 12, 3), (2, 3, 10, 2), (4, 1, 9, 3), (1, 2, 4, 4)]
)
def test_routing_clusters_end_to_end(e: int, f: int, tokens: int, clusters: int) -> None:
    """Balanced routing (numpy) fed to the cascade equals attention masked to the cluster."""
    rng = np.random.default_rng(tokens + clusters)
    window = tokens // clusters
    q, k = rng.normal(size=(e, tokens)), rng.normal(size=(e, tokens))
    v, c = rng.normal(size=(f, tokens)), rng.normal(size=(e, clusters))
    query_routes = balanced_routes((q.T @ c).T, window)  # (U, w) query positions
    key_routes = balanced_routes((k.T @ c).T, window)  # (U, w) key positions
    inputs = {
        "Q": q[None, None],
        "K": k[None, None],
        "C": c[None],
        "QR": np.stack([q[:, r] for r in query_routes])[None, None],
        "KR": np.stack([k[:, r] for r in key_routes])[None, None],
        "VR": np.stack([v[:, r] for r in key_routes])[None, None],
    }
    sizes = {"B": 1, "H": 1, "E": e, "F": f, "P": tokens, "M": tokens, "U": clusters}
    sizes |= {"I": window, "N": window, "N0": 2}
    out = evaluate(load_cascade("attention-routing"), inputs, sizes)
    for u in range(clusters):
        in_cluster = np.zeros((tokens, tokens), dtype=bool)
        in_cluster[:, key_routes[u]] = True
        dense = masked_softmax_attention(q, k, v, in_cluster)  # every query, cluster u's keys
        np.testing.assert_allclose(out["AV"][0, 0, u], dense[:, query_routes[u]], **TOL)
    np.testing.assert_allclose(out["QU"][0, 0], c.T @ q, **TOL)
    np.testing.assert_allclose(out["KU"][0, 0], c.T @ k, **TOL)


# ----------------------------------------------------------------------------- HiP


@pytest.mark.parametrize(
    ("e", "f", "blocks", "block_k", "length", "rows", "query_blocks"),
    [(3, 2, 2, 1, 4, 3, 2), (2, 3, 3, 2, 8, 2, 3), (4, 1, 1, 2, 2, 1, 1), (1, 2, 2, 1, 16, 4, 2)],
)
def test_hip_tree_walk_end_to_end(
    e: int, f: int, blocks: int, block_k: int, length: int, rows: int, query_blocks: int
) -> None:
    """HiP's tree walk (numpy) fed to the cascade: its scores, then attention over the kept
    blocks equal to dense attention masked to those blocks (each query block its own)."""
    rng = np.random.default_rng(blocks * length + rows)
    n_keys = 2 * blocks * length
    q = rng.normal(size=(query_blocks, e, rows))
    k, v = rng.normal(size=(e, n_keys)), rng.normal(size=(f, n_keys))
    walks = [hip_select(q[u], k, blocks, block_k) for u in range(query_blocks)]
    rounds = len(walks[0][0]) - 1  # after round 1
    assert rounds == int(np.log2(length // block_k))
    kept_keys = [np.concatenate([np.arange(s, s + block_k) for s in w[2]]) for w in walks]
    reps = np.zeros((query_blocks, max(rounds, 1), e, 2 * blocks))
    for u, (centres, _, _) in enumerate(walks):
        for r, positions in enumerate(centres[1:]):
            reps[u, r] = k[:, positions]
    inputs = {
        "QB": q[None, None],
        "K": k[None, None],
        "KR": reps[None, None],
        "KG": np.stack([k[:, keys] for keys in kept_keys])[None, None],
        "VG": np.stack([v[:, keys] for keys in kept_keys])[None, None],
    }
    sizes = {"B": 1, "H": 1, "E": e, "F": f, "U": query_blocks, "I": rows, "M": n_keys}
    sizes |= {"M0": length, "L": max(rounds, 1), "J": 2 * blocks, "N": blocks * block_k}
    sizes |= {"N0": 3}
    out = evaluate(load_cascade("attention-hip"), inputs, sizes)
    for u, (_, scores, _) in enumerate(walks):
        np.testing.assert_allclose(out["S0"][0, 0, u], scores[0].T, **TOL)
        for r in range(rounds):
            np.testing.assert_allclose(out["SR"][0, 0, u, r], scores[r + 1].T, **TOL)
        in_blocks = np.zeros((rows, n_keys), dtype=bool)  # (P, M)
        in_blocks[:, kept_keys[u]] = True
        dense = masked_softmax_attention(q[u], k, v, in_blocks)
        np.testing.assert_allclose(out["AV"][0, 0, u], dense, **TOL)


def test_hip_round_one_reads_each_segment_centre() -> None:
    """Round 1 scores K at m1 * M0 + floor(M0 / 2); a centre past the end scores 0."""
    cascade = load_cascade("attention-hip")
    for n_keys, length in ((12, 4), (11, 4), (10, 5), (3, 4), (7, 1)):
        sizes = {"B": 1, "H": 2, "E": 2, "F": 1, "U": 2, "I": 3, "M": n_keys, "M0": length}
        sizes |= {"L": 1, "J": 2, "N": 2, "N0": 2}
        inputs = random_inputs(cascade, sizes, seed=n_keys + length)
        out = evaluate(cascade, inputs, sizes)
        segments = -(-n_keys // length)
        centres = np.arange(segments) * length + length // 2
        padded = np.zeros((1, 2, 2, segments * length + length))
        padded[..., :n_keys] = inputs["K"]
        want = np.einsum("bhuei,bhem->bhumi", inputs["QB"], padded[..., centres])
        np.testing.assert_allclose(out["S0"], want, **TOL)


# ----------------------------------------------------------------------------- DCAL


@pytest.mark.parametrize(
    ("e", "f", "heads", "tokens", "layers", "top"),
    [(3, 2, 2, 7, 3, 2), (2, 3, 1, 5, 2, 3), (4, 2, 3, 9, 4, 1), (1, 1, 2, 3, 2, 3)],
)
def test_dcal_rollout_chain_and_glca_end_to_end(
    e: int, f: int, heads: int, tokens: int, layers: int, top: int
) -> None:
    """The rollout as DCAL defines it (matrix products, current layer on the left): the
    cascade's CLS row and chain steps give its CLS row, whose top-R queries GLCA runs."""
    rng = np.random.default_rng(tokens * layers + top)
    q, k = (rng.normal(size=(layers, heads, e, tokens)) for _ in range(2))
    v = rng.normal(size=(heads, f, tokens))
    maps = [rollout_map(q[i], k[i]) for i in range(layers)]  # layer 1 first
    rollout = dcal_rollout(maps)  # S_i, the current layer i = layers
    # the chain's incoming vectors: CLS rows of the partial products Abar_i ... Abar_(i-l)
    earlier = layers - 1
    partial = [dcal_rollout(maps[layers - 1 - s :])[0] for s in range(earlier)]
    chosen = np.argsort(-rollout[0], kind="stable")[:top]
    inputs = {
        "QS": q[-1][None][..., chosen],
        "K": k[-1][None],
        "V": v[None],
        "QC": q[-1][None][..., 0],
        "QL": np.stack([q[layers - 2 - s] for s in range(earlier)], axis=1)[None],
        "KL": np.stack([k[layers - 2 - s] for s in range(earlier)], axis=1)[None],
        "RW": np.stack(partial)[None],
    }
    sizes = {"B": 1, "H": heads, "E": e, "F": f, "M": tokens, "P": tokens, "M0": 2}
    sizes |= {"R": top, "L": earlier}
    out = evaluate(load_cascade("attention-dcal"), inputs, sizes)
    np.testing.assert_allclose(out["CR"][0], maps[-1][0], **TOL)
    for step in range(earlier):
        want = dcal_rollout(maps[layers - 2 - step :])[0]
        np.testing.assert_allclose(out["RO"][0, step], want, **TOL)
    np.testing.assert_allclose(out["RO"][0, -1], rollout[0], **TOL)
    for h in range(heads):
        dense = masked_softmax_attention(q[-1][h], k[-1][h], v[h], True)
        np.testing.assert_allclose(out["AV"][0, h], dense[:, chosen], **TOL)


def test_dcal_rollout_is_not_the_forward_row_recursion() -> None:
    """variants.md's r_l = r_(l-1) Abar_l multiplies the layers in the other order."""
    rng = np.random.default_rng(3)
    maps = [rollout_map(*(rng.normal(size=(1, 2, 5)) for _ in range(2))) for _ in range(3)]
    forward = maps[0][0] @ maps[1] @ maps[2]
    assert not np.allclose(forward, dcal_rollout(maps)[0])


# ----------------------------------------------------------------------------- passes, records


@pytest.mark.parametrize("name", SELECTION)
def test_the_attention_sweeps_the_memory_again_after_its_selector(name: str) -> None:
    """Over M: the selector's sweep(s), then the picks (declared `gathers`); over N: 1."""
    cascade = load_cascade(name)
    assert count_passes(cascade, "N").passes == 1  # the selection alone: one sweep
    report = count_passes(cascade, "M")
    by_pass: dict[int, set[str]] = {}
    for r in report.einsum_passes:
        if r.iterates_rank:
            by_pass.setdefault(r.pass_number, set()).add(r.output)
    want = {
        "hcam": (2, [{"KT", "KS", "CS"}]),
        "routing": (2, [{"KU"}]),  # QU is over P only: the queries' picks need no sweep
        "hip": (3, [{"S0"}, {"SR"}]),  # round 1, the later rounds (batched), the kept blocks
    }
    passes, selectors = want[name.split("-")[1]]
    assert report.passes == passes
    for k, selector in enumerate(selectors, start=1):
        assert by_pass[k] == selector
    attention = by_pass[passes]
    assert {"QK", "SLNV"} <= attention  # the attention reads the picks in the last pass
    picked = {g.tensor for g in cascade.gathers}
    assert picked and all(g.source in cascade.input_names for g in cascade.gathers)
    assert {"KC", "KR", "KG"} & picked


@pytest.mark.parametrize("name", SELECTION)
def test_records_cite_and_state_their_assumptions(name: str) -> None:
    entry = next(e for e in zs.ENTRIES if e.name == name)
    assert "arXiv" in entry.notes and "statistic" in entry.notes
    cascade = load_cascade(name)
    assert len(cascade.assumptions) >= 2
    assert "statistic" in cascade.assumptions[0]
