"""Plain numpy references for the built-in cascades, written independently of their Einsums.

The attention reference is unscaled (no 1/sqrt(E)), like the FuseMax cascades, and works
in their layout: Q[..., E, P], K[..., E, M], V[..., F, M] -> AV[..., F, P]. Masks are
explicit boolean (P, M) matrices; shared K/V (GQA, MQA) are repeated across the query
heads; a row that sees no key gives 0 (FlashAttention's convention).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from attnsim.einsum_ir.library import (
    CATALOG,
    Heads,
    MaskForm,
    ScoreForm,
    ScoreModifier,
    Variant,
    variant_named,
)
from attnsim.einsum_ir.reference_compress import COMPRESS_CHECKS
from attnsim.einsum_ir.reference_linear import LINEAR_CHECKS
from attnsim.einsum_ir.reference_scores import SCORE_CHECKS
from attnsim.einsum_ir.reference_selection import SELECTION_CHECKS
from attnsim.einsum_ir.reference_training import TRAINING_CHECKS
from attnsim.einsum_ir.reference_zoo import ZOO_CHECKS

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def attention_mask(
    n_q: int, n_k: int, form: str, *, window: int = 0, sinks: int = 0, prefix: int = 0
) -> BoolArray:
    """Which (query p, key m) pairs are visible, as a (P, M) boolean matrix.

    Args:
        n_q: Queries P.
        n_k: Keys M.
        form: `none`; `causal` (top-left: m <= p); `causal-br` (bottom-right: the last
            query sees every key, m <= p + M - P); `window` (bottom-right causal, the
            `window` keys up to the diagonal); `sinks-window` (the window plus the first
            `sinks` keys, still causal); `prefix` (the first `prefix` keys to every query,
            the rest bottom-right causal).
        window: W for the window forms.
        sinks: S for `sinks-window`.
        prefix: L for `prefix`.
    """
    p = np.arange(n_q)[:, None]
    m = np.arange(n_k)[None, :]
    diagonal = p + (n_k - n_q)  # the bottom-right aligned query position
    full = np.ones((n_q, n_k), dtype=bool)
    if form == "none":
        return full
    if form == "causal":
        return full & (m <= p)
    causal = full & (m <= diagonal)
    if form == "causal-br":
        return causal
    in_window = diagonal - m < window
    if form == "window":
        return causal & in_window
    if form == "sinks-window":
        return causal & (in_window | (m < sinks))
    if form == "prefix":
        return causal | (full & (m < prefix))
    raise ValueError(f"unknown mask form {form!r}")


def alibi_bias(slopes: Array, n_q: int, n_k: int, top_left: bool = False) -> Array:
    """ALiBi's additive bias -slope * |distance| of shape (*slopes.shape, P, M).

    The distance follows FlashAttention: p + M - P - m (bottom-right aligned), or p - m
    when `top_left`.
    """
    p = np.arange(n_q)[:, None]
    m = np.arange(n_k)[None, :]
    distance = np.abs(p - m if top_left else p + (n_k - n_q) - m)
    bias: Array = -np.asarray(slopes, dtype=np.float64)[..., None, None] * distance
    return bias


def attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    mask: BoolArray | None = None,
    score: str = "softmax",
    bias: Array | None = None,
    softcap: float | None = None,
) -> Array:
    """Attention in the cascades' layout, numerically stable, float64.

    Args:
        q: Queries (..., E, P); leading axes are batch-like and broadcast with k, v.
        k: Keys (..., E, M).
        v: Values (..., F, M).
        mask: Visible pairs (P, M), or None for all.
        score: `softmax` or `sigmoid` (sigmoid(s - log M), no normalization).
        bias: Added to the scores, broadcast to (..., P, M).
        softcap: C of C * tanh(s / C), applied before the bias.

    Returns:
        (..., F, P); rows with no visible key are 0.
    """
    scores = np.einsum("...ep,...em->...pm", q, k)
    if softcap is not None:
        scores = softcap * np.tanh(scores / softcap)
    if bias is not None:
        scores = scores + bias
    visible = np.ones(scores.shape[-2:], dtype=bool) if mask is None else mask
    if score == "sigmoid":
        shifted = scores - np.log(scores.shape[-1])
        weights = 0.5 * (1.0 + np.tanh(0.5 * shifted))  # the logistic, without overflow
        weights = np.where(visible, weights, 0.0)
    elif score == "softmax":
        masked = np.where(visible, scores, -np.inf)
        row_max = masked.max(axis=-1, keepdims=True)
        row_max = np.where(np.isfinite(row_max), row_max, 0.0)  # empty rows: no -inf - -inf
        weights = np.where(visible, np.exp(masked - row_max), 0.0)
        total = weights.sum(axis=-1, keepdims=True)
        weights = weights / np.where(total > 0, total, 1.0)
    else:
        raise ValueError(f"unknown score function {score!r}")
    out: Array = np.einsum("...pm,...fm->...fp", weights, v)
    return out


def softmax_attention(q: Array, k: Array, v: Array, causal: bool = False) -> Array:
    """softmax(Q^T K) V^T in the cascades' layout; `causal` masks keys m > p (top-left)."""
    n_q, n_k = q.shape[-1], k.shape[-1]
    mask = attention_mask(n_q, n_k, "causal") if causal else None
    return attention(q, k, v, mask=mask)


@dataclass(frozen=True, slots=True)
class Reference:
    """How a built-in cascade is checked: its input layout, its output and its reference.

    `compute(inputs, sizes)` maps the named inputs and the resolved sizes (ranks and params
    such as W, S, C) to the expected value of `output`.
    """

    inputs: tuple[tuple[str, tuple[str, ...]], ...]
    output: str
    compute: Callable[[Mapping[str, Array], Mapping[str, int]], Array]


# Input layouts per head structure: (Q ranks, K/V ranks before E/F, ALiBi slope ranks).
_LAYOUT = {
    Heads.SINGLE: ((), (), ()),
    Heads.MULTI: (("B", "H"), ("B", "H"), ("H",)),
    Heads.GROUPED: (("B", "G", "R"), ("B", "G"), ("G", "R")),
    Heads.MULTI_QUERY: (("B", "R"), ("B",), ("R",)),
}
SINGLE_HEAD = (("Q", ("E", "P")), ("K", ("E", "M")), ("V", ("F", "M")))
MULTI_HEAD = tuple((name, ("B", "H", *ranks)) for name, ranks in SINGLE_HEAD)


def _shared(array: Array, heads: Heads, repeats: int) -> Array:
    """K or V repeated across the query heads that share it (GQA, MQA); else as is."""
    if heads == Heads.GROUPED:  # (B, G, X, M) -> (B, G, R, X, M)
        return np.repeat(array[:, :, None], repeats, axis=2)
    if heads == Heads.MULTI_QUERY:  # (B, X, M) -> (B, R, X, M)
        return np.repeat(array[:, None], repeats, axis=1)
    return array


def _compute(variant: Variant, inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    q = np.asarray(inputs["Q"], dtype=np.float64)
    r = sizes.get("R", 1)
    k = _shared(np.asarray(inputs["K"], dtype=np.float64), variant.heads, r)
    v = _shared(np.asarray(inputs["V"], dtype=np.float64), variant.heads, r)
    n_q, n_k = q.shape[-1], k.shape[-1]
    mask = attention_mask(
        n_q,
        n_k,
        str(variant.mask),
        window=sizes.get("W", 0),
        sinks=sizes.get("S", 0),
        prefix=sizes.get("L", 0),
    )
    bias = None
    if variant.modifier == ScoreModifier.ALIBI:
        top_left = variant.mask == MaskForm.CAUSAL
        bias = alibi_bias(np.asarray(inputs["SL"]), n_q, n_k, top_left=top_left)
    softcap = float(sizes["C"]) if variant.modifier == ScoreModifier.SOFTCAP else None
    score = "sigmoid" if variant.score == ScoreForm.SIGMOID else "softmax"
    return attention(q, k, v, mask=mask, score=score, bias=bias, softcap=softcap)


@functools.cache
def reference_for(name: str) -> Reference | None:
    """The reference of a built-in name (catalog or composed), or None."""
    variant = variant_named(name)
    if variant is None:
        return None
    query, key, slope = _LAYOUT[variant.heads]
    layout = [("Q", (*query, "E", "P")), ("K", (*key, "E", "M")), ("V", (*key, "F", "M"))]
    if variant.modifier == ScoreModifier.ALIBI:
        layout.append(("SL", slope))
    return Reference(tuple(layout), "AV", functools.partial(_compute, variant))


def _mla(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    """MLA as DeepSeek-V2 states it: up-projected K (with the shared RoPE key) and V."""
    x = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    k = np.einsum("hce,bcm->bhem", x["WUK"], x["CKV"])
    v = np.einsum("hcf,bcm->bhfm", x["WUV"], x["CKV"])
    rope = np.einsum("bhrp,brm->bhpm", x["QR"], x["KR"])
    return attention(x["Q"], k, v, bias=rope)


def _gqa(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    """Grouped-query attention over all keys, K/V repeated across each group's R heads."""
    r = sizes["R"]
    k = _shared(np.asarray(inputs["K"], dtype=np.float64), Heads.GROUPED, r)
    v = _shared(np.asarray(inputs["V"], dtype=np.float64), Heads.GROUPED, r)
    return attention(np.asarray(inputs["Q"], dtype=np.float64), k, v)


_MLA_LAYOUT = (
    ("Q", ("B", "H", "E", "P")),
    ("QR", ("B", "H", "R", "P")),
    ("CKV", ("B", "C", "M")),
    ("KR", ("B", "R", "M")),
    ("WUK", ("H", "C", "E")),
    ("WUV", ("H", "C", "F")),
)
_GQA_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Q", ("B", "G", "R", "E", "P")),
    ("K", ("B", "G", "E", "M")),
    ("V", ("B", "G", "F", "M")),
)


def _serving_references() -> dict[str, Reference]:
    """The serving cascades (`einsum_ir.library.serving`): MLA, split-K, decode."""
    decode = reference_for("attention-1pass-gqa-causal-br")
    assert decode is not None
    return {
        "attention-mla-naive": Reference(_MLA_LAYOUT, "AV", _mla),
        "attention-mla-absorbed": Reference(_MLA_LAYOUT, "AV", _mla),
        "attention-splitk-gqa": Reference(_GQA_LAYOUT, "AV", _gqa),
        "attention-decode-gqa": decode,
    }


def _catalog_references() -> dict[str, Reference]:
    refs = {v.name: reference_for(v.name) for v in CATALOG}
    found = {name: ref for name, ref in refs.items() if ref is not None}
    return found | _serving_references()


REFERENCES: dict[str, Reference] = _catalog_references() | {
    name: Reference(*check)
    for name, check in (
        ZOO_CHECKS
        | LINEAR_CHECKS
        | TRAINING_CHECKS
        | SCORE_CHECKS
        | SELECTION_CHECKS
        | COMPRESS_CHECKS
    ).items()
}
