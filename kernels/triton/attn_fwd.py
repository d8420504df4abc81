"""1-pass FlashAttention-2-style forward kernel (family `triton-1pass`, mapper `gpu-1pass`).

One program per (query tile, batch*head): grid (ceil(seq_q / BLOCK_M), batch*heads), the
query-tile index fastest, so the programs of one head run together and share its K/V tiles
in L2. Each program keeps Q in shared memory/registers, streams K/V tiles (tensor
descriptors -> TMA on sm_90+, block pointers elsewhere), and runs the online softmax in the
log2 domain (exp2, log2(e) folded into the scale). Causal: tiles below the diagonal run
unmasked, the diagonal tiles masked, tiles above it are never visited (the loop split is
`attn_loop.attn_rows`, the loop body `attn_loop.attn_inner`); causal programs start with the
longest query tiles to shorten the tail (head-major; in groups of heads with HEAD_GROUP > 1).
Block-sparse (`block_sparse=`): key tiles from a per-query-tile list (`blocksparse`).

Launch path (`attention_fwd`): everything that depends only on the call's shapes, strides,
dtypes, devices, causal flag, scale, tiling and variant (argument checks, the tiling pick,
grid, integer arguments, the compiled kernel and its launcher) is computed once per such key
and kept in `_PLANS`. A repeated call allocates the output and launches the compiled kernel
through Triton's C launcher directly (`CompiledKernel.run`), skipping the JIT's per-call
argument binding and specialization, with raw device pointers (no `data_ptr()` /
`cuPointerGetAttribute` per tensor in the launcher).

Tile access on sm_90+ (`_tile_mode`): by default tensor descriptors built on the host over the
(B*H*S, D) view of q, k, v and the output, when the layout allows it (rows of a multiple of
16 bytes; seq_q a multiple of BLOCK_M so that no output tile crosses into the next head; key
rows past seq_k that a ragged tile reads from the next head are masked in the kernel).
Descriptors built in the kernel instead (one per program and tensor, through global scratch
from `common.ensure_allocator`) cost each program several microseconds before its first
load: on the H200 the host-built ones made short-sequence grids 1.2-1.4x faster and a
4x16x4096 head-dim-128 call 6% faster (benchmarks/results/tiles-h200-2026-11-30.txt). The
encoded descriptors are cached per data pointers (`launch.DescriptorLaunch`): a repeated call
on the same tensors encodes nothing. Other layouts use the in-kernel ones.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import triton
import triton.language as tl

from attnsim.kernels.spec import FWD_HEAD_GROUP, SCHEDULES  # SCHEDULES: see `attention_fwd`
from attnsim.kernels.triton.attn_loop import MODE_ONLINE, attn_rows, sparse_rows
from attnsim.kernels.triton.attn_options import (
    DEFAULT_SCORE,
    DEFAULT_VARIANT,
    Score,
    Variant,
    check_window,
)
from attnsim.kernels.triton.blocksparse import BlockSparse, kernel_meta
from attnsim.kernels.triton.common import (
    LOG2E,
    autotune_configs,
    check_qkv,
    check_tiling,
    default_scale,
    dot_precision,
    ensure_allocator,
    num_sms,
    pick_tiling,
    prune_by_smem,
    use_tma,
)
from attnsim.kernels.triton.host_descs import collapsible as _collapsible
from attnsim.kernels.triton.host_descs import host_descs as _host_descs
from attnsim.kernels.triton.launch import DescriptorLaunch
from attnsim.kernels.triton.launch_order import launch_order
from attnsim.kernels.triton.tiles import (
    TILES_DEVICE_TMA,
    TILES_HOST_TMA,
    TILES_POINTERS,
    head_source,
    store_tile,
)

__all__ = [
    "BlockSparse",
    "DEFAULT_SCORE",
    "DEFAULT_VARIANT",
    "SCHEDULES",
    "Score",
    "Variant",
    "attention_fwd",
    "attention_fwd_autotuned",
    "attention_fwd_lse",
    "attn_fwd_kernel",
]


# Default tile access on sm_90+: host-built tensor descriptors where the layout allows
# (no per-program descriptor creation in the kernel), else descriptors built in the kernel.
AUTO_HOST_TMA = True


# a layout's sizes and strides stay plain ints: new layouts reuse the compiled kernel
@triton.jit(do_not_specialize=["layout_stride_b", "layout_stride_h", "layout_row", "full_width",
                               "q_segments_stride", "k_segments_stride"])  # fmt: skip
def attn_fwd_kernel(
    Q, K, V, Out,
    stride_qb, stride_qh, stride_qs, stride_kb, stride_kh, stride_ks,
    stride_vb, stride_vh, stride_vs, stride_ob, stride_oh, stride_os,
    heads, seq_q, seq_k, qk_scale, window, sinks, kv_group, softcap, sigmoid_bias,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    USE_TMA: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    PRESCALE_Q: tl.constexpr = False,
    LAZY_RESCALE: tl.constexpr = False,
    WARP_SPECIALIZE: tl.constexpr = False,
    POLY_EXP: tl.constexpr = 0,
    USE_ASM: tl.constexpr = False,
    MASKED_TAIL: tl.constexpr = True,
    WINDOW: tl.constexpr = False,
    SIGMOID: tl.constexpr = False,
    SOFTCAP: tl.constexpr = False,
    ALIBI: tl.constexpr = False,
    FAST_TANH: tl.constexpr = False,
    BLOCK_SPARSE: tl.constexpr = False,
    SEGMENTS: tl.constexpr = False,
    HEAD_WINDOWS: tl.constexpr = False,
    STORE_LSE: tl.constexpr = False,
    HEAD_GROUP: tl.constexpr = 1,
    layout=None, layout_stride_b=0, layout_stride_h=0, layout_row=0, full_width=0,
    q_segments=None, k_segments=None, q_segments_stride=0, k_segments_stride=0,
    head_windows=None, lse=None,
):  # fmt: skip
    """O = softmax(Q K^T * scale) V for one query tile of one (batch, head).

    Score functions (`attn_loop.attn_inner`): SIGMOID, O = sigmoid(S + bias) V (no
    normalization); SOFTCAP, S -> C tanh(S / C); ALIBI, S -> S - m_h |i - j| with the
    standard slopes m_h = 2**(-8 (h + 1) / heads) (Press et al., ICLR 2022).

    WINDOW (CAUSAL only): keys j with i - j < window or j < sinks (`attn_loop.attn_rows`).
    HEAD_WINDOWS: query head h's window is `head_windows[h]` (int32, one per query head;
    MoA-style elastic windows), read once per program.

    BLOCK_SPARSE: only the key tiles `layout` lists for this (batch, head, query tile) are
    visited (`attn_loop.sparse_rows`; the table and its strides: `blocksparse.kernel_meta`);
    SEGMENTS masks partial tiles by segment id too. Rows that see no key are written as 0.

    STORE_LSE (`attention_fwd_lse`): also store each row's natural-log LSE, fp32 (B*H, seq_q).
    USE_ASM: inline PTX allowed (compiled for NVIDIA, not the interpreter). MASKED_TAIL=False
    (launcher: warp_specialize on a non-causal call with seq_k % BLOCK_N == 0) drops the empty
    masked key loop; see `Variant` and `attn_loop.attn_rows`.
    """
    start_m, off_bh = launch_order(HEAD_GROUP)
    start_m = tl.num_programs(0) - 1 - start_m if CAUSAL else start_m  # causal: longest first
    off_b = (off_bh // heads).to(tl.int64)
    off_h = (off_bh % heads).to(tl.int64)
    # GQA/MQA: query head h reads K/V head h // kv_group (a group's heads run together: L2)
    if HEAD_WINDOWS:
        window = tl.load(head_windows + off_h)
    off_kh = off_h // kv_group
    off_bkh = off_bh // kv_group  # = b * (heads / kv_group) + h // kv_group (int32, as off_bh)
    q_src = head_source(
        Q, off_b, off_h, off_bh, stride_qb, stride_qh, seq_q, stride_qs, BLOCK_M, HEAD_DIM, USE_TMA
    )
    k_src = head_source(
        K, off_b, off_kh, off_bkh, stride_kb, stride_kh, seq_k, stride_ks, BLOCK_N, HEAD_DIM,
        USE_TMA,
    )  # fmt: skip
    v_src = head_source(
        V, off_b, off_kh, off_bkh, stride_vb, stride_vh, seq_k, stride_vs, BLOCK_N, HEAD_DIM,
        USE_TMA,
    )  # fmt: skip
    o_src = head_source(
        Out, off_b, off_h, off_bh, stride_ob, stride_oh, seq_q, stride_os, BLOCK_M, HEAD_DIM,
        USE_TMA,
    )  # fmt: skip
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    alibi = tl.math.exp2(-8.0 * (off_h + 1).to(tl.float32) / heads) * 1.4426950408889634
    if BLOCK_SPARSE:
        row = layout + off_b * layout_stride_b + off_h * layout_stride_h + start_m * layout_row
        q_seg = q_segments + off_b * q_segments_stride  # (SEGMENTS off: never read)
        k_seg = k_segments + off_b * k_segments_stride
        acc, l_i, m_i = sparse_rows(
            q_src, k_src, v_src, acc, l_i, m_i, start_m, seq_q, seq_k, stride_qs, stride_ks,
            stride_vs, qk_scale, row, full_width, q_seg, k_seg, BLOCK_M, BLOCK_N, HEAD_DIM,
            CAUSAL, USE_TMA, DOT_PRECISION, PRESCALE_Q, POLY_EXP, USE_ASM, SEGMENTS, SIGMOID,
            SOFTCAP, ALIBI, softcap, alibi, sigmoid_bias, FAST_TANH,
        )  # fmt: skip
        l_i = tl.where(l_i == 0.0, 1.0, l_i)  # a row that sees no key: acc = 0, output 0
    else:
        acc, l_i, m_i = attn_rows(
            q_src, k_src, v_src, acc, l_i, m_i, start_m, seq_q, seq_k, stride_qs, stride_ks,
            stride_vs, qk_scale, BLOCK_M, BLOCK_N, HEAD_DIM, MODE_ONLINE, CAUSAL, USE_TMA,
            DOT_PRECISION, PRESCALE_Q, LAZY_RESCALE, WARP_SPECIALIZE, POLY_EXP, USE_ASM,
            MASKED_TAIL, WINDOW, window, sinks, SIGMOID=SIGMOID, SOFTCAP=SOFTCAP, ALIBI=ALIBI,
            softcap=softcap, alibi=alibi, sigmoid_bias=sigmoid_bias, FAST_TANH=FAST_TANH,
        )  # fmt: skip
    if SIGMOID:
        out = acc
    else:
        out = acc / l_i[:, None]
    if STORE_LSE:  # m_i, l_i live in the log2 domain (m_i may be stale: l_i matches it)
        rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        lse_row = (m_i + tl.math.log2(l_i)) * 0.6931471805599453
        tl.store(lse + off_bh.to(tl.int64) * seq_q + rows, lse_row, mask=rows < seq_q)
    store_tile(
        o_src,
        start_m * BLOCK_M,
        seq_q,
        stride_os,
        out,
        BLOCK_M,
        HEAD_DIM,
        USE_TMA,
    )


attn_fwd_autotuned_kernel = triton.autotune(
    configs=autotune_configs(),
    key=["seq_q", "seq_k", "HEAD_DIM", "CAUSAL"],
    prune_configs_by={"early_config_prune": prune_by_smem},
)(attn_fwd_kernel)


def _int_args(q, k, v, o_strides, scale, window=0, sinks=0, score=None):  # type: ignore[no-untyped-def]
    """The integer/float kernel arguments after the four pointers (signature order)."""
    b, h, sq, d = q.shape
    sk = k.shape[2]
    kv_group = h // k.shape[1]
    sm_scale = default_scale(d) if scale is None else scale
    return (
        *q.stride()[:3],
        *k.stride()[:3],
        *v.stride()[:3],
        *o_strides[:3],
        h,
        sq,
        sk,
        sm_scale * LOG2E,
        window,
        sinks,
        kv_group,
        (score.softcap or 1.0) * LOG2E if score is not None else 1.0,
        score.bias(sk) * LOG2E if score is not None else 0.0,
    )


def _args(q, k, v, o, scale):  # type: ignore[no-untyped-def]
    return (q, k, v, o, *_int_args(q, k, v, o.stride(), scale))


class _Plan:
    """What a call with a given key needs: validated tiling, grid, arguments, launcher."""

    __slots__ = (
        "grid", "tail", "full_tail", "meta", "launch", "function", "packed", "stream", "device",
        "o_shape", "o_dtype", "tiling", "rows", "descs",
    )  # fmt: skip
    grid: tuple[int, int, int]
    tail: tuple[Any, ...]  # integer/float arguments after the four pointers
    full_tail: tuple[Any, ...]  # tail plus the constexpr values (direct launch)
    meta: dict[str, Any]  # constexpr keyword arguments
    launch: Any  # CompiledKernel.run (Triton's launcher) once armed, else None
    function: Any
    packed: Any
    stream: Any  # device index before arming; then a zero-argument current-stream getter
    device: Any
    o_shape: tuple[int, ...]
    o_dtype: Any
    tiling: tuple[int, int, int, int]

    def __init__(self) -> None:
        self.launch = None  # set after the first launch on CUDA (direct path)
        self.rows = None  # TILES_HOST_TMA: (q/o rows, k/v rows) of the descriptors' blocks
        self.descs = None  # TILES_HOST_TMA: kernels.triton.launch.DescriptorLaunch once armed


_PLANS: dict[tuple, _Plan] = {}  # type: ignore[type-arg]
_PLANS_MAX = 4096


def _use_asm(device_type: str) -> bool:
    """Inline PTX is allowed: compiled for a CUDA device, not Triton's interpreter."""
    return device_type == "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1"


def _make_plan(
    q, k, v, out, causal, scale, tiling, tma, variant, window=None, sinks=0, score=DEFAULT_SCORE,
    block_sparse=None,
):  # type: ignore[no-untyped-def]  # fmt: skip
    """Validate a call and compute everything that does not depend on the data pointers."""
    check_window(causal, window, sinks, variant)
    q2, k2, v2 = check_qkv(q, k, v, groups=True)
    b, h, sq, d = q2.shape
    dev = q2.get_device()
    if k2.get_device() != dev or v2.get_device() != dev:
        raise ValueError("q, k, v must be on one device")
    bm, bn, w, st = tiling
    sparse = {}
    if block_sparse is not None:
        if window is not None or variant.lazy_rescale:
            raise ValueError("block_sparse takes no window (list its tiles instead) and no "
                             "lazy_rescale (a partial tile may hide whole rows)")  # fmt: skip
        sparse = kernel_meta(block_sparse, q2, k2, causal, bm, bn)
        bm, bn = block_sparse.block_m, block_sparse.block_n
    if None in (bm, bn, w, st):
        pm, pn, pw, ps = pick_tiling(b, h, sq, d, num_sms(dev))
        bm, bn, w, st = bm or pm, bn or pn, w or pw, st or ps
    check_tiling(bm, bn, causal and not sparse)  # a layout needs no diagonal on a tile edge
    if out is not None:
        if tuple(out.shape) != tuple(q2.shape) or out.dtype != q2.dtype:
            raise ValueError(f"out must be {tuple(q2.shape)} {q2.dtype}")
        if out.stride(-1) != 1 or out.get_device() != dev:
            raise ValueError("out must have a contiguous last dim and sit on q's device")
        o_strides = out.stride()
    else:
        o_strides = (h * sq * d, sq * d, d, 1)
    mode = _tile_mode(tma, q2, k2, v2, out, bm)
    use = mode == TILES_DEVICE_TMA
    if use and q2.device.type == "cuda":
        ensure_allocator()
    # Triton 3.6's Hopper warp specialization fails (compile error) when a second key loop
    # follows the specialized one, or without tensor descriptors: use it only with TMA and
    # where the masked tail loop is empty and can be dropped. At head dim 64 the specialized
    # kernel returned NaN on the H200 (2026-11-30, 128x128 and 128x64 with 4 warps;
    # benchmarks/results/variants-h200-2026-11-30.txt): it is applied at head dim 128 only.
    ws = bool(
        variant.warp_specialize and use and not causal and k2.shape[2] % bn == 0 and d == 128
        and score.is_plain and not sparse
    )  # fmt: skip
    plan = _Plan()
    plan.grid = (triton.cdiv(sq, bm), b * h, 1)
    per_head = window is not None and not isinstance(window, int)
    if per_head and len(window) != h:
        raise ValueError(f"window: {len(window)} per-head widths for {h} query heads")
    plan.tail = _int_args(q2, k2, v2, o_strides, scale, 0 if per_head else window or 0, sinks,
                          score)  # fmt: skip
    if per_head:
        widths = torch.tensor(window, dtype=torch.int32, device=q2.device)
        sparse = {**sparse, "HEAD_WINDOWS": True, "head_windows": widths}
    plan.meta = dict(
        BLOCK_M=bm,
        BLOCK_N=bn,
        HEAD_DIM=d,
        CAUSAL=bool(causal),
        USE_TMA=mode,
        DOT_PRECISION=dot_precision(q2.dtype),
        PRESCALE_Q=variant.prescale_q,
        LAZY_RESCALE=variant.lazy_rescale,
        WARP_SPECIALIZE=ws,
        POLY_EXP=int(variant.poly_exp) if q2.dtype != torch.float32 else 0,
        USE_ASM=_use_asm(q2.device.type),
        MASKED_TAIL=not ws,
        WINDOW=window is not None,
        SIGMOID=score.sigmoid,
        SOFTCAP=score.softcap is not None,
        ALIBI=score.alibi,
        # tanh on the MUFU (tanh.approx.f32) for 16-bit inputs on NVIDIA; fp32 keeps exact math
        FAST_TANH=_use_asm(q2.device.type) and q2.dtype != torch.float32,
        HEAD_GROUP=FWD_HEAD_GROUP if causal else 1,
        **sparse,  # block-sparse constexprs and the layout's arguments (by name)
    )
    plan.tiling = (bm, bn, w, st)
    plan.rows = (bm, bn) if mode == TILES_HOST_TMA else None
    plan.device = q2.device
    plan.o_shape = tuple(q2.shape)
    plan.o_dtype = q2.dtype
    # the direct path needs the inputs as given (no .contiguous() copies) on a CUDA device
    plan.stream = None if (q2 is not q or k2 is not k or v2 is not v or dev < 0) else dev
    return plan, (q2, k2, v2)


def _tile_mode(tma, q, k, v, out, block_m: int) -> int:  # type: ignore[no-untyped-def]
    """The TILES_* mode of a call.

    `tma` False -> block pointers, True -> in-kernel descriptors, "host" -> host descriptors
    (ValueError when the layout does not allow them), None -> on sm_90+ CUDA host descriptors
    where allowed when AUTO_HOST_TMA, else in-kernel descriptors; block pointers elsewhere.
    """
    host_ok = (
        all(_collapsible(x) for x in (q, k, v))
        and (out is None or _collapsible(out))
        and q.shape[2] % block_m == 0
    )
    if tma == "host":
        if not host_ok:
            raise ValueError(
                "tma='host' needs q, k, v (and out) viewable as (B*H*S, D) rows of a multiple "
                f"of 16 bytes and seq_q a multiple of block_m ({block_m})"
            )
        return TILES_HOST_TMA
    if tma is None:
        if not use_tma(q.device.type):
            return TILES_POINTERS
        return TILES_HOST_TMA if AUTO_HOST_TMA and host_ok else TILES_DEVICE_TMA
    return TILES_DEVICE_TMA if tma else TILES_POINTERS


def _launch_jit(plan, q, k, v, o):  # type: ignore[no-untyped-def]
    """Launch through Triton's JIT (compiles on first use); arm the direct path if possible."""
    bm, bn, w, st = plan.tiling
    args = (q, k, v, o) if plan.rows is None else _host_descs(plan, q, k, v, o, False)
    kernel = attn_fwd_kernel[plan.grid[:2]](
        *args, *plan.tail, **plan.meta, num_warps=w, num_stages=st
    )
    if plan.stream is None or kernel is None or plan.launch is not None:
        return
    if hasattr(kernel, "result"):
        kernel = kernel.result()
    aligned = not ((q.data_ptr() | k.data_ptr() | v.data_ptr() | o.data_ptr()) & 15)
    if not aligned or not hasattr(kernel, "packed_metadata"):
        return  # compiled for unaligned pointers: keep going through the JIT
    from triton.runtime.driver import driver

    plan.function = kernel.function
    plan.packed = kernel.packed_metadata
    get_stream = driver.active.get_current_stream
    dev = plan.stream
    plan.stream = lambda: get_stream(dev)
    # all arguments in signature order (constexprs included; the C launcher skips them);
    # arguments given by name (the block-sparse layout) as raw pointers, the rest defaults
    meta = plan.meta
    consts = tuple(
        _raw(meta[p.name]) if p.name in meta else p.default
        for p in attn_fwd_kernel.params[4 + len(plan.tail) :]
    )
    plan.full_tail = plan.tail + consts
    plan.launch = kernel.run
    if plan.rows is not None:
        try:
            plan.descs = DescriptorLaunch(
                kernel.run, 4, lambda ts: _host_descs(plan, *ts, stand_in=True)
            )
        except (ValueError, ImportError):
            plan.descs = None  # encode the descriptors on every call through kernel.run


def _raw(x):  # type: ignore[no-untyped-def]
    """A tensor's data pointer (what Triton's launcher passes), anything else as it is."""
    return x.data_ptr() if isinstance(x, torch.Tensor) else x


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
    tma: bool | str | None = None,
    variant: Variant = DEFAULT_VARIANT,
    schedule: str = "plain",
    window: int | None = None,
    sinks: int = 0,
    score: Score = DEFAULT_SCORE,
    block_sparse: BlockSparse | None = None,
):
    """1-pass attention forward with an explicit tiling; returns O (B, H, Sq, D).

    `schedule` (see `SCHEDULES`): "plain" runs this module's Triton kernel; "pingpong" the
    Gluon kernel of `kernels.gluon.attn_pingpong` (Hopper only: BLOCK_M 128, 8 consumer warps,
    BLOCK_N 64/128, 2 or 3 K/V slots = num_stages; ValueError naming the requirement a call
    misses; `tma` and `variant` do not apply to it).

    Tiling parameters left as None come from `common.pick_tiling` (BLOCK_M 64 when the grid
    would under-fill the GPU, else `common.default_tiling(head_dim)`). `out` (optional) is
    written in place. `tma`: True / False force in-kernel tensor descriptors / block pointers,
    "host" host-built descriptors (see `_tile_mode`); default: descriptors on CUDA sm_90+.
    `variant` selects inner-loop variants (`Variant`). GQA/MQA: k and v may have G heads, a
    divisor of q's H (both schedules); query head h reads K/V head h // (H / G).
    `score` (`Score`): sigmoid attention (both schedules), softcapping, ALiBi ("plain" only).
    `window` (causal only): query i sees
    keys i - window < j <= i, plus the first `sinks` keys (attention sinks); `window` may also
    be one width per query head (a sequence or tensor of H ints, MoA-style elastic windows;
    each program reads its head's); key tiles outside
    both are never loaded, tiles inside run unmasked, only the edge tiles pay for masking
    (family `triton-window`; "plain" schedule only). Per-call host work on a repeated call:
    one cache lookup, the output allocation, one direct launch.

    `block_sparse` (`blocksparse.BlockSparse`, "plain" only, family `triton-blocksparse`): a
    query tile visits only the key tiles its layout lists, full ones unmasked, partial ones
    masked (keys < seq_k, `causal`, equal segment ids); rows that see no key come out 0.
    block_m, block_n and causal are the layout's; plans are cached per layout object.
    """
    if window is not None and not isinstance(window, int):  # per-head widths: hashable ints
        window = tuple(int(w) for w in (window.tolist() if hasattr(window, "tolist") else window))
    if schedule != "plain":
        if block_sparse is not None:
            raise ValueError(f"block_sparse: schedule {schedule!r} has no layouts; use 'plain'")
        if window is not None:
            raise ValueError(f"window: schedule {schedule!r} has no sliding window; use 'plain'")
        if not score.no_modifiers:
            raise ValueError(f"score: schedule {schedule!r} has no softcap or ALiBi; use 'plain'")
        return _other_schedule(q, k, v, causal, scale, block_m, block_n, num_warps,
                               num_stages, out, schedule, score)  # fmt: skip
    key = (
        q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), q.dtype, k.dtype,
        v.dtype, q.get_device(), k.get_device(), v.get_device(),
        None if out is None else (out.stride(), out.dtype, out.get_device()),
        causal, scale, block_m, block_n, num_warps, num_stages, tma, window, sinks, score,
        block_sparse, variant,
    )  # fmt: skip
    plan = _PLANS.get(key)
    if plan is not None and plan.launch is not None:
        o = out
        if o is None:
            o = torch.empty(plan.o_shape, dtype=plan.o_dtype, device=plan.device)
        qp, kp, vp, op = q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr()
        if not ((qp | kp | vp | op) & 15):
            g = plan.grid
            if plan.descs is not None:
                plan.descs(
                    g, plan.stream(), plan.function, plan.packed, (q, k, v, o), plan.full_tail
                )
                return o
            args = (qp, kp, vp, op) if plan.rows is None else _host_descs(plan, q, k, v, o, True)
            plan.launch(
                g[0], g[1], g[2], plan.stream(), plan.function, plan.packed, None, None, None,
                *args, *plan.full_tail,
            )  # fmt: skip
            return o
    if plan is None:
        tiling = (block_m, block_n, num_warps, num_stages)
        plan, (q, k, v) = _make_plan(
            q, k, v, out, causal, scale, tiling, tma, variant, window, sinks, score, block_sparse
        )
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        _PLANS[key] = plan
    else:
        q, k, v = check_qkv(q, k, v, groups=True)
    o = torch.empty(plan.o_shape, dtype=plan.o_dtype, device=plan.device) if out is None else out
    _launch_jit(plan, q, k, v, o)
    return o


def attention_fwd_lse(q, k, v, causal: bool = False, scale: float | None = None,
                      block_m: int | None = None, block_n: int | None = None,
                      num_warps: int | None = None, num_stages: int | None = None):  # type: ignore[no-untyped-def]  # fmt: skip
    """Plain softmax `attention_fwd` that also returns the rows' LSE: (O, lse).

    lse: fp32 (B, H, seq_q), natural log (as `attn_bwd.softmax_lse`); JIT launch every call.
    """
    key = ("lse", q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), q.dtype,
           q.get_device(), causal, scale, block_m, block_n, num_warps, num_stages)  # fmt: skip
    if key not in _PLANS:
        _PLANS[key] = _make_plan(q, k, v, None, causal, scale, key[-4:], None, DEFAULT_VARIANT)[0]
    plan = _PLANS[key]
    q, k, v = check_qkv(q, k, v, groups=True)
    o = torch.empty(plan.o_shape, dtype=plan.o_dtype, device=plan.device)
    lse = torch.empty(plan.o_shape[:3], dtype=torch.float32, device=plan.device)
    args = (q, k, v, o) if plan.rows is None else _host_descs(plan, q, k, v, o, False)
    attn_fwd_kernel[plan.grid[:2]](*args, *plan.tail, **plan.meta, STORE_LSE=True, lse=lse,
                                   num_warps=plan.tiling[2], num_stages=plan.tiling[3])  # fmt: skip
    return o, lse


def _other_schedule(q, k, v, causal, scale, block_m, block_n, num_warps, num_stages, out,  # type: ignore[no-untyped-def]
                    schedule, score):  # fmt: skip
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    from attnsim.kernels.gluon.attn_pingpong import BLOCK_M, CONSUMER_WARPS, attention_fwd_pingpong

    block_m = BLOCK_M if block_m is None else block_m
    num_warps = CONSUMER_WARPS if num_warps is None else num_warps
    if (block_m, num_warps) != (BLOCK_M, CONSUMER_WARPS):
        raise ValueError(f"schedule 'pingpong' needs block_m {BLOCK_M} and num_warps "
                         f"{CONSUMER_WARPS}, got {block_m} and {num_warps}")  # fmt: skip
    q, k, v = check_qkv(q, k, v, groups=True)
    return attention_fwd_pingpong(
        q, k, v, causal=causal, scale=scale, block_n=block_n or 128, num_stages=num_stages or 3,
        out=out, sigmoid_bias=score.bias(k.shape[2]) if score.sigmoid else None,
    )  # fmt: skip


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
