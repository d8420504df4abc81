"""Plain numpy references for the zoo's compress variants, from each paper's definition.

Independent of the cascades' Einsums: Agent attention pools the queries with array slices
and runs two explicit softmaxes; CCA pools each group with its last query and builds the
mask of the reference code's `generate_mask` (chenyaofo/CCA-Attention) over the
concatenation [core tokens, keys]; LongVQ quantizes the keys by argmin and runs softmax
attention over the quantized keys; SeqBoat is a masked softmax with the code's exact local
window (its SMA layer adds the SSM scan and router logits, `seqboat_router_logits`, a loop
over the tokens). Layouts follow the cascades (Q[..., E, P], K[..., E, M], V[..., F, M] ->
AV[..., F, P]), unscaled. `COMPRESS_CHECKS` maps each built-in name to its (input layout,
output, compute).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from attnsim.einsum_ir.reference_zoo import Compute, Layout, masked_softmax_attention

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def softmax(x: Array, axis: int = -1) -> Array:
    """A numerically stable softmax along `axis`."""
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    out: Array = z / z.sum(axis=axis, keepdims=True)
    return out


# ----------------------------------------------------------------------------- Agent attention


def agent_attention(
    q: Array, k: Array, v: Array, agent_bias: Array, query_bias: Array, pool: int
) -> Array:
    """Agent attention (Han et al., arXiv 2312.08874) with agents pooled from consecutive queries.

    q (B, H, E, P), k (B, H, E, M), v (B, H, F, M); agent_bias (H, J, M), query_bias (H, J, P).
    Agent j is the mean of queries j*pool .. j*pool + pool - 1, for the first
    min(J, ceil(P / pool)) pools; the biases' rows beyond them are unused.
    """
    n_q = q.shape[-1]
    n_agents = min(agent_bias.shape[1], -(-n_q // pool))
    agents = np.stack(
        [q[..., j * pool : (j + 1) * pool].mean(axis=-1) for j in range(n_agents)], axis=-1
    )  # (B, H, E, J)
    scores = np.einsum("bhej,bhem->bhjm", agents, k) + agent_bias[None, :, :n_agents]
    agent_v = np.einsum("bhjm,bhfm->bhjf", softmax(scores), v)
    scores = np.einsum("bhep,bhej->bhpj", q, agents) + query_bias[:, :n_agents].transpose(0, 2, 1)
    out: Array = np.einsum("bhpj,bhjf->bhfp", softmax(scores), agent_v)
    return out


def _agent(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    x = {n: np.asarray(a, dtype=np.float64) for n, a in inputs.items()}
    return agent_attention(x["Q"], x["K"], x["V"], x["AB"], x["QB"], sizes["U0"])


# ----------------------------------------------------------------------------- CCA


def cca_mask(seq_len: int, group: int, window: int) -> BoolArray:
    """The reference code's `generate_mask`: (seq_len, pools + seq_len), True = visible.

    Row r (1-based) sees pooled group n (1-based) when r > window and
    floor((r - window) / group) >= n, and key c (1-based) when r - W' < c <= r, with the
    adaptive window W' = window + max(r - pooled - window, 0), pooled = the tokens of the
    groups it sees.
    """
    n_pool = max((seq_len - window) // group, 0)
    row = np.arange(seq_len)[:, None] + 1
    pool = np.arange(n_pool)[None, :] + 1
    pool_mask = (row > window) & (np.floor_divide(row - window, group) >= pool)
    pooled = np.maximum(np.floor_divide(row - window, group) * group, 0)
    adaptive = window + np.maximum(row - pooled - window, 0)
    col = np.arange(seq_len)[None, :] + 1
    window_mask = (row >= col) & (row - adaptive < col)
    visible: BoolArray = np.concatenate([pool_mask, window_mask], axis=1)
    return visible


def cca_attention(q: Array, k: Array, v: Array, q_keys: Array, group: int, window: int) -> Array:
    """CCA attention for the last P of M positions (bottom-right aligned), as the code does.

    q (B, H, E, P); k, q_keys (B, H, E, M); v (B, H, F, M). Each full group of `group` keys
    is pooled with weights softmax(q_last . k) of its last position's query (q_keys); the
    queries run one softmax over [core tokens, keys] under `cca_mask`.
    """
    n_q, n_k = q.shape[-1], k.shape[-1]
    n_pool = n_k // group
    groups = slice(0, n_pool * group)
    kg = k[..., groups].reshape(*k.shape[:-1], n_pool, group)  # (B, H, E, U, g)
    vg = v[..., groups].reshape(*v.shape[:-1], n_pool, group)
    last = q_keys[..., group - 1 : n_pool * group : group]  # (B, H, E, U)
    weights = softmax(np.einsum("bheu,bheug->bhug", last, kg))
    core_k = np.einsum("bhug,bheug->bheu", weights, kg)
    core_v = np.einsum("bhug,bhfug->bhfu", weights, vg)
    visible = cca_mask(n_k, group, window)  # over all n_k positions, pools of full groups
    shown = visible.shape[1] - n_k  # pools the mask knows (groups before the last window)
    full = np.concatenate([visible[:, :shown], np.zeros((n_k, n_pool - shown), bool)], axis=1)
    full = np.concatenate([full, visible[:, shown:]], axis=1)
    # query p sits at key position p + M - P; one before the first key sees nothing
    full = np.concatenate([np.zeros((max(n_q - n_k, 0), full.shape[1]), bool), full])[-n_q:]
    keys = np.concatenate([core_k, k], axis=-1)
    values = np.concatenate([core_v, v], axis=-1)
    return masked_softmax_attention(q, keys, values, full)


def _cca(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    x = {n: np.asarray(a, dtype=np.float64) for n, a in inputs.items()}
    return cca_attention(x["Q"], x["K"], x["V"], x["QM"], sizes["M0"], sizes["W"])


# ----------------------------------------------------------------------------- LongVQ


def vq_attention(q: Array, k: Array, v: Array, codebook: Array) -> Array:
    """Softmax attention over the keys quantized to their nearest codeword (Transformer-VQ).

    q (B, H, E, P), k (B, H, E, M), v (B, H, F, M), codebook (H, E, S).
    """
    dist = ((k[:, :, :, None, :] - codebook[None, :, :, :, None]) ** 2).sum(axis=2)  # B,H,S,M
    nearest = dist.argmin(axis=2)  # (B, H, M)
    b, h = np.indices(nearest.shape[:2])
    quantized = codebook[h[..., None], :, nearest].transpose(0, 1, 3, 2)  # (B, H, E, M)
    return masked_softmax_attention(q, quantized, v, np.ones((q.shape[-1], k.shape[-1]), bool))


def _vq(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    x = {n: np.asarray(a, dtype=np.float64) for n, a in inputs.items()}
    return vq_attention(x["Q"], x["K"], x["V"], x["CB"])


# ----------------------------------------------------------------------------- SeqBoat


def seqboat_visible(n_q: int, n_k: int, window: int) -> BoolArray:
    """The code's causal exact window on the compacted sequence: q - window <= m <= q."""
    qpos = np.arange(n_q)[:, None] + n_k - n_q
    m = np.arange(n_k)[None, :]
    visible: BoolArray = (m <= qpos) & (qpos - m <= window)
    return visible


def _seqboat(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    q, k, v = (np.asarray(inputs[n], dtype=np.float64) for n in ("Q", "K", "V"))
    return masked_softmax_attention(q, k, v, seqboat_visible(q.shape[-1], k.shape[-1], sizes["W"]))


def seqboat_router_logits(x: Array, a: Array, b: Array, c: Array, wg: Array) -> Array:
    """SeqBoat's SSM (a damped EMA per channel) over all tokens, then the router's logits.

    x [..., D, M]; a, b, c [D, S]: state[d, s] <- a[d, s] state[d, s] + b[d, s] x[d, m],
    y[d, m] = sum_s c[d, s] state[d, s] after token m; G[m] = sum_d wg[d] y[d, m].
    """
    state = np.zeros((*x.shape[:-1], a.shape[-1]))
    y = np.zeros(x.shape)
    for m in range(x.shape[-1]):
        state = a * state + b * x[..., m, None]
        y[..., m] = (c * state).sum(axis=-1)
    out: Array = np.einsum("d,...dm->...m", wg, y)
    return out


def _seqboat_sma(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    q, k, v = (np.asarray(inputs[n], dtype=np.float64) for n in ("QC", "KC", "VC"))
    return masked_softmax_attention(q, k, v, seqboat_visible(q.shape[-1], k.shape[-1], sizes["W"]))


_MH: Layout = (
    ("Q", ("B", "H", "E", "P")),
    ("K", ("B", "H", "E", "M")),
    ("V", ("B", "H", "F", "M")),
)

COMPRESS_CHECKS: dict[str, tuple[Layout, str, Compute]] = {
    "attention-agent": (
        (*_MH, ("AB", ("H", "J", "M")), ("QB", ("H", "J", "P"))),
        "AV",
        _agent,
    ),
    "attention-cca": ((*_MH, ("QM", ("B", "H", "E", "M"))), "AV", _cca),
    "attention-longvq": ((*_MH, ("CB", ("H", "E", "S"))), "AV", _vq),
    "attention-seqboat": (
        (("Q", ("B", "E", "P")), ("K", ("B", "E", "M")), ("V", ("B", "F", "M"))),
        "AV",
        _seqboat,
    ),
    "attention-seqboat-sma": (
        (
            ("X", ("B", "D", "M")),
            ("AS", ("D", "S")),
            ("BS", ("D", "S")),
            ("CS", ("D", "S")),
            ("WG", ("D",)),
            ("Q", ("B", "E", "P")),
            ("K", ("B", "E", "M")),
            ("V", ("B", "F", "M")),
            ("QC", ("B", "E", "U")),
            ("KC", ("B", "E", "N")),
            ("VC", ("B", "F", "N")),
        ),
        "AV",
        _seqboat_sma,
    ),
}
