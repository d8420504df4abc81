"""What a 1-pass call computes besides the shapes: inner-loop variants, score functions, windows.

`Variant` (inner-loop flags), `Score` (sigmoid, softcap, ALiBi) and `check_window`, used by
`kernels.triton.attn_fwd`, which re-exports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """Inner-loop variants of the 1-pass kernel (constexpr flags; see `attn_loop.attn_inner`).

    prescale_q: multiply Q by scale*log2(e) once in the prologue (scores leave the dot in the
    log2 domain). lazy_rescale: skip the accumulator rescale for a key tile unless a row max
    grew by more than 8 (log2 units).
    warp_specialize (Hopper): `tl.range(warp_specialize=True)` on the unmasked key loop, so
    Triton splits it into a TMA producer warp group and wgmma/softmax consumer warp groups.
    Takes effect only with num_warps=4, num_stages>1, tensor descriptors (TMA) and without
    lazy_rescale (its runtime `if` has an else region); otherwise Triton silently compiles
    the plain loop (see `attn_loop.attn_inner`). The launcher applies it only with TMA on, to
    non-causal calls with seq_k % block_n == 0 (it then drops the empty masked loop): other
    calls make Triton 3.6's pass fail to compile, so they run the plain loop.
    poly_exp (FlashAttention-4): this many of every 4 probabilities (0-4; True means 1) are
    computed with a degree-3 polynomial on the FMA units instead of the MUFU `ex2`
    (`exp2.exp2_split`). Applied to 16-bit inputs only: fp32 runs keep the exact exp2 (the
    polynomial's 1e-4 relative error would show through an fp32 P.V).
    """

    prescale_q: bool = False
    lazy_rescale: bool = False
    warp_specialize: bool = False
    poly_exp: int = 0  # bool accepted: True == 1

    def __post_init__(self) -> None:
        if not 0 <= int(self.poly_exp) <= 4:
            raise ValueError(f"Variant.poly_exp must be in 0..4, got {self.poly_exp!r}")

    def label(self) -> str:
        """Short name: 'base' or '+'-joined flags (poly_exp2..4 when more than 1 of 4)."""
        on = [n for n in ("prescale_q", "lazy_rescale", "warp_specialize") if getattr(self, n)]
        if self.poly_exp:
            on.append("poly_exp" if int(self.poly_exp) == 1 else f"poly_exp{int(self.poly_exp)}")
        return "+".join(on) or "base"


@dataclass(frozen=True)
class Score:
    """The score function of a call: softmax (default) or sigmoid, with optional modifiers.

    sigmoid: O = sigmoid(S + sigmoid_bias) V, no max, no sum (Ramapuram et al., "Theory,
    Analysis, and Best Practices for Sigmoid Self-Attention", 2024: bias -log(n) keeps the
    weights' sum near 1 at the start of training); `sigmoid_bias` None means -log(seq_k).
    softcap: S -> C tanh(S / C) with C = softcap (Gemma 2 uses 50). alibi: S -> S - m_h |i - j|,
    m_h = 2**(-8 (h + 1) / heads). S = scale * q.k throughout.
    """

    sigmoid: bool = False
    softcap: float | None = None
    alibi: bool = False
    sigmoid_bias: float | None = None

    def __post_init__(self) -> None:
        if self.softcap is not None and not self.softcap > 0:
            raise ValueError(f"Score.softcap must be > 0, got {self.softcap!r}")
        if self.sigmoid_bias is not None and not self.sigmoid:
            raise ValueError("Score.sigmoid_bias needs sigmoid=True")

    @property
    def is_plain(self) -> bool:
        """Plain softmax: no sigmoid, softcap or ALiBi."""
        return not (self.sigmoid or self.softcap is not None or self.alibi)

    @property
    def no_modifiers(self) -> bool:
        """No softcap or ALiBi (softmax or sigmoid alone: what the ping-pong kernel runs)."""
        return self.softcap is None and not self.alibi

    def bias(self, seq_k: int) -> float:
        """The sigmoid bias in natural-log units (-log(seq_k) unless given)."""
        if self.sigmoid_bias is not None:
            return self.sigmoid_bias
        return -math.log(seq_k) if self.sigmoid else 0.0


DEFAULT_SCORE = Score()
DEFAULT_VARIANT = Variant()


def check_window(
    causal: bool, window: int | tuple[int, ...] | None, sinks: int, variant: Variant
) -> None:
    """Reject window arguments the kernel cannot run (ValueError naming the argument)."""
    if window is None:
        if sinks:
            raise ValueError(f"sinks={sinks} needs a window (sinks without one are all keys)")
        return
    if not causal:
        raise ValueError("window needs causal=True (the kernel's window is causal)")
    widths = window if isinstance(window, tuple) else (window,)
    if not widths or any(int(w) != w or w < 1 for w in widths):
        raise ValueError(f"window must be an int >= 1 (or one per query head), got {window!r}")
    if int(sinks) != sinks or sinks < 0:
        raise ValueError(f"sinks must be an int >= 0, got {sinks!r}")
    if variant.lazy_rescale:
        # a leading window tile can hide a whole row: the cross-row rescale test needs
        # finite row maxima, which only the plain rescale guarantees here
        raise ValueError("window: lazy_rescale is not supported (use the default variant)")
