"""kernels.triton.neighborhood: 1-D and 2-D neighborhood attention on the 1-pass kernel.

On CPU in Triton's interpreter on tiny images (fp32 and fp16; compiled with CUDA when one is
present): borders, dilation 1-3, kernel 3-7 (and 9 x 9 against a 4 x 4 tile, for full tiles),
causal 1-D and per axis, GQA, tokens already in tile order, and K/V tiles outside a query
tile's lists poisoned with NaN (never read). Reference: float64 attention with the mask
written plainly from NATTEN's window rule (`neighborhood_reference`). Rule as
test_attn_kernels: max |O - O_ref| <= 2 max |O_naive - O_ref| + floor, O_naive the same
attention in the input dtype.
"""

from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton.neighborhood import (  # noqa: E402
    attention_neighborhood,
    neighborhood_of,
    neighborhood_reference,
)
from attnsim.kernels.triton.neighborhood_layout import neighborhood_sparse  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"
FLOOR = {torch.float32: 1e-5, torch.float16: 1e-4}
TINY = dict(num_warps=4, num_stages=2)


def inputs(heads, kv_heads, tokens, dtype, seed=0, d=16):
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    return tuple(torch.randn(1, h, tokens, d, generator=g, device=DEVICE).to(dtype)
                 for h in (heads, kv_heads, kv_heads))  # fmt: skip


def check(out, q, k, v, g):
    ref = neighborhood_reference(q, k, v, g)
    naive = neighborhood_reference(q, k, v, g, dtype=q.dtype).to(torch.float64)
    err = (out.to(torch.float64) - ref).abs().max().item()
    assert torch.isfinite(out).all()
    assert err <= 2 * (naive - ref).abs().max().item() + FLOOR[q.dtype], err


CASES_2D = [  # image, kernel, dilation, causal, q tile, kv tile
    ((8, 8), 3, 1, False, 16, 16),
    ((8, 8), 7, 1, False, 16, 16),
    ((12, 10), 5, 2, False, 16, 16),
    ((12, 10), 3, 2, False, (4, 8), (4, 4)),
    ((12, 10), (3, 5), (1, 2), (True, False), (4, 4), (4, 8)),
    ((12, 10), 3, 3, False, (2, 8), (2, 8)),
    ((16, 16), 9, 1, False, (4, 4), (4, 4)),  # full tiles in the middle
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", CASES_2D, ids=[str(c[:4]) for c in CASES_2D])
def test_2d(case, dtype):
    image, kernel, dilation, causal, bm, bn = case
    q, k, v = inputs(2, 2, image[0] * image[1], dtype, seed=sum(image))
    out = attention_neighborhood(q, k, v, kernel, dilation, image, causal, block_m=bm,
                                 block_n=bn, **TINY)  # fmt: skip
    check(out, q, k, v, neighborhood_of(q, kernel, dilation, image, causal, bm, bn))


CASES_1D = [  # tokens, kernel, dilation, causal, block_m, block_n
    (64, 7, 1, False, 16, 32),
    (100, 5, 2, False, 32, 16),
    (60, 5, 3, True, 32, 16),
    (48, 3, 1, True, 16, 16),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", CASES_1D, ids=[str(c[:4]) for c in CASES_1D])
def test_1d(case, dtype):
    tokens, kernel, dilation, causal, bm, bn = case
    q, k, v = inputs(2, 1, tokens, dtype, seed=tokens)  # GQA: one K/V head for two
    out = attention_neighborhood(q, k, v, kernel, dilation, None, causal, block_m=bm,
                                 block_n=bn, **TINY)  # fmt: skip
    check(out, q, k, v, neighborhood_of(q, kernel, dilation, None, causal, bm, bn))


def test_tokens_in_tile_order_and_default_tiles():
    q, k, v = inputs(1, 1, 96, torch.float32, seed=3)
    image = (8, 12)
    g = neighborhood_of(q, 3, 2, image, False, 16, 16)
    lay = neighborhood_sparse(g, q.device)
    tiled = attention_neighborhood(*(lay.to_tiles(x) for x in (q, k, v)), 3, 2, image,
                                   block_m=16, block_n=16, in_tile_order=True, **TINY)  # fmt: skip
    assert tiled.shape[2] == g.positions == 128
    check(lay.from_tiles(tiled), q, k, v, g)
    with pytest.raises(ValueError, match=r"q has 96 tokens; \(8, 12\) has 128 positions"):
        attention_neighborhood(q, k, v, 3, 2, image, block_m=16, block_n=16, in_tile_order=True)
    with pytest.raises(ValueError, match=r"q has 96 tokens; \(8, 8\) has 64 tokens"):
        attention_neighborhood(q, k, v, 3, 1, (8, 8))
    default = neighborhood_of(q, 3, 1, image)
    assert (default.q_tile, default.kv_tile) == ((8, 16), (8, 8))
    assert neighborhood_of(q, 3, 2).image == (1, 96) and neighborhood_of(q, 3, 1, 40).tokens == 40


@pytest.mark.parametrize("dilation", [1, 2])
def test_key_tiles_outside_the_lists_are_never_read(dilation):
    """Per query tile: K/V of every key tile it does not list set to NaN; its rows unchanged."""
    q, k, v = inputs(1, 1, 80, torch.float32, seed=5)
    g = neighborhood_of(q, 5, dilation, None, False, 16, 16)
    lay = neighborhood_sparse(g, q.device)
    qt, kt, vt = (lay.to_tiles(x) for x in (q, k, v))
    clean = attention_neighborhood(qt, kt, vt, 5, dilation, 80, block_m=16, block_n=16,
                                   in_tile_order=True, **TINY)  # fmt: skip
    for t in range(lay.query_tiles):
        keep = torch.zeros(lay.key_tiles, dtype=torch.bool)
        for which in ("full", "partial"):
            n = int(getattr(lay, f"{which}_counts")[0, 0, t])
            keep[getattr(lay, f"{which}_indices")[0, 0, t, :n].long()] = True
        poison = (~keep).repeat_interleave(16)[: kt.shape[2]].to(q.device)
        kp, vp = kt.clone(), vt.clone()
        kp[:, :, poison] = float("nan")
        vp[:, :, poison] = float("nan")
        out = attention_neighborhood(qt, kp, vp, 5, dilation, 80, block_m=16, block_n=16,
                                     in_tile_order=True, **TINY)  # fmt: skip
        rows = slice(t * 16, (t + 1) * 16)
        assert torch.equal(out[:, :, rows], clean[:, :, rows]), t


# Compiles the kernel's neighborhood instantiation for sm_90 on any host (Triton's CUDA
# pipeline through ptxas; runs in a subprocess: under TRITON_INTERPRET=1 kernels are not
# compilable). Host-built descriptors at head dim 128 (the H200's path), block pointers at 64.
SM90_SCRIPT = r"""
from attnsim.kernels.triton.sm90 import compile_fwd

for mode, bm, bn, d, warps in ((2, 128, 64, 128, 8), (0, 64, 64, 64, 4)):
    k = compile_fwd((bm, bn, warps, 3), d, mode, BLOCK_SPARSE=True, SEGMENTS=2)
    print("compiled", mode, bm, bn, d, k.metadata.shared, flush=True)
"""


def test_the_neighborhood_mode_compiles_for_sm90():
    pytest.importorskip("triton.backends.nvidia")
    from attnsim.kernels.triton.sm90 import run_script

    out = run_script(SM90_SCRIPT)
    assert out.count("compiled") == 2
