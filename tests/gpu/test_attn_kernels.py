"""Attention kernels vs a float64 reference (FlashAttention's tolerance rule).

On a CPU-only machine every non-gpu test runs in Triton's interpreter (TRITON_INTERPRET=1,
set here before triton is imported) on small shapes with tiny blocks; with CUDA the same tests
run compiled on the GPU, and the `gpu`-marked ones add bf16, head dim 128 and larger shapes.
Rule: max |O - O_ref| <= 2 * max |O_naive - O_ref| + floor, where O_naive is the same math
done plainly in the test dtype.
"""

from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton import attn_unfused  # noqa: E402
from attnsim.kernels.triton.attn_2pass import attention_2pass, attention_2pass_autotuned  # noqa: E402
from attnsim.kernels.triton.attn_fwd import Variant, attention_fwd, attention_fwd_autotuned  # noqa: E402
from attnsim.kernels.triton.attn_unfused import attention_unfused  # noqa: E402
from attnsim.kernels.triton.common import SMALL_TILING, default_tiling, pick_tiling  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"
FLOOR = {torch.float32: 1e-5, torch.float16: 1e-4, torch.bfloat16: 1e-3}


def reference(q, k, v, causal, scale=None, dtype=torch.float64):
    """Plain attention computed in `dtype` (float64: the reference; else the naive version)."""
    d = q.shape[-1]
    scale = d**-0.5 if scale is None else scale
    q, k, v = (t.to(dtype) for t in (q, k, v))
    s = (q @ k.transpose(-1, -2)) * scale
    if causal:
        sq, sk = s.shape[-2:]
        above = torch.ones(sq, sk, dtype=torch.bool, device=s.device).triu(1)
        s = s.masked_fill(above, float("-inf"))
    p = torch.softmax(s.float() if dtype != torch.float64 else s, dim=-1).to(dtype)
    return p @ v


def inputs(b, h, sq, sk, d, dtype, seed=0):
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    mk = lambda s: torch.randn(b, h, s, d, generator=g, device=DEVICE, dtype=torch.float32)  # noqa: E731
    return mk(sq).to(dtype), mk(sk).to(dtype), mk(sk).to(dtype)


def check(out, q, k, v, causal, scale=None):
    assert torch.isfinite(out).all(), "some outputs were not written (NaN poison left)"
    ref = reference(q, k, v, causal, scale)
    naive = reference(q, k, v, causal, scale, dtype=q.dtype)
    err = (out.double() - ref).abs().max().item()
    naive_err = (naive.double() - ref).abs().max().item()
    assert err <= 2 * naive_err + FLOOR[q.dtype], (err, naive_err)


def poisoned(q):
    return torch.full(q.shape, float("nan"), dtype=q.dtype, device=q.device)


def run_family(family, q, k, v, causal, bm, bn, **kw):
    out = poisoned(q)
    if family == "1pass":
        attention_fwd(
            q, k, v, causal, block_m=bm, block_n=bn, num_warps=4, num_stages=2, out=out, **kw
        )
    elif family == "2pass":
        attention_2pass(
            q, k, v, causal, block_m=bm, block_n=bn, num_warps=4, num_stages=2, out=out, **kw
        )
    else:
        attention_unfused(
            q, k, v, causal, block_m=bm, block_n=bn, num_warps=4, num_stages=2, out=out, **kw
        )
    return out


# (batch, heads, seq_q, seq_k, head_dim, block_m, block_n): includes ragged seqs, BM > BN
SMALL = [
    (1, 2, 16, 16, 16, 16, 16),
    (2, 1, 37, 37, 32, 32, 16),
    (1, 1, 200, 200, 64, 32, 32),
    (1, 2, 50, 70, 32, 16, 16),
]
DTYPES = [torch.float32, torch.float16]


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", SMALL, ids=lambda s: "x".join(map(str, s)))
def test_1pass_small(shape, causal, dtype):
    b, h, sq, sk, d, bm, bn = shape
    q, k, v = inputs(b, h, sq, sk, d, dtype)
    check(run_family("1pass", q, k, v, causal, bm, bn), q, k, v, causal)


@pytest.mark.parametrize("tma", [False, True], ids=["blockptr", "descriptor"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_1pass_both_tile_loaders(causal, tma):
    if tma and HAS_CUDA and torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("tensor descriptors need sm_90+")
    q, k, v = inputs(1, 2, 45, 45, 32, torch.float16)
    check(run_family("1pass", q, k, v, causal, 32, 16, tma=tma), q, k, v, causal)


VARIANTS = [
    Variant(prescale_q=True),
    Variant(lazy_rescale=True),
    Variant(True, True),
    Variant(warp_specialize=True),
    Variant(poly_exp=True),
    Variant(poly_exp=4),
    Variant(warp_specialize=True, poly_exp=True),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.label())
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", [SMALL[1], SMALL[2]], ids=lambda s: "x".join(map(str, s)))
def test_1pass_variants(shape, causal, dtype, variant):
    b, h, sq, sk, d, bm, bn = shape
    q, k, v = inputs(b, h, sq, sk, d, dtype)
    if variant.lazy_rescale:  # growing row max: scores rise along the keys, many rescales
        k = (k.float() * torch.linspace(0.2, 3.0, sk, device=DEVICE)[:, None]).to(dtype)
    check(run_family("1pass", q, k, v, causal, bm, bn, variant=variant), q, k, v, causal)


@pytest.mark.parametrize("variant", VARIANTS[3:], ids=lambda v: v.label())
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("seq_k", [64, 70], ids=["even", "ragged"])
@pytest.mark.parametrize("d", [64, 128])
def test_1pass_variants_descriptors(d, seq_k, dtype, variant):
    """warp_specialize needs TMA and an empty masked tail (seq_k % block_n == 0, not causal);
    it is applied at head dim 128 only (NaN outputs at 64 on the H200)."""
    if HAS_CUDA and torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("tensor descriptors need sm_90+")
    from attnsim.kernels.triton import attn_fwd

    q, k, v = inputs(1, 2, 48, seq_k, d, dtype)
    check(run_family("1pass", q, k, v, False, 32, 16, tma=True, variant=variant), q, k, v, False)
    plans = attn_fwd._PLANS.items()
    meta = [p.meta for key, p in plans if (key[1], key[6], key[-1]) == (k.shape, dtype, variant)]
    ws = variant.warp_specialize and seq_k == 64 and d == 128
    assert meta and all(m["WARP_SPECIALIZE"] == ws and m["MASKED_TAIL"] != ws for m in meta)
    assert all(m["POLY_EXP"] == (0 if dtype == torch.float32 else variant.poly_exp) for m in meta)


def test_variant_labels_and_checks():
    assert Variant().label() == "base"
    assert Variant(warp_specialize=True, poly_exp=True).label() == "warp_specialize+poly_exp"
    assert Variant(poly_exp=2).label() == "poly_exp2"
    with pytest.raises(ValueError, match="poly_exp"):
        Variant(poly_exp=5)


def test_1pass_repeated_calls_reuse_plan():
    """Same shapes, new tensors: the cached plan must use the new data (and `out`)."""
    for seed in range(3):
        q, k, v = inputs(1, 2, 40, 40, 32, torch.float16, seed=seed)
        check(run_family("1pass", q, k, v, True, 16, 16), q, k, v, True)
        check(attention_fwd(q, k, v, True, block_m=16, block_n=16), q, k, v, True)


def test_1pass_picked_tiling():
    assert pick_tiling(1, 4, 2048, 128, 132) == SMALL_TILING  # 64 programs of 128 rows
    assert pick_tiling(4, 16, 4096, 128, 132) == default_tiling(128)
    q, k, v = inputs(1, 1, 70, 70, 16, torch.float32)
    check(attention_fwd(q, k, v, False), q, k, v, False)


def test_validation_tilings_hold_the_small_problem_choice():
    from attnsim.kernels.bench.harness import TILINGS

    for d in (64, 128):
        assert SMALL_TILING in TILINGS["triton-1pass"][d]
        assert default_tiling(d) in TILINGS["triton-1pass"][d]


def test_1pass_custom_scale_and_strided_input():
    q, k, v = inputs(1, 3, 40, 40, 32, torch.float32)
    q_t = q.transpose(1, 2).contiguous().transpose(1, 2)  # (B, H, S, D) view of (B, S, H, D)
    out = poisoned(q)
    attention_fwd(q_t, k, v, True, scale=0.3, block_m=16, block_n=16, out=out)
    check(out, q, k, v, True, scale=0.3)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", [SMALL[1], SMALL[3]], ids=lambda s: "x".join(map(str, s)))
def test_2pass_small(shape, causal, dtype):
    b, h, sq, sk, d, bm, bn = shape
    q, k, v = inputs(b, h, sq, sk, d, dtype)
    check(run_family("2pass", q, k, v, causal, bm, bn), q, k, v, causal)


def test_2pass_statistics():
    q, k, v = inputs(1, 1, 33, 33, 16, torch.float32)
    _, m, l = attention_2pass(q, k, v, True, block_m=16, block_n=16, return_stats=True)  # noqa: E741
    s = (q.double() @ k.double().transpose(-1, -2)) * 16**-0.5 * 1.4426950408889634
    s = s.masked_fill(torch.ones(33, 33, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    m_ref = s.amax(-1).reshape(1, 33)
    l_ref = torch.exp2(s - s.amax(-1, keepdim=True)).sum(-1).reshape(1, 33)
    assert torch.allclose(m.double(), m_ref, atol=1e-5)
    assert torch.allclose(l.double(), l_ref, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", [SMALL[1], SMALL[3]], ids=lambda s: "x".join(map(str, s)))
def test_unfused_small(shape, causal, dtype):
    b, h, sq, sk, d, bm, bn = shape
    q, k, v = inputs(b, h, sq, sk, d, dtype)
    check(run_family("unfused", q, k, v, causal, bm, bn), q, k, v, causal)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_unfused_long_row_softmax(causal, monkeypatch):
    monkeypatch.setattr(attn_unfused, "SOFTMAX_MAX_BLOCK", 16)  # force the two-loop softmax
    q, k, v = inputs(1, 1, 40, 40, 16, torch.float32)
    check(run_family("unfused", q, k, v, causal, 16, 16), q, k, v, causal)


def test_bad_arguments():
    q, k, v = inputs(1, 1, 16, 16, 16, torch.float32)
    with pytest.raises(ValueError, match="block_m % block_n"):
        attention_fwd(q, k, v, True, block_m=16, block_n=32)
    with pytest.raises(ValueError, match="power of two"):
        attention_fwd(q, k, v, False, block_m=24, block_n=16)
    with pytest.raises(ValueError, match="4-D"):
        attention_fwd(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="head_dim"):
        attention_fwd(*(t[..., :12] for t in (q, k, v)))


# ----------------------------------------------------------------------------- GPU only

GPU_SHAPES = [
    (2, 4, 512, 512, 64),
    (1, 4, 1000, 1000, 128),
    (2, 2, 1024, 1024, 128),
    (1, 2, 777, 1300, 64),
]
TILINGS = [(128, 64, 4, 3), (128, 128, 8, 3), (64, 64, 4, 2), (128, 64, 8, 4)]


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["1pass", "2pass", "unfused"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", GPU_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gpu_families(shape, causal, dtype, family):
    q, k, v = inputs(*shape, dtype)
    check(run_family(family, q, k, v, causal, 128, 64), q, k, v, causal)


@pytest.mark.gpu
@pytest.mark.parametrize("tiling", TILINGS, ids=lambda t: "_".join(map(str, t)))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_gpu_1pass_tilings(tiling, causal, head_dim):
    bm, bn, w, s = tiling
    q, k, v = inputs(2, 3, 1100, 1100, head_dim, torch.bfloat16)
    out = poisoned(q)
    attention_fwd(q, k, v, causal, block_m=bm, block_n=bn, num_warps=w, num_stages=s, out=out)
    check(out, q, k, v, causal)


@pytest.mark.gpu
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.label())
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_gpu_1pass_variants(head_dim, causal, variant):
    q, k, v = inputs(2, 3, 1100, 1100, head_dim, torch.bfloat16)
    bm, bn, w, s = default_tiling(head_dim)
    out = poisoned(q)
    attention_fwd(
        q, k, v, causal, block_m=bm, block_n=bn, num_warps=w, num_stages=s, out=out,
        variant=variant,
    )  # fmt: skip
    check(out, q, k, v, causal)


@pytest.mark.gpu
def test_gpu_1pass_direct_launch_path():
    """Second and later calls take the cached direct launch: new data, unaligned views too."""
    for seed in range(3):
        q, k, v = inputs(1, 4, 300, 300, 64, torch.bfloat16, seed=seed)
        tiling = dict(block_m=64, block_n=64, num_warps=4, num_stages=3)
        check(attention_fwd(q, k, v, True, **tiling), q, k, v, True)
    big = torch.randn(1 * 4 * 300 * 64 + 8, device=DEVICE).to(torch.bfloat16)
    qu = big[1 : 1 + q.numel()].view(q.shape)  # 2-byte offset: not 16-byte aligned
    for qq in (q, q.clone(), qu, q):  # arm the direct path, then an unaligned call, then back
        tiling = dict(block_m=64, block_n=64, num_warps=4, num_stages=3)
        check(attention_fwd(qq, k, v, True, tma=False, **tiling), qq, k, v, True)


@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_gpu_autotuned_entries(causal):
    q, k, v = inputs(1, 4, 2048, 2048, 128, torch.bfloat16)
    check(attention_fwd_autotuned(q, k, v, causal), q, k, v, causal)
    check(attention_2pass_autotuned(q, k, v, causal), q, k, v, causal)


WGMMA_CASES = [  # (shape, tiling, dtype): one compile per case, causal and warp split
    ((2, 4, 512, 512, 64), (64, 64, 4, 3), torch.bfloat16),
    ((1, 2, 1024, 1000, 128), (128, 128, 8, 2), torch.float16),  # ragged: next head masked
    ((2, 2, 1024, 1024, 128), (128, 64, 8, 3), torch.bfloat16),
    ((1, 3, 768, 300, 64), (128, 64, 8, 2), torch.float16),  # causal rows past seq_k
]


@pytest.mark.gpu
@pytest.mark.parametrize("ws", [False, True], ids=["plain", "ws"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("case", WGMMA_CASES, ids=lambda c: "x".join(map(str, c[0])))
def test_gpu_wgmma_kernel(case, causal, ws):
    """The Gluon Hopper kernels (kernels/gluon/attn_wgmma.py), where the device is sm_90."""
    from attnsim.kernels.gluon.attn_wgmma import attention_fwd_wgmma, wgmma_unsupported

    shape, tiling, dtype = case
    q, k, v = inputs(*shape, dtype)
    out = poisoned(q)
    why = wgmma_unsupported(q, k, v, out, causal, tiling)
    if why:
        pytest.skip(why)
    attention_fwd_wgmma(q, k, v, causal, tiling=tiling, out=out, ws=ws)
    check(out, q, k, v, causal)


def test_wgmma_refusals_say_why():
    from attnsim.kernels.gluon.attn_wgmma import wgmma_unsupported

    q, k, v = inputs(1, 1, 256, 256, 64, torch.float32)
    on_sm90 = HAS_CUDA and torch.cuda.get_device_capability()[0] == 9
    expected = "float16/bfloat16" if on_sm90 else "sm_90"
    assert expected in wgmma_unsupported(q, k, v, q, False, (128, 128, 8, 2))


PINGPONG_CASES = [  # (shape, (block_n, stages), dtype): one compile per tiling, causal, dtype
    ((1, 1, 128, 128, 128), (128, 3), torch.bfloat16),  # one key tile: no loop trip
    ((1, 2, 256, 256, 128), (128, 3), torch.float16),  # fewer tiles than slots
    ((2, 3, 512, 1000, 128), (128, 3), torch.bfloat16),  # ragged keys: next head masked
    ((1, 2, 512, 2048, 128), (64, 3), torch.bfloat16),  # seq_q < seq_k, ring wraps 10x
    ((2, 4, 1024, 1024, 64), (128, 3), torch.float16),
    ((1, 3, 768, 300, 64), (64, 2), torch.bfloat16),  # causal rows past seq_k; 2 slots
    ((4, 8, 2048, 2048, 128), (128, 2), torch.bfloat16),  # many waves, 2 slots
]


def _pingpong_or_skip(q, k, v, out, causal, block_n, stages):  # type: ignore[no-untyped-def]
    from attnsim.kernels.gluon.attn_pingpong import pingpong_unsupported

    why = pingpong_unsupported(q, k, v, out, causal, (128, block_n, 8, stages))
    if why:
        pytest.skip(why)


@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("case", PINGPONG_CASES, ids=lambda c: "x".join(map(str, c[0] + c[1])))
def test_gpu_pingpong_schedule(case, causal):
    """The 1-pass family's ping-pong kernel (kernels/gluon/attn_pingpong.py), on sm_90 GPUs."""
    shape, (bn, stages), dtype = case
    for seed in (0, 1):  # the second call takes the armed direct launch with new data
        q, k, v = inputs(*shape, dtype, seed=seed)
        out = poisoned(q)
        _pingpong_or_skip(q, k, v, out, causal, bn, stages)
        attention_fwd(
            q, k, v, causal, block_m=128, block_n=bn, num_warps=8, num_stages=stages, out=out,
            schedule="pingpong",
        )  # fmt: skip
        check(out, q, k, v, causal)


@pytest.mark.gpu
def test_gpu_pingpong_direct_path_and_scale():
    """Repeated calls (cached descriptors per data pointers), fresh outputs, a custom scale."""
    q, k, v = inputs(2, 2, 512, 640, 128, torch.bfloat16)
    _pingpong_or_skip(q, k, v, None, False, 128, 3)
    tiling = dict(block_m=128, block_n=128, num_warps=8, num_stages=3, schedule="pingpong")
    first = attention_fwd(q, k, v, False, scale=0.05, **tiling)
    check(first, q, k, v, False, scale=0.05)
    for _ in range(3):
        again = attention_fwd(q, k, v, False, scale=0.05, **tiling)
        assert again.data_ptr() != first.data_ptr()
        assert torch.equal(again, first)
    q2 = q.clone().normal_()
    check(attention_fwd(q2, k, v, False, scale=0.05, **tiling), q2, k, v, False, scale=0.05)


def test_pingpong_refusals_say_why():
    q, k, v = inputs(1, 1, 200, 256, 64, torch.float16)
    with pytest.raises(ValueError, match="seq_q % 128"):  # shape problems before the device
        attention_fwd(q, k, v, block_m=128, block_n=64, num_warps=8, num_stages=3,
                      schedule="pingpong")  # fmt: skip
    q, k, v = inputs(1, 1, 256, 256, 64, torch.float16)
    on_sm90 = HAS_CUDA and torch.cuda.get_device_capability()[0] == 9
    if not on_sm90:
        with pytest.raises(ValueError, match="sm_90"):
            attention_fwd(q, k, v, block_m=128, block_n=64, num_warps=8, num_stages=3,
                          schedule="pingpong")  # fmt: skip
    with pytest.raises(ValueError, match="block_m 128 and num_warps 8"):
        attention_fwd(q, k, v, block_m=64, block_n=64, num_warps=4, num_stages=3,
                      schedule="pingpong")  # fmt: skip
