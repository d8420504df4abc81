"""1-pass attention forward for Hopper with ping-pong warp-group scheduling (Gluon).

The `triton-1pass` family's `pingpong` schedule (`attn_fwd.attention_fwd(...,
schedule="pingpong")`; the `plain` schedule is the Triton kernel of `attn_fwd`). Same
computation, causal convention and grid as `attn_fwd.attn_fwd_kernel` (one program per query
tile of BLOCK_M = 128 rows and batch*head, online softmax in the log2 domain), written in
Gluon (Triton 3.6's explicit-layout dialect) for sm_90 with FlashAttention-3's two schedules
(Shah et al., 2024, section 3.1):

- Warp specialization: one producer warp streams K/V tiles by TMA into a ring of STAGES
  shared-memory slots, one signal warp waits for each tile's TMA completion (mbarrier) and
  announces it, and two consumer warp groups (64 query rows each) do the math.
- Ping-pong ("inter-warpgroup overlapping"): the two consumer warp groups take turns issuing
  their wgmmas, so one group's softmax (MUFU exp2, CUDA-core work) runs while the other
  group's Q.K^T and P.V occupy the tensor cores. Within a group the P.V of key tile j-1 is
  issued with the Q.K^T of tile j and waited for only at the top of the next step
  ("intra-warpgroup overlapping", as in `attn_wgmma`).

Sigmoid attention (SIGMOID, `attention_fwd(schedule="pingpong", score=Score(sigmoid=True))`):
P = sigmoid(S * scale + bias) = 0.5 tanh((S * scale + bias) / 2) + 0.5 on the MUFU
(`tanh.approx.f32`, as the plain kernel's FAST_TANH), masked scores -inf (weight 0); no
running max, row sum or rescale of O, and O is stored unnormalized.

Per key tile j >= 1, each consumer warp group (`_consumer`):

    wait for its O += P_{j-2} V_{j-2}; hand slot (j-2) % STAGES back; O *= alpha_{j-1}
    wait until tile j has landed (READY); wait for its turn (TURN)
    issue S_j = Q K_j^T and O += P_{j-1} V_{j-1}; give the turn to the other group
    wait for S_j; P_j, alpha_j = softmax step(S_j)

Why named barriers (`bar.sync` / `bar.arrive` with ids 4-15, PTX through
`gl.inline_asm_elementwise`) instead of mbarriers in the consumer: Triton's shared-memory
barrier analysis puts a CTA-wide `bar.sync 0` before every `mbarrier.wait` and around every
`mbarrier.arrive` that follows another access to the barrier array, which holds the two
consumer warp groups in step every key tile and removes the ping-pong (measured with the
warp-specialized kernel of `attn_wgmma`, which has them). Named barriers let each group
wait only for what it needs:

    TURN  4 + wg             one group waits (128 threads), the other arrives (128)
    FREE  6 + slot           both groups arrive (256), the producer warp waits (32)
    READY 6 + S + S*wg + slot  the signal warp arrives (32), group wg waits (128)

with wg = threadIdx.x / 128 (the consumers are the default partition, warps 0-7) and S =
STAGES (2 or 3; ids up to 6 + 3S - 1 <= 15). Every wait has exactly one matching arrive per
phase: group 1 gives group 0 its first turn, and after the last P.V only group 0 gives one.
tests/unit/kernels/test_pingpong_schedule.py checks the compiled SASS (turn barriers around
the wgmmas, no CTA-wide barrier in the key-tile loop, no spills).

Requirements (`pingpong_unsupported` names the one a call misses): CUDA sm_90, fp16/bf16,
head dim 64 or 128 (q, k, v alike), BLOCK_M = 128 with 8 consumer warps, BLOCK_N 64 or 128,
STAGES 2 or 3, seq_q % 128 == 0, q/k/v/out viewable as (batch*heads*seq, head_dim) rows,
k and v with H or a divisor G of H heads (GQA/MQA: query head h reads K/V head h // (H / G)),
the shared memory Q + STAGES x (K + V) within 227 KiB. Key rows past seq_k that a ragged
tile reads from the next head are masked. Gluon has no CPU interpreter: correctness tests
run on the GPU (tests/gpu/test_attn_kernels.py); on CPU the kernel is compiled for sm_90
(`compile_for_sm90`) and its SASS inspected.

Launch path: a plan per call key (shapes, strides, dtypes, device, causal, scale, tiling)
holds the grid and arguments; after the first (JIT) launch, calls go to the compiled kernel's
C launcher with the descriptors cached per data pointers (`kernels.triton.launch.DescriptorLaunch`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_init,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

from attnsim.kernels.gluon.attn_wgmma import (
    _GL_DTYPES,
    _first_softmax,
    _mask_scores,
    _rows_view_ok,
    _softmax_step,
    _store_out,
    _tile_bounds,
)
from attnsim.kernels.spec import (
    PINGPONG_BLOCK,
    PINGPONG_BLOCK_N,
    PINGPONG_HEAD_DIMS,
    PINGPONG_STAGES,
    smem_bytes_pingpong,
)
from attnsim.kernels.triton.launch import DescriptorLaunch, PlanCache

__all__ = [
    "BLOCK_M",
    "CONSUMER_WARPS",
    "attention_fwd_pingpong",
    "attn_fwd_pingpong_kernel",
    "compile_for_sm90",
    "pingpong_smem_bytes",
    "pingpong_unsupported",
]

# BLOCK_M = 128: two consumer warp groups of 64 query rows (one m64 wgmma row group each)
BLOCK_M, CONSUMER_WARPS = PINGPONG_BLOCK
WORKER_WARPS = 2  # the TMA producer and the signal warp
WORKER_REGS = 24  # setmaxnreg of the two worker warps; the consumers get the rest (240,
# spec.PINGPONG_REGISTERS)
STAGE_CHOICES = PINGPONG_STAGES

# Named-barrier PTX (see the module docstring). Each runs once per thread of its partition;
# $1 and $2 are int32 scalars, $0 a dummy output (inline asm needs one).
_WG = "mov.u32 w, %tid.x; shr.u32 w, w, 7;"
_TURN_WAIT = gl.constexpr(
    "{ .reg .u32 w; " + _WG + " add.u32 w, w, 4; bar.sync w, 256; mov.u32 $0, $1; }"
)
# give the turn to the other group; group 1 gives it only when $1 != 0
_TURN_GIVE = gl.constexpr(
    "{ .reg .u32 w; .reg .pred p; " + _WG + " setp.eq.u32 p, w, 0; setp.ne.or.s32 p, $1, 0, p;"
    " xor.b32 w, w, 1; add.u32 w, w, 4; @p bar.arrive w, 256; mov.u32 $0, $2; }"
)
_TURN_START = gl.constexpr(  # group 1 hands group 0 its first turn
    "{ .reg .u32 w; .reg .pred p; " + _WG + " setp.eq.u32 p, w, 1; @p bar.arrive 4, 256;"
    " mov.u32 $0, $1; }"
)
_READY_WAIT = gl.constexpr(  # $1 = READY id of group 0 for the slot, $2 = STAGES
    "{ .reg .u32 w; " + _WG + " mad.lo.u32 w, w, $2, $1; bar.sync w, 160; mov.u32 $0, $1; }"
)
_READY_GIVE = gl.constexpr(  # to both groups
    "{ .reg .u32 w; bar.arrive $1, 160; add.u32 w, $1, $2; bar.arrive w, 160; mov.u32 $0, $1; }"
)
_FREE_GIVE = gl.constexpr(  # $1 = FREE id, skipped when $1 < 0 (the slot is not refilled)
    "{ .reg .pred p; setp.ge.s32 p, $1, 0; @p bar.arrive $1, 288; mov.u32 $0, $2; }"
)
_FREE_WAIT = gl.constexpr("{ bar.sync $1, 288; mov.u32 $0, $2; }")
_TURN_ID, _FREE_ID = 4, 6


@gluon.jit
def _ptx(asm: gl.constexpr, a, b, N_THREADS: gl.constexpr):
    """Run `asm` once per thread of a partition of N_THREADS threads ($1 = a, $2 = b)."""
    lay: gl.constexpr = gl.BlockedLayout([1], [32], [N_THREADS // 32], [0])
    x = gl.full([N_THREADS], a, gl.int32, lay)
    y = gl.full([N_THREADS], b, gl.int32, lay)
    gl.inline_asm_elementwise(asm, "=r,r,r", [x, y], dtype=gl.int32, is_pure=False, pack=1)


@gluon.jit
def _sigmoid_p(s, j, mask_from, start_m, seq_k, t_scale, t_bias, CAUSAL: gl.constexpr):
    """Sigmoid weights of key tile j: 0.5 tanh(s t_scale + t_bias) + 0.5, masked entries 0."""
    if j >= mask_from:
        s = _mask_scores(s, j, start_m, seq_k, CAUSAL)
    t = gl.inline_asm_elementwise(
        "tanh.approx.f32 $0, $1;", "=r,r", [s * t_scale + t_bias], dtype=gl.float32,
        is_pure=True, pack=1,
    )  # fmt: skip
    return 0.5 * t + 0.5


@gluon.jit
def _producer(
    q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, kv_bars, q_row, kv_row, n_tiles,
    STAGES: gl.constexpr,
):  # fmt: skip
    """One warp: Q once, then K/V tile j into slot j % STAGES once the consumers freed it."""
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    mbarrier.expect(q_bar, q_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(q_desc, [q_row, 0], q_bar, q_smem)
    for j in range(n_tiles):
        slot = j % STAGES
        if j >= STAGES:
            _ptx(_FREE_WAIT, 6 + slot, 0, 32)
        row = kv_row + j * BLOCK_N
        bar = kv_bars.index(slot)
        mbarrier.expect(bar, k_desc.block_type.nbytes + v_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(k_desc, [row, 0], bar, k_smem.index(slot))
        tma.async_copy_global_to_shared(v_desc, [row, 0], bar, v_smem.index(slot))


@gluon.jit
def _signal(kv_bars, n_tiles, STAGES: gl.constexpr):
    """One warp: when K/V tile j has landed, tell both consumer groups (READY)."""
    for j in range(n_tiles):
        slot = j % STAGES
        mbarrier.wait(kv_bars.index(slot), (j // STAGES) & 1)
        _ptx(_READY_GIVE, 6 + STAGES + slot, STAGES, 32)


@gluon.jit
def _consumer(
    o_desc, q_smem, k_smem, v_smem, q_bar, start_m, seq_k, q_row, n_tiles, mask_from, qk_scale,
    t_bias, CAUSAL: gl.constexpr, STAGES: gl.constexpr, num_warps: gl.constexpr,
    SIGMOID: gl.constexpr = False,
):  # fmt: skip
    """Two warp groups of 64 query rows each, taking turns on the tensor cores (module doc)."""
    BLOCK_M: gl.constexpr = q_smem.shape[0]
    HEAD_DIM: gl.constexpr = q_smem.shape[1]
    BLOCK_N: gl.constexpr = k_smem.shape[1]
    NT: gl.constexpr = num_warps * 32
    READY: gl.constexpr = 6 + STAGES
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
    mbarrier.wait(q_bar, 0)  # before the groups part ways: its CTA barrier is harmless here
    _ptx(_TURN_START, 0, 0, NT)
    _ptx(_READY_WAIT, READY, STAGES, NT)
    _ptx(_TURN_WAIT, 0, 0, NT)
    s_tok = warpgroup_mma(
        q_smem, k_smem.index(0).permute((1, 0)), s_zero, use_acc=False, is_async=True
    )
    _ptx(_TURN_GIVE, 1, 0, NT)
    s = warpgroup_mma_wait(0, deps=(s_tok,))
    alpha = gl.full([BLOCK_M], 1.0, gl.float32, s_rows)
    if SIGMOID:  # qk_scale is the tanh argument's scale; l_i stays 1 (O unnormalized)
        p = _sigmoid_p(s, 0, mask_from, start_m, seq_k, qk_scale, t_bias, CAUSAL)
        m_i, l_i = alpha, alpha
    else:
        m_i, p, l_i = _first_softmax(s, mask_from, start_m, seq_k, qk_scale, CAUSAL)
    acc = warpgroup_mma_init(gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, o_layout))
    for j in range(1, n_tiles):
        slot = j % STAGES
        acc = warpgroup_mma_wait(0, deps=(acc,))
        if j >= 2:  # K and V of tile j-2 are consumed: free the slot if it is refilled
            refill = j - 2 + STAGES < n_tiles
            _ptx(_FREE_GIVE, gl.where(refill, 6 + (j - 2) % STAGES, -1), 0, NT)
        if not SIGMOID:
            acc = acc * gl.convert_layout(alpha, o_rows)[:, None]
        p_op = gl.convert_layout(p.to(dtype), p_layout)
        _ptx(_READY_WAIT, READY + slot, STAGES, NT)
        _ptx(_TURN_WAIT, 0, 0, NT)
        s_tok = warpgroup_mma(
            q_smem, k_smem.index(slot).permute((1, 0)), s_zero, use_acc=False, is_async=True
        )
        acc = warpgroup_mma(p_op, v_smem.index((j - 1) % STAGES), acc, is_async=True)
        _ptx(_TURN_GIVE, 1, 0, NT)
        s = warpgroup_mma_wait(1, deps=(s_tok,))
        if SIGMOID:
            p = _sigmoid_p(s, j, mask_from, start_m, seq_k, qk_scale, t_bias, CAUSAL)
        else:
            p, alpha, m_i, l_i = _softmax_step(
                s, m_i, l_i, j, mask_from, start_m, seq_k, qk_scale, CAUSAL
            )
    # the last P.V; only group 0 gives a turn after it (group 1 has no turn left to take)
    acc = warpgroup_mma_wait(0, deps=(acc,))
    if not SIGMOID:
        acc = acc * gl.convert_layout(alpha, o_rows)[:, None]
    p_op = gl.convert_layout(p.to(dtype), p_layout)
    _ptx(_TURN_WAIT, 0, 0, NT)
    acc = warpgroup_mma(p_op, v_smem.index((n_tiles - 1) % STAGES), acc, is_async=True)
    _ptx(_TURN_GIVE, 0, 0, NT)
    acc, p_op = warpgroup_mma_wait(0, deps=(acc, p_op))
    _store_out(acc, l_i, q_smem, o_desc, q_row)


@gluon.jit
def attn_fwd_pingpong_kernel(
    q_desc,
    k_desc,
    v_desc,
    o_desc,
    seq_q,
    seq_k,
    kv_group,
    qk_scale,
    t_bias,
    CAUSAL: gl.constexpr,
    STAGES: gl.constexpr,
    num_warps: gl.constexpr,
    SIGMOID: gl.constexpr = False,
):
    """O = softmax(Q K^T * scale) V for one query tile of one (batch, head); see the module.

    SIGMOID: O = sigmoid(Q K^T * scale + bias) V, with `qk_scale` = scale / 2 and `t_bias` =
    bias / 2 (the tanh argument's); softmax: `qk_scale` = scale * log2(e), `t_bias` unused.

    GQA/MQA: `kv_group` query heads share one K/V head (1 = MHA); the query heads of a group
    are adjacent, so (batch * heads + head) // kv_group is the K/V head's row block.
    """
    gl.static_assert(num_warps == 8, "two consumer warp groups")
    gl.static_assert(STAGES == 2 or STAGES == 3, "named-barrier ids fit 2 or 3 K/V slots")
    BLOCK_M: gl.constexpr = q_desc.block_type.shape[0]
    HEAD_DIM: gl.constexpr = q_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = k_desc.block_type.shape[0]
    gl.static_assert(BLOCK_M == 16 * num_warps, "64 query rows per consumer warp group")
    dtype: gl.constexpr = q_desc.dtype
    start_m = gl.program_id(0)
    if CAUSAL:  # longest rows first: better tail balance
        start_m = gl.num_programs(0) - 1 - start_m
    off_bh = gl.program_id(1)
    q_row = off_bh * seq_q + start_m * BLOCK_M
    kv_row = (off_bh // kv_group) * seq_k
    n_tiles, mask_from = _tile_bounds(start_m, seq_k, BLOCK_M, BLOCK_N, CAUSAL)

    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_DIM], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    kv_bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(kv_bars.index(i), count=1)

    gl.warp_specialize(
        [
            (_consumer, (o_desc, q_smem, k_smem, v_smem, q_bar, start_m, seq_k, q_row, n_tiles,
                         mask_from, qk_scale, t_bias, CAUSAL, STAGES, num_warps, SIGMOID)),
            (_producer, (q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, kv_bars, q_row,
                         kv_row, n_tiles, STAGES)),
            (_signal, (kv_bars, n_tiles, STAGES)),
        ],
        [1, 1],
        [24, 24],
    )  # fmt: skip


def pingpong_smem_bytes(block_n: int, head_dim: int, stages: int, elem_bytes: int = 2) -> int:
    """Shared memory of one program: Q (reused for O), STAGES K and V slots, mbarriers."""
    return smem_bytes_pingpong(BLOCK_M, block_n, head_dim, stages, elem_bytes)


def pingpong_unsupported(  # type: ignore[no-untyped-def]
    q, k, v, out, causal: bool, tiling: tuple[int, int, int, int]
) -> str | None:
    """Why the ping-pong kernel cannot run a call (None when it can); see the module."""
    block_m, block_n, num_warps, stages = tiling
    if (block_m, num_warps) != (BLOCK_M, CONSUMER_WARPS):
        return f"needs block_m {BLOCK_M} and num_warps {CONSUMER_WARPS}, got {tiling}"
    if block_n not in PINGPONG_BLOCK_N:
        return f"needs block_n 64 or 128, got {block_n}"
    if stages not in STAGE_CHOICES:
        return f"needs num_stages 2 or 3 (K/V slots), got {stages}"
    if str(q.dtype) not in _GL_DTYPES or not (q.dtype == k.dtype == v.dtype):
        return f"needs float16/bfloat16 q, k, v of one dtype, got {q.dtype}/{k.dtype}/{v.dtype}"
    if k.dim() != 4 or v.dim() != 4 or k.shape[:3] != v.shape[:3] or k.shape[0] != q.shape[0]:
        return f"needs k, v of one (batch, kv_heads, seq_k) shape, got {k.shape}/{v.shape}"
    if q.shape[1] % k.shape[1]:
        return f"GQA needs kv_heads dividing heads, got {k.shape[1]} for {q.shape[1]}"
    if out is not None and (out.dtype != q.dtype or tuple(out.shape) != tuple(q.shape)):
        return f"out must be {tuple(q.shape)} {q.dtype}"
    d = q.shape[-1]
    if d not in PINGPONG_HEAD_DIMS or k.shape[-1] != d or v.shape[-1] != d:
        return f"needs head_dim 64 or 128 for q, k and v, got {d}/{k.shape[-1]}/{v.shape[-1]}"
    if q.shape[2] % BLOCK_M:
        return f"needs seq_q % {BLOCK_M} == 0, got seq_q={q.shape[2]}"
    if causal and BLOCK_M % block_n:
        return "causal needs block_m % block_n == 0"
    if any(not _rows_view_ok(x) for x in (q, k, v) + (() if out is None else (out,))):
        return "needs each of q/k/v/out viewable as (batch*heads*seq, head_dim) rows"
    need = pingpong_smem_bytes(block_n, d, stages, q.element_size())
    if need > 227 * 1024:
        return f"shared memory {need} B > 227 KiB"
    if q.device.type != "cuda" or torch.cuda.get_device_capability(q.device)[0] != 9:
        return "needs a CUDA sm_90 (Hopper) device"
    return None


class _Plan:
    """What a call with a given key needs (see `attn_fwd._Plan`): grid, arguments, launcher."""

    __slots__ = ("grid", "rows", "tail", "scalars", "o_shape", "dtype", "layouts", "launch",
                 "stream", "function", "packed", "meta")  # fmt: skip
    grid: tuple[int, int, int]
    rows: tuple[int, int, int, int]  # descriptor block rows of q, k, v, o
    tail: tuple[Any, ...]  # scalars + constexprs (the C launcher's arguments after the descs)
    scalars: tuple[Any, ...]
    o_shape: tuple[int, ...]
    dtype: Any
    layouts: list[Any]
    launch: Any  # DescriptorLaunch once armed, else None
    stream: Any
    function: Any
    packed: Any
    meta: dict[str, Any]


_PLANS = PlanCache()


def _descs(plan: _Plan, tensors: tuple[Any, ...]) -> list[TensorDescriptor]:
    out = []
    for x, rows, lay in zip(tensors, plan.rows, plan.layouts, strict=True):
        b, h, s, d = x.shape
        out.append(TensorDescriptor(x, [b * h * s, d], [x.stride(2), 1], [rows, d], lay))
    return out


def attention_fwd_pingpong(  # type: ignore[no-untyped-def]
    q, k, v, causal=False, scale=None, block_n=128, num_stages=3, out=None, sigmoid_bias=None
):
    """O = softmax(Q K^T * scale) V with the ping-pong kernel (tiling 128 x block_n / 8 warps).

    `sigmoid_bias` (a float, natural-log units): sigmoid attention instead, O = sigmoid(Q K^T
    * scale + sigmoid_bias) V. Raises ValueError naming the requirement a call does not meet
    (`pingpong_unsupported`).
    """
    key = (
        q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), q.dtype, k.dtype,
        v.dtype, q.device, None if out is None else (out.shape, out.stride(), out.dtype),
        causal, scale, block_n, num_stages, sigmoid_bias,
    )  # fmt: skip
    plan = _PLANS.get(key)
    if plan is None:
        why = pingpong_unsupported(q, k, v, out, causal, (BLOCK_M, block_n, 8, num_stages))
        if why:
            raise ValueError(f"schedule 'pingpong': {why}")
        plan = _PLANS.put(
            key, _make_plan(q, k, v, causal, scale, block_n, num_stages, sigmoid_bias)
        )
    o = torch.empty(plan.o_shape, dtype=plan.dtype, device=q.device) if out is None else out
    if plan.launch is not None:
        plan.launch(plan.grid, plan.stream(), plan.function, plan.packed, (q, k, v, o), plan.tail)
        return o
    kernel = attn_fwd_pingpong_kernel[plan.grid[:2]](
        *_descs(plan, (q, k, v, o)), *plan.scalars, **plan.meta
    )
    _arm(plan, kernel, q.device.index or 0)
    return o


def _make_plan(q, k, v, causal, scale, block_n, stages, sigmoid_bias) -> _Plan:  # type: ignore[no-untyped-def]
    b, h, sq, d = q.shape
    gdt = _GL_DTYPES[str(q.dtype)]
    plan = _Plan()
    plan.grid = (sq // BLOCK_M, b * h, 1)
    plan.rows = (BLOCK_M, block_n, block_n, BLOCK_M)
    plan.layouts = [gl.NVMMASharedLayout.get_default_for([r, d], gdt) for r in plan.rows]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    sigmoid = sigmoid_bias is not None  # the tanh argument's scale and bias, else log2 units
    qk_scale = scale * 0.5 if sigmoid else scale * 1.4426950408889634
    t_bias = float(sigmoid_bias) * 0.5 if sigmoid else 0.0
    plan.scalars = (sq, k.shape[2], h // k.shape[1], qk_scale, t_bias)
    plan.meta = dict(CAUSAL=bool(causal), STAGES=stages, SIGMOID=sigmoid, num_warps=CONSUMER_WARPS)
    plan.o_shape, plan.dtype = tuple(q.shape), q.dtype
    plan.launch = None
    return plan


def _arm(plan: _Plan, kernel: Any, device: int) -> None:
    """After the first launch, keep the compiled kernel's C launcher (descriptors cached)."""
    if kernel is None or not hasattr(kernel, "run"):
        return
    from triton.runtime.driver import driver

    try:
        launch = DescriptorLaunch(kernel.run, 4, lambda ts: _descs(plan, ts))
    except (ValueError, ImportError):
        return  # keep going through the JIT
    names = attn_fwd_pingpong_kernel.arg_names
    consts = tuple(plan.meta.get(n) for n in names[4 + len(plan.scalars) :])
    get_stream = driver.active.get_current_stream
    plan.tail = plan.scalars + consts
    plan.function, plan.packed = kernel.function, kernel.packed_metadata
    plan.stream = lambda: get_stream(device)
    plan.launch = launch


def compile_for_sm90(  # type: ignore[no-untyped-def]
    block_n=128, head_dim=128, causal=False, stages=3, dtype="bf16", sigmoid=False
):
    """Compile the kernel for sm_90 without a GPU (Triton's bundled ptxas); for SASS checks."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.runtime.jit import mangle_type

    tdt = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    host = torch.empty(4 * max(BLOCK_M, block_n), head_dim, dtype=tdt)

    def desc(rows: int) -> str:
        lay = gl.NVMMASharedLayout.get_default_for([rows, head_dim], _GL_DTYPES[str(tdt)])
        return str(mangle_type(TensorDescriptor.from_tensor(host, [rows, head_dim], lay)))

    sig = {"q_desc": desc(BLOCK_M), "k_desc": desc(block_n), "v_desc": desc(block_n),
           "o_desc": desc(BLOCK_M), "seq_q": "i32", "seq_k": "i32", "kv_group": "i32",
           "qk_scale": "fp32", "t_bias": "fp32", "CAUSAL": "constexpr", "STAGES": "constexpr",
           "num_warps": "constexpr", "SIGMOID": "constexpr"}  # fmt: skip
    consts = {"CAUSAL": bool(causal), "STAGES": stages, "num_warps": CONSUMER_WARPS,
              "SIGMOID": bool(sigmoid)}  # fmt: skip
    src = GluonASTSource(attn_fwd_pingpong_kernel, sig, constexprs=consts)
    return triton.compile(
        src, target=GPUTarget("cuda", 90, 32), options={"num_warps": CONSUMER_WARPS}
    )
