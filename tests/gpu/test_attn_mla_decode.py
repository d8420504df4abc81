"""MLA absorbed decode (`attention_mla_decode`) against a float64 naive reference.

On CPU in Triton's interpreter with a small latent (C = 64, Rr = 16): every strategy, the rope
keys in their own tensor or in the latent cache's last columns, ragged and paged caches, the
torch naive form (`mla_decode_naive`), bad input. With CUDA, DeepSeek-V3 sizes in bf16.
"""

from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton.attn_mla import (  # noqa: E402
    absorb_query,
    attention_mla_decode,
    mla_decode_naive,
    project_output,
    upproject_kv,
)

DEVICE = "cuda" if HAS_CUDA else "cpu"


def problem(b, h, s, c, rr, dn, dtype, seed=0):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)

    def mk(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, device=DEVICE) * scale).to(dtype)

    return dict(
        q_nope=mk(b, h, dn), q_rope=mk(b, h, rr), ckv=mk(b, s, c), kr=mk(b, s, rr),
        w_uk=mk(h, dn, c, scale=c**-0.5), w_uv=mk(h, dn, c, scale=c**-0.5),
        scale=(dn + rr) ** -0.5,
    )  # fmt: skip


def reference(p, seq_lens=None):
    """Per-head output (B, H, Dv) in float64: up-projected K/V, masked softmax."""
    k, v = upproject_kv(*(p[n].double() for n in ("ckv", "kr", "w_uk", "w_uv")))
    q = torch.cat((p["q_nope"], p["q_rope"]), -1).double().unsqueeze(2)
    s = q @ k.transpose(-1, -2) * p["scale"]
    if seq_lens is not None:
        n = torch.arange(k.shape[2], device=k.device)
        s = s.masked_fill(n >= seq_lens.long()[:, None, None, None], float("-inf"))
    return (torch.softmax(s, -1) @ v).squeeze(2)


def absorbed(p, fused_cache=False, **kw):
    q_latent = absorb_query(p["q_nope"], p["w_uk"])
    if fused_cache:  # DeepSeek/FlashMLA layout: (B, S, C + Rr)
        cache, kr = torch.cat((p["ckv"], p["kr"]), -1), None
    else:
        cache, kr = p["ckv"], p["kr"]
    o_latent = attention_mla_decode(q_latent, p["q_rope"], cache, kr, p["scale"], **kw)
    assert o_latent.shape == q_latent.shape
    return project_output(o_latent.double(), p["w_uv"].double())


TOL = {torch.float32: 1e-5, torch.float16: 3e-3}


@pytest.mark.parametrize("strategy, opts", [("unsplit", {}), ("splitk", {"splits": 3}),
                                            ("streamk", {"programs": 3})])  # fmt: skip
@pytest.mark.parametrize("fused_cache", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_absorbed_matches_naive_reference(strategy, opts, fused_cache, dtype):
    p = problem(2, 20, 70, 64, 16, 32, dtype)  # 20 heads: a head block of 16 and one of 4
    out = absorbed(p, fused_cache, strategy=strategy, head_block=16, block_n=16, **opts)
    assert (out - reference(p)).abs().max().item() < TOL[dtype]


@pytest.mark.parametrize("strategy", ["splitk", "streamk"])
def test_ragged_paged_fused_cache(strategy):
    p = problem(3, 8, 96, 64, 16, 32, torch.float32, seed=1)
    lens = torch.tensor([96, 1, 50], dtype=torch.int32, device=DEVICE)
    cache = torch.cat((p["ckv"], p["kr"]), -1)  # (B, S, C + Rr) -> pages of 32 rows
    pages = cache.reshape(3 * 3, 32, 80)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    shuffled = torch.empty_like(pages)
    shuffled[perm] = pages  # logical page i of the flat cache now lives at perm[i]
    table = perm.reshape(3, 3).to(torch.int32)
    q_latent = absorb_query(p["q_nope"], p["w_uk"])
    o = attention_mla_decode(q_latent, p["q_rope"], shuffled, None, p["scale"],
                             strategy=strategy, splits=2, programs=4, seq_lens=lens,
                             block_table=table, block_n=16)  # fmt: skip
    out = project_output(o.double(), p["w_uv"].double())
    assert (out - reference(p, lens)).abs().max().item() < 1e-5


def test_naive_form():
    p = problem(2, 4, 40, 64, 16, 32, torch.float32, seed=2)  # key dim 32 + 16
    out = mla_decode_naive(p["q_nope"], p["q_rope"], p["ckv"], p["kr"], p["w_uk"], p["w_uv"],
                           p["scale"], strategy="splitk", splits=2, block_n=16)  # fmt: skip
    assert (out.double() - reference(p)).abs().max().item() < 1e-5


def test_mla_arguments_are_checked():
    p = problem(1, 4, 16, 64, 16, 32, torch.float32)
    q_latent = absorb_query(p["q_nope"], p["w_uk"])
    with pytest.raises(ValueError, match="disagree"):
        attention_mla_decode(q_latent, p["q_rope"][:, :2], p["ckv"], p["kr"], 1.0)
    with pytest.raises(ValueError, match="powers of two"):
        attention_mla_decode(q_latent[..., :48], p["q_rope"], p["ckv"], p["kr"], 1.0)
    with pytest.raises(ValueError, match="ckv must be"):
        attention_mla_decode(q_latent, p["q_rope"], p["ckv"], None, 1.0)
    with pytest.raises(ValueError, match="kr must be"):
        attention_mla_decode(q_latent, p["q_rope"], p["ckv"], p["kr"][:, :8], 1.0)
    with pytest.raises(ValueError, match="head_block must be"):
        attention_mla_decode(q_latent, p["q_rope"], p["ckv"], p["kr"], 1.0, head_block=8)


@pytest.mark.gpu
@pytest.mark.parametrize("h", [16, 128])
@pytest.mark.parametrize("strategy", ["unsplit", "splitk", "streamk"])
def test_gpu_mla_deepseek_sizes(h, strategy):
    p = problem(4, h, 8192, 512, 64, 128, torch.bfloat16, seed=3)
    out = absorbed(p, fused_cache=True, strategy=strategy)
    exact = reference(p)
    args = (p[n] for n in ("q_nope", "q_rope", "ckv", "kr", "w_uk", "w_uv", "scale"))
    naive = (mla_decode_naive(*args).double() - exact).abs().max().item()
    assert (out - exact).abs().max().item() <= 2 * naive + 1e-3
