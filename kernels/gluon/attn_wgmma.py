"""1-pass attention forward for Hopper written in Gluon: explicit wgmma/TMA scheduling.

Opt-in experiments, not the `triton-1pass` family's kernel: the GPU model (`gpu-1pass`) and
the validation suite time `attn_fwd.attention_fwd`. Same computation, tiling parameters and
causal convention as `attn_fwd.attn_fwd_kernel` (one program per query tile and batch*head,
online softmax in the log2 domain, key j visible to query i iff j <= i when causal), but
scheduled by hand for FlashAttention-3's "intra-warpgroup overlapping" (Shah et al., 2024,
their Algorithm 2): the P.V wgmma of one key tile runs on the tensor cores while the warp
group computes the next tile's softmax. Per key tile j >= 1 (`_kv_step`):

    wait for O += P_{j-2} V_{j-2}; O *= alpha_{j-1}; refill V tile j-2's slot
    issue  S_j = Q K_j^T              (wgmma, asynchronous)
    issue  O  += P_{j-1} V_{j-1}      (wgmma, asynchronous, P from registers)
    wait until S_j is done            (the P.V wgmma keeps running); refill K tile j's slot
    P_j, alpha_j = softmax step(S_j)  (MUFU exp2 under the P.V wgmma)

Triton's own pipeliner waits for each wgmma right after issuing it (the note in
`attn_loop.attn_inner`). The wait for the P.V sits at the top of the next step because
ptxas hoisted it above the softmax when it followed the softmax in the same basic block;
tests/unit/kernels/test_wgmma_schedule.py checks the compiled SASS for it. K and V stream
through rings of STAGES shared-memory slots filled by TMA (`mbarrier` per slot); Q is
loaded once and its buffer reused to stage the output for the TMA store.
`attn_fwd_wgmma_ws_kernel` moves the TMA loads to a one-warp producer partition
(`gl.warp_specialize`; FlashAttention-3's producer/consumer split).

Measured on the H200 (benchmarks/results/README.md): both are correct and no faster than the
Triton kernel (mean cuDNN/ours over the 8 head-dim-128 non-causal >= 4K shapes 0.784 and
0.798 vs 0.809 in the same run); with the exponentials or the P.V removed (`diag`) the
plain one gains 18% / 27%, so the softmax and the Q.K^T wgmma of each warp group still run
one after the other, and the two warp groups move in step.

Requirements (`wgmma_unsupported` says which one a call misses; `attention_fwd_wgmma`
raises ValueError with it): CUDA sm_90, 16-bit inputs, the (batch*heads*seq, head_dim) view
of q/k/v/out collapsible, seq_q % BLOCK_M == 0, BLOCK_M == 16 * num_warps or 32 * num_warps
(whole wgmma row groups per warp), BLOCK_N 64 or 128, STAGES >= 2, BLOCK_M % BLOCK_N == 0
when causal. Key rows past seq_k that a ragged tile reads from the next head are masked
(TMA zero-fills past the end of the tensor). Gluon has no CPU interpreter: the correctness
tests run on the GPU (tests/gpu/test_attn_kernels.py); on CPU the kernels are compiled for
sm_90 (`compile_for_sm90`) and their SASS inspected.
"""

from __future__ import annotations

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_init,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

__all__ = [
    "attention_fwd_wgmma",
    "attn_fwd_wgmma_kernel",
    "attn_fwd_wgmma_ws_kernel",
    "compile_for_sm90",
    "smem_bytes",
    "wgmma_unsupported",
]


def smem_bytes(block_m: int, block_n: int, head_dim: int, stages: int, elem_bytes: int = 2) -> int:
    """Shared memory of one program: Q (reused for O), STAGES K and V slots, mbarriers."""
    return elem_bytes * head_dim * (block_m + 2 * stages * block_n) + 8 * (1 + 2 * stages)


@gluon.jit
def _issue_kv(desc, row, bars, smem, slot, pred):
    """TMA-load one K or V tile (rows [row, row + BLOCK_N)) into `slot`; skipped if not pred."""
    bar = bars.index(slot)
    mbarrier.expect(bar, desc.block_type.nbytes, pred=pred)
    tma.async_copy_global_to_shared(desc, [row, 0], bar, smem.index(slot), pred=pred)


@gluon.jit
def _mask_scores(s, tile, start_m, seq_k, CAUSAL: gl.constexpr):
    """-inf where key tile*BLOCK_N + c is past seq_k or (CAUSAL) after query row r."""
    BLOCK_M: gl.constexpr = s.shape[0]
    BLOCK_N: gl.constexpr = s.shape[1]
    s_layout: gl.constexpr = s.type.layout
    cols = tile * BLOCK_N + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
    keep = cols[None, :] < seq_k
    if CAUSAL:
        rows = start_m * BLOCK_M + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, s_layout))
        keep = keep & (rows[:, None] >= cols[None, :])
    return gl.where(keep, s, float("-inf"))


@gluon.jit
def _tile_bounds(
    start_m, seq_k, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, CAUSAL: gl.constexpr
):
    """(key tiles to visit, first key tile that needs a mask) for query tile start_m."""
    hi = seq_k
    mask_from = seq_k // BLOCK_N
    if CAUSAL:
        hi = gl.minimum(hi, (start_m + 1) * BLOCK_M)
        mask_from = gl.minimum(mask_from, (start_m * BLOCK_M) // BLOCK_N)
    return gl.cdiv(hi, BLOCK_N), mask_from


@gluon.jit
def _first_softmax(s, mask_from, start_m, seq_k, qk_scale, CAUSAL: gl.constexpr):
    """Softmax step of key tile 0 (no running max yet): (m, P, l)."""
    if mask_from == 0:
        s = _mask_scores(s, 0, start_m, seq_k, CAUSAL)
    m_i = gl.max(s, 1) * qk_scale
    p = gl.exp2(s * qk_scale - m_i[:, None])
    return m_i, p, gl.sum(p, 1)


@gluon.jit
def _softmax_step(
    s, m_i, l_i, j, mask_from, start_m, seq_k, qk_scale, CAUSAL: gl.constexpr,
    DIAG: gl.constexpr = 0,
):  # fmt: skip
    """Online softmax step of key tile j: (P_j, alpha_j, new max, new sum)."""
    if j >= mask_from:
        s = _mask_scores(s, j, start_m, seq_k, CAUSAL)
    m_new = gl.maximum(m_i, gl.max(s, 1) * qk_scale)
    if DIAG & 1 == 0:
        p = gl.exp2(s * qk_scale - m_new[:, None])
    else:
        p = s * qk_scale - m_new[:, None]
    alpha = gl.exp2(m_i - m_new)
    return p, alpha, m_new, l_i * alpha + gl.sum(p, 1)


@gluon.jit
def _last_pv(acc, alpha, p, v_smem, v_bars, n_tiles, STAGES: gl.constexpr, p_layout: gl.constexpr):
    """Wait for the in-flight P.V, rescale, add P_{n-1} V_{n-1}; returns O (not yet / l)."""
    o_rows: gl.constexpr = gl.SliceLayout(1, p_layout.parent)
    acc = warpgroup_mma_wait(0, deps=(acc,))
    acc = acc * gl.convert_layout(alpha, o_rows)[:, None]
    last = (n_tiles - 1) % STAGES
    mbarrier.wait(v_bars.index(last), ((n_tiles - 1) // STAGES) & 1)
    p_op = gl.convert_layout(p.to(v_smem.dtype), p_layout)
    acc = warpgroup_mma(p_op, v_smem.index(last), acc, is_async=True)
    acc, p_op = warpgroup_mma_wait(0, deps=(acc, p_op))
    return acc


@gluon.jit
def _store_out(acc, l_i, q_smem, o_desc, q_row):
    """O / l, staged in Q's buffer (Q is dead by now) and TMA-stored."""
    out = acc / gl.convert_layout(l_i, gl.SliceLayout(1, acc.type.layout))[:, None]
    q_smem.store(out.to(q_smem.dtype))
    fence_async_shared()
    tma.async_copy_shared_to_global(o_desc, [q_row, 0], q_smem)
    tma.store_wait(pendings=0)


@gluon.jit
def _kv_step(
    j, p, alpha, acc, m_i, l_i, q_smem, k_smem, v_smem, k_bars, v_bars, k_desc, v_desc,
    kv_row, n_tiles, mask_from, start_m, seq_k, qk_scale, s_zero, CAUSAL: gl.constexpr,
    STAGES: gl.constexpr, p_layout: gl.constexpr, DIAG: gl.constexpr = 0,
):  # fmt: skip
    """Key tile j >= 1 (see the module's schedule).

    On entry `acc` is the in-flight wgmma accumulator O += P_{j-2} V_{j-2} (or the initial
    zeros), `p` = P_{j-1} (float32, scores' layout) and `alpha` the rescale factor that the
    softmax step of tile j-1 produced. The step waits for that P.V, rescales O by alpha,
    refills V tile j-2's slot, issues S_j = Q K_j^T and O += P_{j-1} V_{j-1}, and runs the
    softmax step of S_j while the P.V wgmma is still in flight. Returns the same state one
    tile on; its P.V is left in flight.

    Why the wait sits at the top of the step: ptxas schedules a `wgmma.wait_group` freely
    inside a basic block and put a wait placed after the softmax (Triton's own loop, or this
    step with the wait at its end) before the first exponential, so nothing overlapped; at the
    top of the next trip it cannot move above the softmax of the previous one. P is rounded to
    the input dtype only when its P.V is issued, so the P being computed never needs the
    registers of the P that the in-flight wgmma reads.
    """
    BLOCK_N: gl.constexpr = k_smem.shape[1]
    slot = j % STAGES
    prev = (j - 1) % STAGES
    acc = warpgroup_mma_wait(0, deps=(acc,))
    acc = acc * gl.convert_layout(alpha, gl.SliceLayout(1, acc.type.layout))[:, None]
    if j >= 2:  # V tile j-2 is consumed: refill its slot
        _issue_kv(
            v_desc, kv_row + (j - 2 + STAGES) * BLOCK_N, v_bars, v_smem, (j - 2) % STAGES,
            j - 2 + STAGES < n_tiles,
        )  # fmt: skip
    p_op = gl.convert_layout(p.to(k_smem.dtype), p_layout)
    mbarrier.wait(k_bars.index(slot), (j // STAGES) & 1)
    s_tok = warpgroup_mma(
        q_smem, k_smem.index(slot).permute((1, 0)), s_zero, use_acc=False, is_async=True
    )
    mbarrier.wait(v_bars.index(prev), ((j - 1) // STAGES) & 1)
    if DIAG & 2 == 0:
        acc = warpgroup_mma(p_op, v_smem.index(prev), acc, is_async=True)
        s = warpgroup_mma_wait(1, deps=(s_tok,))
    else:
        acc = warpgroup_mma_init(acc)
        s = warpgroup_mma_wait(0, deps=(s_tok,))
    # K tile j is consumed: refill its slot
    _issue_kv(k_desc, kv_row + (j + STAGES) * BLOCK_N, k_bars, k_smem, slot, j + STAGES < n_tiles)
    p, alpha, m_i, l_i = _softmax_step(
        s, m_i, l_i, j, mask_from, start_m, seq_k, qk_scale, CAUSAL, DIAG
    )
    return p, alpha, acc, m_i, l_i


@gluon.jit
def attn_fwd_wgmma_kernel(
    q_desc,
    k_desc,
    v_desc,
    o_desc,
    seq_q,
    seq_k,
    qk_scale,
    CAUSAL: gl.constexpr,
    STAGES: gl.constexpr,
    num_warps: gl.constexpr,
    DIAG: gl.constexpr = 0,
):
    """O = softmax(Q K^T * scale) V for one query tile of one (batch, head); see the module."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_DIM: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype

    start_m = gl.program_id(0)
    if CAUSAL:  # longest rows first: better tail balance
        start_m = gl.num_programs(0) - 1 - start_m
    off_bh = gl.program_id(1)
    q_row = off_bh * seq_q + start_m * BLOCK_M
    kv_row = off_bh * seq_k

    # wgmma accumulator layouts: warps stacked along the rows, one instruction spans all columns
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_N, 16]
    )
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_DIM, 16]
    )
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    s_rows: gl.constexpr = gl.SliceLayout(1, s_layout)

    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_DIM], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(k_bars.index(i), count=1)
        mbarrier.init(v_bars.index(i), count=1)

    n_tiles, mask_from = _tile_bounds(start_m, seq_k, BLOCK_M, BLOCK_N, CAUSAL)

    mbarrier.expect(q_bar, q_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(q_desc, [q_row, 0], q_bar, q_smem)
    for i in gl.static_range(STAGES):
        _issue_kv(k_desc, kv_row + i * BLOCK_N, k_bars, k_smem, i, i < n_tiles)
        _issue_kv(v_desc, kv_row + i * BLOCK_N, v_bars, v_smem, i, i < n_tiles)

    # tile 0: scores, then the first softmax step (no accumulator yet)
    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
    mbarrier.wait(q_bar, 0)
    mbarrier.wait(k_bars.index(0), 0)
    s_tok = warpgroup_mma(
        q_smem, k_smem.index(0).permute((1, 0)), s_zero, use_acc=False, is_async=True
    )
    s = warpgroup_mma_wait(0, deps=(s_tok,))
    m_i, p, l_i = _first_softmax(s, mask_from, start_m, seq_k, qk_scale, CAUSAL)
    acc = warpgroup_mma_init(gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, o_layout))
    alpha = gl.full([BLOCK_M], 1.0, gl.float32, s_rows)
    _issue_kv(k_desc, kv_row + STAGES * BLOCK_N, k_bars, k_smem, 0, STAGES < n_tiles)

    for j in range(1, n_tiles):
        p, alpha, acc, m_i, l_i = _kv_step(
            j, p, alpha, acc, m_i, l_i, q_smem, k_smem, v_smem, k_bars, v_bars, k_desc,
            v_desc, kv_row, n_tiles, mask_from, start_m, seq_k, qk_scale, s_zero, CAUSAL,
            STAGES, p_layout, DIAG,
        )  # fmt: skip

    acc = _last_pv(acc, alpha, p, v_smem, v_bars, n_tiles, STAGES, p_layout)
    mbarrier.invalidate(q_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(k_bars.index(i))
        mbarrier.invalidate(v_bars.index(i))
    _store_out(acc, l_i, q_smem, o_desc, q_row)


_GL_DTYPES = {"torch.float16": gl.float16, "torch.bfloat16": gl.bfloat16}


def wgmma_unsupported(q, k, v, out, causal: bool, tiling: tuple[int, int, int, int]) -> str | None:  # type: ignore[no-untyped-def]
    """Why this kernel cannot run the call (None when it can); see the module's requirements."""
    block_m, block_n, num_warps, stages = tiling
    if q.device.type != "cuda" or torch.cuda.get_device_capability(q.device)[0] != 9:
        return "needs a CUDA sm_90 device"
    if str(q.dtype) not in _GL_DTYPES or not (q.dtype == k.dtype == v.dtype == out.dtype):
        return f"needs float16/bfloat16 inputs of one dtype, got {q.dtype}"
    head_dim = q.shape[-1]
    if head_dim not in (64, 128) or v.shape[-1] != head_dim:
        return f"needs head_dim 64 or 128 for q, k and v, got {head_dim}/{v.shape[-1]}"
    if block_m not in (16 * num_warps, 32 * num_warps) or block_n not in (64, 128):
        return f"needs BLOCK_M = 16 or 32 x num_warps and BLOCK_N 64/128, got {tiling}"
    if stages < 2:
        return f"needs STAGES >= 2 (the last V tile is loaded STAGES - 2 steps ahead), got {stages}"
    if q.shape[2] % block_m:
        return f"needs seq_q % BLOCK_M == 0, got seq_q={q.shape[2]}"
    if causal and block_m % block_n:
        return "causal needs BLOCK_M % BLOCK_N == 0"
    if any(not _rows_view_ok(x) for x in (q, k, v, out)):
        return "needs each of q/k/v/out viewable as (batch*heads*seq, head_dim)"
    if smem_bytes(block_m, block_n, head_dim, stages) > 227 * 1024:
        return f"shared memory {smem_bytes(block_m, block_n, head_dim, stages)} B > 227 KiB"
    return None


def _rows_view_ok(x) -> bool:  # type: ignore[no-untyped-def]
    b, h, s, d = x.shape
    st = x.stride()
    return st[3] == 1 and st[2] == d and st[1] == s * d and (b == 1 or st[0] == h * s * d)


def attention_fwd_wgmma(
    q, k, v, causal=False, scale=None, tiling=(128, 128, 8, 2), out=None, diag=0, ws=False
):  # type: ignore[no-untyped-def]
    """O = softmax(Q K^T * scale) V with this module's kernel.

    tiling = (BLOCK_M, BLOCK_N, num_warps, STAGES). Raises ValueError naming the requirement
    a call does not meet.

    diag (timing experiments only; the output is wrong when set): 1 drops the exponentials
    of the key-tile loop (P = S - m), 2 drops its P.V wgmmas, 3 both. ws: run the
    warp-specialized kernel (`attn_fwd_wgmma_ws_kernel`; no diag).
    """
    import math

    b, h, sq, d = q.shape
    sk = k.shape[2]
    out = torch.empty_like(q) if out is None else out
    why = wgmma_unsupported(q, k, v, out, causal, tiling)
    if why:
        raise ValueError(f"attention_fwd_wgmma: {why}")
    block_m, block_n, num_warps, stages = tiling
    gdt = _GL_DTYPES[str(q.dtype)]

    def desc(x, rows_total, rows):  # type: ignore[no-untyped-def]
        lay = gl.NVMMASharedLayout.get_default_for([rows, d], gdt)
        return TensorDescriptor(x, [rows_total, d], [d, 1], [rows, d], lay)

    scale = 1.0 / math.sqrt(d) if scale is None else scale
    descs = (
        desc(q, b * h * sq, block_m), desc(k, b * h * sk, block_n), desc(v, b * h * sk, block_n),
        desc(out, b * h * sq, block_m),
    )  # fmt: skip
    grid = (sq // block_m, b * h)
    qk_scale = scale * 1.4426950408889634
    if ws:
        attn_fwd_wgmma_ws_kernel[grid](
            *descs, sq, sk, qk_scale, CAUSAL=bool(causal), STAGES=stages, num_warps=num_warps
        )
    else:
        attn_fwd_wgmma_kernel[grid](
            *descs, sq, sk, qk_scale, CAUSAL=bool(causal), STAGES=stages, num_warps=num_warps,
            DIAG=diag,
        )  # fmt: skip
    return out


def compile_for_sm90(tiling=(128, 128, 8, 2), head_dim=128, causal=False, dtype="bf16", ws=False):  # type: ignore[no-untyped-def]
    """Compile the kernel for sm_90 without a GPU (Triton's bundled ptxas).

    Returns the CompiledKernel (`.asm["cubin"]`, `.asm["ptx"]`), for inspecting registers and
    SASS (tests/unit/kernels/test_wgmma_schedule.py).
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.runtime.jit import mangle_type

    block_m, block_n, num_warps, stages = tiling
    tdt = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    host = torch.empty(4 * max(block_m, block_n), head_dim, dtype=tdt)

    def desc(rows: int) -> str:
        lay = gl.NVMMASharedLayout.get_default_for([rows, head_dim], _GL_DTYPES[str(tdt)])
        return str(mangle_type(TensorDescriptor.from_tensor(host, [rows, head_dim], lay)))

    sig = {"q_desc": desc(block_m), "k_desc": desc(block_n), "v_desc": desc(block_n),
           "o_desc": desc(block_m), "seq_q": "i32", "seq_k": "i32", "qk_scale": "fp32",
           "CAUSAL": "constexpr", "STAGES": "constexpr", "num_warps": "constexpr"}  # fmt: skip
    consts = {"CAUSAL": bool(causal), "STAGES": stages, "num_warps": num_warps}
    extra = "LOADER_REGS" if ws else "DIAG"
    sig[extra] = "constexpr"
    consts[extra] = 24 if ws else 0
    kernel = attn_fwd_wgmma_ws_kernel if ws else attn_fwd_wgmma_kernel
    src = GluonASTSource(kernel, sig, constexprs=consts)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})


# ----------------------------------------------------------------------------- warp-specialized
# The same schedule with the TMA loads moved to a one-warp producer partition (FlashAttention-3's
# producer/consumer split): the consumer warps never issue a copy, so the CTA-wide barriers that
# the copies above bring into the key-tile loop (four BAR.SYNC per tile in the SASS) go away and
# the two consumer warp groups are no longer forced into lockstep. Slots are handed back through
# `k_empty` / `v_empty` mbarriers once the wgmma that read them has completed.


@gluon.jit
def _ws_loader(
    q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty, v_empty,
    q_row, kv_row, n_tiles, STAGES: gl.constexpr,
):  # fmt: skip
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    mbarrier.expect(q_bar, q_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(q_desc, [q_row, 0], q_bar, q_smem)
    for j in range(n_tiles):
        slot = j % STAGES
        phase = ((j // STAGES) & 1) ^ 1  # a fresh barrier counts as released once
        mbarrier.wait(k_empty.index(slot), phase)
        mbarrier.expect(k_ready.index(slot), k_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(
            k_desc, [kv_row + j * BLOCK_N, 0], k_ready.index(slot), k_smem.index(slot)
        )
        mbarrier.wait(v_empty.index(slot), phase)
        mbarrier.expect(v_ready.index(slot), v_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(
            v_desc, [kv_row + j * BLOCK_N, 0], v_ready.index(slot), v_smem.index(slot)
        )


@gluon.jit
def _ws_consumer(
    o_desc, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty, v_empty, start_m, seq_k,
    q_row, n_tiles, mask_from, qk_scale, CAUSAL: gl.constexpr, STAGES: gl.constexpr,
    num_warps: gl.constexpr,
):  # fmt: skip
    BLOCK_M: gl.constexpr = q_smem.shape[0]
    HEAD_DIM: gl.constexpr = q_smem.shape[1]
    BLOCK_N: gl.constexpr = k_smem.shape[1]
    dtype: gl.constexpr = q_smem.dtype
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_N, 16]
    )
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_DIM, 16]
    )
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    o_rows: gl.constexpr = gl.SliceLayout(1, o_layout)
    s_rows: gl.constexpr = gl.SliceLayout(1, s_layout)

    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
    mbarrier.wait(q_bar, 0)
    mbarrier.wait(k_ready.index(0), 0)
    s_tok = warpgroup_mma(
        q_smem, k_smem.index(0).permute((1, 0)), s_zero, use_acc=False, is_async=True
    )
    s = warpgroup_mma_wait(0, deps=(s_tok,))
    mbarrier.arrive(k_empty.index(0), count=1)
    m_i, p, l_i = _first_softmax(s, mask_from, start_m, seq_k, qk_scale, CAUSAL)
    acc = warpgroup_mma_init(gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, o_layout))
    alpha = gl.full([BLOCK_M], 1.0, gl.float32, s_rows)
    for j in range(1, n_tiles):
        slot = j % STAGES
        prev = (j - 1) % STAGES
        acc = warpgroup_mma_wait(0, deps=(acc,))
        if j >= 2:  # the P.V of tile j-2 is done: hand its V slot back
            mbarrier.arrive(v_empty.index((j - 2) % STAGES), count=1)
        acc = acc * gl.convert_layout(alpha, o_rows)[:, None]
        p_op = gl.convert_layout(p.to(dtype), p_layout)
        mbarrier.wait(k_ready.index(slot), (j // STAGES) & 1)
        s_tok = warpgroup_mma(
            q_smem, k_smem.index(slot).permute((1, 0)), s_zero, use_acc=False, is_async=True
        )
        mbarrier.wait(v_ready.index(prev), ((j - 1) // STAGES) & 1)
        acc = warpgroup_mma(p_op, v_smem.index(prev), acc, is_async=True)
        s = warpgroup_mma_wait(1, deps=(s_tok,))
        mbarrier.arrive(k_empty.index(slot), count=1)
        p, alpha, m_i, l_i = _softmax_step(
            s, m_i, l_i, j, mask_from, start_m, seq_k, qk_scale, CAUSAL
        )
    acc = _last_pv(acc, alpha, p, v_smem, v_ready, n_tiles, STAGES, p_layout)
    _store_out(acc, l_i, q_smem, o_desc, q_row)


@gluon.jit
def attn_fwd_wgmma_ws_kernel(
    q_desc,
    k_desc,
    v_desc,
    o_desc,
    seq_q,
    seq_k,
    qk_scale,
    CAUSAL: gl.constexpr,
    STAGES: gl.constexpr,
    num_warps: gl.constexpr,
    LOADER_REGS: gl.constexpr = 24,
):
    """`attn_fwd_wgmma_kernel` with a one-warp TMA producer partition (see above)."""
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_DIM: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    start_m = gl.program_id(0)
    if CAUSAL:
        start_m = gl.num_programs(0) - 1 - start_m
    off_bh = gl.program_id(1)
    q_row = off_bh * seq_q + start_m * BLOCK_M
    kv_row = off_bh * seq_k
    n_tiles, mask_from = _tile_bounds(start_m, seq_k, BLOCK_M, BLOCK_N, CAUSAL)

    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_DIM], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    k_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(k_ready.index(i), count=1)
        mbarrier.init(v_ready.index(i), count=1)
        mbarrier.init(k_empty.index(i), count=1)
        mbarrier.init(v_empty.index(i), count=1)

    gl.warp_specialize(
        [
            (_ws_consumer, (o_desc, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty,
                            v_empty, start_m, seq_k, q_row, n_tiles, mask_from, qk_scale, CAUSAL,
                            STAGES, num_warps)),
            (_ws_loader, (q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, k_ready,
                          v_ready, k_empty, v_empty, q_row, kv_row, n_tiles, STAGES)),
        ],
        [1],
        [LOADER_REGS],
    )  # fmt: skip
