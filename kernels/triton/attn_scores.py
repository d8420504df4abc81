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


@triton.jit
def modify_scores(
    s, offs_m, offs_n, SOFTCAP: tl.constexpr, ALIBI: tl.constexpr, softcap, alibi,
    FAST_TANH: tl.constexpr, ALIBI_SHIFT: tl.constexpr = False,
):  # fmt: skip
    """Score modifiers on log2-domain scores `s` (scale * q.k * log2(e)).

    ALIBI: s - alibi * |i - j| (`alibi` = the head's slope * log2(e)); SOFTCAP: softcap *
    tanh(s / softcap) (`softcap` = C * log2(e), the cap C of natural-log scores).
    ALIBI_SHIFT (causal softmax without softcap only): every visible key has j <= i, so
    -alibi (i - j) = alibi (j - r0) - alibi (i - r0) with r0 the tile's first row; the second
    term is constant along the row, and softmax is unchanged by a row constant, so only the
    column vector alibi (j - r0) is added (one add per score instead of a subtract, a
    conversion, an abs and an FMA). Keys far behind the tile get large negative terms, whose
    weights vanish anyway; near ones stay small, so no precision is lost where it counts.
    """
    if ALIBI_SHIFT:
        r0 = tl.min(offs_m, 0)
        s = s + (alibi * (offs_n - r0).to(tl.float32))[None, :]
    elif ALIBI:
        dist = (offs_m[:, None] - offs_n[None, :]).to(tl.float32)
        s = s - alibi * tl.abs(dist)
    if SOFTCAP:
        s = softcap * tanh(s / softcap, FAST_TANH)
    return s
