"""Compression and pooled-memory built-ins against numpy written from each paper.

The references (`einsum_ir.reference_compress`) are checked here at awkward shapes (pools
and groups that do not divide the sequence, P != M, windows that are not a multiple of the
group), and against second derivations: CCA's mask against the reference code's Triton
kernel formulas, LongVQ against dense attention over the quantized keys, SeqBoat's
compacted attention scattered back against attention over the full sequence restricted to
the activated tokens, Agent attention against explicit per-pool loops.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from attnsim.einsum_ir import count_ops, count_passes, load_cascade
from attnsim.einsum_ir.execute import evaluate, random_inputs
from attnsim.einsum_ir.library import ZOO
from attnsim.einsum_ir.library import zoo_compress as zc
from attnsim.einsum_ir.library.zoo_base import SELECTION
from attnsim.einsum_ir.reference import REFERENCES
from attnsim.einsum_ir.reference_compress import (
    agent_attention,
    cca_mask,
    seqboat_router_logits,
    seqboat_visible,
    softmax,
    vq_attention,
)
from attnsim.einsum_ir.reference_zoo import masked_softmax_attention

Array = npt.NDArray[np.float64]
TOL = {"rtol": 1e-12, "atol": 1e-12}
NAMES = ["attention-agent", "attention-cca", "attention-longvq", "attention-seqboat"]
ARXIV = {
    "attention-agent": "2312.08874",
    "attention-cca": "2412.12465",
    "attention-longvq": "2404.11163",
    "attention-seqboat": "2306.11197",
}


def run(name: str, sizes: dict[str, int], seed: int = 0) -> tuple[dict[str, Array], Array]:
    cascade = load_cascade(name)
    inputs = random_inputs(cascade, sizes, seed=seed)
    return inputs, np.asarray(evaluate(cascade, inputs, sizes)["AV"])


def check(name: str, sizes: dict[str, int], seed: int = 0) -> None:
    inputs, got = run(name, sizes, seed)
    want = REFERENCES[name].compute(inputs, sizes)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, **TOL, err_msg=f"{name} {sizes}")


def test_the_family_is_registered_with_sources_and_one_pass() -> None:
    entries = {e.name: e for e in ZOO if e.name in NAMES}
    assert set(entries) == set(NAMES)
    for name, entry in entries.items():
        assert entry.family == SELECTION
        assert ARXIV[name] in entry.notes
        assert entry.passes == count_passes(load_cascade(name)).passes == 1


def test_assumptions_state_the_modelled_selection() -> None:
    assert "codeword assignment" in load_cascade("attention-longvq").assumptions[0]
    assert "compacted length" in load_cascade("attention-seqboat").assumptions[0]
    assert "agent pooling" in load_cascade("attention-agent").assumptions[0]
    assert "pooling queries" in load_cascade("attention-cca").assumptions[0]


# ----------------------------------------------------------------------------- Agent attention

# (P, M, J, U0): pools dividing P, a partial last pool, more agents than pools (left out),
# fewer agents than pools (the later pools dropped), P != M, single query.
AGENT_SHAPES = [(16, 16, 4, 4), (13, 9, 4, 4), (10, 12, 7, 3), (12, 5, 2, 4), (1, 3, 2, 4)]


@pytest.mark.parametrize("shape", AGENT_SHAPES, ids=lambda s: "P{}-M{}-J{}-U0{}".format(*s))
def test_agent_matches_the_reference(shape: tuple[int, int, int, int]) -> None:
    p, m, j, u0 = shape
    check(
        "attention-agent",
        {"B": 2, "H": 3, "E": 3, "F": 4, "P": p, "M": m, "J": j, "U0": u0, "M0": 4},
    )


def test_agent_reference_by_explicit_loops() -> None:
    """Per head and agent: the pool's mean, then two softmaxes written out element by element."""
    rng = np.random.default_rng(3)
    e, f, p, m, j, pool = 3, 2, 7, 5, 3, 3
    q, k, v = (
        rng.normal(size=(1, 1, e, p)),
        rng.normal(size=(1, 1, e, m)),
        rng.normal(size=(1, 1, f, m)),
    )
    ab, qb = rng.normal(size=(1, j, m)), rng.normal(size=(1, j, p))
    agents = [q[0, 0][:, a * pool : min(p, a * pool + pool)].mean(axis=1) for a in range(j)]
    agent_v = []
    for a in range(j):
        w = np.exp([agents[a] @ k[0, 0][:, x] + ab[0, a, x] for x in range(m)])
        agent_v.append(sum(w[x] * v[0, 0][:, x] for x in range(m)) / w.sum())
    want = np.zeros((f, p))
    for x in range(p):
        w = np.exp([q[0, 0][:, x] @ agents[a] + qb[0, a, x] for a in range(j)])
        want[:, x] = sum(w[a] * agent_v[a] for a in range(j)) / w.sum()
    got = agent_attention(q, k, v, ab, qb, pool)[0, 0]
    np.testing.assert_allclose(got, want, **TOL)


def test_agent_work_follows_the_agents() -> None:
    """Aggregation J M E and broadcast P J E MACs, for the agents that hold a pool."""
    sizes = {"B": 1, "H": 2, "E": 8, "F": 8, "P": 300, "M": 512, "J": 49, "U0": 16}
    live = min(49, -(-300 // 16))  # 19 pools
    per = {e.output: e.points for e in count_ops(load_cascade("attention-agent"), sizes).per_einsum}
    assert per["AGS"] == 2 * 8 * 300  # every query summed into its pool once
    assert per["SA"] == 2 * live * 512 * 8
    assert per["SLNV"] == 2 * live * 512 * 8
    assert per["SB"] == 2 * 300 * live * 8
    assert per["SNV"] == 2 * 300 * live * 8


# ----------------------------------------------------------------------------- CCA

# (M, P, g, W): g divides W, g does not divide W, partial last group, P < M (the last P
# positions), P > M (leading queries see nothing), a window longer than the sequence.
CCA_SHAPES = [
    (32, 32, 4, 8),
    (29, 29, 4, 6),
    (30, 11, 3, 5),
    (9, 12, 2, 3),
    (20, 20, 4, 40),
    (17, 17, 1, 2),
]


@pytest.mark.parametrize("shape", CCA_SHAPES, ids=lambda s: "M{}-P{}-g{}-W{}".format(*s))
def test_cca_matches_the_reference(shape: tuple[int, int, int, int]) -> None:
    m, p, g, w = shape
    check("attention-cca", {"B": 2, "H": 2, "E": 3, "F": 2, "M": m, "P": p, "M0": g, "W": w})


def test_cca_self_attention_pools_with_the_queries() -> None:
    """P = M and QM = Q: the group's last query is the query at that position."""
    sizes = {"B": 1, "H": 2, "E": 4, "F": 3, "M": 40, "P": 40, "M0": 4, "W": 8}
    cascade = load_cascade("attention-cca")
    inputs = random_inputs(cascade, sizes, seed=5)
    inputs["QM"] = inputs["Q"].copy()
    got = evaluate(cascade, inputs, sizes)["AV"]
    np.testing.assert_allclose(got, REFERENCES["attention-cca"].compute(inputs, sizes), **TOL)


@pytest.mark.parametrize("seq_len,group,window", [(64, 4, 8), (50, 16, 32), (40, 3, 9)])
def test_cca_mask_is_the_triton_kernels_when_the_group_divides_the_window(
    seq_len: int, group: int, window: int
) -> None:
    """The kernel's core mask (q - (g-1) - W) // g >= n and window (q + 1) mod g + W."""
    visible = cca_mask(seq_len, group, window)
    n_pool = visible.shape[1] - seq_len
    q = np.arange(seq_len)[:, None]
    core = (q - (group - 1) - window) // group >= np.arange(n_pool)[None, :]
    key = np.arange(seq_len)[None, :]
    local = (key <= q) & (q - key < (q + 1) % group + window)
    assert np.array_equal(visible[:, :n_pool], core)
    assert np.array_equal(visible[:, n_pool:], local)


def test_cca_every_key_is_seen_once_raw_or_pooled() -> None:
    """The adaptive window covers exactly the keys of the groups not pooled for the query."""
    seq_len, group, window = 45, 4, 6
    visible = cca_mask(seq_len, group, window)
    n_pool = visible.shape[1] - seq_len
    for q in range(seq_len):
        pooled = {
            x for n in range(n_pool) if visible[q, n] for x in range(n * group, n * group + group)
        }
        raw = set(np.flatnonzero(visible[q, n_pool:]))
        assert pooled.isdisjoint(raw) and pooled | raw == set(range(q + 1))


def _cca_pairs(m: int, p: int, g: int, w: int) -> tuple[int, int]:
    """(local key pairs, visible core pairs) by the paper's rule, per head."""
    local = core = 0
    for x in range(p):
        q = x + m - p
        if q < 0:
            continue
        pooled = max(0, (q + 1 - w) // g)  # groups whose last key is at least W before q
        core += pooled
        local += q + 1 - pooled * g
    return local, core


def test_cca_work_follows_core_tokens_and_window() -> None:
    sizes = {"B": 1, "H": 2, "E": 8, "F": 4, "M": 256, "P": 200, "M0": 8, "W": 32}
    per = {e.output: e.points for e in count_ops(load_cascade("attention-cca"), sizes).per_einsum}
    local, core = _cca_pairs(256, 200, 8, 32)
    assert per["QK"] == 2 * 8 * local
    assert per["CS"] == 2 * 8 * core
    assert per["SLNV"] == 2 * 4 * local
    assert per["SCV"] == 2 * 4 * core
    assert per["PS"] == 2 * 8 * 256  # pooling: every key once
    assert local + core < 200 * 256 / 2  # far below dense causal


# ----------------------------------------------------------------------------- LongVQ

VQ_SHAPES = [(16, 16, 4), (13, 5, 3), (6, 9, 8), (1, 1, 2), (20, 7, 1)]


@pytest.mark.parametrize("shape", VQ_SHAPES, ids=lambda s: "M{}-P{}-S{}".format(*s))
def test_longvq_matches_the_reference(shape: tuple[int, int, int]) -> None:
    m, p, s = shape
    check("attention-longvq", {"B": 2, "H": 2, "E": 3, "F": 4, "M": m, "P": p, "S": s})


def test_longvq_is_dense_attention_over_the_quantized_keys() -> None:
    """Keys already on codewords: the quantization is the identity, so dense attention."""
    rng = np.random.default_rng(7)
    b, h, e, f, m, p, s = 1, 2, 3, 2, 11, 4, 5
    codebook = rng.normal(size=(h, e, s))
    index = rng.integers(0, s, size=(b, h, m))
    k = np.stack([codebook[x][:, index[0, x]] for x in range(h)])[None]
    q, v = rng.normal(size=(b, h, e, p)), rng.normal(size=(b, h, f, m))
    want = masked_softmax_attention(q, k, v, np.ones((p, m), bool))
    np.testing.assert_allclose(vq_attention(q, k, v, codebook), want, **TOL)
    sizes = {"B": b, "H": h, "E": e, "F": f, "M": m, "P": p, "S": s}
    got = evaluate(
        load_cascade("attention-longvq"), {"Q": q, "K": k, "V": v, "CB": codebook}, sizes
    )
    np.testing.assert_allclose(got["AV"], want, **TOL)


def test_longvq_large_scores_with_unused_codewords() -> None:
    """An unused codeword far above the used ones weighs nothing (no 0/0, no overflow)."""
    sizes = {"B": 1, "H": 1, "E": 2, "F": 2, "M": 6, "P": 3, "S": 4}
    cascade = load_cascade("attention-longvq")
    inputs = {k: 30.0 * v for k, v in random_inputs(cascade, sizes, seed=2).items()}
    got = evaluate(cascade, inputs, sizes)["AV"]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, REFERENCES["attention-longvq"].compute(inputs, sizes), **TOL)


def test_longvq_work_is_linear_in_the_keys() -> None:
    def matmul_points(m: int) -> int:
        sizes = {"B": 1, "H": 1, "E": 8, "F": 8, "M": m, "P": 64, "S": 32}
        per = {
            e.output: e.points
            for e in count_ops(load_cascade("attention-longvq"), sizes).per_einsum
        }
        assert per["KCB"] == m * 32 * 8 and per["UV"] == m * 32 * 8  # assignment, sums
        assert per["QC"] == 64 * 32 * 8 and per["SNV"] == 64 * 32 * 8  # queries x codewords
        return sum(per.values())

    # affine in M: each 1024 more keys add the same work (dense attention would add P M)
    assert matmul_points(2048) - matmul_points(1024) == matmul_points(3072) - matmul_points(2048)


# ----------------------------------------------------------------------------- SeqBoat

SEQBOAT_SHAPES = [(16, 16, 3), (11, 11, 4), (13, 5, 2), (6, 9, 1), (7, 7, 20)]


@pytest.mark.parametrize("shape", SEQBOAT_SHAPES, ids=lambda s: "M{}-P{}-W{}".format(*s))
def test_seqboat_matches_the_reference(shape: tuple[int, int, int]) -> None:
    m, p, w = shape
    check("attention-seqboat", {"B": 2, "E": 3, "F": 4, "M": m, "P": p, "W": w, "M0": 4})


def test_seqboat_compacted_attention_scattered_back() -> None:
    """Gather the activated tokens, run the cascade, scatter back (inactive tokens output 0):
    attention over the full sequence where both tokens are active and at most W activated
    tokens apart."""
    rng = np.random.default_rng(11)
    t, e, f, w = 24, 3, 2, 3
    active = rng.random(t) < 0.5
    idx = np.flatnonzero(active)
    q, k, v = rng.normal(size=(1, e, t)), rng.normal(size=(1, e, t)), rng.normal(size=(1, f, t))
    n = len(idx)
    sizes = {"B": 1, "E": e, "F": f, "M": n, "P": n, "W": w, "M0": 4}
    compact = evaluate(
        load_cascade("attention-seqboat"),
        {"Q": q[..., idx], "K": k[..., idx], "V": v[..., idx]},
        sizes,
    )["AV"]
    got = np.zeros((1, f, t))
    got[..., idx] = compact
    rank = np.cumsum(active) - 1  # position in the compacted sequence
    visible = (
        active[:, None]
        & active[None, :]
        & (rank[None, :] <= rank[:, None])
        & (rank[:, None] - rank[None, :] <= w)
    )
    want = masked_softmax_attention(q, k, v, visible)
    np.testing.assert_allclose(got, want, **TOL)
    assert np.array_equal(seqboat_visible(n, n, w), visible[np.ix_(idx, idx)])


def test_softmax_helper_is_normalised() -> None:
    x = np.random.default_rng(0).normal(size=(3, 5)) * 50
    np.testing.assert_allclose(softmax(x).sum(axis=-1), 1.0, **TOL)


def test_defaults_are_the_papers() -> None:
    assert (zc.AGENTS_DEFAULT, zc.CCA_GROUP_DEFAULT, zc.CCA_WINDOW_DEFAULT) == (49, 16, 1024)
    params = dict(load_cascade("attention-cca").params)
    assert (params["M0"], params["W"]) == (16, 1024)
    assert dict(load_cascade("attention-agent").params)["J"] == 49


# ----------------------------------------------------------------------------- SeqBoat's SMA layer

SMA = "attention-seqboat-sma"


def test_the_sma_layer_counts_the_write_ups_passes() -> None:
    entry = next(e for e in ZOO if e.name == SMA)
    assert entry.family == SELECTION and "2306.11197" in entry.notes
    report = count_passes(load_cascade(SMA))
    # 1 pass for the SSM scan over all tokens, 1 over the activated ones (variants.md #14)
    assert entry.passes == report.passes == 2
    assert [report.pass_of(t) for t in ("SS", "G", "QK", "AV")] == [1, 1, 2, 2]
    assert "token activation" in load_cascade(SMA).assumptions[0]


@pytest.mark.parametrize("window", [1, 2, 5])
def test_the_sma_layer_matches_the_reference(window: int) -> None:
    sizes = {"B": 2, "D": 3, "S": 2, "M": 9, "P": 9, "E": 3, "F": 2, "N": 5, "U": 5}
    check(SMA, {**sizes, "N0": 2, "W": window})


def test_the_declared_picks_are_the_activated_tokens() -> None:
    """The SSM and router by a per-token loop pick the tokens; the cascade run on those picks
    is attention over the full sequence restricted to them (causal exact window in compacted
    positions), and its router logits are the loop's."""
    m, window = 12, 3
    sizes = {"B": 1, "D": 4, "S": 3, "M": m, "P": m, "E": 3, "F": 2, "N0": 4, "W": window}
    cascade = load_cascade(SMA)
    rng = np.random.default_rng(11)
    inputs = random_inputs(cascade, {**sizes, "N": m, "U": m}, seed=5)
    inputs["AS"] = rng.uniform(0.2, 0.9, size=(4, 3))  # a damped (stable) EMA
    g = seqboat_router_logits(inputs["X"], inputs["AS"], inputs["BS"], inputs["CS"], inputs["WG"])
    active = np.flatnonzero(g[0] > 0)
    assert 2 <= active.size < m  # the seed activates some tokens, not all
    n = int(active.size)
    picks = {"QC": inputs["Q"][..., active], "KC": inputs["K"][..., active],
             "VC": inputs["V"][..., active]}  # fmt: skip
    out = evaluate(cascade, {**inputs, **picks}, {**sizes, "N": n, "U": n})
    np.testing.assert_allclose(np.asarray(out["G"]), g, **TOL)
    # attention over all M tokens, each activated query seeing the activated keys at most
    # `window` activated positions back
    rank = np.full(m, -1)
    rank[active] = np.arange(n)
    q_pos, k_pos = rank[:, None], rank[None, :]
    visible = (q_pos >= 0) & (k_pos >= 0) & (k_pos <= q_pos) & (q_pos - k_pos <= window)
    full = masked_softmax_attention(inputs["Q"], inputs["K"], inputs["V"], visible)
    np.testing.assert_allclose(np.asarray(out["AV"]), full[..., active], **TOL)
