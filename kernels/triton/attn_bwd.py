"""FlashAttention-2-style attention backward (family `triton-bwd`): launcher, tilings, FLOPs.

`attention_bwd(q, k, v, o, do, lse, ...)` returns (dq, dk, dv) from the forward's output O,
the output gradient dO and the softmax log-sum-exp LSE (natural log, float32, (B, H, seq_q)).
Kernels (`attn_bwd_kernel`): a pre-pass D = rowsum(dO * O); a main kernel parallel over key
tiles that keeps K, V, dK, dV on chip and walks the query tiles recomputing P from LSE; dQ
either by float32 atomics from the main kernel (dq_mode "atomic") or by a second kernel
parallel over query tiles (dq_mode "separate"). In atomic mode the pre-pass also zeroes the
float32 dQ buffer (no separate fill kernel). dq_mode "tma" is atomic mode whose dQ adds leave
each tile as one TMA reduction (`tensor_descriptor.atomic_add`, cp.reduce.async.bulk) instead
of per-element atomics: on a CUDA GPU of compute capability 9.0 or more; elsewhere (the
interpreter, which has no descriptor reductions, or an older GPU) it runs as "atomic".

Host side: a call's checks and launch arguments are worked out once per shape key and kept
(`_Plan`, `kernels.triton.launch`); a repeated call costs the key, four allocations, one
C-level launch per kernel and the cast in atomic mode. Through Triton's JIT (as before), one
call's host time likely came near or above the GPU time of a small backward (16 x 8 heads x
512 at head dim 64: about 0.1 ms), so that do_bench timed the host (`benchmarks/bwd_probe.py`
measures both paths' host time: `kernels.calibrate.microbench_bwd.host_calls`).

GQA/MQA: k, v may have a divisor of q's heads; a main-kernel program walks the query heads of
its K/V head's group one after another, so dK and dV come out already summed over the group
(no float32 copies per query head, no reduction afterwards).

`attention(q, k, v, causal)` is a `torch.autograd.Function`: forward by the 1-pass kernel
(`attn_fwd.attention_fwd`) plus the LSE from `softmax_lse` (torch, one head at a time: the
1-pass kernel does not return its LSE), backward by `attention_bwd`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import triton

from attnsim.kernels.spec import (
    BWD_DIAG_LOOP,
    BWD_DP_FIRST,
    BWD_HEAD_GROUP,
    BWD_TILINGS,
    MIN_BLOCK,
    AttnShape,
    kernel_shape,
)
from attnsim.kernels.triton.attn_bwd_kernel import (
    bwd_dkdv_kernel,
    bwd_dq_kernel,
    bwd_preprocess_kernel,
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
    "BWD_TILINGS",
    "DQ_MODES",
    "attention",
    "attention_bwd",
    "bwd_flops",
    "bwd_launches",
    "compile_bwd",
    "jit_launch",
    "default_bwd_tiling",
    "plain_attention_grads",
    "softmax_lse",
]

DQ_MODES = ("atomic", "separate", "tma")
# Streamed tiles (the dK/dV kernel's Q and dO, the dQ kernel's K and V) through in-kernel
# tensor descriptors on sm_90+ (`_tma_ok`); pointer loads elsewhere and when False. A trial,
# off: Triton 3.6 already pipelines the pointer loads (cp.async: `async_copy_global_to_local`
# in the sm_90 TTGIR of both kernels; an earlier note here said they were synchronous, which
# was wrong), and on an H100 the descriptors changed separate mode by 0.92x-1.01x at head
# dim 128 and 0.97x-1.04x at 64 (kernels/measurements/h100/bwd-tma-loads-*), and the model's
# calibration and every backward measurement are of the pointer loads. dq_mode "tma" is the
# same kind of trial (head dim 64 causal: 0.89x-0.92x of separate; elsewhere slower), which
# `mappers.gpu.backward` does not price.
BWD_TMA_LOADS = (False, False)  # (the dK/dV kernel's, the dQ kernel's)
MAX_BLOCK = 256  # largest tile side taken (registers: the accumulators are tile x head_dim)
PRE_BLOCK = 64  # query rows per program of the D = rowsum(dO * O) pre-pass (4 warps)
PRE_STAGES = 3  # Triton's CUDA default, which the pre-pass was compiled with before

# The candidate tilings (kernels.spec.BWD_TILINGS): block_m is the query tile the main kernel
# streams, block_n the key tile it keeps; the "separate" dQ kernel keeps a block_n query tile
# and streams block_m key tiles (the Triton tutorial's BLOCK_M1 = 32, BLOCK_N1 = 128 /
# BLOCK_M2 = 128, BLOCK_N2 = 32 pairing).


def default_bwd_tiling(head_dim: int) -> tuple[int, int, int, int]:
    """Default (block_m, block_n, num_warps, num_stages): 32 x 128 tiles, 8 warps, 3 stages.

    On the H200 (kernels/measurements/bwd/) the best measured is 64 x 128, 8 warps, 3 stages,
    dq_mode "separate" on most head-dim-128 shapes; the GPU model (mappers.gpu.backward)
    picks per shape. The tutorial's
    4 warps / 5 stages spill on sm_90: compiled ahead of time with Triton 3.6 (ptxas -v), the
    causal dK/dV kernel at 4 warps spills ~800 bytes per thread at head dim 64 and ~2 KB at
    128; at 8 warps none at 64 and ~100 bytes at 128. `head_dim` is kept for a later
    per-head-dim choice.
    """
    del head_dim
    return 32, 128, 8, 3


def bwd_flops(batch: int, heads: int, seq_q: int, seq_k: int, head_dim: int, causal: bool) -> int:
    """FLOPs of the backward: 5 matmuls of 2 * pairs * head_dim each, per (batch, head).

    QK^T (recompute), dV = P^T dO, dP = dO V^T, dK = dS^T Q, dQ = dS K: 10 * pairs * E, i.e.
    2.5x the forward's 4 * pairs * E, with pairs the visible (query, key) pairs of one head
    (exact causal triangle, top-left aligned: `AttnShape.points`).
    """
    shape = kernel_shape(batch, heads, seq_q, seq_k, head_dim, causal)
    return 10 * batch * heads * shape.points * head_dim


def bwd_shape_flops(shape: AttnShape) -> int:
    """`bwd_flops` of an `AttnShape` (its mask's visible pairs, head_dim = E)."""
    return 10 * shape.batch * shape.heads * shape.points * shape.head_dim


def _check_tiling(block_m: int, block_n: int, num_warps: int, num_stages: int) -> None:
    check_tiling(block_m, block_n, causal=False)  # any power-of-two pair handles the diagonal
    for name, b in (("block_m", block_m), ("block_n", block_n)):
        if b > MAX_BLOCK:
            raise ValueError(
                f"{name} must be <= {MAX_BLOCK} (a power of two >= {MIN_BLOCK}), got {b}"
            )
    if num_warps not in (1, 2, 4, 8, 16):
        raise ValueError(f"num_warps must be 1, 2, 4, 8 or 16, got {num_warps}")
    if not 1 <= num_stages <= 8:
        raise ValueError(f"num_stages must be in 1..8, got {num_stages}")


def _check_grads_inputs(q, o, do, lse):  # type: ignore[no-untyped-def]
    """Check that o and do are like q, lse is (B, H, seq_q), all on q's device."""
    for name, t in (("o", o), ("do", do)):
        if tuple(t.shape) != tuple(q.shape) or t.dtype != q.dtype:
            raise ValueError(
                f"{name} must be {tuple(q.shape)} {q.dtype} like q, got {tuple(t.shape)} {t.dtype}"
            )
    if tuple(lse.shape) != tuple(q.shape[:3]):
        raise ValueError(
            f"lse must be (batch, heads, seq_q) = {tuple(q.shape[:3])}, got {tuple(lse.shape)}"
        )
    if any(t.device != q.device for t in (o, do, lse)):
        raise ValueError("q, k, v, o, do and lse must be on one device")


def attention_bwd(
    q,
    k,
    v,
    o,
    do,
    lse,
    causal: bool = False,
    scale: float | None = None,  # type: ignore[no-untyped-def]
    block_m: int | None = None,
    block_n: int | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
    dq_mode: str = "atomic",
):
    """Gradients (dq, dk, dv) of O = softmax(Q K^T * scale) V, in q's dtype.

    Args:
        q: (B, H, seq_q, E) fp16, bf16 or fp32; E a power of two in 16..256.
        k: (B, G, seq_k, E), G dividing H (GQA/MQA), q's dtype.
        v: like k.
        o: the forward output, q's shape and dtype.
        do: the gradient of o, q's shape and dtype.
        lse: float32 (B, H, seq_q), natural-log log-sum-exp of each row's scaled scores.
        causal: top-left aligned causal mask (query i sees keys j <= i), as the forward.
        scale: softmax scale, default 1 / sqrt(E).
        block_m: the query tile the main kernel streams (None: `default_bwd_tiling`); a
            power of two in 16..256. seq_q and seq_k need not be multiples of the tiles.
        block_n: the key tile the main kernel holds on chip (None: the default). With
            dq_mode "separate" the dQ kernel swaps them: it holds a block_n query tile and
            streams block_m key tiles.
        num_warps: warps per program, 1..16 (None: the default).
        num_stages: software-pipelining stages of the tile loops, 1..8 (None: the default).
        dq_mode: "atomic" (float32 atomics from the main kernel, then a cast), "separate"
            (a second kernel parallel over query tiles, no atomics) or "tma" (atomic, each
            tile's dQ added by one TMA reduction on sm_90+; "atomic" elsewhere).

    Returns:
        (dq, dk, dv), shaped like q, k, v. The time of a call includes the D pre-pass (which
        also zeroes the float32 dQ buffer in atomic mode), the cast of that buffer (atomic)
        or the second kernel (separate).

    The checks, tiling and launch arguments are worked out once per shape key and kept
    (`kernels.triton.launch.PlanCache`); a repeated call costs the key, four allocations
    and one C-level launch per kernel (`DirectLaunch`), plus the cast in atomic mode.
    """
    key = (
        q.shape, k.shape, v.shape, o.shape, do.shape, lse.shape, q.dtype, k.dtype, v.dtype,
        o.dtype, do.dtype, lse.dtype, q.device, k.device, v.device, o.device, do.device,
        lse.device, causal, scale, block_m, block_n, num_warps, num_stages, dq_mode,
    )  # fmt: skip
    plan = _PLANS.get(key)
    if plan is None:
        tiling = (block_m, block_n, num_warps, num_stages)
        plan = _PLANS.put(key, _Plan(q, k, v, o, do, lse, causal, scale, tiling, dq_mode))
    q, k, v, o, do = q.contiguous(), k.contiguous(), v.contiguous(), o.contiguous(), do.contiguous()
    if plan.tma and (q.data_ptr() | k.data_ptr() | v.data_ptr() | do.data_ptr()) & 15:
        q, k, v, do = (t if t.data_ptr() % 16 == 0 else t.clone() for t in (q, k, v, do))  # TMA
    lse = lse.float().contiguous()
    delta = torch.empty(plan.delta_shape, device=q.device, dtype=torch.float32)
    dk = torch.empty_like(k)
    dv = torch.empty_like(v)
    if plan.atomic:  # zeroed by the pre-pass
        dq = torch.empty(plan.dq_shape, device=q.device, dtype=torch.float32)
        prepass, dkdv = plan.launches
        prepass(o, do, delta, dq)
        dkdv(q, k, v, do, dq, dk, dv, lse, delta)
        return dq.to(q.dtype), dk, dv
    dq = torch.empty_like(q)
    prepass, dkdv, dq_kernel = plan.launches
    prepass(o, do, delta, delta)  # no dQ buffer to zero: D stands in for the pointer
    dkdv(q, k, v, do, dq, dk, dv, lse, delta)
    dq_kernel(q, k, v, do, dq, lse, delta)
    return dq, dk, dv


@dataclass(frozen=True, eq=False)
class LaunchSpec:
    """One kernel launch of a backward call, fixed by the call's shapes (no tensors).

    `pointers`: the torch dtypes of the pointer arguments in signature order; then `scalars`,
    then the constexprs `meta`.
    """

    fn: Any
    grid: tuple[int, int]
    pointers: tuple[Any, ...]
    scalars: tuple[Any, ...]
    meta: dict[str, Any]
    num_warps: int
    num_stages: int


def bwd_launches(batch: int, heads: int, kv_heads: int, seq_q: int, seq_k: int, head_dim: int,
                 dtype: Any, causal: bool, sm_scale: float, tiling: tuple[int, int, int, int],
                 dq_mode: str, tma: bool = False) -> tuple[LaunchSpec, ...]:  # fmt: skip
    """The kernels one `attention_bwd` call launches, in order (checked tiling, known mode).

    `tma`: the device runs tensor-descriptor (TMA) code (`_tma_ok`): dq_mode "tma" runs as such
    (otherwise as "atomic"), and with `BWD_TMA_LOADS` the streamed tiles come through
    descriptors.
    """
    bm, bn, warps, stages = tiling
    b, h, hkv, sq, sk, d = batch, heads, kv_heads, seq_q, seq_k, head_dim
    atomic = dq_mode in ("atomic", "tma")
    f32 = torch.float32
    prec = dot_precision(dtype)
    scalars = (sq, sk, sm_scale, sm_scale * LOG2E)
    tile = dict(HEAD_DIM=d, CAUSAL=bool(causal), HEAD_GROUP=BWD_HEAD_GROUP if causal else 1)
    out = [
        LaunchSpec(
            bwd_preprocess_kernel, (triton.cdiv(sq, PRE_BLOCK), b * h),
            (dtype, dtype, f32, f32), (sq,),
            dict(BLOCK_M=PRE_BLOCK, HEAD_DIM=d, ZERO_DQ=atomic), 4, PRE_STAGES,
        ),
        LaunchSpec(
            bwd_dkdv_kernel, (triton.cdiv(sk, bn), b * hkv),
            (dtype,) * 4 + (f32 if atomic else dtype, dtype, dtype, f32, f32),
            (h, hkv, h // hkv, *scalars),
            dict(BLOCK_M=bm, BLOCK_N=bn, **tile, KEY_TAIL=sk % bn != 0, DQ_ATOMIC=atomic,
                 DOT_PRECISION=prec, DQ_TMA=dq_mode == "tma" and tma,
                 TMA_LOADS=tma and BWD_TMA_LOADS[0], DIAG_LOOP=BWD_DIAG_LOOP,
                 DP_FIRST=BWD_DP_FIRST),
            warps, stages,
        ),
    ]  # fmt: skip
    if not atomic:  # the dQ kernel holds a block_n query tile and streams block_m key tiles
        out.append(
            LaunchSpec(
                bwd_dq_kernel, (triton.cdiv(sq, bn), b * h), (dtype,) * 5 + (f32, f32),
                (h, h // hkv, *scalars),
                dict(BLOCK_M=bn, BLOCK_N=bm, **tile, KEY_TAIL=sk % bm != 0, DOT_PRECISION=prec,
                     TMA_LOADS=tma and BWD_TMA_LOADS[1]),
                warps, stages,
            )
        )  # fmt: skip
    return tuple(out)


class _Plan:
    """A call's checked launches and buffer shapes (see kernels.triton.launch)."""

    __slots__ = ("launches", "atomic", "tma", "delta_shape", "dq_shape")

    def __init__(self, q, k, v, o, do, lse, causal, scale, tiling, dq_mode):  # type: ignore[no-untyped-def]
        if dq_mode not in DQ_MODES:
            raise ValueError(f"dq_mode must be one of {', '.join(DQ_MODES)}, got {dq_mode!r}")
        q, k, v = check_qkv(q, k, v, groups=True)
        _check_grads_inputs(q, o, do, lse)
        b, h, sq, d = q.shape
        bm, bn, warps, stages = (
            default if x is None else x
            for x, default in zip(tiling, default_bwd_tiling(d), strict=True)
        )
        _check_tiling(bm, bn, warps, stages)
        sm_scale = default_scale(d) if scale is None else float(scale)
        dev = q.get_device()  # -1 on CPU: the interpreter, every call through the JIT
        tma = _tma_ok(dev)
        specs = bwd_launches(b, h, k.shape[1], sq, k.shape[2], d, q.dtype, causal, sm_scale,
                             (bm, bn, warps, stages), dq_mode, tma)  # fmt: skip
        self.launches = tuple(
            DirectLaunch(s.fn, s.grid, s.scalars, s.meta, s.num_warps, s.num_stages, dev)
            for s in specs
        )
        self.atomic = dq_mode in ("atomic", "tma")
        self.tma = tma and any(BWD_TMA_LOADS)  # descriptors over q, k, v, dO: aligned bases
        self.delta_shape = (b, h, sq)
        self.dq_shape = tuple(q.shape)


_PLANS = PlanCache()


def _tma_ok(device_index: int) -> bool:
    """Whether the kernels may use tensor descriptors here (a CUDA GPU of sm_90 or later).

    Then Triton's global scratch allocator is set: the kernels build their descriptors.
    """
    if device_index < 0 or torch.cuda.get_device_capability(device_index)[0] < 9:
        return False
    from attnsim.kernels.triton.common import ensure_allocator

    ensure_allocator()
    return True


def compile_bwd(batch: int, heads: int, kv_heads: int, seq: int, head_dim: int, causal: bool,
                tiling: tuple[int, int, int, int], dq_mode: str,
                dtype: str = "bf16") -> int:  # fmt: skip
    """Compile (into Triton's caches, nothing launched) the kernels of one call; GPU only.

    The arguments specialize as a real call's do (integer sizes by their divisibility, the
    pointers 16-byte aligned), so a later call on such a shape finds its kernels compiled;
    `benchmarks/bwd_probe.py` runs this in worker processes to compile its grid in
    parallel. Returns the number of kernels.
    """
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    tma = _tma_ok(torch.cuda.current_device())
    specs = bwd_launches(batch, heads, kv_heads, seq, seq, head_dim, torch_dtype, causal,
                         default_scale(head_dim), tiling, dq_mode, tma)  # fmt: skip
    for s in specs:
        s.fn.warmup(*s.pointers, *s.scalars, grid=s.grid, num_warps=s.num_warps,
                    num_stages=s.num_stages, **s.meta)  # fmt: skip
    return len(specs)


def jit_launch(spec: LaunchSpec, *tensors):  # type: ignore[no-untyped-def]
    """Launch `spec` on `tensors` (its pointer arguments) through Triton's JIT; its kernel.

    The slower path `attention_bwd` avoids after its first call; `kernels.calibrate.
    microbench_bwd` times one kernel alone this way.
    """
    return spec.fn[spec.grid](*tensors, *spec.scalars, **spec.meta, num_warps=spec.num_warps,
                              num_stages=spec.num_stages)  # fmt: skip


def softmax_lse(q, k, causal: bool = False, scale: float | None = None, chunk_bytes: int = 1 << 30):  # type: ignore[no-untyped-def]
    """Natural-log log-sum-exp of each query row's scaled scores, float32 (B, H, seq_q).

    Plain torch in float32, a few (batch, head) slices at a time so that the score matrices
    stay under `chunk_bytes`; GQA k (fewer heads) is shared by its group. Causal: top-left.
    """
    b, h, sq, d = q.shape
    group = h // k.shape[1]
    sm_scale = default_scale(d) if scale is None else float(scale)
    out = torch.empty((b, h, sq), device=q.device, dtype=torch.float32)
    hidden = None
    if causal:
        rows = torch.arange(sq, device=q.device)[:, None]
        hidden = rows < torch.arange(k.shape[2], device=q.device)[None, :]
    step = max(1, chunk_bytes // max(1, sq * k.shape[2] * 4))
    for bi in range(b):
        for h0 in range(0, h, step):
            hs = torch.arange(h0, min(h, h0 + step), device=q.device)
            s = torch.matmul(q[bi, hs].float(), k[bi, hs // group].float().transpose(-1, -2))
            s = s * sm_scale
            if hidden is not None:
                s = s.masked_fill(hidden, float("-inf"))
            out[bi, hs] = torch.logsumexp(s, dim=-1)
    return out


def plain_attention_grads(q, k, v, do, causal: bool = False, scale: float | None = None,
                          dtype: torch.dtype = torch.float64):  # type: ignore[no-untyped-def]  # fmt: skip
    """(O, dq, dk, dv) of plain attention computed in `dtype` by torch autograd.

    float64: the reference; a 16-bit dtype: FlashAttention's "naive" version (scores and
    probabilities in that dtype, the softmax in float32). GQA: K/V repeated over their group
    (autograd sums the group's gradients back). Causal: top-left aligned.
    """
    q, k, v = (t.detach().to(dtype).requires_grad_() for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    kk, vv = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    s = torch.matmul(q, kk.transpose(-1, -2)) * (
        default_scale(q.shape[-1]) if scale is None else scale
    )
    if causal:
        hidden = torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).triu(1)
        s = s.masked_fill(hidden, float("-inf"))
    p = torch.softmax(s if dtype == torch.float64 else s.float(), dim=-1).to(dtype)
    o = torch.matmul(p, vv)
    return (o.detach(), *torch.autograd.grad(o, (q, k, v), do.to(dtype)))


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, scale, tiling, dq_mode):  # type: ignore[no-untyped-def]
        from attnsim.kernels.triton.attn_fwd import attention_fwd

        o = attention_fwd(q, k, v, causal=causal, scale=scale)
        lse = softmax_lse(q, k, causal, scale)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.scale, ctx.tiling, ctx.dq_mode = causal, scale, tiling, dq_mode
        return o

    @staticmethod
    def backward(ctx, do):  # type: ignore[no-untyped-def]
        q, k, v, o, lse = ctx.saved_tensors
        bm, bn, w, st = ctx.tiling
        dq, dk, dv = attention_bwd(
            q, k, v, o, do, lse, ctx.causal, ctx.scale, bm, bn, w, st, ctx.dq_mode
        )
        return dq, dk, dv, None, None, None, None


def attention(  # type: ignore[no-untyped-def]
    q,
    k,
    v,
    causal: bool = False,
    scale: float | None = None,
    tiling: tuple[int | None, int | None, int | None, int | None] = (None, None, None, None),
    dq_mode: str = "atomic",
):
    """Differentiable attention: the 1-pass forward kernel and this module's backward.

    `tiling` is the backward's (block_m, block_n, num_warps, num_stages); the forward picks
    its own. The LSE comes from `softmax_lse` (torch, O(seq_q * seq_k) memory per chunk).
    """
    return _Attention.apply(q, k, v, causal, scale, tiling, dq_mode)
