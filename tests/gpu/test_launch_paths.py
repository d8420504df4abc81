"""The cached launch plans of the 2-pass and unfused launchers, and the unfused kernels' causal
paths with vector-aligned rows (seq_k % 16 == 0: loads run to a 16-element bound, the causal
mask is applied after the load).

Runs in Triton's interpreter on CPU (TRITON_INTERPRET=1, set before triton is imported) and
compiled on a GPU; the accuracy rule is the one of test_attn_kernels.py.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton import attn_2pass, attn_unfused  # noqa: E402
from attnsim.kernels.triton.attn_2pass import attention_2pass  # noqa: E402
from attnsim.kernels.triton.attn_unfused import attention_unfused  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(b, h, sq, sk, d, dtype=torch.float32, seed=1):
    g = torch.Generator(device=DEVICE).manual_seed(seed)

    def mk(s):
        return torch.randn(b, h, s, d, generator=g, device=DEVICE).to(dtype)

    return mk(sq), mk(sk), mk(sk)


def _reference(q, k, v, causal):
    q, k, v = (t.double() for t in (q, k, v))
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if causal:
        sq, sk = s.shape[-2:]
        s = s.masked_fill(torch.ones(sq, sk, dtype=torch.bool, device=s.device).triu(1), -torch.inf)
    return torch.softmax(s, -1) @ v


@pytest.mark.parametrize("bm", [16, 32])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("sq,sk", [(48, 48), (40, 64), (64, 32)])
def test_unfused_aligned_rows(sq, sk, causal, bm):
    q, k, v = _inputs(1, 2, sq, sk, 16)
    # garbage (NaN) in the score buffer: masked entries must never reach the output; with
    # block_m 32 the diagonal tiles also hold raw scores right of each row's 16-key bound
    scores = torch.full((2, sq, sk), float("nan"), device=DEVICE)
    out = attention_unfused(q, k, v, causal, block_m=bm, block_n=16, scores=scores)
    ref = _reference(q, k, v, causal)
    assert torch.isfinite(out).all()
    assert (out.double() - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_unfused_aligned_long_rows(causal, monkeypatch):
    monkeypatch.setattr(attn_unfused, "SOFTMAX_MAX_BLOCK", 16)  # the two-loop softmax
    q, k, v = _inputs(1, 1, 48, 48, 16)
    scores = torch.full((1, 48, 48), float("nan"), device=DEVICE)
    out = attention_unfused(q, k, v, causal, block_m=16, block_n=16, scores=scores)
    assert (out.double() - _reference(q, k, v, causal)).abs().max().item() < 1e-4


@pytest.mark.parametrize("family", ["2pass", "unfused"])
def test_repeated_calls_reuse_one_plan(family):
    """A repeated call finds its plan (no new entry) and gives the same result on new data."""
    module, fn = {
        "2pass": (attn_2pass, attention_2pass),
        "unfused": (attn_unfused, attention_unfused),
    }[family]
    q, k, v = _inputs(1, 1, 32, 32, 16)
    first = fn(q, k, v, True, block_m=16, block_n=16)
    n_plans = len(module._PLANS.plans)
    q2, k2, v2 = _inputs(1, 1, 32, 32, 16, seed=7)
    second = fn(q2, k2, v2, True, block_m=16, block_n=16)
    assert len(module._PLANS.plans) == n_plans
    assert (first.double() - _reference(q, k, v, True)).abs().max().item() < 1e-4
    assert (second.double() - _reference(q2, k2, v2, True)).abs().max().item() < 1e-4


def test_plan_rejects_bad_out():
    q, k, v = _inputs(1, 1, 16, 16, 16)
    bad = torch.empty(1, 1, 16, 32, device=DEVICE)
    with pytest.raises(ValueError, match="out must be"):
        attention_2pass(q, k, v, out=bad, block_m=16, block_n=16)
    with pytest.raises(ValueError, match="out must be"):
        attention_unfused(q, k, v, out=bad, block_m=16, block_n=16)
    with pytest.raises(ValueError, match="scores must be"):
        attention_unfused(q, k, v, block_m=16, block_n=16, scores=torch.empty(1, 16, 8))


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("sq,sk", [(64, 64), (32, 70), (64, 48)])
def test_1pass_host_descriptors(sq, sk, causal):
    """Host-built descriptors over the (B*H*S, D) view: the next head's rows that a ragged
    key tile reads are masked; results match the reference."""
    from attnsim.kernels.triton.attn_fwd import attention_fwd

    if torch.cuda.is_available() and torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("tensor descriptors need sm_90+")
    q, k, v = _inputs(2, 3, sq, sk, 32)
    out = attention_fwd(q, k, v, causal, block_m=32, block_n=16, tma="host")
    assert (out.double() - _reference(q, k, v, causal)).abs().max().item() < 1e-4
    again = attention_fwd(q * 0.5, k, v, causal, block_m=32, block_n=16, tma="host")
    assert (again.double() - _reference(q * 0.5, k, v, causal)).abs().max().item() < 1e-4


def test_1pass_host_descriptors_need_a_row_view():
    from attnsim.kernels.triton.attn_fwd import _tile_mode, attention_fwd

    q, k, v = _inputs(1, 2, 32, 32, 16)
    with pytest.raises(ValueError, match="tma='host'"):  # seq_q not a multiple of block_m
        attention_fwd(q[:, :, :24], k, v, block_m=16, block_n=16, tma="host")
    strided = torch.randn(1, 32, 2, 16, device=DEVICE).transpose(1, 2)  # (B, S, H, D) layout
    with pytest.raises(ValueError, match="tma='host'"):
        attention_fwd(strided, k, v, block_m=16, block_n=16, tma="host")
    assert _tile_mode(False, q, k, v, None, 16) == 0
    assert _tile_mode(True, q, k, v, None, 16) == 1
    assert _tile_mode("host", q, k, v, None, 16) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_host_descriptor_direct_path_caches_by_pointer():
    """Armed host-descriptor plans launch through DescriptorLaunch; new tensors (a new cache
    entry) and the same tensors again (a cache hit) both give correct results."""
    from attnsim.kernels.triton import attn_fwd

    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("tensor descriptors need sm_90+")
    tile = dict(block_m=64, block_n=64, num_warps=4, num_stages=3)
    runs = [_inputs(2, 4, 256, 256, 64, torch.bfloat16, seed=s) for s in (1, 2)]
    for q, k, v in runs + runs:
        out = attn_fwd.attention_fwd(q, k, v, True, **tile)
        assert (out.double() - _reference(q, k, v, True)).abs().max().item() < 2e-2
    plans = [p for p in attn_fwd._PLANS.values() if p.rows is not None]
    assert plans and all(p.descs is not None for p in plans)
    assert any(len(p.descs.cache) >= 2 for p in plans)
