"""The `@triton.jit` kernels of the FlashAttention-2-style backward (family `triton-bwd`).

Three kernels, launched by `kernels.triton.attn_bwd.attention_bwd`:

- `bwd_preprocess_kernel`: D = rowsum(dO * O) per query row (float32), and in dq_mode
  "atomic" the zeroing of the float32 dQ buffer (the same rows);
- `bwd_dkdv_kernel`: one program per (key tile, batch * K/V head); it keeps K, V and the dK, dV
  accumulators on chip and walks the query tiles of every query head of its GQA group,
  recomputing P = exp(Q K^T * scale - LSE); with DQ_ATOMIC it also adds dS K * scale into a
  float32 dQ buffer with atomics;
- `bwd_dq_kernel` (dq_mode "separate"): one program per (query tile, batch * head), walking the
  key tiles: dQ = dS K * scale, with no atomics.

All tensors are contiguous (batch, heads, seq, head_dim); LSE and D are (batch, heads, seq_q)
float32, LSE in natural-log units (converted to base 2 here: exp(x) = exp2(x * log2(e))).
Causal is top-left aligned (query i sees keys j <= i), as in the forward kernels: tiles that
the diagonal crosses are masked, fully visible tiles run unmasked, fully hidden ones are never
visited. Causal programs are issued tile-major within groups of HEAD_GROUP heads, the
longest tiles first (`launch_order`; `kernels.spec.BWD_HEAD_GROUP`). Rows past seq_q
read zeros (LSE +inf, so P = 0 there); KEY_TAIL (seq_k not a multiple
of the key tile) masks keys past seq_k in every tile.

Tiles are loaded through plain masked pointers, which Triton pipelines (cp.async, num_stages
deep); the tensor-descriptor loads (TMA_LOADS) are a timed trial, off (`attn_bwd.BWD_TMA_LOADS`).
"""

from __future__ import annotations

import triton
import triton.language as tl

from attnsim.kernels.triton.launch_order import launch_order

LOG2E_C = tl.constexpr(1.4426950408889634)


@triton.jit
def _rows(base, offs, seq, HEAD_DIM: tl.constexpr):
    """Load rows `offs` (< seq, others zero) of a contiguous (seq, HEAD_DIM) head."""
    cols = tl.arange(0, HEAD_DIM)
    ptrs = base + offs[:, None] * HEAD_DIM + cols[None, :]
    return tl.load(ptrs, mask=offs[:, None] < seq, other=0.0)


@triton.jit
def _source(base, seq, ROWS: tl.constexpr, HEAD_DIM: tl.constexpr, TMA: tl.constexpr):
    """A head's (seq, HEAD_DIM) rows to stream: a descriptor of ROWS-row tiles (TMA) or base."""
    if TMA:
        return tl.make_tensor_descriptor(
            base, shape=[seq, HEAD_DIM], strides=[HEAD_DIM, 1], block_shape=[ROWS, HEAD_DIM]
        )
    else:
        return base


@triton.jit
def _tile(src, start, offs, seq, HEAD_DIM: tl.constexpr, TMA: tl.constexpr):
    """Rows `offs` = start + arange(ROWS) of a `_source` (rows past seq read as zero)."""
    if TMA:
        return src.load([start, 0])
    else:
        return _rows(src, offs, seq, HEAD_DIM)


@triton.jit
def _store_rows(base, offs, seq, value, HEAD_DIM: tl.constexpr):
    """Store rows `offs` (< seq) of a contiguous (seq, HEAD_DIM) head in its dtype."""
    cols = tl.arange(0, HEAD_DIM)
    ptrs = base + offs[:, None] * HEAD_DIM + cols[None, :]
    tl.store(ptrs, value.to(base.dtype.element_ty), mask=offs[:, None] < seq)


@triton.jit
def _exp2_masked(s, q_idx, k_idx, seq_k, MASK: tl.constexpr, KEY_TAIL: tl.constexpr):
    """exp2 of log2-domain scores `s`, 0 where hidden; q_idx, k_idx broadcast to s's shape.

    MASK: the causal diagonal crosses the tile (keep key <= query); KEY_TAIL: keep key < seq_k.
    """
    if MASK:
        s = tl.where(q_idx >= k_idx, s, float("-inf"))
    if KEY_TAIL:
        s = tl.where(k_idx < seq_k, s, float("-inf"))
    return tl.math.exp2(s)


@triton.jit
def bwd_preprocess_kernel(Out, DO, Delta, DQ, seq_q, BLOCK_M: tl.constexpr,
                          HEAD_DIM: tl.constexpr, ZERO_DQ: tl.constexpr):  # fmt: skip
    """Row sums Delta[bh, i] = sum_d Out[bh, i, d] * dO[bh, i, d], in float32.

    ZERO_DQ (dq_mode "atomic"): also zero the same rows of the float32 dQ buffer the dK/dV
    kernel adds into, so that the launcher needs no separate fill kernel.
    """
    off_bh = tl.program_id(1).to(tl.int64)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    o = _rows(Out + off_bh * seq_q * HEAD_DIM, offs_m, seq_q, HEAD_DIM).to(tl.float32)
    do = _rows(DO + off_bh * seq_q * HEAD_DIM, offs_m, seq_q, HEAD_DIM).to(tl.float32)
    tl.store(Delta + off_bh * seq_q + offs_m, tl.sum(o * do, axis=1), mask=offs_m < seq_q)
    if ZERO_DQ:
        zeros = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
        _store_rows(DQ + off_bh * seq_q * HEAD_DIM, offs_m, seq_q, zeros, HEAD_DIM)


@triton.jit
def _dkdv_tiles(dk, dv, k, v, q_base, do_base, dq_base, lse_base, delta_base, offs_n,
                lo, hi, seq_q, seq_k, sm_scale, qk_scale2,
                BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr, MASK: tl.constexpr,
                KEY_TAIL: tl.constexpr, DQ_ATOMIC: tl.constexpr,
                DOT_PRECISION: tl.constexpr, DQ_TMA: tl.constexpr,
                TMA_LOADS: tl.constexpr, DP_FIRST: tl.constexpr):  # fmt: skip
    """Query tiles [lo, hi) of one head against one key tile: accumulate dK, dV (and dQ).

    Works on the transposed tile (keys x queries), as the Triton tutorial does: P^T and dS^T
    come out of the dots in the layout of the dK, dV accumulators (no register transposes).
    DQ_TMA: `dq_base` is a tensor descriptor of the head's float32 dQ rows and each tile's dQ
    goes out as one TMA reduction (cp.reduce.async.bulk add) instead of per-element atomics.
    TMA_LOADS: `q_base`, `do_base` are tensor descriptors (`_source`). DP_FIRST: each step
    issues dP^T = V dO^T right after S^T = K Q^T, so that the exponent of P^T runs while the
    tensor cores work on dP^T (`kernels.spec.BWD_DP_FIRST`); otherwise dP^T after dV.
    """
    cols = tl.arange(0, HEAD_DIM)
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        in_q = offs_m < seq_q
        q = _tile(q_base, start_m, offs_m, seq_q, HEAD_DIM, TMA_LOADS)
        do = _tile(do_base, start_m, offs_m, seq_q, HEAD_DIM, TMA_LOADS)
        lse2 = tl.load(lse_base + offs_m, mask=in_q, other=float("inf")) * LOG2E_C
        delta = tl.load(delta_base + offs_m, mask=in_q, other=0.0)
        qk_t = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION)
        if DP_FIRST:
            dp_t = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
        p_t = _exp2_masked(
            qk_t * qk_scale2 - lse2[None, :], offs_m[None, :], offs_n[:, None], seq_k, MASK,
            KEY_TAIL,
        )  # fmt: skip
        dv += tl.dot(p_t.to(do.dtype), do, input_precision=DOT_PRECISION)
        if not DP_FIRST:
            dp_t = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
        ds_t = (p_t * (dp_t - delta[None, :])).to(q.dtype)
        dk += tl.dot(ds_t, q, input_precision=DOT_PRECISION)
        if DQ_ATOMIC:
            dq = tl.dot(tl.trans(ds_t), k, input_precision=DOT_PRECISION) * sm_scale
            if DQ_TMA:  # rows past seq_q fall outside the descriptor: TMA drops them
                dq_base.atomic_add([start_m, 0], dq)
            else:
                ptrs = dq_base + offs_m[:, None] * HEAD_DIM + cols[None, :]
                tl.atomic_add(ptrs, dq, mask=in_q[:, None], sem="relaxed")
    return dk, dv


@triton.jit
def bwd_dkdv_kernel(Q, K, V, DO, DQ, DK, DV, LSE, Delta,
                    heads, kv_heads, kv_group, seq_q, seq_k, sm_scale, qk_scale2,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                    CAUSAL: tl.constexpr, KEY_TAIL: tl.constexpr, DQ_ATOMIC: tl.constexpr,
                    DOT_PRECISION: tl.constexpr, HEAD_GROUP: tl.constexpr,
                    DQ_TMA: tl.constexpr = False, TMA_LOADS: tl.constexpr = False,
                    DIAG_LOOP: tl.constexpr = False, DP_FIRST: tl.constexpr = False):  # fmt: skip
    """dK, dV of one key tile of one (batch, K/V head), summed over its GQA group's heads.

    Causal: key tile 0 is the longest (every query tile sees it), so rank = key tile.
    DQ_TMA (with DQ_ATOMIC; sm_90+, not the interpreter): dQ adds go through an in-kernel
    tensor descriptor per query head (global scratch: `common.ensure_allocator`).
    TMA_LOADS: the streamed Q and dO tiles come through tensor descriptors, same scratch.
    DIAG_LOOP (causal): the tiles the diagonal crosses run in a loop of their own, the others
    unmasked (the build before 2026-12-06); False (`kernels.spec.BWD_DIAG_LOOP`) runs one loop
    that masks every tile: the second pipelined loop costs registers (compiled for sm_90 at
    head dim 128, 64 x 128 tiles, 8 warps, 3 stages: 592 bytes of spill a thread against 232
    with one loop; at head dim 64, 224 against none). On an H100 one loop ran the causal
    backward in 0.93x-0.99x the time at head dim 128 and 0.85x-0.93x at 64, best tiling
    against best tiling (kernels/measurements/h100/bwd-diag-h100-2026-12-06.csv); one tiling
    was slower, 32 x 128 at 4 warps with atomic dQ at head dim 128 (1.03x-1.10x).
    DP_FIRST: the step's order (`_dkdv_tiles`; `kernels.spec.BWD_DP_FIRST`).
    """
    rank, off_bkh = launch_order(HEAD_GROUP)
    start_n = rank * BLOCK_N
    off_b = (off_bkh // kv_heads).to(tl.int64)
    kv_base = off_bkh.to(tl.int64) * seq_k * HEAD_DIM
    offs_n = start_n + tl.arange(0, BLOCK_N)
    k = _rows(K + kv_base, offs_n, seq_k, HEAD_DIM)
    v = _rows(V + kv_base, offs_n, seq_k, HEAD_DIM)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    # causal: query tiles before `lo` see none of these keys; from `full` on they see all
    lo = 0
    full = 0
    if CAUSAL:
        lo = (start_n // BLOCK_M) * BLOCK_M
        full = tl.minimum(tl.cdiv(start_n + BLOCK_N - 1, BLOCK_M) * BLOCK_M, seq_q)
        full = tl.maximum(full, lo)
        if not DIAG_LOOP:  # one loop from lo, the causal mask on every tile
            full = lo
    for g in range(kv_group):
        off_bh = off_b * heads + (off_bkh % kv_heads) * kv_group + g  # query head of the group
        q_base = off_bh * seq_q * HEAD_DIM
        row_base = off_bh * seq_q
        dq_dst = _source(DQ + q_base, seq_q, BLOCK_M, HEAD_DIM, DQ_TMA)
        q_src = _source(Q + q_base, seq_q, BLOCK_M, HEAD_DIM, TMA_LOADS)
        do_src = _source(DO + q_base, seq_q, BLOCK_M, HEAD_DIM, TMA_LOADS)
        if CAUSAL and DIAG_LOOP:
            dk, dv = _dkdv_tiles(
                dk, dv, k, v, q_src, do_src, dq_dst, LSE + row_base,
                Delta + row_base, offs_n, lo, full, seq_q, seq_k, sm_scale, qk_scale2, BLOCK_M,
                HEAD_DIM, True, KEY_TAIL, DQ_ATOMIC, DOT_PRECISION, DQ_TMA, TMA_LOADS, DP_FIRST,
            )  # fmt: skip
        dk, dv = _dkdv_tiles(
            dk, dv, k, v, q_src, do_src, dq_dst, LSE + row_base,
            Delta + row_base, offs_n, full, seq_q, seq_q, seq_k, sm_scale, qk_scale2, BLOCK_M,
            HEAD_DIM, CAUSAL and not DIAG_LOOP, KEY_TAIL, DQ_ATOMIC, DOT_PRECISION, DQ_TMA,
            TMA_LOADS, DP_FIRST,
        )  # fmt: skip
    _store_rows(DK + kv_base, offs_n, seq_k, dk * sm_scale, HEAD_DIM)
    _store_rows(DV + kv_base, offs_n, seq_k, dv, HEAD_DIM)


@triton.jit
def _dq_tiles(dq, q, do, lse2, delta, k_base, v_base, offs_m, lo, hi, seq_k, qk_scale2,
              BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, MASK: tl.constexpr,
              KEY_TAIL: tl.constexpr, DOT_PRECISION: tl.constexpr,
              TMA_LOADS: tl.constexpr):  # fmt: skip
    """Key tiles [lo, hi) against one query tile: accumulate dS K (unscaled).

    TMA_LOADS: `k_base`, `v_base` are tensor descriptors (`_source`).
    """
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k = _tile(k_base, start_n, offs_n, seq_k, HEAD_DIM, TMA_LOADS)
        v = _tile(v_base, start_n, offs_n, seq_k, HEAD_DIM, TMA_LOADS)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        p = _exp2_masked(
            qk * qk_scale2 - lse2[:, None], offs_m[:, None], offs_n[None, :], seq_k, MASK,
            KEY_TAIL,
        )  # fmt: skip
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = (p * (dp - delta[:, None])).to(k.dtype)
        dq += tl.dot(ds, k, input_precision=DOT_PRECISION)
    return dq


@triton.jit
def bwd_dq_kernel(Q, K, V, DO, DQ, LSE, Delta,
                  heads, kv_group, seq_q, seq_k, sm_scale, qk_scale2,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                  CAUSAL: tl.constexpr, KEY_TAIL: tl.constexpr,
                  DOT_PRECISION: tl.constexpr, HEAD_GROUP: tl.constexpr,
                  TMA_LOADS: tl.constexpr = False):  # fmt: skip
    """The dQ of one query tile of one (batch, head): the sum over key tiles of dS K * scale.

    TMA_LOADS: the streamed K and V tiles come through tensor descriptors (as the dK/dV
    kernel's Q and dO).
    """
    rank, off_bh = launch_order(HEAD_GROUP)
    start_m = rank * BLOCK_M
    if CAUSAL:  # longest rows first: better tail balance
        start_m = (tl.num_programs(0) - 1 - rank) * BLOCK_M
    off_bh = off_bh.to(tl.int64)
    off_bkh = (off_bh // heads) * (heads // kv_group) + (off_bh % heads) // kv_group
    q_base = off_bh * seq_q * HEAD_DIM
    kv_base = off_bkh * seq_k * HEAD_DIM
    offs_m = start_m + tl.arange(0, BLOCK_M)
    in_q = offs_m < seq_q
    q = _rows(Q + q_base, offs_m, seq_q, HEAD_DIM)
    do = _rows(DO + q_base, offs_m, seq_q, HEAD_DIM)
    lse2 = tl.load(LSE + off_bh * seq_q + offs_m, mask=in_q, other=float("inf")) * LOG2E_C
    delta = tl.load(Delta + off_bh * seq_q + offs_m, mask=in_q, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    hi = seq_k
    full = seq_k
    if CAUSAL:  # key tiles before `full` are fully visible; keys past the last row are hidden
        hi = tl.minimum(start_m + BLOCK_M, seq_k)
        full = tl.minimum(((start_m + 1) // BLOCK_N) * BLOCK_N, hi)
    k_src = _source(K + kv_base, seq_k, BLOCK_N, HEAD_DIM, TMA_LOADS)
    v_src = _source(V + kv_base, seq_k, BLOCK_N, HEAD_DIM, TMA_LOADS)
    dq = _dq_tiles(
        dq, q, do, lse2, delta, k_src, v_src, offs_m, 0, full, seq_k, qk_scale2,
        BLOCK_N, HEAD_DIM, False, KEY_TAIL, DOT_PRECISION, TMA_LOADS,
    )  # fmt: skip
    if CAUSAL:
        dq = _dq_tiles(
            dq, q, do, lse2, delta, k_src, v_src, offs_m, full, hi, seq_k,
            qk_scale2, BLOCK_N, HEAD_DIM, True, KEY_TAIL, DOT_PRECISION, TMA_LOADS,
        )  # fmt: skip
    _store_rows(DQ + q_base, offs_m, seq_q, dq * sm_scale, HEAD_DIM)
