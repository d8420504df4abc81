"""Plain numpy references for the zoo's selection variants, from each paper's definition.

Independent of the cascades' Einsums: explicit loops over chunks, clusters and query
blocks, plain softmax attention inside each. Layouts follow the cascades (Q[..., E, P],
K[..., E, M], V[..., F, M] -> AV[..., F, P]), unscaled. The selections themselves (top-k,
sort) are data-dependent and live outside the cascades, whose gathered operands are
inputs: these references take the same gathered operands, and the unit tests
(tests/unit/einsum_ir/test_zoo_selection.py) also run the paper's selection end to end
(`hcam_layer`, ...) and feed its gathers to the cascades. `_DCAL: Layout = (
    ("QS", ("B", "H", "E", "R")),
    ("K", ("B", "H", "E", "M")),
    ("V", ("B", "H", "F", "M")),
    ("QC", ("B", "H", "E")),
    ("QL", ("B", "H", "L", "E", "P")),
    ("KL", ("B", "H", "L", "E", "M")),
    ("RW", ("B", "L", "P")),
)

SELECTION_CHECKS` maps each
built-in name to its (input layout, output, compute).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from attnsim.einsum_ir.reference_zoo import Array, Compute, Layout


def softmax_rows(scores: Array) -> Array:
    """Softmax over the last axis."""
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    out: Array = shifted / shifted.sum(axis=-1, keepdims=True)
    return out


def attend(q: Array, k: Array, v: Array) -> Array:
    """One head, no mask: q (E, P), k (E, M), v (F, M) -> (F, P)."""
    out: Array = (softmax_rows(q.T @ k) @ v.T).T
    return out


def chunk_summaries(k: Array, chunk: int) -> Array:
    """Mean key of each chunk of `chunk` keys, the memory zero-padded to whole chunks.

    k: (E, M) -> (E, ceil(M / chunk)); a partial last chunk's summary is its sum / chunk.
    """
    n_e, n_k = k.shape
    chunks = -(-n_k // chunk)
    padded = np.zeros((n_e, chunks * chunk))
    padded[:, :n_k] = k
    out: Array = padded.reshape(n_e, chunks, chunk).sum(axis=-1) / chunk
    return out


def hcam_head(q: Array, kc: Array, vc: Array, chunk: int) -> Array:
    """HCAM's detailed recall over given chunks, one head: sum_j w_j attend(q, chunk j).

    kc (E, N), vc (F, N): the selected chunks laid end to end, `chunk` keys each (the last
    may be shorter). w = softmax over the chunks of q . summary(chunk) (HCAM's relevance
    weights renormalized over the selected chunks).
    """
    starts = range(0, kc.shape[1], chunk)
    summaries = chunk_summaries(kc, chunk)  # (E, k)
    weights = softmax_rows(q.T @ summaries)  # (P, k)
    out = np.zeros((vc.shape[0], q.shape[1]))
    for j, start in enumerate(starts):
        inside = attend(q, kc[:, start : start + chunk], vc[:, start : start + chunk])
        out += weights[:, j] * inside
    return out


def hcam_layer(
    q: Array, k: Array, v: Array, chunk: int, top: int
) -> tuple[Array, npt.NDArray[np.int64]]:
    """HCAM end to end for one head and one query q (E, 1) over a memory k (E, M), v (F, M).

    Relevance = softmax over all chunk summaries; keep the `top` most relevant chunks;
    attend inside each; sum with the relevance renormalized over the kept chunks. Returns the
    output (F, 1) and the kept chunks' indices, most relevant first.
    """
    relevance = softmax_rows(q.T @ chunk_summaries(k, chunk))[0]
    kept: npt.NDArray[np.int64] = np.argsort(-relevance, kind="stable")[:top]
    weights = relevance[kept] / relevance[kept].sum()
    out = np.zeros((v.shape[0], 1))
    for w, u in zip(weights, kept, strict=True):
        span = slice(u * chunk, (u + 1) * chunk)
        out += w * attend(q, k[:, span], v[:, span])
    return out, kept


def _hcam(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    q, kc, vc = (np.asarray(inputs[n], dtype=np.float64) for n in ("Q", "KC", "VC"))
    b, h = q.shape[:2]
    out = np.zeros((b, h, vc.shape[-2], q.shape[-1]))
    for i in range(b):
        for j in range(h):
            out[i, j] = hcam_head(q[i, j], kc[i, j], vc[i, j], sizes["N0"])
    return out


def _routing(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    """Each cluster's routed queries attend to its routed keys (block-diagonal attention)."""
    qr, kr, vr = (np.asarray(inputs[n], dtype=np.float64) for n in ("QR", "KR", "VR"))
    b, h, u = qr.shape[:3]
    out = np.zeros((b, h, u, vr.shape[-2], qr.shape[-1]))
    for i in range(b):
        for j in range(h):
            for c in range(u):
                out[i, j, c] = attend(qr[i, j, c], kr[i, j, c], vr[i, j, c])
    return out


def hip_select(
    q: Array, k: Array, blocks: int, block_k: int
) -> tuple[list[npt.NDArray[np.int64]], list[Array], npt.NDArray[np.int64]]:
    """HiP's tree walk for one query block q (E, b_q) over keys k (E, M), one head.

    M = 2 * blocks * len0 with len0 = block_k * 2^r. Round 1 cuts the keys into 2 * blocks
    segments of len0; each later round halves the kept segments. A segment's score is the
    max over the block's rows of q . k[start + len // 2] (its centre key); the `blocks`
    best are kept (ties: the earlier segment). Returns, per round, the representatives'
    positions and their scores (rows x segments), and the kept blocks' starts, in order.
    """
    n_keys = k.shape[1]
    length = n_keys // (2 * blocks)
    starts = np.arange(2 * blocks) * length
    centres, scores = [], []
    while True:
        reps = starts + length // 2
        score = q.T @ k[:, reps]  # (b_q, 2 * blocks)
        centres.append(reps)
        scores.append(score)
        kept = np.sort(starts[np.argsort(-score.max(axis=0), kind="stable")[:blocks]])
        if length == block_k:
            return centres, scores, kept
        length //= 2
        starts = np.stack([kept, kept + length], axis=1).reshape(-1)


def rollout_map(q: Array, k: Array) -> Array:
    """DCAL's Abar for one layer: heads averaged, (A + I) / 2, rows renormalized.

    q (H, E, T), k (H, E, T) -> (T, T), rows the querying token, columns the key token.
    """
    a = np.mean([softmax_rows(qh.T @ kh) for qh, kh in zip(q, k, strict=True)], axis=0)
    a = 0.5 * a + 0.5 * np.eye(a.shape[0])
    out: Array = a / a.sum(axis=1, keepdims=True)
    return out


def dcal_rollout(maps: list[Array]) -> Array:
    """S_i = Abar_i Abar_(i-1) ... Abar_1 (matrix products, DCAL Sec. 3.2); maps[0] is layer 1."""
    out = np.eye(maps[0].shape[0])
    for a in maps:
        out = a @ out
    return out


def _dcal(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    """GLCA: the selected queries attend to every key of the layer."""
    qs, k, v = (np.asarray(inputs[n], dtype=np.float64) for n in ("QS", "K", "V"))
    b, h = qs.shape[:2]
    out = np.zeros((b, h, v.shape[-2], qs.shape[-1]))
    for i in range(b):
        for j in range(h):
            out[i, j] = attend(qs[i, j], k[i, j], v[i, j])
    return out


_HCAM: Layout = (
    ("Q", ("B", "H", "E", "P")),
    ("K", ("B", "H", "E", "M")),
    ("KC", ("B", "H", "E", "N")),
    ("VC", ("B", "H", "F", "N")),
)


def _hip(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    """Each query block attends to its own kept blocks only."""
    qb, kg, vg = (np.asarray(inputs[n], dtype=np.float64) for n in ("QB", "KG", "VG"))
    b, h, u = qb.shape[:3]
    out = np.zeros((b, h, u, vg.shape[-2], qb.shape[-1]))
    for i in range(b):
        for j in range(h):
            for c in range(u):
                out[i, j, c] = attend(qb[i, j, c], kg[i, j, c], vg[i, j, c])
    return out


_HIP: Layout = (
    ("QB", ("B", "H", "U", "E", "I")),
    ("K", ("B", "H", "E", "M")),
    ("KR", ("B", "H", "U", "L", "E", "J")),
    ("KG", ("B", "H", "U", "E", "N")),
    ("VG", ("B", "H", "U", "F", "N")),
)

_ROUTING: Layout = (
    ("Q", ("B", "H", "E", "P")),
    ("K", ("B", "H", "E", "M")),
    ("C", ("H", "E", "U")),
    ("QR", ("B", "H", "U", "E", "I")),
    ("KR", ("B", "H", "U", "E", "N")),
    ("VR", ("B", "H", "U", "F", "N")),
)

_DCAL: Layout = (
    ("QS", ("B", "H", "E", "R")),
    ("K", ("B", "H", "E", "M")),
    ("V", ("B", "H", "F", "M")),
    ("QC", ("B", "H", "E")),
    ("QL", ("B", "H", "L", "E", "P")),
    ("KL", ("B", "H", "L", "E", "M")),
    ("RW", ("B", "L", "P")),
)

SELECTION_CHECKS: dict[str, tuple[Layout, str, Compute]] = {
    "attention-hcam": (_HCAM, "AV", _hcam),
    "attention-routing": (_ROUTING, "AV", _routing),
    "attention-hip": (_HIP, "AV", _hip),
    "attention-dcal": (_DCAL, "AV", _dcal),
}
