"""LASP-2 forward of causal linear attention with per-head decay on `torch.distributed`.

Sun et al., "LASP-2: Rethinking Sequence Parallelism for Linear Attention and Its Hybrid"
(2025): rank r holds the contiguous chunk r (L tokens) of the sequence. It computes its
chunk's E x F state M_r = sum_s lambda^(L-1-s) k_s^T v_s (`blocks.linear_state`), starts one
AllGather of the states, computes its chunk's local output (intra-chunk causal linear
attention, `blocks.LinearLocal`) while the states travel, then adds the earlier ranks'
contribution: with the prefix state P_r = sum_{j<r} lambda^(L (r-1-j)) M_j,
o_t += scale lambda^(t+1) q_t P_r for local position t. Exact for o_t = scale
sum_{s<=t} lambda^(t-s) (q_t . k_s) v_s over the whole sequence. States travel in fp32
(float64 for float64 inputs); the prefix term is computed in q's dtype.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from attnsim.kernels.distributed.blocks import (
    LinearLocal,
    decay_powers,
    linear_state,
    torch_linear_local,
)

__all__ = ["lasp2_fwd", "prefix_state", "state_gather"]


def _state_dtype(dtype: Any) -> Any:
    return torch.float64 if dtype == torch.float64 else torch.float32


def state_gather(state: Any, group: Any = None, async_op: bool = False) -> tuple[list[Any], Any]:
    """AllGather every rank's state: (list of W states, the work handle or None)."""
    world = dist.get_world_size(group)
    states = [torch.empty_like(state) for _ in range(world)]
    work = dist.all_gather(states, state, group=group, async_op=async_op)
    return states, work


def prefix_state(states: list[Any], rank: int, decay: Any, chunk: int) -> Any:
    """P_r = sum_{j<r} lambda^(chunk (r-1-j)) M_j (zeros for rank 0): (B, H, E, F)."""
    prefix = torch.zeros_like(states[0])
    if decay is None:
        for j in range(rank):
            prefix = prefix + states[j]
        return prefix
    step = decay_powers(decay, chunk, 1, prefix.dtype, prefix.device)[:, 0]  # lambda^L
    for j in range(rank):
        prefix = prefix * step[None, :, None, None] + states[j]
    return prefix


def lasp2_fwd(
    q: Any,
    k: Any,
    v: Any,
    decay: Any = None,
    *,
    scale: float = 1.0,
    local: LinearLocal = torch_linear_local,
    group: Any = None,
    communicate: bool = True,
) -> Any:
    """This rank's output chunk of causal linear attention with decay over the whole sequence.

    Args:
        q: (B, H, L, E), this rank's chunk (rank r: positions r L .. r L + L - 1).
        k: (B, H, L, E).
        v: (B, H, L, F).
        decay: lambda per head in (0, 1], (H,) tensor or sequence, or None (lambda = 1).
        scale: multiplies every score q . k (Lightning's convention; default 1).
        local: the intra-chunk computation (`blocks.LinearLocal`).
        group: process group (default the world).
        communicate: False times the computation alone (no AllGather; the prefix term is
            computed from this rank's own state repeated, so the output is not the sequence's).

    Returns:
        (B, H, L, F) in q's dtype.
    """
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    seq = q.shape[2]
    state = linear_state(k, v, decay, _state_dtype(q.dtype))
    if communicate and world > 1:
        states, work = state_gather(state, group, async_op=True)
    else:
        states, work = [state] * world, None
    out = local(q, k, v, decay, scale)  # overlaps the AllGather
    if work is not None:
        work.wait()
    if rank == 0:
        return out
    prefix = prefix_state(states, rank, decay, seq).to(q.dtype)
    weight = torch.full((q.shape[1], seq), float(scale), dtype=torch.float64, device=q.device)
    if decay is not None:
        weight = weight * decay_powers(decay, 1, seq, torch.float64, q.device)
    q_w = q * weight[None, :, :, None].to(q.dtype)
    return out + torch.matmul(q_w, prefix).to(out.dtype)
