"""Score functions of the 1-pass kernels' tile loop: tanh on the MUFU and the score modifiers.

Used by `attn_loop.attn_inner` (softcap, ALiBi, sigmoid weights): `tanh` (the MUFU's
`tanh.approx.f32` or an exact form for the interpreter) and `modify_scores` (ALiBi and tanh
softcapping on log2-domain scores).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def tanh(x, FAST: tl.constexpr):
    """The hyperbolic tangent in float32.

    FAST: the MUFU's `tanh.approx.f32` (one SFU op; max relative error about 2**-11, fine for
    16-bit P; FlashSigmoid's choice). Else 1 - 2 / (2**(2 x log2 e) + 1), which saturates to
    +-1 without overflow (float32-exact; what the interpreter runs).
    """
    if FAST:
        y = tl.inline_asm_elementwise(
            "tanh.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1
        )
    else:
        y = 1.0 - 2.0 / (tl.math.exp2(x * 2.8853900817779268) + 1.0)
    return y


# ALIBI_FORM of `modify_scores`: how a tile adds -slope |i - j| (see there)
ALIBI_PER_SCORE = tl.constexpr(0)  # the distance per score
ALIBI_BEHIND = tl.constexpr(1)  # every key j <= every row i: one column vector
ALIBI_AHEAD = tl.constexpr(2)  # every key j >= every row i: a column and a row vector
ALIBI_ACROSS = tl.constexpr(3)  # the distance per score, shifted as the two above


@triton.jit
def modify_scores(
    s, offs_m, offs_n, SOFTCAP: tl.constexpr, ALIBI: tl.constexpr, softcap, alibi,
    FAST_TANH: tl.constexpr, ALIBI_SHIFT: tl.constexpr = False,
    ALIBI_FORM: tl.constexpr = ALIBI_PER_SCORE,
):  # fmt: skip
    """Score modifiers on log2-domain scores `s` (scale * q.k * log2(e)).

    ALIBI: s - alibi * |i - j| (`alibi` = the head's slope * log2(e)); SOFTCAP: softcap *
    tanh(s / softcap) (`softcap` = C * log2(e), the cap C of natural-log scores).
    Softmax is unchanged by a constant along a row, so ALiBi scores may leave out
    c_i = -alibi (i - r0), r0 the query tile's first row, as long as every tile of the row
    leaves out the same c_i. With j <= i, -alibi (i - j) - c_i = alibi (j - r0): one column
    vector per tile, one add per score instead of a subtract, a conversion, an abs and an FMA.
    ALIBI_SHIFT (causal softmax without softcap: every visible key has j <= i) and
    ALIBI_FORM ALIBI_BEHIND add that column. ALIBI_AHEAD (j >= i everywhere in the tile):
    -alibi (j - r0) here, and the caller adds the row vector 2 alibi (i - r0) through
    `online_step`'s ROW_OFF (a per-row add). ALIBI_ACROSS: the distance per score plus
    alibi (i - r0), for tiles with keys on both sides of a row (dense softmax's diagonal and
    ragged tiles, `attn_rows`). Keys far from the tile get large negative terms, whose
    weights vanish anyway; near ones stay small, so no precision is lost where it counts.
    """
    if ALIBI_SHIFT or ALIBI_FORM == ALIBI_BEHIND:
        r0 = tl.min(offs_m, 0)
        s = s + (alibi * (offs_n - r0).to(tl.float32))[None, :]
    elif ALIBI_FORM == ALIBI_AHEAD:
        r0 = tl.min(offs_m, 0)
        s = s - (alibi * (offs_n - r0).to(tl.float32))[None, :]
    elif ALIBI:
        dist = (offs_m[:, None] - offs_n[None, :]).to(tl.float32)
        s = s - alibi * tl.abs(dist)
        if ALIBI_FORM == ALIBI_ACROSS:
            s = s + (alibi * (offs_m - tl.min(offs_m, 0)).to(tl.float32))[:, None]
    if SOFTCAP:
        s = softcap * tanh(s / softcap, FAST_TANH)
    return s
