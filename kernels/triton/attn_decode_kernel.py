"""The one decode-attention kernel: unsplit, split-K and stream-K partitions, merge fused in.

Families `triton-decode-splitk`, `triton-decode-streamk` and `triton-mla-decode` all launch
`decode_kernel` (the launchers are `attn_decode.attention_decode` and
`attn_mla.attention_mla_decode`). Work is cut into *segments*: (batch b, K/V head g, row
block rb), whose rows are up to BLOCK_R query heads of K/V head g (GQA packing; for MLA all
heads share one latent, G = 1, and a row block is a head block). A segment's keys are
`n_tiles` tiles of BLOCK_N keys (at least one, so an empty sequence writes zeros).

STRATEGY picks who works on which tiles:

- 0, unsplit: program = segment, all its tiles.
- 1, split-K (FlashDecoding): grid (splits, segments); a segment's tiles are cut into chunks
  of ceil(n_tiles / splits) tiles, and program (s, seg) takes chunk s (none if past the end).
- 2, stream-K (Lean Attention): P programs each take the contiguous share
  [p * T // P, (p + 1) * T // P) of the T tiles of all segments laid end to end (batch-major;
  P capped at T), crossing segment boundaries; a program walks the segments its share touches.

Merge (fused, no second launch): a segment with one contributor writes the output. Otherwise
each contributor writes its partial (fp32 output normalized by its own sum, plus its
log2-sum-exp) to a workspace slot, then adds 1 to the segment's counter (acq_rel); the one that
sees count = contributors - 1 arrived last, merges the slots (loads through L2, `.cg`) into the
output and resets the counter to 0, so the workspace is clean for the next launch. Slots:
split-K uses seg * splits + s; stream-K uses p + seg, unique because along the tile sequence
each step from one (program, segment) pair to the next raises p or seg (so a segment's
contributors p_first..p_last own the contiguous slots p_first + seg .. p_last + seg, and all
slots are below P + segments).

Keys: K is split into a power-of-two main part (E_MAIN columns, pointer KM) and an optional
power-of-two tail (E_TAIL, pointer KT; MLA's rope part), so scores are q_main k_main^T +
q_tail k_tail^T; V (F columns) may be the main key tile itself (V_IS_K: MLA's latent serves as
key and value and is loaded once per step). PAGED: key n of batch b lives in page
Table[b, n // PAGE_SIZE] at row n % PAGE_SIZE (PAGE_SIZE a multiple of BLOCK_N, so a tile is
in one page); otherwise K is (B, G, S, E) and row n of batch b. RAGGED: SeqLens[b] keys.
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["STREAMK", "SPLITK", "UNSPLIT", "decode_kernel"]

UNSPLIT, SPLITK, STREAMK = 0, 1, 2


@triton.jit
def _seq_len(SeqLens, b, seq_k, RAGGED: tl.constexpr):
    """Keys of batch b: SeqLens[b] when ragged, else seq_k."""
    if RAGGED:
        return tl.load(SeqLens + b)
    else:
        return seq_k


@triton.jit
def _tile_base(Ptr, Table, b, g, n0, stride_b, stride_h, stride_table,
               PAGE_SIZE: tl.constexpr, PAGED: tl.constexpr):  # fmt: skip
    """Pointer to the row of key n0 of (batch b, head g): through the block table when paged."""
    if PAGED:
        page = tl.load(Table + b * stride_table + n0 // PAGE_SIZE).to(tl.int64)
        return Ptr + page * stride_b + g * stride_h, n0 % PAGE_SIZE
    else:
        return Ptr + b * stride_b + g * stride_h, n0


@triton.jit
def _attend(
    Q, QT, KM, KT, V, Table, b, g, heads, live, tile_lo, tile_hi, seq_len,
    stride_qb, stride_qh, stride_qtb, stride_qth,
    stride_kb, stride_kh, stride_ks, stride_ktb, stride_kth, stride_kts,
    stride_vb, stride_vh, stride_vs, stride_table, qk_scale,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, E_MAIN: tl.constexpr, E_TAIL: tl.constexpr,
    F: tl.constexpr, PAGE_SIZE: tl.constexpr, PAGED: tl.constexpr, V_IS_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Online softmax (log2 domain) of one segment's rows over key tiles [tile_lo, tile_hi).

    Returns (acc, m, l): unnormalized output (BLOCK_R, F), running max and sum per row.
    """
    dims = tl.arange(0, E_MAIN)
    keys = tl.arange(0, BLOCK_N)
    q = tl.load(Q + b * stride_qb + heads[:, None] * stride_qh + dims[None, :],
                mask=live[:, None], other=0.0)  # fmt: skip
    if E_TAIL > 0:
        tdims = tl.arange(0, E_TAIL)
        qt = tl.load(QT + b * stride_qtb + heads[:, None] * stride_qth + tdims[None, :],
                     mask=live[:, None], other=0.0)  # fmt: skip
    fdims = tl.arange(0, F)
    m_i = tl.full([BLOCK_R], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_R], dtype=tl.float32)
    acc = tl.zeros([BLOCK_R, F], dtype=tl.float32)
    for t in range(tile_lo, tile_hi):
        n0 = t * BLOCK_N
        inside = (n0 + keys) < seq_len
        k_base, row0 = _tile_base(KM, Table, b, g, n0, stride_kb, stride_kh, stride_table,
                                  PAGE_SIZE, PAGED)  # fmt: skip
        rows = row0 + keys
        k = tl.load(k_base + rows[:, None] * stride_ks + dims[None, :],
                    mask=inside[:, None], other=0.0)  # fmt: skip
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        if E_TAIL > 0:
            kt_base, _ = _tile_base(KT, Table, b, g, n0, stride_ktb, stride_kth, stride_table,
                                    PAGE_SIZE, PAGED)  # fmt: skip
            kt = tl.load(kt_base + rows[:, None] * stride_kts + tdims[None, :],
                         mask=inside[:, None], other=0.0)  # fmt: skip
            s = tl.dot(qt, tl.trans(kt), s, input_precision=DOT_PRECISION)
        s = tl.where(inside[None, :], s * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no key yet stay 0
        alpha = tl.math.exp2(m_i - m_ref)
        p = tl.math.exp2(s - m_ref[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        if V_IS_K:
            v = k  # the latent tile: key and value at once
        else:
            v_base, _ = _tile_base(V, Table, b, g, n0, stride_vb, stride_vh, stride_table,
                                   PAGE_SIZE, PAGED)  # fmt: skip
            v = tl.load(v_base + rows[:, None] * stride_vs + fdims[None, :],
                        mask=inside[:, None], other=0.0)  # fmt: skip
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, m_i, l_i


@triton.jit
def _finish(
    acc, m_i, l_i, Out, Part, Lse, Count, b, heads, live, seg, slot_base, index, n_contrib,
    stride_ob, stride_oh,
    BLOCK_R: tl.constexpr, F: tl.constexpr, SINGLE: tl.constexpr,
):  # fmt: skip
    """Write one contribution: the output if it is the segment's only one, else a partial.

    The last of several contributors to arrive merges all partials of the segment.
    """
    rows = tl.arange(0, BLOCK_R)
    fdims = tl.arange(0, F)
    o_ptr = Out + b * stride_ob + heads[:, None] * stride_oh + fdims[None, :]
    safe_l = tl.where(l_i > 0.0, l_i, 1.0)
    if SINGLE:
        tl.store(o_ptr, (acc / safe_l[:, None]).to(Out.dtype.element_ty), mask=live[:, None])
    elif n_contrib == 1:
        tl.store(o_ptr, (acc / safe_l[:, None]).to(Out.dtype.element_ty), mask=live[:, None])
    else:
        lse = tl.where(l_i > 0.0, m_i + tl.math.log2(safe_l), float("-inf"))
        slot = (slot_base + index).to(tl.int64)
        tl.store(Part + (slot * BLOCK_R + rows[:, None]) * F + fdims[None, :],
                 acc / safe_l[:, None])  # fmt: skip
        tl.store(Lse + slot * BLOCK_R + rows, lse)
        tl.debug_barrier()  # every thread's partial is written before the release below
        arrived = tl.atomic_add(Count + seg, 1, sem="acq_rel", scope="gpu")
        if arrived == n_contrib - 1:
            tl.debug_barrier()
            m_run = tl.full([BLOCK_R], float("-inf"), dtype=tl.float32)
            l_run = tl.zeros([BLOCK_R], dtype=tl.float32)
            o_run = tl.zeros([BLOCK_R, F], dtype=tl.float32)
            for j in range(0, n_contrib):
                s = (slot_base + j).to(tl.int64)
                lse_j = tl.load(Lse + s * BLOCK_R + rows, cache_modifier=".cg")
                o_j = tl.load(Part + (s * BLOCK_R + rows[:, None]) * F + fdims[None, :],
                              cache_modifier=".cg")  # fmt: skip
                m_new = tl.maximum(m_run, lse_j)
                m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)
                alpha = tl.math.exp2(m_run - m_ref)
                w = tl.math.exp2(lse_j - m_ref)
                o_run = o_run * alpha[:, None] + o_j * w[:, None]
                l_run = l_run * alpha + w
                m_run = m_new
            safe_run = tl.where(l_run > 0.0, l_run, 1.0)
            tl.store(o_ptr, (o_run / safe_run[:, None]).to(Out.dtype.element_ty),
                     mask=live[:, None])  # fmt: skip
            tl.atomic_xchg(Count + seg, 0, sem="relaxed", scope="gpu")  # clean for next launch


@triton.jit
def _segment_rows(seg, seg_per_batch, row_blocks, group, BLOCK_R: tl.constexpr):
    """Batch, K/V head, query heads (rows) and live-row mask of segment `seg`."""
    b = (seg // seg_per_batch).to(tl.int64)
    j = seg % seg_per_batch
    g = (j // row_blocks).to(tl.int64)
    r0 = (j % row_blocks) * BLOCK_R
    rows = tl.arange(0, BLOCK_R)
    live = r0 + rows < group
    heads = g * group + r0 + rows
    return b, g, heads, live


@triton.jit
def _locate(t, SeqLens, batch, seq_k, seg_per_batch,
            BATCH_BLOCK: tl.constexpr, BLOCK_N: tl.constexpr, RAGGED: tl.constexpr):  # fmt: skip
    """Segment holding global tile t: (segment, its first global tile, its tile count).

    Ragged: all segments of a batch have that batch's tile count; the batch is found by a
    compare-and-count over the B cumulative tile counts (in registers, no host help).
    """
    if RAGGED:
        bs = tl.arange(0, BATCH_BLOCK)
        lens = tl.load(SeqLens + bs, mask=bs < batch, other=0)
        tiles = tl.where(bs < batch, tl.maximum(tl.cdiv(lens, BLOCK_N), 1), 0).to(tl.int64)
        ends = tl.cumsum(tiles, 0) * seg_per_batch  # first tile past batch b's segments
        b = tl.sum((ends <= t).to(tl.int32), 0)
        n_t = tl.sum(tl.where(bs == b, tiles, 0), 0)
        start = tl.sum(tl.where(bs == b, ends, 0), 0) - n_t * seg_per_batch
        j = (t - start) // n_t
        return b * seg_per_batch + j, start + j * n_t, n_t
    else:
        n_t = tl.maximum(tl.cdiv(seq_k, BLOCK_N), 1).to(tl.int64)
        seg = t // n_t
        return seg, seg * n_t, n_t


@triton.jit(do_not_specialize=["batch", "seq_k", "group", "row_blocks", "seg_per_batch", "splits"])
def decode_kernel(
    Q, QT, KM, KT, V, Out, Part, Lse, Count, SeqLens, Table,
    stride_qb, stride_qh, stride_qtb, stride_qth,
    stride_kb, stride_kh, stride_ks, stride_ktb, stride_kth, stride_kts,
    stride_vb, stride_vh, stride_vs, stride_ob, stride_oh, stride_table,
    batch, seq_k, group, row_blocks, seg_per_batch, splits, qk_scale,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, E_MAIN: tl.constexpr, E_TAIL: tl.constexpr,
    F: tl.constexpr, PAGE_SIZE: tl.constexpr, BATCH_BLOCK: tl.constexpr,
    STRATEGY: tl.constexpr, RAGGED: tl.constexpr, PAGED: tl.constexpr, V_IS_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Decode attention over segments (module docstring); `splits` is unused unless split-K."""
    if STRATEGY == 2:
        p = tl.program_id(0).to(tl.int64)
        if RAGGED:
            bs = tl.arange(0, BATCH_BLOCK)
            lens = tl.load(SeqLens + bs, mask=bs < batch, other=0)
            tiles = tl.where(bs < batch, tl.maximum(tl.cdiv(lens, BLOCK_N), 1), 0)
            total = tl.sum(tiles.to(tl.int64), 0) * seg_per_batch
        else:
            total = tl.maximum(tl.cdiv(seq_k, BLOCK_N), 1).to(tl.int64) * batch * seg_per_batch
        # With more programs than tiles the extra ones idle, so every share is non-empty and
        # the programs between a segment's first and last owner all contribute to it.
        n_prog = tl.minimum(tl.num_programs(0).to(tl.int64), total)
        t = p * total // n_prog
        t_end = tl.where(p < n_prog, (p + 1) * total // n_prog, t)
        while t < t_end:
            seg, s0, n_t = _locate(t, SeqLens, batch, seq_k, seg_per_batch, BATCH_BLOCK, BLOCK_N,
                                   RAGGED)  # fmt: skip
            hi = tl.minimum(t_end, s0 + n_t)
            first = ((s0 + 1) * n_prog - 1) // total  # owner of the segment's first tile
            last = ((s0 + n_t) * n_prog - 1) // total  # owner of its last tile
            b, g, heads, live = _segment_rows(seg, seg_per_batch, row_blocks, group, BLOCK_R)
            seq_len = _seq_len(SeqLens, b, seq_k, RAGGED)
            acc, m_i, l_i = _attend(
                Q, QT, KM, KT, V, Table, b, g, heads, live, t - s0, hi - s0, seq_len,
                stride_qb, stride_qh, stride_qtb, stride_qth,
                stride_kb, stride_kh, stride_ks, stride_ktb, stride_kth, stride_kts,
                stride_vb, stride_vh, stride_vs, stride_table, qk_scale,
                BLOCK_R, BLOCK_N, E_MAIN, E_TAIL, F, PAGE_SIZE, PAGED, V_IS_K, DOT_PRECISION,
            )  # fmt: skip
            _finish(
                acc, m_i, l_i, Out, Part, Lse, Count, b, heads, live, seg, first + seg,
                p - first, last - first + 1, stride_ob, stride_oh, BLOCK_R, F, False,
            )  # fmt: skip
            t = hi
    else:
        if STRATEGY == 1:
            split = tl.program_id(0)
            seg = tl.program_id(1)
        else:
            split = 0
            seg = tl.program_id(0)
        b, g, heads, live = _segment_rows(seg, seg_per_batch, row_blocks, group, BLOCK_R)
        seq_len = _seq_len(SeqLens, b, seq_k, RAGGED)
        n_t = tl.maximum(tl.cdiv(seq_len, BLOCK_N), 1)
        if STRATEGY == 1:
            chunk = tl.cdiv(n_t, splits)
            n_contrib = tl.cdiv(n_t, chunk)
        else:
            chunk = n_t
            n_contrib = 1
        if split < n_contrib:
            lo = split * chunk
            hi = tl.minimum(lo + chunk, n_t)
            acc, m_i, l_i = _attend(
                Q, QT, KM, KT, V, Table, b, g, heads, live, lo, hi, seq_len,
                stride_qb, stride_qh, stride_qtb, stride_qth,
                stride_kb, stride_kh, stride_ks, stride_ktb, stride_kth, stride_kts,
                stride_vb, stride_vh, stride_vs, stride_table, qk_scale,
                BLOCK_R, BLOCK_N, E_MAIN, E_TAIL, F, PAGE_SIZE, PAGED, V_IS_K, DOT_PRECISION,
            )  # fmt: skip
            _finish(acc, m_i, l_i, Out, Part, Lse, Count, b, heads, live, seg, seg * splits,
                    split, n_contrib, stride_ob, stride_oh, BLOCK_R, F, STRATEGY == 0)  # fmt: skip
