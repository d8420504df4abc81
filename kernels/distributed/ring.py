"""Ring Attention forward (softmax) on `torch.distributed`, with zig-zag causal balancing.

Each of W ranks holds a shard of the sequence for q, k and v (`shard`, layout by `balance`).
In W steps every rank attends its queries to every rank's K/V block while the blocks travel
around the ring: at step s rank r holds the block of rank (r - s) mod W, sends it to r + 1
and receives the next from r - 1 (one packed K|V buffer, `batch_isend_irecv`, posted before
the step's block computation so the transfer overlaps it; two buffers alternate). Each
step's partial state (O, lse) is merged into the running one by log-sum-exp (`merge`), in
fp32 (float64 for float64 inputs); the output is cast to q's dtype at the end.

Causal masks, with the block of source rank j at rank r:
- balance "none" (rank r holds chunk r of W): j == r the causal diagonal block, j < r the
  full block, j > r nothing (skipped; rank W-1 computes W blocks, rank 0 one);
- balance "zigzag" (rank r holds chunks r and 2W-1-r of 2W, Brandon et al. / ring-flash-attn):
  j == r causal over its two chunks, j < r all queries to the first key chunk, j > r the
  second query chunk to both key chunks: every rank computes the same amount;
- balance "striped" (rank r holds positions r, r + W, r + 2W, ...; Striped Attention,
  Brandon et al. 2023): local query a sees local key b of rank j iff b <= a (j <= r: the
  causal block) or b < a (j > r: the causal block of queries 1.. against keys ..L-2, row 0
  sees none): every rank computes W near-halves.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from attnsim.kernels.distributed.blocks import SoftmaxBlock, default_scale, torch_softmax_block
from attnsim.kernels.distributed.merge import empty_state, merge_into

__all__ = ["BALANCES", "ring_attention_fwd", "ring_pass", "shard", "unshard"]

BALANCES = ("none", "zigzag", "striped")


def _pieces(seq: int, world: int, balance: str) -> int:
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {BALANCES}, got {balance!r}")
    pieces = world * (2 if balance == "zigzag" else 1)
    if seq % pieces or (balance == "striped" and seq < 2 * world):
        raise ValueError(f"seq {seq} must be a multiple of {pieces} (world {world}, {balance})")
    return pieces


def shard(x: Any, rank: int, world: int, balance: str = "none", dim: int = 2) -> Any:
    """Rank `rank`'s part of the full-sequence tensor `x` (contiguous)."""
    if balance == "striped":
        _pieces(x.shape[dim], world, balance)
        index = torch.arange(rank, x.shape[dim], world, device=x.device)
        return x.index_select(dim, index).contiguous()
    chunks = x.chunk(_pieces(x.shape[dim], world, balance), dim=dim)
    if balance == "zigzag":
        return torch.cat((chunks[rank], chunks[2 * world - 1 - rank]), dim=dim).contiguous()
    return chunks[rank].contiguous()


def unshard(parts: list[Any], balance: str = "none", dim: int = 2) -> Any:
    """The full-sequence tensor from every rank's part (inverse of `shard`)."""
    if balance == "none":
        return torch.cat(parts, dim=dim)
    world = len(parts)
    if balance == "striped":  # position r + W a is part r's entry a
        return torch.stack(parts, dim=dim + 1).flatten(dim, dim + 1)
    halves = [p.chunk(2, dim=dim) for p in parts]
    order = [halves[i][0] for i in range(world)] + [halves[i][1] for i in reversed(range(world))]
    return torch.cat(order, dim=dim)


def _neighbors(group: Any) -> tuple[int, int, int, int]:
    """(world, rank, next rank, previous rank); the neighbors as global ranks (P2POp's)."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    nxt, prv = (rank + 1) % world, (rank - 1) % world
    if group is not None:
        nxt, prv = dist.get_global_rank(group, nxt), dist.get_global_rank(group, prv)
    return world, rank, nxt, prv


def _exchange(send: Any, recv: Any, nxt: int, prv: int, group: Any) -> list[Any]:
    """Send `send` to the next rank and receive `recv` from the previous one (one batch)."""
    ops = [dist.P2POp(dist.isend, send, nxt, group), dist.P2POp(dist.irecv, recv, prv, group)]
    return dist.batch_isend_irecv(ops)  # type: ignore[no-any-return]


def ring_pass(send: Any, recv: Any, group: Any = None) -> None:
    """The ring's communication alone: W - 1 rounds of one transfer each way, waited each.

    `send` and `recv` are two buffers of one packed K|V block's size (they alternate).
    """
    world, _, nxt, prv = _neighbors(group)
    bufs = (send, recv)
    for step in range(world - 1):
        for work in _exchange(bufs[step % 2], bufs[(step + 1) % 2], nxt, prv, group):
            work.wait()


Blocks = list[tuple[slice, Any, Any, Any, bool]]  # (output rows, q, k, v, causal diagonal)


def _blocks(q: Any, k: Any, v: Any, causal: bool, balance: str, src: int, rank: int) -> Blocks:
    """The attention blocks of rank `rank`'s queries against source `src`'s K/V.

    Each entry: (output rows, q rows, keys, values, causal diagonal); see the module docstring.
    """
    every = slice(None)
    if not causal:
        return [(every, q, k, v, False)]
    if src == rank:
        return [(every, q, k, v, True)]
    if balance == "none":
        return [(every, q, k, v, False)] if src < rank else []
    if balance == "striped":
        if src < rank:
            return [(every, q, k, v, True)]
        return [(slice(1, None), q[:, :, 1:], k[:, :, :-1], v[:, :, :-1], True)]  # b < a
    half = q.shape[2] // 2  # zigzag: chunks (rank, 2W-1-rank) against (src, 2W-1-src)
    if src < rank:
        return [(every, q, k[:, :, :half], v[:, :, :half], False)]
    return [(slice(half, None), q[:, :, half:], k, v, False)]


def ring_attention_fwd(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    balance: str = "none",
    scale: float | None = None,
    block: SoftmaxBlock = torch_softmax_block,
    group: Any = None,
    communicate: bool = True,
) -> Any:
    """This rank's output shard of softmax attention over the whole ring's sequence.

    Args:
        q: (B, H, L, E), this rank's queries in the `shard` layout of `balance`.
        k: (B, H, L, E), this rank's keys, same layout.
        v: (B, H, L, F), this rank's values.
        causal: mask keys after the query (positions of the full sequence).
        balance: "none", "zigzag" or "striped" (causal load balancing; module docstring).
        scale: score scale (default 1/sqrt(E)).
        block: the per-block computation (`blocks.SoftmaxBlock`).
        group: process group (default the world).
        communicate: False times the computation alone: no transfer, every step reuses the
            local K/V (the output is then not attention over the sequence).

    Returns:
        (B, H, L, F) in q's dtype, this rank's rows in the same layout.
    """
    world, rank, nxt, prv = _neighbors(group)
    if balance != "none" and not causal:
        raise ValueError("balance applies to causal attention only")
    _pieces(q.shape[2] * world, world, balance)
    scale = default_scale(q.shape[-1]) if scale is None else scale
    acc_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    out, lse = empty_state(tuple(q.shape[:3]), v.shape[-1], acc_dtype, q.device)
    nk = k.numel()
    flat = torch.cat((k.reshape(-1), v.reshape(-1)))
    bufs = (flat, torch.empty_like(flat)) if communicate and world > 1 else (flat, flat)
    for step in range(world):
        cur = bufs[step % 2]
        works = []
        if communicate and step < world - 1:  # the next block travels while this one computes
            works = _exchange(cur, bufs[(step + 1) % 2], nxt, prv, group)
        kb, vb = cur[:nk].view(k.shape), cur[nk:].view(v.shape)
        src = (rank - step) % world
        for rows, qb, kk, vv, diag in _blocks(q, kb, vb, causal, balance, src, rank):
            merge_into(out, lse, *block(qb, kk, vv, diag, scale), rows)
        for work in works:
            work.wait()
    return out.to(q.dtype)
