"""The 1-pass kernel's sliding window with attention sinks (`attention_fwd(window=, sinks=)`).

On CPU in Triton's interpreter on tiny shapes (the windows and sinks cross tile edges in
every way: narrower than a key tile, between a key and a query tile, wider than the
sequence; sinks inside and beyond the window); with CUDA compiled, plus bf16 at head dim 128.
Same tolerance rule as test_attn_kernels: max |O - O_ref| <= 2 max |O_naive - O_ref| + floor.
"""

from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton.attn_fwd import Variant, attention_fwd  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"
FLOOR = {torch.float32: 1e-5, torch.float16: 1e-4, torch.bfloat16: 1e-3}


def visible(sq: int, sk: int, window: int, sinks: int) -> torch.Tensor:
    """The mask the kernel promises, written plainly: j <= i and (i - j < W or j < S)."""
    i = torch.arange(sq)[:, None]
    j = torch.arange(sk)[None, :]
    return (j <= i) & ((i - j < window) | (j < sinks))


def reference(q, k, v, window, sinks, dtype=torch.float64):
    q, k, v = (t.to(dtype) for t in (q, k, v))
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    keep = visible(q.shape[2], k.shape[2], window, sinks).to(s.device)
    s = s.masked_fill(~keep, float("-inf"))
    p = torch.softmax(s.float() if dtype != torch.float64 else s, dim=-1).to(dtype)
    return p @ v


def check(q, k, v, window, sinks, **kw):
    out = torch.full(q.shape, float("nan"), dtype=q.dtype, device=q.device)
    attention_fwd(q, k, v, True, out=out, window=window, sinks=sinks, **kw)
    assert torch.isfinite(out).all(), "some outputs were not written or are NaN"
    ref = reference(q, k, v, window, sinks)
    naive = reference(q, k, v, window, sinks, dtype=q.dtype)
    err = (out.double() - ref).abs().max().item()
    naive_err = (naive.double() - ref).abs().max().item()
    assert err <= 2 * naive_err + FLOOR[q.dtype], (err, naive_err)
    return out


def inputs(b, h, s, d, dtype, seed=0):
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    mk = lambda: torch.randn(b, h, s, d, generator=g, device=DEVICE).to(dtype)  # noqa: E731
    return mk(), mk(), mk()


@pytest.mark.parametrize(
    "seq, window, sinks",
    [(96, 1, 0), (96, 5, 0), (96, 16, 0), (96, 37, 3), (80, 9, 40), (80, 200, 2), (70, 7, 1)],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_window_matches_reference(seq, window, sinks, dtype):
    q, k, v = inputs(1, 2, seq, 16, dtype)
    check(q, k, v, window, sinks, block_m=32, block_n=16, num_warps=4, num_stages=2)


def test_window_differs_from_causal_and_wide_window_equals_it():
    """A window that covers the sequence is causal attention; a narrow one is not."""
    q, k, v = inputs(1, 1, 64, 16, torch.float32)
    tiling = dict(block_m=32, block_n=16, num_warps=4, num_stages=2)
    causal = attention_fwd(q, k, v, True, **tiling)
    wide = attention_fwd(q, k, v, True, window=64, **tiling)
    narrow = attention_fwd(q, k, v, True, window=4, **tiling)
    assert torch.allclose(wide, causal, atol=1e-6)
    assert not torch.allclose(narrow, causal, atol=1e-3)


def test_window_arguments_are_checked():
    q, k, v = inputs(1, 1, 16, 16, torch.float32)
    with pytest.raises(ValueError, match="causal"):
        attention_fwd(q, k, v, False, window=4)
    with pytest.raises(ValueError, match="window must be"):
        attention_fwd(q, k, v, True, window=0)
    with pytest.raises(ValueError, match="sinks"):
        attention_fwd(q, k, v, True, sinks=2)
    with pytest.raises(ValueError, match="lazy_rescale"):
        attention_fwd(q, k, v, True, window=4, variant=Variant(lazy_rescale=True))
    with pytest.raises(ValueError, match="plain"):
        attention_fwd(q, k, v, True, window=4, schedule="pingpong")


@pytest.mark.gpu
@pytest.mark.parametrize("window, sinks", [(256, 0), (1000, 4), (64, 128)])
@pytest.mark.parametrize("tiling", [(128, 64, 4, 3), (128, 128, 8, 3), (64, 64, 4, 2)])
def test_gpu_window(window, sinks, tiling):
    bm, bn, w, st = tiling
    q, k, v = inputs(2, 4, 2048, 128, torch.bfloat16)
    check(q, k, v, window, sinks, block_m=bm, block_n=bn, num_warps=w, num_stages=st)


TILING = dict(block_m=32, block_n=16, num_warps=4, num_stages=2)


def reference_per_head(q, k, v, windows, sinks, dtype=torch.float64):
    """Each query head with its own window; query head h reads K/V head h // (H / G)."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    heads = [
        reference(q[:, h : h + 1], k[:, h : h + 1], v[:, h : h + 1], w, sinks, dtype)
        for h, w in enumerate(windows)
    ]
    return torch.cat(heads, dim=1)


@pytest.mark.parametrize("sinks", [0, 3])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_per_head_windows_match_reference(sinks, kv_heads):
    """MoA-style elastic windows: one width per query head (narrower than a key tile, across
    tiles, wider than the sequence), with GQA and with sinks."""
    windows = [4, 9, 33, 200]
    g = torch.Generator(device=DEVICE).manual_seed(7)
    q = torch.randn(1, 4, 70, 16, generator=g, device=DEVICE)
    k, v = (torch.randn(1, kv_heads, 70, 16, generator=g, device=DEVICE) for _ in range(2))
    out = torch.full(q.shape, float("nan"), device=DEVICE)
    attention_fwd(q, k, v, True, out=out, window=windows, sinks=sinks, **TILING)
    assert torch.isfinite(out).all()
    ref = reference_per_head(q, k, v, windows, sinks)
    assert (out.double() - ref).abs().max().item() < 1e-4
    same = torch.full(q.shape, float("nan"), device=DEVICE)  # a tensor of widths works too
    attention_fwd(q, k, v, True, out=same, window=torch.tensor(windows), sinks=sinks, **TILING)
    assert torch.equal(out, same)


def test_per_head_windows_are_checked():
    q, k, v = inputs(1, 4, 32, 16, torch.float32)
    with pytest.raises(ValueError, match="per-head widths for 4 query heads"):
        attention_fwd(q, k, v, True, window=[8, 8], **TILING)
    with pytest.raises(ValueError, match="window must be an int >= 1"):
        attention_fwd(q, k, v, True, window=[8, 0, 8, 8], **TILING)
