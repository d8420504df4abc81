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
    q, k, v = inputs(1, 6, 4, 128, 128, 64, torch.float16)
    with pytest.raises(ValueError, match="k heads must divide q heads"):
        attention_fwd(q, k, v, False, schedule="pingpong")


def test_pingpong_takes_gqa():
    """GQA is no reason for the ping-pong kernel to refuse a call (only a missing sm_90 is)."""
    from attnsim.kernels.gluon.attn_pingpong import pingpong_unsupported

    q, k, v = inputs(1, 8, 2, 128, 128, 64, torch.float16)
    why = pingpong_unsupported(q, k, v, None, True, (128, 64, 8, 3))
    if HAS_CUDA and torch.cuda.get_device_capability()[0] == 9:
        assert why is None
    else:
        assert why is not None and "sm_90" in why
    k3, v3 = (t[:, :1].expand(1, 3, 128, 64) for t in (k, v))
    assert "GQA needs kv_heads dividing heads" in str(
        pingpong_unsupported(q, k3, v3, None, True, (128, 64, 8, 3))
    )


@pytest.mark.gpu
@pytest.mark.parametrize("tma", [None, True, False])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("h, g", [(32, 8), (16, 1)])
def test_gpu_gqa(tma, causal, h, g):
    q, k, v = inputs(2, h, g, 1024, 1024, 128, torch.bfloat16)
    check(q, k, v, causal, block_m=128, block_n=64, num_warps=8, num_stages=3, tma=tma)


@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("h, g", [(32, 8), (16, 1), (8, 8)])
@pytest.mark.parametrize("block_n, stages", [(128, 3), (64, 2)])
def test_gpu_gqa_pingpong(causal, h, g, block_n, stages):
    """The ping-pong kernel (sm_90 only) with K/V of G heads."""
    if torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("the ping-pong kernel needs sm_90")
    q, k, v = inputs(2, h, g, 512, 512 if causal else 384, 128, torch.bfloat16)
    tiling = dict(block_m=128, block_n=block_n, num_warps=8, num_stages=stages)
    check(q, k, v, causal, schedule="pingpong", **tiling)
