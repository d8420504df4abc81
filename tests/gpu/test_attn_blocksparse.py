"""The 1-pass kernel's block-sparse layouts (`attention_fwd(block_sparse=)`).

On CPU in Triton's interpreter on tiny shapes (fp32 and fp16): random block masks (shared,
per batch, per head; ragged seq_k; GQA), documents with and without causal, unsorted segment
ids, query tiles with no key tile and rows that see no key (output 0), K/V tiles outside the
layout poisoned with NaN (never read), score functions. With CUDA compiled, plus bf16 at head
dims 64 and 128 on realistic sizes (`gpu`). Reference: float64 attention with the element mask
written plainly (listed tiles expanded to elements, then causal and segments), rows with no
visible key 0. Rule as test_attn_kernels: max |O - O_ref| <= 2 max |O_naive - O_ref| + floor.
"""

from __future__ import annotations

import itertools
import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton import attn_fwd  # noqa: E402
from attnsim.kernels.triton.attn_fwd import Score, Variant, attention_fwd  # noqa: E402
from attnsim.kernels.triton.blocksparse import (  # noqa: E402
    BlockSparse,
    block_sparse_from_block_mask,
    block_sparse_from_documents,
    block_sparse_from_segments,
)

DEVICE = "cuda" if HAS_CUDA else "cpu"
FLOOR = {torch.float32: 1e-5, torch.float16: 1e-4, torch.bfloat16: 1e-3}
TINY = dict(num_warps=4, num_stages=2)  # tile sizes come from the layout


def visible(bs: BlockSparse, batch: int, heads: int) -> torch.Tensor:
    """The pairs the layout promises as a bool (B, H, Sq, Sk), element by element."""
    tiles = torch.zeros(*bs.table.shape[:3], bs.key_tiles, dtype=torch.bool)
    for counts, indices in ((bs.full_counts, bs.full_indices),
                            (bs.partial_counts, bs.partial_indices)):  # fmt: skip
        for b, h, t in itertools.product(*(range(n) for n in counts.shape)):
            tiles[b, h, t, indices[b, h, t, : counts[b, h, t]].long()] = True
    keep = tiles.cpu().repeat_interleave(bs.block_m, 2).repeat_interleave(bs.block_n, 3)
    keep = keep[:, :, : bs.seq_q, : bs.seq_k].expand(batch, heads, -1, -1).clone()
    i, j = torch.arange(bs.seq_q)[:, None], torch.arange(bs.seq_k)[None, :]
    if bs.causal:
        keep &= j <= i
    if bs.q_segments is not None:
        qs, ks = bs.q_segments.cpu(), bs.k_segments.cpu()
        keep &= (qs[:, :, None] == ks[:, None, :])[:, None]
    return keep.to(DEVICE)


def reference(q, k, v, keep, score=None, dtype=torch.float64):
    group = q.shape[1] // k.shape[1]
    q, k, v = (t.to(dtype) for t in (q, k, v))
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if score is not None and score.softcap is not None:
        s = score.softcap * torch.tanh(s / score.softcap)
    if score is not None and score.sigmoid:
        p = torch.sigmoid(s + score.bias(k.shape[2])).masked_fill(~keep, 0.0)
        return p @ v
    s = s.masked_fill(~keep, float("-inf"))
    p = torch.softmax(s.float() if dtype != torch.float64 else s, dim=-1).to(dtype)
    return torch.nan_to_num(p, nan=0.0) @ v  # a row with no visible key: 0


def inputs(b, h, g, sq, sk, d, dtype, seed=0):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)

    def mk(heads, s):
        return torch.randn(b, heads, s, d, generator=gen, device=DEVICE).to(dtype)

    return mk(h, sq), mk(g, sk), mk(g, sk)


def check(q, k, v, bs, causal=None, score=None, kv_ref=None, **kw):
    """Run the kernel into a NaN-poisoned output and compare with the reference."""
    causal = bs.causal if causal is None else causal
    out = torch.full(q.shape, float("nan"), dtype=q.dtype, device=q.device)
    attention_fwd(q, k, v, causal, out=out, block_sparse=bs, score=score or Score(), **kw)
    assert torch.isfinite(out).all(), "some outputs were not written or are NaN"
    k, v = kv_ref if kv_ref is not None else (k, v)
    keep = visible(bs, q.shape[0], q.shape[1])
    ref = reference(q, k, v, keep, score)
    naive = reference(q, k, v, keep, score, dtype=q.dtype)
    err = (out.double() - ref).abs().max().item()
    naive_err = (naive.double() - ref).abs().max().item()
    assert err <= 2 * naive_err + FLOOR[q.dtype], (err, naive_err)
    return out


def random_mask(shape, density, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < density).to(DEVICE)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(
    "b, h, g, sq, sk, lead",
    [(1, 2, 2, 90, 96, ()), (2, 2, 2, 96, 70, (2, 1)), (1, 4, 2, 96, 96, (1, 4)),
     (2, 2, 1, 96, 80, (2, 2))],
)  # fmt: skip
def test_random_block_masks(dtype, b, h, g, sq, sk, lead):
    """Shared, per-batch and per-head layouts; ragged seq_q (90) and seq_k (70); GQA/MQA."""
    tk = -(-sk // 16)
    mask = random_mask((*lead, 3, tk) if lead else (3, tk), 0.4, seed=b + h + sk)
    bs = block_sparse_from_block_mask(mask, sq, sk, 32, 16)
    q, k, v = inputs(b, h, g, sq, sk, 16, dtype)
    check(q, k, v, bs, **TINY)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("causal", [False, True])
def test_documents(dtype, causal):
    """Documents per batch (different cuts), with and without causal."""
    bs = block_sparse_from_documents([[20, 45, 31], [64, 8, 24]], 32, 16, causal, device=DEVICE)
    assert int(bs.partial_counts.sum()) > 0 and (not causal or int(bs.full_counts.sum()) > 0)
    q, k, v = inputs(2, 2, 2, 96, 96, 16, dtype)
    check(q, k, v, bs, **TINY)


def test_unsorted_segments_and_block_mask_with_causal():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 3, (80,), generator=g).to(DEVICE)
    q, k, v = inputs(1, 2, 2, 80, 80, 16, torch.float32)
    check(q, k, v, block_sparse_from_segments(ids, 16, 16, causal=True), **TINY)
    mask = random_mask((3, 5), 0.6, seed=4)
    check(q, k, v, block_sparse_from_block_mask(mask, 80, 80, 32, 16, causal=True), **TINY)


def test_dense_layout_is_plain_attention():
    """Every tile listed: the same output as the kernel without a layout (causal or not)."""
    q, k, v = inputs(1, 2, 2, 64, 64, 16, torch.float32)
    for causal in (False, True):
        bs = block_sparse_from_block_mask(torch.ones(2, 4, dtype=torch.bool, device=DEVICE),
                                          64, 64, 32, 16, causal)  # fmt: skip
        plain = attention_fwd(q, k, v, causal, block_m=32, block_n=16, **TINY)
        assert torch.allclose(attention_fwd(q, k, v, causal, block_sparse=bs, **TINY), plain,
                              atol=1e-6)  # fmt: skip


def test_empty_rows_are_zero():
    """A query tile with no key tile, and rows whose segment has no key, come out 0."""
    mask = random_mask((3, 4), 0.7, seed=5)
    mask[1] = False  # query tile 1 visits nothing
    bs = block_sparse_from_block_mask(mask, 96, 64, 32, 16)
    q, k, v = inputs(2, 2, 2, 96, 64, 16, torch.float32)
    out = check(q, k, v, bs, **TINY)
    assert int(bs.full_counts[0, 0, 1] + bs.partial_counts[0, 0, 1]) == 0
    assert (out[:, :, 32:64] == 0).all()
    qs = torch.tensor([0] * 40 + [7] * 24, device=DEVICE)  # no key has id 7
    ks = torch.tensor([0] * 30 + [1] * 34, device=DEVICE)
    seg = block_sparse_from_segments(qs, 32, 16, k_segments=ks)
    q, k, v = inputs(1, 2, 2, 64, 64, 16, torch.float32)
    out = check(q, k, v, seg, **TINY)
    assert (out[:, :, 40:] == 0).all() and (out[:, :, :40] != 0).any()


@pytest.mark.parametrize("causal", [False, True])
def test_tiles_outside_the_layout_are_never_read(causal):
    """K and V rows of key tiles no query tile lists are NaN: the output stays finite."""
    mask = random_mask((3, 6), 0.6, seed=6)
    mask[:, 0] = mask[:, 0] | True
    mask[:, [1, 4]] = False  # key tiles 1 and 4: listed nowhere
    bs = block_sparse_from_block_mask(mask, 96, 96, 32, 16, causal)
    q, k, v = inputs(1, 4, 2, 96, 96, 16, torch.float32)
    kp, vp = k.clone(), v.clone()
    for kt in (1, 4):
        kp[:, :, kt * 16 : (kt + 1) * 16] = float("nan")
        vp[:, :, kt * 16 : (kt + 1) * 16] = float("nan")
    check(q, kp, vp, bs, kv_ref=(k, v), **TINY)
    dense = attention_fwd(q, kp, vp, causal, block_m=32, block_n=16, **TINY)
    assert not torch.isfinite(dense).all()  # the poison does reach a kernel that reads it


@pytest.mark.parametrize(
    "score", [Score(softcap=5.0), Score(sigmoid=True)], ids=["softcap", "sigmoid"]
)
def test_score_functions(score):
    bs = block_sparse_from_documents([40, 56], 32, 16, causal=True, device=DEVICE)
    q, k, v = inputs(1, 2, 2, 96, 96, 16, torch.float32)
    check(q, k, v, bs, score=score, **TINY)


def test_a_layout_is_reused_and_calls_are_checked():
    bs = block_sparse_from_documents([32, 32], 32, 16, causal=True, device=DEVICE)
    q, k, v = inputs(1, 2, 2, 64, 64, 16, torch.float32)
    first = check(q, k, v, bs, **TINY)
    before = len(attn_fwd._PLANS)
    again = check(q * 0.5, k, v, bs, **TINY)  # the same plan, new tensors
    assert len(attn_fwd._PLANS) == before and not torch.equal(first, again)
    cases = [
        (dict(block_m=64), "block_m 64"),
        (dict(causal=False), "causal=False"),
        (dict(window=8), "no window"),
        (dict(variant=Variant(lazy_rescale=True)), "lazy_rescale"),
        (dict(schedule="pingpong"), "schedule 'pingpong' has no layouts"),
    ]
    for kw, message in cases:
        causal = kw.pop("causal", True)
        with pytest.raises(ValueError, match=message):
            attention_fwd(q, k, v, causal, block_sparse=bs, **kw)
    with pytest.raises(ValueError, match="seq_q, seq_k 48, 48"):
        attention_fwd(q[:, :, :48], k[:, :, :48], v[:, :, :48], True, block_sparse=bs)


# ----------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("density", [0.05, 0.3])
@pytest.mark.parametrize("tiling", [(128, 128, 8, 3), (128, 64, 4, 3), (64, 64, 4, 3)])
@pytest.mark.parametrize("tma", [None, True, False])
def test_gpu_random_block_masks(d, density, tiling, tma):
    bm, bn, w, st = tiling
    b, h, s = 2, 8, 4096
    mask = random_mask((b, h, s // bm, s // bn), density, seed=d + bm + bn)
    bs = block_sparse_from_block_mask(mask, s, s, bm, bn)
    q, k, v = inputs(b, h, h, s, s, d, torch.bfloat16)
    check(q, k, v, bs, num_warps=w, num_stages=st, tma=tma)


@pytest.mark.gpu
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("tiling", [(128, 128, 8, 3), (128, 64, 4, 3)])
def test_gpu_documents(d, causal, tiling):
    """8 documents of uneven lengths per sequence, different per batch; GQA 8 -> 2 heads."""
    bm, bn, w, st = tiling
    lengths = [[100, 900, 250, 1000, 333, 667, 500, 346], [512] * 8]
    bs = block_sparse_from_documents(lengths, bm, bn, causal, device=DEVICE)
    q, k, v = inputs(2, 8, 2, 4096, 4096, d, torch.bfloat16)
    check(q, k, v, bs, num_warps=w, num_stages=st)


@pytest.mark.gpu
def test_gpu_ragged_and_repeated_calls():
    """seq 3000 (ragged tiles, in-kernel descriptors) and the armed direct path on new inputs."""
    bs = block_sparse_from_documents([1000, 1500, 500], 128, 64, True, device=DEVICE)
    for seed in (1, 2, 1):
        q, k, v = inputs(1, 16, 4, 3000, 3000, 128, torch.bfloat16, seed=seed)
        check(q, k, v, bs, num_warps=4, num_stages=3)
