"""Decode attention with split-K (`attention_decode`): one query per head, GQA packing.

On CPU in Triton's interpreter on tiny caches (splits that leave the last chunk short or
empty, ragged tiles, R from 1 to 8 query heads per K/V head); with CUDA compiled, plus bf16
at head dim 128 and long caches. Reference: float64 softmax(q k^T / sqrt(d)) v with each
K/V head repeated R times.
"""

from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton.attn_decode import attention_decode, default_splits  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"
FLOOR = {torch.float32: 1e-5, torch.float16: 1e-4, torch.bfloat16: 1e-3}


def reference(q, k, v, dtype=torch.float64):
    group = q.shape[1] // k.shape[1]
    q, k, v = (t.to(dtype) for t in (q, k, v))
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    p = torch.softmax(s.float() if dtype != torch.float64 else s, dim=-1).to(dtype)
    return p @ v


def inputs(b, h, g, s, d, dtype, seed=0):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)

    def mk(heads, n):
        return torch.randn(b, heads, n, d, generator=gen, device=DEVICE).to(dtype)

    return mk(h, 1), mk(g, s), mk(g, s)


def check(q, k, v, **kw):
    out = attention_decode(q, k, v, **kw)
    assert out.shape == q.shape and torch.isfinite(out).all()
    err = (out.double() - reference(q, k, v)).abs().max().item()
    naive = (reference(q, k, v, dtype=q.dtype).double() - reference(q, k, v)).abs().max().item()
    assert err <= 2 * naive + FLOOR[q.dtype], (err, naive)


@pytest.mark.parametrize("h, g", [(4, 2), (8, 1), (4, 4)])
@pytest.mark.parametrize("splits", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_decode_matches_reference(h, g, splits, dtype):
    q, k, v = inputs(2, h, g, 150, 16, dtype)  # 150 keys: ragged tiles and a short last chunk
    check(q, k, v, splits=splits, block_n=16)


def test_more_splits_than_chunks_leaves_empty_splits_harmless():
    q, k, v = inputs(1, 2, 1, 40, 16, torch.float32)
    check(q, k, v, splits=7, block_n=16)  # chunk 16: splits 3..6 have no keys


def test_default_splits_fill_the_gpu_within_chunk_bounds():
    assert default_splits(1, 8, 131072, 132) == 33  # 8 programs -> 264, two waves
    assert default_splits(64, 8, 131072, 132) == 1  # 512 programs already
    assert default_splits(1, 8, 1024, 132) == 2  # chunks of at least MIN_CHUNK keys


def test_decode_arguments_are_checked():
    q, k, v = inputs(1, 6, 4, 32, 16, torch.float32)
    with pytest.raises(ValueError, match="must divide"):
        attention_decode(q, k, v)
    q, k, v = inputs(1, 4, 2, 32, 16, torch.float32)
    with pytest.raises(ValueError, match="splits must be"):
        attention_decode(q, k, v, splits=0)
    with pytest.raises(ValueError, match="q must be"):
        attention_decode(k, k, v)


@pytest.mark.gpu
@pytest.mark.parametrize("b, h, g, s", [(1, 32, 8, 65536), (8, 32, 8, 8192), (2, 16, 1, 20000)])
@pytest.mark.parametrize("splits", [None, 1, 4])
def test_gpu_decode(b, h, g, s, splits):
    q, k, v = inputs(b, h, g, s, 128, torch.bfloat16)
    check(q, k, v, splits=splits)
