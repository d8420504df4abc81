"""GQA/MQA in the 1-pass kernel: K/V with G heads serve H = R x G query heads.

On CPU in Triton's interpreter on tiny shapes; with CUDA compiled, plus bf16 at head dim 128
on the tile-access paths the launcher picks (host descriptors, in-kernel ones, pointers).
The reference repeats each K/V head R times (what `enable_gqa` means in PyTorch's SDPA).
"""

from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton.attn_fwd import attention_fwd  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"
FLOOR = {torch.float32: 1e-5, torch.float16: 1e-4, torch.bfloat16: 1e-3}


def reference(q, k, v, causal, window=None, dtype=torch.float64):
    group = q.shape[1] // k.shape[1]
    q, k, v = (t.to(dtype) for t in (q, k, v))
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    i = torch.arange(q.shape[2], device=s.device)[:, None]
    j = torch.arange(k.shape[2], device=s.device)[None, :]
    keep = torch.ones_like(s, dtype=torch.bool)
    if causal:
        keep = keep & (j <= i)
    if window is not None:
        keep = keep & (i - j < window)
    s = s.masked_fill(~keep, float("-inf"))
    p = torch.softmax(s.float() if dtype != torch.float64 else s, dim=-1).to(dtype)
    return p @ v


def inputs(b, h, g, sq, sk, d, dtype, seed=0):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)

    def mk(heads, s):
        return torch.randn(b, heads, s, d, generator=gen, device=DEVICE).to(dtype)

    return mk(h, sq), mk(g, sk), mk(g, sk)


def check(q, k, v, causal, window=None, **kw):
    out = torch.full(q.shape, float("nan"), dtype=q.dtype, device=q.device)
    attention_fwd(q, k, v, causal, out=out, window=window, **kw)
    assert torch.isfinite(out).all()
    ref = reference(q, k, v, causal, window)
    naive = reference(q, k, v, causal, window, dtype=q.dtype)
    err = (out.double() - ref).abs().max().item()
    naive_err = (naive.double() - ref).abs().max().item()
    assert err <= 2 * naive_err + FLOOR[q.dtype], (err, naive_err)


TINY = dict(block_m=32, block_n=16, num_warps=4, num_stages=2)


@pytest.mark.parametrize("h, g", [(4, 2), (6, 1), (4, 4)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_gqa_matches_repeated_heads(h, g, causal, dtype):
    q, k, v = inputs(2, h, g, 64, 64 if causal else 48, 16, dtype)
    check(q, k, v, causal, **TINY)


def test_gqa_with_window():
    q, k, v = inputs(1, 4, 2, 80, 80, 16, torch.float32)
    check(q, k, v, True, window=20, **TINY)


def test_gqa_heads_must_divide():
    q, k, v = inputs(1, 6, 4, 32, 32, 16, torch.float32)
    with pytest.raises(ValueError, match="k heads must divide q heads"):
        attention_fwd(q, k, v, False, **TINY)
    q, k, v = inputs(1, 4, 2, 128, 128, 16, torch.float32)
    with pytest.raises(ValueError, match="GQA: schedule 'pingpong'"):
        attention_fwd(q, k, v, False, schedule="pingpong")


@pytest.mark.gpu
@pytest.mark.parametrize("tma", [None, True, False])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("h, g", [(32, 8), (16, 1)])
def test_gpu_gqa(tma, causal, h, g):
    q, k, v = inputs(2, h, g, 1024, 1024, 128, torch.bfloat16)
    check(q, k, v, causal, block_m=128, block_n=64, num_warps=8, num_stages=3, tma=tma)
