"""kernels.triton.attn_bwd: gradients vs float64 autograd, argument checks, FLOP count.

Without CUDA the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set before triton is
imported) on tiny fp32 shapes; the bf16/fp16 and large-shape checks are tests/gpu/test_attn_bwd.py.
"""

from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.spec import attn_flops, kernel_shape, visible_flops  # noqa: E402
from attnsim.kernels.triton.attn_bwd import (  # noqa: E402
    BWD_TILINGS,
    attention,
    attention_bwd,
    bwd_flops,
    default_bwd_tiling,
    plain_attention_grads,
    softmax_lse,
)

DEVICE = "cuda" if HAS_CUDA else "cpu"


def reference(q, k, v, do, causal, scale=None):
    """(O, dq, dk, dv) of plain attention in float64 by autograd."""
    return plain_attention_grads(q, k, v, do, causal, scale)


def inputs(b, h, hkv, sq, sk, d, seed=0):
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    mk = lambda *s: torch.randn(*s, generator=g, device=DEVICE)  # noqa: E731
    return mk(b, h, sq, d), mk(b, hkv, sk, d), mk(b, hkv, sk, d), mk(b, h, sq, d)


def assert_close(got, want):
    """fp32 inputs, fp32 accumulation: a few ulps of the gradients' scale."""
    for name, a, r in zip(("dq", "dk", "dv"), got, want, strict=True):
        assert a.shape == r.shape and a.dtype == torch.float32, name
        assert torch.isfinite(a).all(), name
        err = (a.double() - r).abs().max().item()
        assert err <= 1e-4 * max(1.0, r.abs().max().item()), (name, err)


# (batch, heads, kv_heads, seq_q, seq_k, head_dim, block_m, block_n): ragged tails, GQA 2,
# block_m < block_n and block_m > block_n (the causal diagonal cuts tiles both ways)
CASES = [
    (1, 2, 2, 64, 64, 32, 32, 16),
    (1, 4, 2, 48, 40, 16, 16, 32),
    (2, 2, 1, 33, 57, 16, 32, 16),
]


@pytest.mark.parametrize("dq_mode", ["atomic", "separate", "tma"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_gradients_match_float64_autograd(case, causal, dq_mode):
    b, h, hkv, sq, sk, d, bm, bn = case
    q, k, v, do = inputs(b, h, hkv, sq, sk, d)
    o, *want = reference(q, k, v, do, causal)
    lse = softmax_lse(q, k, causal)
    got = attention_bwd(q, k, v, o.float(), do, lse, causal, None, bm, bn, 4, 2, dq_mode)
    assert_close(got, want)


@pytest.mark.parametrize("dq_mode", ["atomic", "separate"])
@pytest.mark.parametrize("group", [1, 2, 3])
def test_causal_launch_order_covers_every_program(monkeypatch, group, dq_mode):
    """Head groups of 1 (head-major), 2 and 3 over 5 heads (the last group short)."""
    from attnsim.kernels.triton import attn_bwd
    from attnsim.kernels.triton.launch import PlanCache

    monkeypatch.setattr(attn_bwd, "BWD_HEAD_GROUP", group)
    monkeypatch.setattr(attn_bwd, "_PLANS", PlanCache())  # its key has no head group
    q, k, v, do = inputs(5, 1, 1, 40, 40, 16, seed=5)
    o, *want = reference(q, k, v, do, True)
    lse = softmax_lse(q, k, True)
    got = attention_bwd(q, k, v, o.float(), do, lse, True, None, 16, 16, 4, 2, dq_mode)
    assert_close(got, want)


@pytest.mark.parametrize("dq_mode", ["atomic", "separate"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_causal_diagonal_loop_build_matches_autograd(monkeypatch, case, dq_mode):
    """BWD_DIAG_LOOP on (the build before 2026-12-06, kept to re-time): the causal dK/dV
    kernel's diagonal tiles in a loop of their own, the rest unmasked."""
    from attnsim.kernels.triton import attn_bwd
    from attnsim.kernels.triton.launch import PlanCache

    monkeypatch.setattr(attn_bwd, "BWD_DIAG_LOOP", True)
    monkeypatch.setattr(attn_bwd, "_PLANS", PlanCache())  # its key has no such switch
    b, h, hkv, sq, sk, d, bm, bn = case
    q, k, v, do = inputs(b, h, hkv, sq, sk, d, seed=3)
    o, *want = reference(q, k, v, do, True)
    lse = softmax_lse(q, k, True)
    assert attn_bwd.bwd_launches(b, h, hkv, sq, sk, d, q.dtype, True, d**-0.5, (bm, bn, 4, 2),
                                 dq_mode)[1].meta["DIAG_LOOP"] is True  # fmt: skip
    got = attention_bwd(q, k, v, o.float(), do, lse, True, None, bm, bn, 4, 2, dq_mode)
    assert_close(got, want)


@pytest.mark.parametrize("dq_mode", ["atomic", "separate"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_earlier_dkdv_step_order_matches_autograd(monkeypatch, case, causal, dq_mode):
    """BWD_DP_FIRST off (the build before 2026-12-07, kept to re-time): each dK/dV step's
    dO V^T after the dV product. The default build (dP first) runs in every other test."""
    from attnsim.kernels.triton import attn_bwd
    from attnsim.kernels.triton.launch import PlanCache

    assert attn_bwd.BWD_DP_FIRST is True
    monkeypatch.setattr(attn_bwd, "BWD_DP_FIRST", False)
    monkeypatch.setattr(attn_bwd, "_PLANS", PlanCache())  # its key has no such switch
    b, h, hkv, sq, sk, d, bm, bn = case
    specs = attn_bwd.bwd_launches(b, h, hkv, sq, sk, d, torch.float32, causal, d**-0.5,
                                  (bm, bn, 4, 2), dq_mode)  # fmt: skip
    assert specs[1].meta["DP_FIRST"] is False
    q, k, v, do = inputs(b, h, hkv, sq, sk, d, seed=7)
    o, *want = reference(q, k, v, do, causal)
    lse = softmax_lse(q, k, causal)
    got = attention_bwd(q, k, v, o.float(), do, lse, causal, None, bm, bn, 4, 2, dq_mode)
    assert_close(got, want)


def test_scale_and_default_tiling():
    q, k, v, do = inputs(1, 2, 2, 32, 32, 16, seed=3)
    o, *want = reference(q, k, v, do, True, scale=0.3)
    lse = softmax_lse(q, k, True, scale=0.3)
    assert_close(attention_bwd(q, k, v, o.float(), do, lse, True, scale=0.3), want)


def test_softmax_lse_in_chunks_matches_logsumexp():
    q, k, _, _ = inputs(2, 4, 2, 24, 40, 16, seed=4)
    kk = k.repeat_interleave(2, 1)
    s = (q @ kk.transpose(-1, -2)) * 0.25
    want = torch.logsumexp(s.masked_fill(torch.ones(24, 40, dtype=torch.bool).triu(1), -1e30), -1)
    got = softmax_lse(q, k, True, 0.25, chunk_bytes=1)  # one head per chunk
    assert torch.allclose(got, want, atol=1e-5)


def test_autograd_function_uses_forward_and_backward_kernels():
    q, k, v, do = inputs(1, 2, 1, 32, 32, 16, seed=5)
    o_ref, *want = reference(q, k, v, do, True)
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    o = attention(q, k, v, True, tiling=(16, 32, 4, 2), dq_mode="separate")
    assert (o.double() - o_ref).abs().max().item() < 1e-4
    o.backward(do)
    assert_close((q.grad, k.grad, v.grad), want)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(block_m=24), "block_m must be a power of two >= 16, got 24"),
        (dict(block_n=8), "block_n must be a power of two >= 16, got 8"),
        (dict(block_n=512), "block_n must be <= 256"),
        (dict(num_warps=3), "num_warps must be 1, 2, 4, 8 or 16, got 3"),
        (dict(num_stages=0), "num_stages must be in 1..8, got 0"),
        (dict(dq_mode="fused"), "dq_mode must be one of atomic, separate, tma, got 'fused'"),
    ],
)
def test_bad_tilings_are_refused(kwargs, message):
    q, k, v, do = inputs(1, 2, 2, 32, 32, 16)
    lse = torch.zeros(1, 2, 32, device=DEVICE)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        attention_bwd(q, k, v, q, do, lse, **kwargs)


def test_shape_mismatches_are_refused():
    q, k, v, do = inputs(1, 4, 2, 32, 32, 16)
    lse = torch.zeros(1, 4, 32, device=DEVICE)
    with pytest.raises(ValueError, match="k heads must divide q heads"):
        attention_bwd(q, k[:, :1].expand(1, 3, 32, 16), v[:, :1].expand(1, 3, 32, 16), q, do, lse)
    with pytest.raises(ValueError, match="k and v shapes differ"):
        attention_bwd(q, k, v[:, :, :16], q, do, lse)
    with pytest.raises(ValueError, match=r"do must be \(1, 4, 32, 16\) torch.float32 like q"):
        attention_bwd(q, k, v, q, do[:, :, :16], lse)
    with pytest.raises(
        ValueError, match=r"o must be .* like q, got \(1, 4, 32, 16\) torch.float16"
    ):
        attention_bwd(q, k, v, q.half(), do, lse)
    with pytest.raises(ValueError, match=r"lse must be \(batch, heads, seq_q\) = \(1, 4, 32\)"):
        attention_bwd(q, k, v, q, do, lse[:, :, :8])
    with pytest.raises(ValueError, match="head_dim must be a power of two"):
        x = torch.zeros(1, 4, 32, 48, device=DEVICE)
        attention_bwd(x, x[:, :2], x[:, :2], x, x, lse)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("sizes", [(2, 3, 64, 64, 32), (1, 2, 100, 37, 64), (1, 1, 37, 100, 16)])
def test_bwd_flops_are_two_and_a_half_forward_matmuls(sizes, causal):
    b, h, sq, sk, d = sizes
    shape = kernel_shape(b, h, sq, sk, d, causal)
    flops = bwd_flops(b, h, sq, sk, d, causal)
    assert 2 * flops == 5 * visible_flops(shape)  # exact visible pairs, 4 * pairs * E forward
    pairs = sum(min(i + 1, sk) for i in range(sq)) if causal else sq * sk
    assert flops == 10 * b * h * pairs * d
    if not causal:
        assert 2 * flops == 5 * attn_flops(shape)


def test_tilings_are_valid_and_default_is_a_candidate():
    assert len(set(BWD_TILINGS)) == len(BWD_TILINGS) >= 4
    for bm, bn, w, st in BWD_TILINGS:
        assert bm in (16, 32, 64, 128) and bn in (32, 64, 128) and w in (4, 8) and 2 <= st <= 5
    for d in (64, 128):
        assert default_bwd_tiling(d) in BWD_TILINGS


@pytest.mark.parametrize("dq_mode", ["atomic", "separate"])
def test_prepass_zeroes_the_atomic_dq_buffer_only(dq_mode):
    from attnsim.kernels.triton.attn_bwd import bwd_launches

    o, _, _, do = inputs(1, 2, 2, 40, 40, 16, seed=6)
    pre = bwd_launches(1, 2, 2, 40, 40, 16, o.dtype, False, 0.25, (16, 32, 4, 2), dq_mode)[0]
    delta = torch.full((1, 2, 40), float("nan"), device=DEVICE)
    dq = torch.full((1, 2, 40, 16), float("nan"), device=DEVICE)
    pre.fn[pre.grid](o, do, delta, dq, *pre.scalars, **pre.meta, num_warps=pre.num_warps,
                     num_stages=pre.num_stages)  # fmt: skip
    assert torch.allclose(delta, (o * do).sum(-1), atol=1e-5)
    if dq_mode == "atomic":
        assert (dq == 0).all()
    else:
        assert dq.isnan().all()


def test_launch_plans_are_kept_per_shape_and_checked_once():
    from attnsim.kernels.triton import attn_bwd

    q, k, v, do = inputs(1, 2, 1, 32, 32, 16, seed=7)
    o, *want = reference(q, k, v, do, False)
    lse = softmax_lse(q, k)
    attn_bwd._PLANS.plans.clear()
    assert_close(attention_bwd(q, k, v, o.float(), do, lse, False, None, 16, 32, 4, 2), want)
    assert len(attn_bwd._PLANS.plans) == 1
    # the same shapes again, now as non-contiguous views: the kept plan, made contiguous
    qt = q.transpose(1, 2).contiguous().transpose(1, 2)
    assert not qt.is_contiguous()
    got = attention_bwd(qt, k, v, o.float(), do, lse, False, None, 16, 32, 4, 2)
    assert len(attn_bwd._PLANS.plans) == 1
    assert_close(got, want)
    # another mode or tiling: another plan; a refused call keeps none
    attention_bwd(q, k, v, o.float(), do, lse, False, None, 16, 32, 4, 2, "separate")
    assert len(attn_bwd._PLANS.plans) == 2
    with pytest.raises(ValueError, match="block_m must be a power of two"):
        attention_bwd(q, k, v, o.float(), do, lse, False, None, 24, 32, 4, 2)
    assert len(attn_bwd._PLANS.plans) == 2


@pytest.mark.parametrize("dq_mode", ["atomic", "separate"])
@pytest.mark.parametrize("causal", [False, True])
def test_streamed_tiles_through_descriptors_match_autograd(monkeypatch, causal, dq_mode):
    """BWD_TMA_LOADS (a trial, off by default): the kernels' streamed tiles (Q, dO in the dK/dV
    kernel, K, V in the dQ kernel) through tensor descriptors, launched as a GPU of sm_90
    would (`bwd_launches(..., tma=True)`); ragged tails read zeros past the descriptor."""
    from attnsim.kernels.triton import attn_bwd
    from attnsim.kernels.triton.attn_bwd import bwd_launches, jit_launch

    monkeypatch.setattr(attn_bwd, "BWD_TMA_LOADS", (True, True))
    b, h, hkv, s, d = 1, 4, 2, 40, 16
    q, k, v, do = inputs(b, h, hkv, s, s, d, seed=8)
    o, *want = reference(q, k, v, do, causal)
    lse = softmax_lse(q, k, causal)
    specs = bwd_launches(b, h, hkv, s, s, d, q.dtype, causal, d**-0.5, (16, 32, 4, 2), dq_mode,
                         tma=True)  # fmt: skip
    assert [sp.meta.get("TMA_LOADS") for sp in specs[1:]] == [True] * (len(specs) - 1)
    delta = torch.empty(b, h, s, device=DEVICE)
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    dq = torch.empty(b, h, s, d, device=DEVICE)
    jit_launch(specs[0], o.float(), do, delta, dq)  # zeroes dq in atomic mode
    jit_launch(specs[1], q, k, v, do, dq, dk, dv, lse, delta)
    if dq_mode == "separate":
        jit_launch(specs[2], q, k, v, do, dq, lse, delta)
    assert_close((dq, dk, dv), want)
