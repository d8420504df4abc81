"""Multi-head latent attention (MLA, DeepSeek-V2/V3) decode: absorbed and naive forms.

Family `triton-mla-decode`. The cache holds one latent row c (C columns) and one rope key
(Rr columns) per token, shared by all H heads. Absorbed decode folds W_UK into the query
(q_latent = q_nope W_UK[h], `absorb_query`) and W_UV into the output (`project_output`), so
attention runs over the latent itself: MQA with key [c, rope] (C + Rr columns) and value c.
`attention_mla_decode` launches the decode kernel (`attn_decode_kernel`) with all heads packed
as rows in blocks of `head_block`, one segment per (batch, head block), the latent tile loaded
once per step and used for both the score and P.V (V_IS_K). `mla_decode_naive` is the
reference form: up-project the latent to per-head K and V with torch matmuls, then
`attention_decode` (its up-projection reads and writes H x the latent's bytes).
"""

from __future__ import annotations

import torch

from attnsim.kernels.spec import MLA_HEAD_BLOCK
from attnsim.kernels.triton.attn_decode import (
    DecodeWorkspace,
    attention_decode,
    launch_decode,
)

__all__ = ["absorb_query", "attention_mla_decode", "mla_decode_naive", "project_output"]


def absorb_query(q_nope: torch.Tensor, w_uk: torch.Tensor) -> torch.Tensor:
    """Absorbed query q_latent[b, h, c] = sum_d q_nope[b, h, d] w_uk[h, d, c].

    q_nope (B, H, Dn), w_uk (H, Dn, C); returns (B, H, C).
    """
    return torch.einsum("bhd,hdc->bhc", q_nope, w_uk)


def project_output(o_latent: torch.Tensor, w_uv: torch.Tensor) -> torch.Tensor:
    """Per-head output o[b, h, d] = sum_c w_uv[h, d, c] o_latent[b, h, c]; w_uv (H, Dv, C)."""
    return torch.einsum("bhc,hdc->bhd", o_latent, w_uv)


def attention_mla_decode(
    q_latent: torch.Tensor,
    q_rope: torch.Tensor,
    ckv: torch.Tensor,
    kr: torch.Tensor | None,
    scale: float,
    *,
    strategy: str = "splitk",
    splits: int | None = None,
    programs: int | None = None,
    head_block: int | None = None,
    seq_lens: torch.Tensor | None = None,
    block_table: torch.Tensor | None = None,
    block_n: int = 32,
    num_warps: int = 8,
    num_stages: int = 2,
    workspace: DecodeWorkspace | None = None,
) -> torch.Tensor:
    """Absorbed MLA decode; returns the latent output (B, H, C) (the caller applies W_UV).

    q_latent (B, H, C): the query already multiplied by W_UK; q_rope (B, H, Rr). ckv: latent
    cache (B, S, C), or (num_pages, page_size, C) with `block_table`; kr: rope keys of the
    same layout with Rr columns, or None when ckv holds both as (., ., C + Rr) (the
    DeepSeek/FlashMLA layout, latent first). C and Rr powers of two (512 and 64 in
    DeepSeek-V2/V3). `scale` is the softmax scale (DeepSeek: 1/sqrt(qk_nope + rope dims)).
    `head_block` heads per segment (16, 32 or 64; default min(32, H) padded to >= 16).
    Other arguments as `attention_decode`.
    """
    if q_latent.dim() != 3 or q_rope.dim() != 3 or q_latent.shape[:2] != q_rope.shape[:2]:
        raise ValueError(f"q_latent (B, H, C) and q_rope (B, H, Rr) disagree: "
                         f"{tuple(q_latent.shape)}, {tuple(q_rope.shape)}")  # fmt: skip
    c, rr = q_latent.shape[2], q_rope.shape[2]
    if c & (c - 1) or rr & (rr - 1) or not 16 <= rr < c <= 512:
        raise ValueError(f"latent dim C ({c}) and rope dim Rr ({rr}) must be powers of two "
                         "with 16 <= Rr < C <= 512")  # fmt: skip
    want = c + rr if kr is None else c
    if ckv.dim() != 3 or ckv.shape[2] != want:
        raise ValueError(f"ckv must be (B or pages, S or page_size, {want}), "
                         f"got {tuple(ckv.shape)}")  # fmt: skip
    if kr is not None and (kr.dim() != 3 or kr.shape != (*ckv.shape[:2], rr)):
        raise ValueError(f"kr must be {(*ckv.shape[:2], rr)}, got {tuple(kr.shape)}")
    if head_block is None:
        head_block = max(16, min(MLA_HEAD_BLOCK, 1 << (q_latent.shape[1] - 1).bit_length()))
    qm, qt = q_latent.unsqueeze(2), q_rope.unsqueeze(2)
    tensors = [t if t.stride(-1) == 1 else t.contiguous() for t in (qm, qt, ckv)]
    qm, qt, cache = tensors
    km = cache[..., :c].unsqueeze(1)
    rope = cache[..., c:] if kr is None else (kr if kr.stride(-1) == 1 else kr.contiguous())
    kt = rope.unsqueeze(1)
    options = (float(scale), strategy, splits, programs, head_block, block_n, num_warps,
               num_stages, rr)  # fmt: skip
    key = (
        "mla", qm.shape, qm.stride(), qt.shape, qt.stride(), km.shape, km.stride(), kt.shape,
        kt.stride(), qm.dtype, km.dtype, kt.dtype, qm.device, options,
        None if seq_lens is None else (seq_lens.shape, seq_lens.dtype, seq_lens.device),
        None if block_table is None else (block_table.shape, block_table.stride(),
                                          block_table.dtype, block_table.device),
    )  # fmt: skip
    out = launch_decode(key, qm, qt, km, kt, km, seq_lens, block_table, workspace, options)
    return out.view(out.shape[0], out.shape[1], c)


def upproject_kv(
    ckv: torch.Tensor, kr: torch.Tensor, w_uk: torch.Tensor, w_uv: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head K (B, H, S, Dn + Rr) = [ckv W_UK[h]^T, kr] and V (B, H, S, Dv) = ckv W_UV[h]^T.

    ckv (B, S, C), kr (B, S, Rr), w_uk (H, Dn, C), w_uv (H, Dv, C); torch matmuls.
    """
    h = w_uk.shape[0]
    k_nope = torch.einsum("bsc,hdc->bhsd", ckv, w_uk)
    rope = kr.unsqueeze(1).expand(-1, h, -1, -1)
    return torch.cat((k_nope, rope), dim=-1), torch.einsum("bsc,hdc->bhsd", ckv, w_uv)


def mla_decode_naive(
    q_nope: torch.Tensor,
    q_rope: torch.Tensor,
    ckv: torch.Tensor,
    kr: torch.Tensor,
    w_uk: torch.Tensor,
    w_uv: torch.Tensor,
    scale: float,
    **decode_options: object,
) -> torch.Tensor:
    """Naive MLA decode: up-project K and V per head (`upproject_kv`), then `attention_decode`.

    q_nope (B, H, Dn), q_rope (B, H, Rr); contiguous cache only. Returns (B, H, Dv), the
    per-head output (what `project_output(attention_mla_decode(...), w_uv)` computes).
    `decode_options` go to `attention_decode` (strategy, splits, seq_lens, ...).
    """
    k, v = upproject_kv(ckv, kr, w_uk, w_uv)
    q = torch.cat((q_nope, q_rope), dim=-1).unsqueeze(2)
    out = attention_decode(q, k, v, scale, **decode_options)  # type: ignore[arg-type]
    return out.squeeze(2)
