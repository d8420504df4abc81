"""The per-device computations of the sequence-parallel forwards, pluggable.

A softmax block `(q, k, v, causal, scale) -> (O, lse)` attends q (B, H, P, E) to one block of
keys k (B, H, M, E), v (B, H, M, F): O (B, H, P, F) normalized over that block, lse (B, H, P)
the natural-log log-sum-exp of its scaled scores (`merge`). `causal` is the square diagonal
block (P == M, query i sees keys j <= i). A linear local computation
`(q, k, v, decay, scale) -> O` is causal linear attention with per-head decay lambda
(o_t = scale sum_{s<=t} lambda^(t-s) (q_t . k_s) v_s, Lightning Attention-2's form) over one
device's chunk alone.

References (any dtype, float64 in the CPU tests): `torch_softmax_block`,
`torch_linear_local`. GPU: `triton_softmax_block` (the 1-pass kernel with its LSE,
`attn_fwd.attention_fwd_lse`), `triton_linear_local` (`lightning.lightning_fwd`, split schedule).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "LinearLocal",
    "SoftmaxBlock",
    "decay_powers",
    "linear_state",
    "torch_linear_local",
    "torch_softmax_block",
    "triton_linear_local",
    "triton_softmax_block",
]

SoftmaxBlock = Callable[[Any, Any, Any, bool, float], tuple[Any, Any]]
LinearLocal = Callable[[Any, Any, Any, Any, float], Any]

# Lightning tiling of the LASP-2 local step: the fastest at batch 1, 16 heads, head dim 128,
# 16K-128K tokens (kernels/measurements/lightning/lightning-h200-2026-12-04.csv).
LIGHTNING_LOCAL = dict(block_c=64, block_f=64, num_warps=4, num_stages=2, state_chunks=4)


def torch_softmax_block(q: Any, k: Any, v: Any, causal: bool, scale: float) -> tuple[Any, Any]:
    """Softmax attention of one block in q's dtype (materializes the P x M scores)."""
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if causal:
        p, m = s.shape[-2:]
        hide = torch.ones(p, m, dtype=torch.bool, device=s.device).triu(1)
        s = s.masked_fill(hide, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    out = torch.matmul(torch.exp(s - lse.unsqueeze(-1)), v)
    return out, lse


def triton_softmax_block(q: Any, k: Any, v: Any, causal: bool, scale: float) -> tuple[Any, Any]:
    """The 1-pass Triton kernel on one block: O in q's dtype, lse fp32."""
    from attnsim.kernels.triton.attn_fwd import attention_fwd_lse

    return attention_fwd_lse(q, k, v, causal=causal, scale=scale)  # type: ignore[no-any-return]


def decay_powers(decay: Any, start: int, count: int, dtype: Any, device: Any) -> Any:
    """lambda_h^(start + i) for i < count: (H, count), or None when `decay` is None."""
    if decay is None:
        return None
    lam = torch.as_tensor(decay, dtype=torch.float64, device=device)
    steps = torch.arange(start, start + count, dtype=torch.float64, device=device)
    return torch.exp(torch.log(lam)[:, None] * steps[None, :]).to(dtype)


def torch_linear_local(q: Any, k: Any, v: Any, decay: Any, scale: float) -> Any:
    """Causal linear attention with decay, quadratic masked form (small shapes only)."""
    seq = q.shape[2]
    t = torch.arange(seq, device=q.device)
    gap = (t[:, None] - t[None, :]).to(q.dtype)
    keep = gap >= 0
    if decay is None:
        weight = keep.to(q.dtype).expand(q.shape[1], seq, seq)
    else:
        lam = torch.as_tensor(decay, dtype=q.dtype, device=q.device)
        log_lam = torch.log(lam)[:, None, None]
        weight = torch.where(keep, torch.exp(log_lam * gap.clamp(min=0)), 0.0)
    scores = torch.matmul(q, k.transpose(-1, -2)) * weight * scale
    return torch.matmul(scores, v)


def triton_linear_local(q: Any, k: Any, v: Any, decay: Any, scale: float) -> Any:
    """Lightning Attention-2 (split schedule, `LIGHTNING_LOCAL` tiling) on one chunk."""
    from attnsim.kernels.triton.lightning import lightning_fwd

    tiling = {**LIGHTNING_LOCAL, "block_f": min(LIGHTNING_LOCAL["block_f"], v.shape[-1])}
    return lightning_fwd(q, k, v, decay, scale=scale, schedule="split", **tiling)


def linear_state(k: Any, v: Any, decay: Any, dtype: Any = None) -> Any:
    """A chunk's E x F state sum_s lambda^(L-1-s) k_s^T v_s: (B, H, E, F) in `dtype`.

    The matrix product runs in k's dtype (bf16 on the GPU, fp32 accumulation), the result is
    cast to `dtype` (default k's).
    """
    seq = k.shape[2]
    if decay is not None:
        w = decay_powers(decay, 0, seq, torch.float64, k.device).flip(-1)  # lambda^(L-1-s)
        k = k * w[None, :, :, None].to(k.dtype)
    state = torch.matmul(k.transpose(-1, -2), v)
    return state.to(dtype or k.dtype)


def default_scale(head_dim: int) -> float:
    """1 / sqrt(head_dim), the softmax default."""
    return 1.0 / math.sqrt(head_dim)
