"""2-pass attention forward (family `triton-2pass`, mapper `gpu-2pass`).

Pass 1 (`attn_2pass_kernel`, MODE_STATS) computes, per query row, the row max `m` (log2
domain, scale folded in) and the row sum `l` of exp2(s - m), reading Q and K only; it writes fp32
(batch*heads, seq_q). Pass 2 (the same kernel, MODE_OUTPUT) recomputes the scores and forms the
exact probabilities exp2(s - m) / l tile by tile, accumulating P.V with no rescaling. Both
passes use the grid, tiling and loop of the 1-pass kernel (`attn_loop.attn_rows` with a
constexpr MODE), so causal tile skipping and masking are identical.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from attnsim.kernels.triton.attn_loop import MODE_OUTPUT, MODE_STATS, attn_rows
from attnsim.kernels.triton.common import (
    LOG2E,
    autotune_configs,
    check_qkv,
    check_tiling,
    default_scale,
    default_tiling,
    dot_precision,
    ensure_allocator,
    prune_by_smem,
    use_tma,
)
from attnsim.kernels.triton.launch import DirectLaunch, PlanCache
from attnsim.kernels.triton.tiles import make_tile_source, store_tile

__all__ = [
    "plan_for",
    "attention_2pass",
    "attention_2pass_autotuned",
    "attn_2pass_kernel",
]


@triton.jit
def attn_2pass_kernel(
    Q,
    K,
    V,
    Out,
    M,
    L,
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
    MODE: tl.constexpr,
):
    """Both passes, one query tile of one (batch, head) per program; MODE picks the pass.

    MODE_STATS (pass 1) writes the row max M and row sum L (fp32, log2 domain); MODE_OUTPUT
    (pass 2) writes O = sum_j exp2(s_ij - M_i) / L_i * V_j.
    """
    start_m = tl.program_id(0)
    if CAUSAL:
        start_m = tl.num_programs(0) - 1 - start_m
    off_bh = tl.program_id(1)
    off_b = (off_bh // heads).to(tl.int64)
    off_h = (off_bh % heads).to(tl.int64)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = offs_m < seq_q
    stat_ptr = off_bh.to(tl.int64) * seq_q + offs_m
    q_src = make_tile_source(
        Q + off_b * stride_qb + off_h * stride_qh, seq_q, stride_qs, BLOCK_M, HEAD_DIM, USE_TMA
    )
    k_src = make_tile_source(
        K + off_b * stride_kb + off_h * stride_kh, seq_k, stride_ks, BLOCK_N, HEAD_DIM, USE_TMA
    )
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if MODE == MODE_STATS:
        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc, l_i, m_i = attn_rows(
            q_src,
            k_src,
            k_src,
            acc,
            l_i,
            m_i,
            start_m,
            seq_q,
            seq_k,
            stride_qs,
            stride_ks,
            stride_ks,
            qk_scale,
            BLOCK_M,
            BLOCK_N,
            HEAD_DIM,
            MODE,
            CAUSAL,
            USE_TMA,
            DOT_PRECISION,
        )
        tl.store(M + stat_ptr, m_i, mask=row_ok)
        tl.store(L + stat_ptr, l_i, mask=row_ok)
    else:
        v_src = make_tile_source(
            V + off_b * stride_vb + off_h * stride_vh, seq_k, stride_vs, BLOCK_N, HEAD_DIM, USE_TMA
        )
        o_src = make_tile_source(
            Out + off_b * stride_ob + off_h * stride_oh,
            seq_q,
            stride_os,
            BLOCK_M,
            HEAD_DIM,
            USE_TMA,
        )
        m_i = tl.load(M + stat_ptr, mask=row_ok, other=0.0)
        inv_l = 1.0 / tl.load(L + stat_ptr, mask=row_ok, other=1.0)
        acc, inv_l, m_i = attn_rows(
            q_src,
            k_src,
            v_src,
            acc,
            inv_l,
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
            MODE,
            CAUSAL,
            USE_TMA,
            DOT_PRECISION,
        )
        store_tile(
            o_src,
            start_m * BLOCK_M,
            seq_q,
            stride_os,
            acc.to(Out.dtype.element_ty),
            BLOCK_M,
            HEAD_DIM,
            USE_TMA,
        )


def _tuned(kernel):  # type: ignore[no-untyped-def]
    return triton.autotune(
        configs=autotune_configs(),
        key=["seq_q", "seq_k", "HEAD_DIM", "CAUSAL", "MODE"],
        prune_configs_by={"early_config_prune": prune_by_smem},
    )(kernel)


attn_2pass_autotuned_kernel = _tuned(attn_2pass_kernel)


def _args(q, k, v, o_strides, scale):  # type: ignore[no-untyped-def]
    """The scalar kernel arguments after the six pointers (signature order)."""
    b, h, sq, d = q.shape
    sm_scale = default_scale(d) if scale is None else scale
    return (
        *q.stride()[:3],
        *k.stride()[:3],
        *v.stride()[:3],
        *o_strides[:3],
        h,
        sq,
        k.shape[2],
        sm_scale * LOG2E,
    )


def _buffers(q, out):  # type: ignore[no-untyped-def]
    b, h, sq, _ = q.shape
    o = torch.empty(q.shape, dtype=q.dtype, device=q.device) if out is None else out
    m = torch.empty((b * h, sq), dtype=torch.float32, device=q.device)
    l = torch.empty((b * h, sq), dtype=torch.float32, device=q.device)  # noqa: E741
    return o, m, l


class _Plan:
    """A call's launches (stats pass, output pass) and output shapes (see kernels.triton.launch)."""

    __slots__ = ("passes", "o_shape", "stat_shape", "dtype", "device")

    def __init__(self, q, k, v, out, causal, scale, tiling, tma):  # type: ignore[no-untyped-def]
        b, h, sq, d = q.shape
        dm, dn, dw, ds = default_tiling(d)
        bm, bn, w, st = tiling
        bm, bn, w, st = bm or dm, bn or dn, w or dw, st or ds
        check_tiling(bm, bn, causal)
        dev = q.get_device()
        if k.get_device() != dev or v.get_device() != dev:
            raise ValueError("q, k, v must be on one device")
        if out is not None and (
            tuple(out.shape) != tuple(q.shape)
            or out.dtype != q.dtype
            or out.stride(-1) != 1
            or out.get_device() != dev
        ):
            raise ValueError(f"out must be a {tuple(q.shape)} {q.dtype} tensor on q's device")
        use = use_tma(q.device.type) if tma is None else tma
        if use and q.device.type == "cuda":
            ensure_allocator()
        o_strides = out.stride() if out is not None else (h * sq * d, sq * d, d, 1)
        meta = dict(
            BLOCK_M=bm,
            BLOCK_N=bn,
            HEAD_DIM=d,
            CAUSAL=bool(causal),
            USE_TMA=bool(use),
            DOT_PRECISION=dot_precision(q.dtype),
        )
        scalars = _args(q, k, v, o_strides, scale)
        grid = (triton.cdiv(sq, bm), b * h)
        self.passes = tuple(
            DirectLaunch(attn_2pass_kernel, grid, scalars, {**meta, "MODE": int(mode)}, w, st, dev)
            for mode in (MODE_STATS, MODE_OUTPUT)
        )
        self.o_shape = tuple(q.shape)
        self.stat_shape = (b * h, sq)
        self.dtype = q.dtype
        self.device = q.device


_PLANS = PlanCache()


def plan_for(  # type: ignore[no-untyped-def]
    q,
    k,
    v,
    causal=False,
    scale=None,
    out=None,
    block_m=None,
    block_n=None,
    num_warps=None,
    num_stages=None,
    tma=None,
) -> _Plan:
    """The cached launch plan (stats pass, output pass) of an `attention_2pass` call."""
    key = (
        q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), q.dtype, k.dtype,
        v.dtype, q.get_device(), k.get_device(), v.get_device(),
        None if out is None else (out.shape, out.stride(), out.dtype, out.get_device()),
        causal, scale, block_m, block_n, num_warps, num_stages, tma,
    )  # fmt: skip
    plan = _PLANS.get(key)
    if plan is None:
        q, k, v = check_qkv(q, k, v)
        tiling = (block_m, block_n, num_warps, num_stages)
        plan = _PLANS.put(key, _Plan(q, k, v, out, causal, scale, tiling, tma))
    return plan


def attention_2pass(
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
    return_stats: bool = False,
):
    """2-pass attention forward with an explicit tiling (same for both passes); returns O.

    With `return_stats`, returns (O, M, L): the fp32 row max (log2 domain) and row sum.
    Tiling parameters left as None come from `common.default_tiling(head_dim)`. Launches
    go through `kernels.triton.launch` (a repeated call: one cache lookup, three allocations, two
    direct launches).
    """
    plan = plan_for(q, k, v, causal, scale, out, block_m, block_n, num_warps, num_stages, tma)
    if any(t.stride(-1) != 1 for t in (q, k, v)):
        q, k, v = check_qkv(q, k, v)
    o = torch.empty(plan.o_shape, dtype=plan.dtype, device=plan.device) if out is None else out
    m = torch.empty(plan.stat_shape, dtype=torch.float32, device=plan.device)
    l = torch.empty(plan.stat_shape, dtype=torch.float32, device=plan.device)  # noqa: E741
    for launch in plan.passes:
        launch(q, k, v, o, m, l)
    return (o, m, l) if return_stats else o


def attention_2pass_autotuned(q, k, v, causal: bool = False, scale: float | None = None):  # type: ignore[no-untyped-def]
    """2-pass attention forward, each pass autotuned separately (GPU only)."""
    q, k, v = check_qkv(q, k, v)
    b, h, sq, d = q.shape
    o, m, l = _buffers(q, None)  # noqa: E741
    use = use_tma(q.device.type)
    if use:
        ensure_allocator()

    def grid(meta):  # type: ignore[no-untyped-def]
        return (triton.cdiv(sq, meta["BLOCK_M"]), b * h)

    args = (q, k, v, o, m, l, *_args(q, k, v, o.stride(), scale))
    meta = dict(HEAD_DIM=d, CAUSAL=causal, USE_TMA=use, DOT_PRECISION=dot_precision(q.dtype))
    attn_2pass_autotuned_kernel[grid](*args, MODE=int(MODE_STATS), **meta)
    attn_2pass_autotuned_kernel[grid](*args, MODE=int(MODE_OUTPUT), **meta)
    return o
