"""Lightning Attention-2 kernels (kernels.triton.lightning) on the GPU vs a float64 reference.

The reference is the quadratic masked form O = (Q K^T o D) V, D[t, s] = lambda^(t-s) for s <= t,
in float64 on the GPU, head by head. Rule: relative error of the output norm under `TOL` for
the dtype (bf16/fp16 inputs, fp32 accumulation). Outputs land in a NaN-poisoned block (the
caching allocator's last freed block of that size), so unwritten elements fail the test.
Marked `gpu`: skipped without CUDA (tests/conftest.py).
"""

from __future__ import annotations

import math

import pytest
import torch

from attnsim.kernels.triton.lightning import (
    SCHEDULES,
    default_lightning_tiling,
    lightning_fwd,
    lightning_tilings,
    tiling_args,
)

TOL = {torch.bfloat16: 2e-2, torch.float16: 5e-3, torch.float32: 1e-4}


def reference(q, k, v, lam, scale):
    """Float64 (B, H, S, F): (Q K^T o D) V head by head."""
    b, h, s, _ = q.shape
    out = torch.empty(b, h, s, v.shape[3], dtype=torch.float64, device=q.device)
    gap = torch.arange(s, device=q.device)[:, None] - torch.arange(s, device=q.device)[None, :]
    causal = gap >= 0
    for j in range(h):
        step = 1.0 if lam is None else float(lam[j])
        d = torch.where(causal, step ** gap.clamp(min=0).double(), 0.0)
        for i in range(b):
            qd, kd, vd = (t[i, j].double() for t in (q, k, v))
            out[i, j] = scale * ((qd @ kd.T) * d) @ vd
    return out


def inputs(b, h, s, d, dtype, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return tuple(torch.randn(b, h, s, d, generator=g, device="cuda").to(dtype) for _ in range(3))


def decays(heads):
    """lambda_h from 0.5 to 0.99 (strong decays: an off-by-one power shows), fp32 on the GPU."""
    return torch.linspace(0.5, 0.99, heads).cuda()


def run_checked(q, k, v, lam, **kw):
    """lightning_fwd into a NaN-poisoned block; returns the relative error vs float64."""
    scale = q.shape[-1] ** -0.5
    poison = torch.full(v.shape, math.nan, dtype=q.dtype, device="cuda")
    del poison
    out = lightning_fwd(q, k, v, lam, scale=scale, **kw)
    torch.cuda.synchronize()
    assert out.shape == v.shape and out.dtype == q.dtype
    assert torch.isfinite(out).all(), "non-finite or unwritten outputs"
    ref = reference(q, k, v, None if lam is None else lam.cpu(), scale)
    return float((out.double() - ref).norm() / ref.norm())


@pytest.mark.gpu
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("seq", [1024, 4096, 8192])
def test_matches_float64(schedule, dtype, head_dim, seq):
    q, k, v = inputs(1, 2, seq, head_dim, dtype, seed=seq + head_dim)
    tiling = tiling_args(default_lightning_tiling(head_dim))
    rel = run_checked(q, k, v, decays(2), schedule=schedule, **tiling)
    assert rel < TOL[dtype], rel


@pytest.mark.gpu
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("tiling", lightning_tilings(128))
def test_every_candidate_tiling(schedule, tiling):
    q, k, v = inputs(2, 3, 2048, 128, torch.bfloat16, seed=1)
    try:
        rel = run_checked(q, k, v, decays(3), schedule=schedule, **tiling_args(tiling))
    except Exception as exc:  # a candidate over the device's resources: not a wrong answer
        if "OutOfResources" in type(exc).__name__ or "out of resource" in str(exc):
            pytest.skip(f"{tiling} {schedule}: {exc}")
        raise
    assert rel < TOL[torch.bfloat16], rel


@pytest.mark.gpu
@pytest.mark.parametrize("state_chunks", [2, 4])
@pytest.mark.parametrize("state_tile", [None, (32, 32), (32, 64)])
@pytest.mark.parametrize("seq", [4096, 3000])
def test_split_state_options(state_chunks, state_tile, seq):
    q, k, v = inputs(2, 3, seq, 128, torch.bfloat16, seed=state_chunks)
    rel = run_checked(q, k, v, decays(3), schedule="split", state_chunks=state_chunks,
                      state_tile=state_tile)  # fmt: skip
    assert rel < TOL[torch.bfloat16], rel


@pytest.mark.gpu
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("has_decay", [False, True])
def test_ragged_length_and_no_decay(schedule, has_decay):
    q, k, v = inputs(2, 2, 1000, 64, torch.bfloat16, seed=2)
    lam = decays(2) if has_decay else None
    assert run_checked(q, k, v, lam, schedule=schedule, block_c=64) < TOL[torch.bfloat16]


@pytest.mark.gpu
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_strided_layout_and_repeated_calls(schedule):
    """(B, S, H, D) buffers seen as (B, H, S, D); the second call takes the direct launch."""
    q, k, v = (
        t.transpose(1, 2).contiguous().transpose(1, 2)
        for t in inputs(2, 4, 2048, 128, torch.bfloat16)
    )
    lam = decays(4)
    assert run_checked(q, k, v, lam, schedule=schedule) < TOL[torch.bfloat16]
    first = lightning_fwd(q, k, v, lam, schedule=schedule)
    second = lightning_fwd(q, k, v, lam, schedule=schedule)
    assert torch.equal(first, second)


@pytest.mark.gpu
def test_fp32_and_small_head_dims():
    for d in (16, 32):
        q, k, v = inputs(1, 2, 512, d, torch.float32, seed=d)
        for schedule in SCHEDULES:
            rel = run_checked(q, k, v, decays(2), schedule=schedule, block_c=32)
            assert rel < TOL[torch.float32], (d, schedule, rel)


def gla_float64(q, k, v, gates, scale, chunk=64):
    """Float64 GLA (B, H, S, F), chunk by chunk with element-wise gates e^(b_t - b_s)."""
    q, k, v, g = (t.double() for t in (q, k, v, gates))
    b_, h, s, e = q.shape
    out = torch.empty(b_, h, s, v.shape[3], dtype=torch.float64, device=q.device)
    state = torch.zeros(b_, h, e, v.shape[3], dtype=torch.float64, device=q.device)
    for start in range(0, s, chunk):
        n = min(chunk, s - start)
        qc, kc, vc, gc = (x[:, :, start : start + n] for x in (q, k, v, g))
        b = gc.cumsum(dim=2)
        causal = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()[..., None]
        gate = torch.where(causal, (b[:, :, :, None] - b[:, :, None]).clamp(max=0).exp(), 0.0)
        scores = torch.einsum("bhte,bhse,bhtse->bhts", qc, kc, gate)
        out[:, :, start : start + n] = scale * (scores @ vc + (qc * b.exp()) @ state)
        last = b[:, :, -1:]
        state = last.transpose(2, 3).exp() * state + (kc * (last - b).exp()).transpose(2, 3) @ vc
    return out


@pytest.mark.gpu
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("strength", [16.0, 1.0])  # GLA's logsigmoid / 16; strong: / 1
def test_gla_gates_match_float64(schedule, dtype, head_dim, strength):
    q, k, v = inputs(1, 2, 1000, head_dim, dtype, seed=head_dim)
    g = torch.Generator(device="cuda").manual_seed(9)
    x = torch.randn(q.shape, generator=g, device="cuda")
    gates = torch.nn.functional.logsigmoid(x) / strength
    scale = head_dim**-0.5
    block_c = 64 if strength > 1 else 32
    out = lightning_fwd(q, k, v, gates=gates, scale=scale, schedule=schedule, block_c=block_c)
    torch.cuda.synchronize()
    assert torch.isfinite(out).all()
    ref = gla_float64(q, k, v, gates, scale)
    rel = float((out.double() - ref).norm() / ref.norm())
    assert rel < TOL[dtype] * (3 if dtype == torch.float32 else 1), rel
