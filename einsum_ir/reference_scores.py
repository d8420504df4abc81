"""Plain numpy references for the zoo's scores variants, from each paper's definition.

Independent of the cascades' Einsums: each builds the paper's weight matrix explicitly
(a softmax over M + 1 columns for the sink logit, the gated mix of two matrices for GPSA,
the relative term gathered by offset for RCMHA, the calibrated weights for ACT, Khatri-Rao
keys and values for Kronecker attention) and multiplies it by the values; GAAM follows the
authors' module (mean, unbiased variance, product of Gaussians, normalized). Layouts follow
the cascades (Q[..., E, P], K[..., E, M], V[..., F, M] -> AV[..., F, P]), unscaled.
`SCORE_CHECKS` maps each built-in name to its (input layout, output, compute).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from attnsim.einsum_ir.reference_zoo import Compute, Layout

Array = npt.NDArray[np.float64]
GAAM_EPS = 1e-8


def sigmoid(x: Array) -> Array:
    """The logistic function."""
    out: Array = 1.0 / (1.0 + np.exp(-x))
    return out


def softmax_rows(scores: Array) -> Array:
    """Softmax over the last axis."""
    top = scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores - top)
    out: Array = weights / weights.sum(axis=-1, keepdims=True)
    return out


def weights_times_values(weights: Array, v: Array) -> Array:
    """(..., P, M) weights times V (..., F, M) -> (..., F, P)."""
    out: Array = np.einsum("...pm,...fm->...fp", weights, v)
    return out


def scores_of(q: Array, k: Array) -> Array:
    """Q^T K as (..., P, M)."""
    out: Array = np.einsum("...ep,...em->...pm", q, k)
    return out


def sink_logit_attention(q: Array, k: Array, v: Array, sink: Array) -> Array:
    """Softmax over [b_h, scores] (a sink column of value 0 first), the sink dropped.

    q (B, H, E, P), sink (H,).
    """
    scores = scores_of(q, k)
    column = np.broadcast_to(sink[None, :, None, None], (*scores.shape[:-1], 1))
    weights = softmax_rows(np.concatenate([column, scores], axis=-1))[..., 1:]
    return weights_times_values(weights, v)


def gpsa_attention(q: Array, k: Array, v: Array, gate: Array, positional: Array) -> Array:
    """ConViT's GPSA: (1 - sigmoid(lambda_h)) softmax(QK) + sigmoid(lambda_h) PP_h.

    gate (H,), positional PP (H, M, P): the positional attention of each head.
    """
    g = sigmoid(gate)[None, :, None, None]
    weights = (1.0 - g) * softmax_rows(scores_of(q, k)) + g * positional.transpose(0, 2, 1)[None]
    return weights_times_values(weights, v)


def gpsa_positional(v_pos: Array, side: int) -> Array:
    """ConViT's positional attention on a side x side patch grid (Eq. 5 and 6).

    v_pos (H, 3) per head; r[p,m] = (dx, dy, dx^2 + dy^2) with (dx, dy) the offset of patch
    m from patch p; PP_h[m,p] = softmax_m(v_pos,h . r[p,m]), returned as (H, M, P).
    """
    ys, xs = np.divmod(np.arange(side * side), side)
    dx = xs[None, :] - xs[:, None]  # (P, M): key minus query
    dy = ys[None, :] - ys[:, None]
    rel = np.stack([dx, dy, dx * dx + dy * dy], axis=-1).astype(np.float64)
    logits = np.einsum("hc,pmc->hpm", v_pos, rel)
    out: Array = softmax_rows(logits).transpose(0, 2, 1)
    return out


def rcmha_attention(q: Array, k: Array, v: Array, u: Array, w: Array, table: Array) -> Array:
    """Transformer-XL's score (Q + u) K + (Q + w) R[p - m], then softmax and V.

    u, w (H, E); table R (H, E, D) with row p - m + M - 1 holding offset p - m.
    """
    n_q, n_k = q.shape[-1], k.shape[-1]
    offset = np.arange(n_q)[:, None] - np.arange(n_k)[None, :] + n_k - 1  # (P, M)
    rel = table[:, :, offset]  # (H, E, P, M): R at each pair's offset, gathered
    content = scores_of(q + u[None, :, :, None], k)
    position = np.einsum("bhep,hepm->bhpm", q + w[None, :, :, None], rel)
    return weights_times_values(softmax_rows(content + position), v)


def act_attention(q: Array, k: Array, v: Array, beta: Array, sinks: int) -> Array:
    """ACT: the sinks' weights scaled by beta_h, the rest by (1 - beta s) / (1 - s).

    The sink set is the first `sinks` keys; beta (H,). Without a rest key the row keeps
    beta times its weights.
    """
    weights = softmax_rows(scores_of(q, k))
    is_sink = np.arange(k.shape[-1]) < sinks
    share = weights[..., is_sink].sum(axis=-1, keepdims=True)  # s[p]
    b = beta[None, :, None, None]
    if is_sink.all():
        return weights_times_values(b * weights, v)
    others = weights[..., ~is_sink].sum(axis=-1, keepdims=True)  # 1 - s, without cancelling
    rest = (others + (1.0 - b) * share) / others  # (1 - beta s) / (1 - s)
    calibrated = np.where(is_sink, b * weights, rest * weights)
    return weights_times_values(calibrated, v)


def gaam(x: Array, offsets: Array, c: Array) -> Array:
    """The authors' GaussianAdaptiveAttention.forward along the last axis, per head.

    x (B, H, F, M); offsets, c (H, I). var is unbiased (0 for one element) plus eps.
    """
    n = x.shape[-1]
    mean = x.mean(axis=-1, keepdims=True)
    var = (x.var(axis=-1, ddof=1, keepdims=True) if n > 1 else np.zeros_like(mean)) + GAAM_EPS
    mixture = np.ones_like(x)
    for i in range(offsets.shape[1]):
        adjusted = mean + offsets[None, :, i, None, None]
        y = (x - adjusted) / np.sqrt(var)
        ci = c[None, :, i, None, None]
        mixture = mixture * np.exp(-(y**2) / (2.0 * ci**2)) / np.sqrt(2 * np.pi * ci**2)
    mixture = mixture / np.maximum(mixture.sum(axis=-1, keepdims=True), GAAM_EPS)
    out: Array = x * mixture
    return out


def kronecker_attention(q: Array, k1: Array, k2: Array, v1: Array, v2: Array) -> Array:
    """Softmax attention over the Khatri-Rao keys K1 (x) K2 and values V1 (x) V2 (M N keys)."""
    keys = (k1[..., :, None] * k2[..., None, :]).reshape(*k1.shape[:-1], -1)
    values = (v1[..., :, None] * v2[..., None, :]).reshape(*v1.shape[:-1], -1)
    return weights_times_values(softmax_rows(scores_of(q, keys)), values)


# ----------------------------------------------------------------------------- checks


def _get(inputs: Mapping[str, Array], *names: str) -> list[Array]:
    return [np.asarray(inputs[n], dtype=np.float64) for n in names]


_MH: Layout = (
    ("Q", ("B", "H", "E", "P")),
    ("K", ("B", "H", "E", "M")),
    ("V", ("B", "H", "F", "M")),
)


def _sink(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    return sink_logit_attention(*_get(inputs, "Q", "K", "V", "SB"))


def _gpsa(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    return gpsa_attention(*_get(inputs, "Q", "K", "V", "GL", "PP"))


def _rcmha(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    return rcmha_attention(*_get(inputs, "Q", "K", "V", "UB", "WB", "R"))


def _act(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    q, k, v, beta = _get(inputs, "Q", "K", "V", "CB")
    return act_attention(q, k, v, beta, sizes["S"])


def _gaam(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    return gaam(*_get(inputs, "X", "DG", "CG"))


def _kronecker(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    return kronecker_attention(*_get(inputs, "Q", "K1", "K2", "V1", "V2"))


SCORE_CHECKS: dict[str, tuple[Layout, str, Compute]] = {
    "attention-sink-logit": ((*_MH, ("SB", ("H",))), "AV", _sink),
    "attention-gpsa": ((*_MH, ("GL", ("H",)), ("PP", ("H", "M", "P"))), "AV", _gpsa),
    "attention-rcmha": (
        (*_MH, ("UB", ("H", "E")), ("WB", ("H", "E")), ("R", ("H", "E", "D"))),
        "AV",
        _rcmha,
    ),
    "attention-act": ((*_MH, ("CB", ("H",))), "AV", _act),
    "attention-gaam": (
        (("X", ("B", "H", "F", "M")), ("DG", ("H", "I")), ("CG", ("H", "I"))),
        "Y",
        _gaam,
    ),
    "attention-kronecker": (
        (
            ("Q", ("B", "H", "E", "P")),
            ("K1", ("B", "H", "E", "M")),
            ("K2", ("B", "H", "E", "N")),
            ("V1", ("B", "H", "F", "M")),
            ("V2", ("B", "H", "F", "N")),
        ),
        "AV",
        _kronecker,
    ),
}
