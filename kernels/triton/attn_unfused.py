"""Unfused 3-kernel attention baseline (family `triton-unfused`, mapper `gpu-unfused`).

1. `qk_kernel`: S = (Q K^T) * scale * log2(e), one BLOCK_M x BLOCK_N tile per program, written
   to HBM in the input dtype (batch*heads, seq_q, seq_k). Causal: tiles entirely above the
   diagonal are skipped (never written, never read).
2. `softmax_kernel`: one program per score row, in place: P = exp2(S - max) / sum. Rows that
   fit one block (seq_k <= SOFTMAX_MAX_BLOCK) are done in registers; longer rows take two
   loops (online max/sum, then normalize and write). Causal rows read only j <= i.
3. `pv_kernel`: O = P V, one BLOCK_M x head_dim tile per program, looping over key tiles
   (up to the diagonal when causal; P above the diagonal is masked to zero on load).

The tiling parameters (BLOCK_M, BLOCK_N, num_warps, num_stages) apply to both matmul kernels;
the softmax kernel picks its own block and warps from seq_k.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from attnsim.kernels.spec import (
    ALIGNED_ROW_KEYS,
    SOFTMAX_MAX_BLOCK,  # longest row the softmax kernel holds in registers
)
from attnsim.kernels.triton.common import (
    LOG2E,
    check_qkv,
    check_tiling,
    default_scale,
    dot_precision,
)
from attnsim.kernels.triton.launch import DirectLaunch, PlanCache

__all__ = [
    "SOFTMAX_MAX_BLOCK",
    "attention_unfused",
    "plan_for",
    "pv_kernel",
    "qk_kernel",
    "softmax_kernel",
]


@triton.jit
def qk_kernel(
    Q,
    K,
    S,
    stride_qb,
    stride_qh,
    stride_qs,
    stride_kb,
    stride_kh,
    stride_ks,
    heads,
    seq_q,
    seq_k,
    qk_scale,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """One tile of the scaled score matrix (log2 domain)."""
    start_m = tl.program_id(0)
    start_n = tl.program_id(1)
    if CAUSAL:
        if start_n * BLOCK_N > (start_m + 1) * BLOCK_M - 1:
            return
    off_bh = tl.program_id(2)
    off_b = (off_bh // heads).to(tl.int64)
    off_h = (off_bh % heads).to(tl.int64)
    q_ptr = tl.make_block_ptr(
        Q + off_b * stride_qb + off_h * stride_qh,
        (seq_q, HEAD_DIM),
        (stride_qs, 1),
        (start_m * BLOCK_M, 0),
        (BLOCK_M, HEAD_DIM),
        (1, 0),
    )
    k_ptr = tl.make_block_ptr(
        K + off_b * stride_kb + off_h * stride_kh,
        (seq_k, HEAD_DIM),
        (stride_ks, 1),
        (start_n * BLOCK_N, 0),
        (BLOCK_N, HEAD_DIM),
        (1, 0),
    )
    q = tl.load(q_ptr, boundary_check=(0,), padding_option="zero")
    k = tl.load(k_ptr, boundary_check=(0,), padding_option="zero")
    s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
    s_ptr = tl.make_block_ptr(
        S + off_bh.to(tl.int64) * seq_q * seq_k,
        (seq_q, seq_k),
        (seq_k, 1),
        (start_m * BLOCK_M, start_n * BLOCK_N),
        (BLOCK_M, BLOCK_N),
        (1, 0),
    )
    tl.store(s_ptr, s.to(S.dtype.element_ty), boundary_check=(0, 1))


@triton.jit
def softmax_kernel(
    S,
    seq_q,
    seq_k,
    BLOCK: tl.constexpr,
    CAUSAL: tl.constexpr,
    SINGLE: tl.constexpr,
    VEC: tl.constexpr = 1,
):
    """In-place row softmax of log2-domain scores: one program per row.

    Causal rows use keys j <= i. Loads and stores run up to `n_io`, the visible length
    rounded up to VEC elements (VEC = 16 when seq_k % 16 == 0, else 1): a bound that is a
    multiple of VEC lets the compiler use vector accesses (a per-element bound forces 2-byte
    ones). Entries between i and n_io are masked to -inf after the load (they are written
    back as 0).
    """
    row = tl.program_id(0).to(tl.int64)
    i = row % seq_q
    n_io = seq_k
    if CAUSAL:
        n_io = tl.multiple_of(tl.minimum(seq_k, (i // VEC + 1) * VEC), VEC)
    base = S + row * seq_k
    offs = tl.arange(0, BLOCK)
    if SINGLE:
        ok = offs < n_io
        x = tl.load(base + offs, mask=ok, other=float("-inf")).to(tl.float32)
        if CAUSAL:
            x = tl.where(offs <= i, x, float("-inf"))
        m = tl.max(x, 0)
        p = tl.math.exp2(x - m)
        p = p / tl.sum(p, 0)
        tl.store(base + offs, p.to(S.dtype.element_ty), mask=ok)
    else:
        m = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
        l = tl.zeros([BLOCK], dtype=tl.float32)  # noqa: E741
        for start in range(0, n_io, BLOCK):
            ok = start + offs < n_io
            x = tl.load(base + start + offs, mask=ok, other=float("-inf")).to(tl.float32)
            if CAUSAL:
                x = tl.where(start + offs <= i, x, float("-inf"))
            m_new = tl.maximum(m, x)
            # lanes still at -inf keep l = 0 (m_safe avoids -inf - -inf)
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.math.exp2(m - m_safe)
            l = l * alpha + tl.math.exp2(x - m_safe)  # noqa: E741
            m = m_new
        m_row = tl.max(m, 0)
        l_row = tl.sum(tl.where(m == float("-inf"), 0.0, l * tl.math.exp2(m - m_row)), 0)
        inv = 1.0 / l_row
        for start in range(0, n_io, BLOCK):
            ok = start + offs < n_io
            x = tl.load(base + start + offs, mask=ok, other=float("-inf")).to(tl.float32)
            if CAUSAL:
                x = tl.where(start + offs <= i, x, float("-inf"))
            p = tl.math.exp2(x - m_row) * inv
            tl.store(base + start + offs, p.to(S.dtype.element_ty), mask=ok)


@triton.jit
def pv_kernel(
    P,
    V,
    Out,
    stride_vb,
    stride_vh,
    stride_vs,
    stride_ob,
    stride_oh,
    stride_os,
    heads,
    seq_q,
    seq_k,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """One BLOCK_M x HEAD_DIM tile of O = P V."""
    start_m = tl.program_id(0)
    off_bh = tl.program_id(1)
    off_b = (off_bh // heads).to(tl.int64)
    off_h = (off_bh % heads).to(tl.int64)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    p_base = P + off_bh.to(tl.int64) * seq_q * seq_k + offs_m[:, None].to(tl.int64) * seq_k
    v_base = V + off_b * stride_vb + off_h * stride_vh
    hi = seq_k
    if CAUSAL:
        hi = tl.minimum(seq_k, (start_m + 1) * BLOCK_M)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in tl.range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        ok = (offs_m[:, None] < seq_q) & (cols[None, :] < seq_k)
        p = tl.load(p_base + cols[None, :], mask=ok, other=0.0)
        if CAUSAL:  # select after the load: a per-element load mask forces 2-byte loads
            p = tl.where(cols[None, :] <= offs_m[:, None], p, 0.0)
        v_ptr = tl.make_block_ptr(
            v_base, (seq_k, HEAD_DIM), (stride_vs, 1), (start_n, 0), (BLOCK_N, HEAD_DIM), (1, 0)
        )
        v = tl.load(v_ptr, boundary_check=(0,), padding_option="zero")
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
    o_ptr = tl.make_block_ptr(
        Out + off_b * stride_ob + off_h * stride_oh,
        (seq_q, HEAD_DIM),
        (stride_os, 1),
        (start_m * BLOCK_M, 0),
        (BLOCK_M, HEAD_DIM),
        (1, 0),
    )
    tl.store(o_ptr, acc.to(Out.dtype.element_ty), boundary_check=(0,))


def softmax_launch_params(seq_k: int) -> tuple[int, int, bool]:
    """(BLOCK, num_warps, SINGLE) of the softmax kernel for rows of length seq_k."""
    block = min(triton.next_power_of_2(seq_k), SOFTMAX_MAX_BLOCK)
    single = seq_k <= block
    warps = 8 if block >= 4096 else 4 if block >= 1024 else 2 if block >= 256 else 1
    return block, warps, single


class _Plan:
    """A call's three launches and buffer shapes (see kernels.triton.launch)."""

    __slots__ = ("qk", "softmax", "pv", "o_shape", "s_shape", "dtype", "device")

    def __init__(self, q, k, v, out, causal, scale, tiling):  # type: ignore[no-untyped-def]
        b, h, sq, d = q.shape
        sk = k.shape[2]
        block_m, block_n, num_warps, num_stages = tiling
        check_tiling(block_m, block_n, False)
        dev = q.get_device()
        if k.get_device() != dev or v.get_device() != dev:
            raise ValueError("q, k, v must be on one device")
        if out is not None and (
            tuple(out.shape) != tuple(q.shape) or out.dtype != q.dtype or out.stride(-1) != 1
        ):
            raise ValueError(f"out must be a {tuple(q.shape)} {q.dtype} tensor")
        o_strides = out.stride() if out is not None else (h * sq * d, sq * d, d, 1)
        sm_scale = default_scale(d) if scale is None else scale
        mm = dict(
            BLOCK_M=block_m,
            BLOCK_N=block_n,
            HEAD_DIM=d,
            CAUSAL=bool(causal),
            DOT_PRECISION=dot_precision(q.dtype),
        )
        qk_scalars = (*q.stride()[:3], *k.stride()[:3], h, sq, sk, sm_scale * LOG2E)
        grid_qk = (triton.cdiv(sq, block_m), triton.cdiv(sk, block_n), b * h)
        self.qk = DirectLaunch(qk_kernel, grid_qk, qk_scalars, mm, num_warps, num_stages, dev)
        block, warps, single = softmax_launch_params(sk)
        vec = ALIGNED_ROW_KEYS if sk % ALIGNED_ROW_KEYS == 0 else 1
        self.softmax = DirectLaunch(
            softmax_kernel,
            (b * h * sq,),
            (sq, sk),
            dict(BLOCK=block, CAUSAL=bool(causal), SINGLE=single, VEC=vec),
            warps,
            3,
            dev,
        )
        pv_scalars = (*v.stride()[:3], *o_strides[:3], h, sq, sk)
        grid_pv = (triton.cdiv(sq, block_m), b * h)
        self.pv = DirectLaunch(pv_kernel, grid_pv, pv_scalars, mm, num_warps, num_stages, dev)
        self.o_shape = tuple(q.shape)
        self.s_shape = (b * h, sq, sk)
        self.dtype = q.dtype
        self.device = q.device


_PLANS = PlanCache()


def plan_for(  # type: ignore[no-untyped-def]
    q, k, v, causal=False, scale=None, out=None, block_m=128, block_n=64, num_warps=4, num_stages=3
) -> _Plan:
    """The cached launch plan of an `attention_unfused` call with these arguments."""
    key = (
        q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), q.dtype, k.dtype,
        v.dtype, q.get_device(), k.get_device(), v.get_device(),
        None if out is None else (out.shape, out.stride(), out.dtype, out.get_device()),
        causal, scale, block_m, block_n, num_warps, num_stages,
    )  # fmt: skip
    plan = _PLANS.get(key)
    if plan is None:
        q, k, v = check_qkv(q, k, v)
        tiling = (block_m, block_n, num_warps, num_stages)
        plan = _PLANS.put(key, _Plan(q, k, v, out, causal, scale, tiling))
    return plan


def attention_unfused(
    q,
    k,
    v,
    causal: bool = False,
    scale: float | None = None,  # type: ignore[no-untyped-def]
    block_m: int = 128,
    block_n: int = 64,
    num_warps: int = 4,
    num_stages: int = 3,
    out=None,
    scores=None,
):
    """Unfused attention: QK^T to HBM, row softmax in place, P V; returns O.

    `scores` (optional) is a preallocated (B*H, Sq, Sk) buffer of q's dtype. Launches go
    through `kernels.triton.launch` (a repeated call: one cache lookup, the allocations, three
    direct launches).
    """
    tiling = (block_m, block_n, num_warps, num_stages)
    plan = plan_for(q, k, v, causal, scale, out, *tiling)
    if any(t.stride(-1) != 1 for t in (q, k, v)):
        q, k, v = check_qkv(q, k, v)
    o = torch.empty(plan.o_shape, dtype=plan.dtype, device=plan.device) if out is None else out
    s = scores
    if s is None:
        s = torch.empty(plan.s_shape, dtype=plan.dtype, device=plan.device)
    elif tuple(s.shape) != plan.s_shape or not s.is_contiguous() or s.dtype != plan.dtype:
        raise ValueError(f"scores must be a contiguous {plan.s_shape} {plan.dtype} tensor")
    plan.qk(q, k, s)
    plan.softmax(s)
    plan.pv(s, v, o)
    return o
