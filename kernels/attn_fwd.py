"""1-pass FlashAttention-2-style forward kernel (family `triton-1pass`, mapper `gpu-1pass`).

One program per (query tile, batch*head): grid (ceil(seq_q / BLOCK_M), batch*heads), the
query-tile index fastest, so the programs of one head run together and share its K/V tiles
in L2. Each program keeps Q in shared memory/registers, streams K/V tiles (tensor
descriptors -> TMA on sm_90+, block pointers elsewhere), and runs the online softmax in the
log2 domain (exp2, log2(e) folded into the scale). Causal: tiles below the diagonal run
unmasked, the diagonal tiles masked, tiles above it are never visited (the loop split is
`common.attn_rows`, the loop body `common.attn_inner`); causal programs start with the
longest query tiles to shorten the tail.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.common import (
    LOG2E,
    MODE_ONLINE,
    attn_rows,
    autotune_configs,
    check_qkv,
    check_tiling,
    default_scale,
    default_tiling,
    dot_precision,
    ensure_allocator,
    make_tile_source,
    prune_by_smem,
    store_tile,
    use_tma,
)

__all__ = ["attention_fwd", "attention_fwd_autotuned", "attn_fwd_kernel"]


@triton.jit
def attn_fwd_kernel(
    Q,
    K,
    V,
    Out,
    stride_qb,
    stride_qh,
    stride_qs,
    stride_kb,
    stride_kh,
    stride_ks,
    stride_vb,
    stride_vh,
    stride_vs,
    stride_ob,
    stride_oh,
    stride_os,
    heads,
    seq_q,
    seq_k,
    qk_scale,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    USE_TMA: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """O = softmax(Q K^T * scale) V for one query tile of one (batch, head)."""
    start_m = tl.program_id(0)
    if CAUSAL:  # longest rows first: better tail balance
        start_m = tl.num_programs(0) - 1 - start_m
    off_bh = tl.program_id(1)
    off_b = (off_bh // heads).to(tl.int64)
    off_h = (off_bh % heads).to(tl.int64)
    q_src = make_tile_source(
        Q + off_b * stride_qb + off_h * stride_qh, seq_q, stride_qs, BLOCK_M, HEAD_DIM, USE_TMA
    )
    k_src = make_tile_source(
        K + off_b * stride_kb + off_h * stride_kh, seq_k, stride_ks, BLOCK_N, HEAD_DIM, USE_TMA
    )
    v_src = make_tile_source(
        V + off_b * stride_vb + off_h * stride_vh, seq_k, stride_vs, BLOCK_N, HEAD_DIM, USE_TMA
    )
    o_src = make_tile_source(
        Out + off_b * stride_ob + off_h * stride_oh, seq_q, stride_os, BLOCK_M, HEAD_DIM, USE_TMA
    )
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    acc, l_i, m_i = attn_rows(
        q_src,
        k_src,
        v_src,
        acc,
        l_i,
        m_i,
        start_m,
        seq_q,
        seq_k,
        stride_qs,
        stride_ks,
        stride_vs,
        qk_scale,
        BLOCK_M,
        BLOCK_N,
        HEAD_DIM,
        MODE_ONLINE,
        CAUSAL,
        USE_TMA,
        DOT_PRECISION,
    )
    out = acc / l_i[:, None]
    store_tile(
        o_src,
        start_m * BLOCK_M,
        seq_q,
        stride_os,
        out.to(Out.dtype.element_ty),
        BLOCK_M,
        HEAD_DIM,
        USE_TMA,
    )


attn_fwd_autotuned_kernel = triton.autotune(
    configs=autotune_configs(),
    key=["seq_q", "seq_k", "HEAD_DIM", "CAUSAL"],
    prune_configs_by={"early_config_prune": prune_by_smem},
)(attn_fwd_kernel)


def _args(q, k, v, o, scale):  # type: ignore[no-untyped-def]
    b, h, sq, d = q.shape
    sk = k.shape[2]
    sm_scale = default_scale(d) if scale is None else scale
    return (
        q,
        k,
        v,
        o,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        v.stride(0),
        v.stride(1),
        v.stride(2),
        o.stride(0),
        o.stride(1),
        o.stride(2),
        h,
        sq,
        sk,
        sm_scale * LOG2E,
    )


def attention_fwd(
    q,
    k,
    v,
    causal: bool = False,
    scale: float | None = None,  # type: ignore[no-untyped-def]
    block_m: int | None = None,
    block_n: int | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
    out=None,
    tma: bool | None = None,
):
    """1-pass attention forward with an explicit tiling; returns O (B, H, Sq, D).

    Tiling defaults come from `common.default_tiling(head_dim)`. `out` (optional) is written in
    place. `tma` forces tensor descriptors on/off (default: on for CUDA sm_90+).
    """
    q, k, v = check_qkv(q, k, v)
    b, h, sq, d = q.shape
    dm, dn, dw, ds = default_tiling(d)
    block_m, block_n = block_m or dm, block_n or dn
    num_warps, num_stages = num_warps or dw, num_stages or ds
    check_tiling(block_m, block_n, causal)
    o = torch.empty(q.shape, dtype=q.dtype, device=q.device) if out is None else out
    use = use_tma(q.device.type) if tma is None else tma
    if use and q.device.type == "cuda":
        ensure_allocator()
    grid = (triton.cdiv(sq, block_m), b * h)
    attn_fwd_kernel[grid](
        *_args(q, k, v, o, scale),
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        HEAD_DIM=d,
        CAUSAL=causal,
        USE_TMA=use,
        DOT_PRECISION=dot_precision(q.dtype),
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return o


def attention_fwd_autotuned(q, k, v, causal: bool = False, scale: float | None = None):  # type: ignore[no-untyped-def]
    """1-pass attention forward, tiling picked by Triton's autotuner (GPU only)."""
    q, k, v = check_qkv(q, k, v)
    b, h, sq, d = q.shape
    o = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    use = use_tma(q.device.type)
    if use:
        ensure_allocator()

    def grid(meta):  # type: ignore[no-untyped-def]
        return (triton.cdiv(sq, meta["BLOCK_M"]), b * h)

    attn_fwd_autotuned_kernel[grid](
        *_args(q, k, v, o, scale),
        HEAD_DIM=d,
        CAUSAL=causal,
        USE_TMA=use,
        DOT_PRECISION=dot_precision(q.dtype),
    )
    return o
