"""Decode attention with split-K (FlashDecoding): one query per head against a KV cache.

Family `triton-decode-splitk`. q is (B, H, 1, D); k and v are (B, G, S, D) with G dividing H
(GQA/MQA: the R = H / G query heads of a K/V head read its cache once). Two kernels:

- `decode_partial_kernel`, grid (splits, B * G): program (s, b, g) packs the R query heads of
  K/V head g into the rows of one tile (R padded to at least 16, the tensor cores' minimum)
  and runs the online softmax over keys [s * chunk, (s + 1) * chunk); it writes each head's
  partial output (normalized by its own sum) and its log2-sum-exp. With one split it writes
  the final output directly and the merge is skipped.
- `decode_merge_kernel`, grid (B * H): O = sum_s 2**(lse_s - lse) O_s with lse the log2 of
  the sum over splits of 2**lse_s (splits whose chunk is empty carry lse = -inf and weight 0).

Splitting the keys puts B * G * splits programs on the GPU instead of B * G: at batch 1 with
8 K/V heads an unsplit kernel would use 8 of the H200's 132 SMs. `default_splits` fills about
two waves of programs, keeping each chunk at least `MIN_CHUNK` keys.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from attnsim.kernels.triton.common import LOG2E, default_scale, dot_precision, num_sms

__all__ = ["MIN_CHUNK", "attention_decode", "default_splits"]

MIN_CHUNK = 512  # keys per split at least: shorter chunks pay more in the merge than they save


@triton.jit
def decode_partial_kernel(
    Q, K, V, Out, Lse,
    stride_qb, stride_qh,
    stride_kb, stride_kh, stride_ks,
    stride_vb, stride_vh, stride_vs,
    stride_ob, stride_oh, stride_os,
    seq_k, chunk, group, kv_heads, qk_scale,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
    SPLIT: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Online softmax of one K/V head's R packed query heads over one chunk of keys."""
    split = tl.program_id(0)
    off_bg = tl.program_id(1)
    off_b = (off_bg // kv_heads).to(tl.int64)
    off_g = (off_bg % kv_heads).to(tl.int64)
    rows = tl.arange(0, BLOCK_R)
    dims = tl.arange(0, HEAD_DIM)
    keys = tl.arange(0, BLOCK_N)
    heads = off_g * group + rows  # query heads of this K/V head
    live = rows < group
    q_ptr = Q + off_b * stride_qb + heads[:, None] * stride_qh + dims[None, :]
    q = tl.load(q_ptr, mask=live[:, None], other=0.0)
    k_base = K + off_b * stride_kb + off_g * stride_kh
    v_base = V + off_b * stride_vb + off_g * stride_vh
    m_i = tl.full([BLOCK_R], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_R], dtype=tl.float32)
    acc = tl.zeros([BLOCK_R, HEAD_DIM], dtype=tl.float32)
    lo = split * chunk
    hi = tl.minimum(lo + chunk, seq_k)
    for n0 in range(lo, hi, BLOCK_N):
        n = n0 + keys
        inside = n < hi
        k = tl.load(
            k_base + n[:, None] * stride_ks + dims[None, :], mask=inside[:, None], other=0.0
        )
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        s = tl.where(inside[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no key yet stay 0
        alpha = tl.math.exp2(m_i - m_ref)
        p = tl.math.exp2(s - m_ref[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(
            v_base + n[:, None] * stride_vs + dims[None, :], mask=inside[:, None], other=0.0
        )
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=DOT_PRECISION)
        m_i = m_new
    safe_l = tl.where(l_i > 0.0, l_i, 1.0)
    out = acc / safe_l[:, None]
    o_ptr = Out + off_b * stride_ob + heads[:, None] * stride_oh + split * stride_os + dims[None, :]
    tl.store(o_ptr, out.to(Out.dtype.element_ty), mask=live[:, None])
    if SPLIT:
        lse = tl.where(l_i > 0.0, m_i + tl.math.log2(safe_l), float("-inf"))
        n_splits = tl.num_programs(0)
        lse_ptr = Lse + (off_b * kv_heads * group + heads) * n_splits + split
        tl.store(lse_ptr, lse, mask=live)


@triton.jit
def decode_merge_kernel(
    Part, Lse, Out, n_splits, stride_pb, stride_ph, stride_ps, stride_ob, stride_oh, heads,
    BLOCK_S: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    """O = sum over splits of 2**(lse_s - lse) O_s (lse: log2 of the sum of 2**lse_s)."""
    off_bh = tl.program_id(0)
    off_b = (off_bh // heads).to(tl.int64)
    off_h = (off_bh % heads).to(tl.int64)
    splits = tl.arange(0, BLOCK_S)
    dims = tl.arange(0, HEAD_DIM)
    live = splits < n_splits
    lse = tl.load(Lse + off_bh * n_splits + splits, mask=live, other=float("-inf"))
    top = tl.max(lse, 0)
    w = tl.math.exp2(lse - top)
    w = w / tl.sum(w, 0)
    base = Part + off_b * stride_pb + off_h * stride_ph
    parts = tl.load(
        base + splits[:, None] * stride_ps + dims[None, :], mask=live[:, None], other=0.0
    )
    out = tl.sum(parts.to(tl.float32) * w[:, None], 0)
    tl.store(Out + off_b * stride_ob + off_h * stride_oh + dims, out.to(Out.dtype.element_ty))


def default_splits(batch: int, kv_heads: int, seq_k: int, sms: int) -> int:
    """Splits that give about two waves of programs, each chunk at least `MIN_CHUNK` keys."""
    want = max(1, math.ceil(2 * sms / max(batch * kv_heads, 1)))
    return max(1, min(want, seq_k // MIN_CHUNK))


def attention_decode(  # type: ignore[no-untyped-def]
    q,
    k,
    v,
    scale: float | None = None,
    splits: int | None = None,
    block_n: int = 64,
    num_warps: int = 4,
    num_stages: int = 2,
):
    """Decode attention: softmax(q k^T * scale) v for one query per head; returns (B, H, 1, D).

    `splits` None picks `default_splits` for the device (1 on CPU); `splits` of 1 runs one
    kernel, more add the merge kernel. K/V may have fewer heads than q (a divisor: GQA/MQA).
    """
    if q.dim() != 4 or q.shape[2] != 1:
        raise ValueError(f"q must be (batch, heads, 1, head_dim), got {tuple(q.shape)}")
    if k.shape != v.shape or k.dim() != 4 or k.shape[0] != q.shape[0] or k.shape[3] != q.shape[3]:
        raise ValueError(
            "k and v must be (batch, kv_heads, seq, head_dim) matching q; "
            f"got {tuple(k.shape)}, {tuple(v.shape)}"
        )
    b, h, _, d = q.shape
    g, s = k.shape[1], k.shape[2]
    if h % g:
        raise ValueError(f"kv heads ({g}) must divide query heads ({h})")
    if d & (d - 1) or not 16 <= d <= 256:
        raise ValueError(f"head_dim must be a power of two in 16..256, got {d}")
    if s < 1:
        raise ValueError("the KV cache is empty")
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    group = h // g
    if splits is None:
        sms = num_sms(q.get_device()) if q.is_cuda else 1
        splits = default_splits(b, g, s, sms)
    if int(splits) != splits or not 1 <= splits <= s:
        raise ValueError(f"splits must be an int in 1..{s} (the keys), got {splits!r}")
    chunk = triton.cdiv(triton.cdiv(s, splits), block_n) * block_n
    out = torch.empty((b, h, 1, d), dtype=q.dtype, device=q.device)
    sm_scale = default_scale(d) if scale is None else scale
    block_r = max(16, triton.next_power_of_2(group))
    if splits == 1:
        part, lse, po = out, out, (out.stride(0), out.stride(1), 0)
    else:
        part = torch.empty((b, h, splits, d), dtype=torch.float32, device=q.device)
        lse = torch.empty((b, h, splits), dtype=torch.float32, device=q.device)
        po = (part.stride(0), part.stride(1), part.stride(2))
    decode_partial_kernel[(splits, b * g)](
        q, k, v, part, lse,
        q.stride(0), q.stride(1),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        *po,
        s, chunk, group, g, sm_scale * LOG2E,
        BLOCK_R=block_r, BLOCK_N=block_n, HEAD_DIM=d, SPLIT=splits > 1,
        DOT_PRECISION=dot_precision(q.dtype), num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    if splits > 1:
        decode_merge_kernel[(b * h,)](
            part, lse, out, splits, *part.stride()[:3], out.stride(0), out.stride(1), h,
            BLOCK_S=triton.next_power_of_2(splits), HEAD_DIM=d, num_warps=4,
        )  # fmt: skip
    return out
