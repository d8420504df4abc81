"""Plain numpy references for the variant zoo, written from each paper's definition.

Independent of the cascades' Einsums and of their band-union masks: every mask here is
built from the paper's predicate (integer division for groups and frames, per-head
windows), and attention is a plain softmax over the visible keys. Layouts follow the
cascades (Q[..., E, P], K[..., E, M], V[..., F, M] -> AV[..., F, P]), unscaled; a row that
sees no key gives 0 (FlashAttention's convention). `ZOO_CHECKS` maps each built-in name to
its (input layout, output, compute) for `einsum_ir.reference.REFERENCES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from attnsim.einsum_ir.library import zoo_masks as zm

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Compute = Callable[[Mapping[str, Array], Mapping[str, int]], Array]
Layout = tuple[tuple[str, tuple[str, ...]], ...]


def masked_softmax_attention(q: Array, k: Array, v: Array, visible: BoolArray) -> Array:
    """Softmax over the visible keys of Q^T K, times V, in the cascades' layout.

    `visible` broadcasts to (..., P, M); rows without a visible key give 0.
    """
    scores = np.einsum("...ep,...em->...pm", q, k)
    visible = np.broadcast_to(visible, scores.shape)
    masked = np.where(visible, scores, -np.inf)
    top = masked.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.where(visible, np.exp(masked - top), 0.0)
    total = weights.sum(axis=-1, keepdims=True)
    weights = weights / np.where(total > 0, total, 1.0)
    out: Array = np.einsum("...pm,...fm->...fp", weights, v)
    return out


def _positions(n_q: int, n_k: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    return np.arange(n_q)[:, None], np.arange(n_k)[None, :]


def group_of(position: npt.NDArray[np.int64], parts: int, length: int) -> npt.NDArray[np.int64]:
    """The part (of `parts` equal parts of a sequence of `length`) a position falls in."""
    return (parts * position) // length


# ----------------------------------------------------------------------------- masks


def sinklora_visible(n_q: int, n_k: int, sinks: int, groups: int) -> BoolArray:
    """SF-Attn: causal, in the query's group of n_k / groups tokens, or one of the sinks."""
    p, m = _positions(n_q, n_k)
    same = group_of(m, groups, n_k) == group_of(p, groups, n_k)
    visible: BoolArray = (m <= p) & (same | (m < sinks))
    return visible


def block_visible(n_q: int, n_k: int, groups: int) -> BoolArray:
    """Bidirectional attention inside each of `groups` equal groups of the sequence."""
    p, m = _positions(n_q, n_k)
    visible: BoolArray = group_of(m, groups, n_k) == group_of(p, groups, n_k)
    return visible


def aki_visible(n_q: int, n_k: int, pre: int, img: int, txt: int) -> BoolArray:
    """AKI's modality-mutual attention: causal, plus image queries x later question keys."""
    p, m = _positions(n_q, n_k)
    image_query = (p >= pre) & (p < pre + img)
    question_key = (m >= pre + img) & (m < pre + img + txt)
    return (m <= p) | (image_query & question_key)


def ccam_visible(n_q: int, n_k: int, frames: int) -> BoolArray:
    """Video-CCAM: query group g(p) sees the keys of frames f(m) <= g(p)."""
    p, m = _positions(n_q, n_k)
    visible: BoolArray = group_of(m, frames, n_k) <= group_of(p, frames, n_q)
    return visible


def vdit_visible(n_q: int, n_k: int, frames: int, global_frames: int) -> BoolArray:
    """Efficient-vDiT: the query's own frame, or one of the first global frames."""
    p, m = _positions(n_q, n_k)
    frame_m = group_of(m, frames, n_k)
    visible: BoolArray = (frame_m == group_of(p, frames, n_k)) | (frame_m < global_frames)
    return visible


def moa_visible(n_q: int, n_k: int, sinks: int, windows: tuple[int, ...]) -> BoolArray:
    """MoA with its head classes laid end to end: class x holds positions x n_k / X on.

    A query sees, causally and inside its class, the class's first `sinks` keys and the
    keys within the class's window.
    """
    p, m = _positions(n_q, n_k)
    classes = len(windows)
    cls_p, cls_m = group_of(p, classes, n_k), group_of(m, classes, n_k)
    first = -((-cls_m * n_k) // classes)  # the first position of the key's class
    window = np.asarray(windows)[np.minimum(cls_p, classes - 1)]
    inside = (cls_p == cls_m) & (m <= p)
    visible: BoolArray = inside & ((m - first < sinks) | (p - m < window))
    return visible


# ----------------------------------------------------------------------------- references


def _qkv(inputs: Mapping[str, Array]) -> tuple[Array, Array, Array]:
    return tuple(np.asarray(inputs[n], dtype=np.float64) for n in ("Q", "K", "V"))  # type: ignore[return-value]


def _masked(visible: Callable[[int, int, Mapping[str, int]], BoolArray]) -> Compute:
    def compute(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
        q, k, v = _qkv(inputs)
        return masked_softmax_attention(q, k, v, visible(q.shape[-1], k.shape[-1], sizes))

    return compute


def _moa(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    q, k, v = _qkv(inputs)
    windows = tuple(sizes[f"W{x}"] for x in range(zm.MOA_CLASSES))
    return masked_softmax_attention(
        q, k, v, moa_visible(q.shape[-1], k.shape[-1], sizes["S"], windows)
    )


def sigma_attention(q: Array, k: Array, v: Array) -> Array:
    """DiffQKV with flat head numbers: head h reads key h // (H / G_K), value h // (H / G_V).

    q: (B, G, GV, R, E, P), k: (B, G, E, M), v: (B, G, GV, F, M) with G_K = G key heads and
    G_V = G GV value heads; returns (B, G, GV, R, F, P).
    """
    b, g, gv, r, e, p = q.shape
    heads = g * gv * r
    flat_q = q.reshape(b, heads, e, p)
    flat_v = v.reshape(b, g * gv, *v.shape[-2:])
    h = np.arange(heads)
    keys = k[:, h // (heads // g)]
    values = flat_v[:, h // (heads // (g * gv))]
    out = masked_softmax_attention(flat_q, keys, values, np.ones((p, k.shape[-1]), dtype=bool))
    return out.reshape(b, g, gv, r, -1, p)


def bam_attention(q: Array, k: Array, v: Array) -> Array:
    """Every expert x's queries (axis 2) over the shared K and V of its head."""
    p, m = q.shape[-1], k.shape[-1]
    experts = [
        masked_softmax_attention(q[:, :, x], k, v, np.ones((p, m), dtype=bool))
        for x in range(q.shape[2])
    ]
    return np.stack(experts, axis=2)


def kdgqa_allocation(k: Array, heads: int) -> npt.NDArray[np.int64]:
    """KDGQA's query heads per K/V head, as the authors' module computes them.

    k: (B, G, E, M). Per-(batch, head) Frobenius norms summed over the batch, min-max
    normalised, scaled to `heads` and rounded (halves to even, as torch.round), then the
    sum is fixed to `heads` by taking one from the first largest count or giving one to
    the first smallest, one at a time. Equal norms (0/0 in the module): uniform x = 1.
    """
    norms = np.linalg.norm(k.reshape(*k.shape[:2], -1), axis=-1).sum(axis=0)
    low, high = norms.min(), norms.max()
    x = (norms - low) / (high - low) if high > low else np.ones_like(norms)
    counts: npt.NDArray[np.int64] = np.round(x / x.sum() * heads).astype(np.int64)
    while counts.sum() > heads:
        counts[np.argmax(counts)] -= 1
    while counts.sum() < heads:
        counts[np.argmin(counts)] += 1
    return counts


def kdgqa_attention(q: Array, k: Array, v: Array) -> Array:
    """Query heads split contiguously by `kdgqa_allocation`; group g attends with K/V head g."""
    kv_head = np.repeat(np.arange(k.shape[1]), kdgqa_allocation(k, q.shape[1]))
    visible = np.ones((q.shape[-1], k.shape[-1]), dtype=bool)
    return masked_softmax_attention(q, k[:, kv_head], v[:, kv_head], visible)


def rope(x1: Array, x2: Array, pos: npt.ArrayLike, base: int) -> tuple[Array, Array]:
    """Llama's rotary embedding of x = [x1; x2] (halves on axis -2) at positions `pos`.

    `pos` broadcasts against the last axis (tokens); frequency i is base^(-i / half).
    """
    half = x1.shape[-2]
    theta = float(base) ** (-np.arange(half) / half)
    angle = np.asarray(pos, dtype=np.float64)[..., None, :] * theta[:, None]
    cos, sin = np.cos(angle), np.sin(angle)
    return x1 * cos - x2 * sin, x2 * cos + x1 * sin


def _softmax_rows(scores: Array, visible: BoolArray) -> Array:
    masked = np.where(visible, scores, -np.inf)
    top = masked.max(axis=-1, keepdims=True)
    weights = np.where(visible, np.exp(masked - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = weights.sum(axis=-1, keepdims=True)
    out: Array = weights / np.where(total > 0, total, 1.0)
    return out


def pine_attention(
    qa: Array, qb: Array, ka: Array, kb: Array, v: Array, sizes: Mapping[str, int], docs: int
) -> Array:
    """PINE prefill as the authors' code computes it, for one (batch, head) at a time.

    Inputs (..., E, P|M) with q = [qa; qb] un-rotated. Layout: sizes["PRE"] prefix tokens,
    `docs` documents of sizes["DOC"] tokens, then the question. Per doc query segment:
    importance from an un-rotated softmax over the other docs (mass per doc / DOC, summed
    over the segment's tokens), the docs stacked and moved back by DOC per place of a
    stable descending argsort (own doc first), RoPE at those positions, keys visible when
    their new position is <= the query's. Question tokens order the docs each by its own
    importance; prefix tokens are causal attention at their positions.
    """
    out = np.zeros((*qa.shape[:-2], v.shape[-2], qa.shape[-1]))
    for idx in np.ndindex(*qa.shape[:-2]):
        head = _PineHead(qa[idx], qb[idx], ka[idx], kb[idx], sizes["PRE"], sizes["DOC"], docs)
        out[idx] = head.attend_all(v[idx])
    return out


class _PineHead:
    """One head's PINE: stacked positions, importance, orders and re-positioned attention."""

    def __init__(
        self, q1: Array, q2: Array, k1: Array, k2: Array, pre: int, length: int, docs: int
    ) -> None:
        self.q1, self.q2, self.k1, self.k2 = q1, q2, k1, k2
        self.pre, self.length, self.docs = pre, length, docs
        self.n_q, self.n_k = q1.shape[-1], k1.shape[-1]
        self.start = [pre + d * length for d in range(docs + 1)]
        n = max(self.n_q, self.n_k)
        # the code's stacked positions: each doc at the end of the document region
        self.base_pos = np.arange(n, dtype=np.float64)
        self.doc_of = np.full(n, -1)
        for d in range(docs):
            span = slice(self.start[d], self.start[d + 1])
            self.base_pos[span] = (pre + (docs - 1) * length + np.arange(length))[
                : len(self.base_pos[span])
            ]
            self.doc_of[span] = d

    def mass(self, rows: npt.NDArray[np.int64], own: int) -> Array:
        """Un-rotated attention mass per doc / DOC for query rows (own doc excluded)."""
        qraw, kraw = np.concatenate([self.q1, self.q2]), np.concatenate([self.k1, self.k2])
        key_doc = self.doc_of[: self.n_k]
        keys = (key_doc >= 0) & (key_doc != own)
        w = _softmax_rows(qraw[:, rows].T @ kraw, np.broadcast_to(keys, (len(rows), self.n_k)))
        return np.stack([w[:, key_doc == d].sum(axis=1) / self.length for d in range(self.docs)], 1)

    def attend(self, rows: npt.NDArray[np.int64], order: npt.NDArray[np.int64], v: Array) -> Array:
        """Rows sharing one doc order (most important first); keys re-positioned by it."""
        shift = np.zeros(self.docs)
        shift[order] = np.arange(self.docs) * self.length
        key_doc = self.doc_of[: self.n_k]
        k_pos = self.base_pos[: self.n_k].copy()
        k_pos[key_doc >= 0] -= shift[key_doc[key_doc >= 0]]
        q_pos = self.base_pos[rows]
        r1, r2 = rope(self.q1[:, rows], self.q2[:, rows], q_pos, zm.PINE_ROPE_BASE)
        c1, c2 = rope(self.k1, self.k2, k_pos, zm.PINE_ROPE_BASE)
        keys = np.arange(self.n_k)
        if rows[0] >= self.start[self.docs]:  # question tokens: causal in the original order
            visible = keys[None, :] <= rows[:, None]
        else:  # doc tokens: the keys up to the documents' end, by new position
            visible = (k_pos[None, :] <= q_pos[:, None]) & (keys < self.start[self.docs])
        out: Array = v @ _softmax_rows(r1.T @ c1 + r2.T @ c2, visible).T
        return out

    def attend_all(self, v: Array) -> Array:
        """Every query row: prefix (causal), each doc segment, each question token."""
        out = np.zeros((v.shape[0], self.n_q))
        prefix = np.arange(min(self.pre, self.n_q))
        if len(prefix):
            r1, r2 = rope(self.q1[:, prefix], self.q2[:, prefix], prefix, zm.PINE_ROPE_BASE)
            c1, c2 = rope(self.k1, self.k2, np.arange(self.n_k), zm.PINE_ROPE_BASE)
            causal = np.arange(self.n_k)[None, :] <= prefix[:, None]
            out[:, prefix] = v @ _softmax_rows(r1.T @ c1 + r2.T @ c2, causal).T
        for s in range(self.docs):
            rows = np.arange(self.start[s], min(self.start[s + 1], self.n_q))
            if len(rows):
                importance = self.mass(rows, own=s).sum(axis=0)
                importance[s] = np.inf  # own doc first
                out[:, rows] = self.attend(rows, np.argsort(-importance, kind="stable"), v)
        for p in range(self.start[self.docs], self.n_q):
            rows = np.array([p])
            order = np.argsort(-self.mass(rows, own=-1)[0], kind="stable")
            out[:, rows] = self.attend(rows, order, v)
        return out


def _pine(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    qa, qb, ka, kb, v = (np.asarray(inputs[n], np.float64) for n in ("QA", "QB", "KA", "KB", "V"))
    return pine_attention(qa, qb, ka, kb, v, sizes, zm.PINE_DOCS)


def _dense(attend: Callable[[Array, Array, Array], Array]) -> Compute:
    def compute(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
        return attend(*_qkv(inputs))

    return compute


def _mha(q: Array, k: Array, v: Array) -> Array:
    return masked_softmax_attention(q, k, v, np.ones((q.shape[-1], k.shape[-1]), dtype=bool))


_MH: Layout = (
    ("Q", ("B", "H", "E", "P")),
    ("K", ("B", "H", "E", "M")),
    ("V", ("B", "H", "F", "M")),
)

ZOO_CHECKS: dict[str, tuple[Layout, str, Compute]] = {
    "attention-sinklora": (
        _MH,
        "AV",
        _masked(lambda q, k, s: sinklora_visible(q, k, s["S"], zm.LONGLORA_GROUPS)),
    ),
    "attention-fit": (_MH, "AV", _masked(lambda q, k, s: block_visible(q, k, zm.FIT_GROUPS))),
    "attention-lga": (_MH, "AV", _masked(lambda q, k, s: block_visible(q, k, zm.LGA_GROUPS))),
    "attention-aki": (
        _MH,
        "AV",
        _masked(lambda q, k, s: aki_visible(q, k, s["PRE"], s["IMG"], s["TXT"])),
    ),
    "attention-video-ccam": (
        _MH,
        "AV",
        _masked(lambda q, k, s: ccam_visible(q, k, zm.CCAM_FRAMES)),
    ),
    "attention-efficient-vdit": (
        _MH,
        "AV",
        _masked(lambda q, k, s: vdit_visible(q, k, zm.VDIT_FRAMES, zm.VDIT_GLOBAL)),
    ),
    "attention-moa": (_MH, "AV", _moa),
    "attention-sigma": (
        (
            ("Q", ("B", "G", "GV", "R", "E", "P")),
            ("K", ("B", "G", "E", "M")),
            ("V", ("B", "G", "GV", "F", "M")),
        ),
        "AV",
        _dense(sigma_attention),
    ),
    "attention-bam": (
        (("Q", ("B", "H", "X", "E", "P")), *_MH[1:]),
        "AV",
        _dense(bam_attention),
    ),
    "attention-moh": (_MH, "AV", _dense(_mha)),
    "attention-kdgqa": (
        (_MH[0], ("K", ("B", "G", "E", "M")), ("V", ("B", "G", "F", "M"))),
        "AV",
        _dense(kdgqa_attention),
    ),
    "attention-pine": (
        (
            ("QA", ("B", "H", "E", "P")),
            ("QB", ("B", "H", "E", "P")),
            ("KA", ("B", "H", "E", "M")),
            ("KB", ("B", "H", "E", "M")),
            _MH[2],
        ),
        "AV",
        _pine,
    ),
}
