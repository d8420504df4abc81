"""kernels.triton.lightning with `gates=`: gated linear attention (GLA) vs float64 references.

References: `gla_reference` (the token recurrence S_t = diag(e^g_t) S_(t-1) + k_t v_t^T in
torch float64) and, independently, the quadratic form o_t = sum_(s<=t) (q_t o e^(B_t - B_s)) .
k_s v_s with B the cumulative log gate over the whole sequence (numpy float64). Tiny shapes;
on a CPU-only machine the kernels run in Triton's interpreter (fp32, and fp16 inputs).
"""

from __future__ import annotations

import os

import numpy as np
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton.lightning import (  # noqa: E402
    GATE_SUM_LIMIT,
    gate_bytes,
    gla_flops,
    gla_reference,
    lightning_fwd,
)

DEVICE = "cuda" if HAS_CUDA else "cpu"


def quadratic_gla(q, k, v, gates, scale=1.0):
    """o_t = scale * sum_(s<=t) sum_e q_t[e] k_s[e] e^(B_t[e] - B_s[e]) v_s (numpy float64)."""
    q, k, v, g = (np.asarray(t.detach().cpu(), dtype=np.float64) for t in (q, k, v, gates))
    cum = np.cumsum(g, axis=2)
    seq = q.shape[2]
    causal = np.arange(seq)[:, None] >= np.arange(seq)[None, :]
    # (b, h, t, s, e): the gate between key s and query t, zero where s > t
    gap = np.where(causal[..., None], cum[:, :, :, None, :] - cum[:, :, None, :, :], -np.inf)
    scores = np.einsum("bhte,bhse,bhtse->bhts", q, k, np.exp(gap))
    return scale * scores @ v


def inputs(b, h, s, e, f, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    mk = lambda d: torch.randn(b, h, s, d, generator=g)  # noqa: E731
    return mk(e).to(DEVICE, dtype), mk(e).to(DEVICE, dtype), mk(f).to(DEVICE, dtype)


def log_gates(shape, strength, block_c=16, seed=0):
    """Log gates (fp32, CPU): "weak" near 0 (GLA's logsigmoid(x) / 16 at x ~ 3), "strong"
    -U(0, 100 / block_c) (a chunk's sum about -50: alpha down to e^-6 at block_c 16)."""
    g = torch.Generator().manual_seed(seed + 100)
    if strength == "weak":
        return torch.nn.functional.logsigmoid(torch.randn(shape, generator=g) + 3) / 16
    return -torch.rand(shape, generator=g) * (100 / block_c)


def rel_err(out, ref):
    out = np.asarray(out.detach().cpu(), dtype=np.float64)
    ref = np.asarray(ref.detach().cpu() if isinstance(ref, torch.Tensor) else ref)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def test_the_two_references_agree():
    q, k, v = inputs(1, 2, 24, 16, 8, seed=1)
    for strength in ("weak", "strong"):
        g = log_gates(k.shape, strength)
        a = gla_reference(q, k, v, g, 0.5).cpu().numpy()
        assert np.allclose(a, quadratic_gla(q, k, v, g, 0.5), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("schedule", ["fused", "split"])
@pytest.mark.parametrize("block_c", [16, 32, 64])
@pytest.mark.parametrize("seq", [64, 50])
@pytest.mark.parametrize("strength", ["weak", "strong"])
def test_fp32_matches_the_recurrence(schedule, block_c, seq, strength):
    q, k, v = inputs(1, 2, seq, 32, 32, seed=seq + block_c)
    g = log_gates(k.shape, strength, block_c, seed=block_c)
    out = lightning_fwd(q, k, v, gates=g, block_c=block_c, block_f=16, schedule=schedule,
                        state_tile=(16, 16), scale=0.25)  # fmt: skip
    assert out.shape == v.shape and out.dtype == q.dtype
    assert torch.isfinite(out).all()
    assert rel_err(out, gla_reference(q, k, v, g, 0.25)) < 1e-5


@pytest.mark.parametrize("schedule", ["fused", "split"])
@pytest.mark.parametrize("strength", ["weak", "strong"])
def test_fp16_within_twice_the_rounding_of_its_inputs(schedule, strength):
    """FlashAttention's rule: error vs float64 at most 2x (+ a floor) that of the float64
    recurrence fed the same fp16-rounded inputs, rounded to fp16 at the end."""
    q, k, v = inputs(1, 2, 48, 32, 32, seed=7)
    g = log_gates(k.shape, strength, 16, seed=7)
    exact = gla_reference(q, k, v, g, 0.25)
    h = [t.half() for t in (q, k, v)]
    out = lightning_fwd(*h, gates=g, block_c=16, schedule=schedule, scale=0.25)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    rounded = gla_reference(*h, g, 0.25).half()
    assert rel_err(out, exact) <= 2 * rel_err(rounded, exact) + 2e-3


@pytest.mark.parametrize("state_chunks", [2, 4])
def test_split_with_several_chunks_per_state(state_chunks):
    q, k, v = inputs(1, 2, 75, 32, 16, seed=state_chunks)
    g = log_gates(k.shape, "strong", 16 * state_chunks)
    out = lightning_fwd(q, k, v, gates=g, block_c=16, schedule="split",
                        state_chunks=state_chunks)  # fmt: skip
    assert rel_err(out, quadratic_gla(q, k, v, g)) < 1e-5


def test_zero_gates_are_no_decay_and_constant_gates_are_the_decay():
    q, k, v = inputs(1, 2, 40, 16, 16, seed=6)
    zero = torch.zeros(k.shape)
    plain = lightning_fwd(q, k, v, block_c=16)
    assert torch.allclose(lightning_fwd(q, k, v, gates=zero, block_c=16), plain, atol=1e-5)
    lam = torch.tensor([0.9, 0.55])
    per_head = lam.log()[None, :, None, None].expand(k.shape).contiguous()
    decayed = lightning_fwd(q, k, v, lam, block_c=16)
    gated = lightning_fwd(q, k, v, gates=per_head, block_c=16)
    assert torch.allclose(gated, decayed, rtol=1e-5, atol=1e-5)


def test_e_unlike_f_and_strided_inputs():
    q, k, v = inputs(1, 2, 40, 32, 16, seed=5)
    qs, ks, vs = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q, k, v))
    g = log_gates(k.shape, "strong", 16).transpose(1, 2).contiguous().transpose(1, 2)
    out = lightning_fwd(qs, ks, vs, gates=g, block_c=16)
    assert out.shape == (1, 2, 40, 16)
    assert rel_err(out, gla_reference(q, k, v, g)) < 1e-5


def test_bad_gates_raise_clear_errors():
    q, k, v = inputs(1, 2, 32, 16, 16)
    zero = torch.zeros(k.shape)
    with pytest.raises(ValueError, match="give decay .Lightning-2. or gates .GLA., not both"):
        lightning_fwd(q, k, v, (0.5, 0.5), gates=zero)
    with pytest.raises(ValueError, match=r"gates must be a tensor shaped like k \(1, 2, 32, 16\)"):
        lightning_fwd(q, k, v, gates=zero[:, :1])
    with pytest.raises(ValueError, match="gates are log gates: finite and <= 0"):
        lightning_fwd(q, k, v, gates=zero + 0.1)
    strong = torch.full(k.shape, -3.0)  # a chunk of 32 sums to -96
    with pytest.raises(ValueError, match="log-gate sum is -96.0, below -80.0 .* smaller block_c"):
        lightning_fwd(q, k, v, gates=strong, block_c=32)
    assert GATE_SUM_LIMIT == -80.0
    out = lightning_fwd(q, k, v, gates=strong, block_c=16)  # -48 per chunk: fine
    assert rel_err(out, gla_reference(q, k, v, strong)) < 1e-5


def test_gla_work_and_byte_formulas():
    # per padded row 8 E element-wise operations, per chunk E + E F
    assert gla_flops(1, 1, 64, 32, 16, 16) == 64 * 8 * 32 + 4 * (32 + 32 * 16)
    assert gla_flops(2, 3, 50, 32, 16, 16) == 2 * 3 * (64 * 8 * 32 + 4 * (32 + 32 * 16))
    assert gate_bytes(2, 3, 50, 32) == 2 * 3 * 50 * 32 * 4


# The GLA kernels compiled for sm_90 (bf16) on this host, as test_lightning's SM90_SCRIPT does
# (its build helper, with HAS_GATES bound): these tilings must compile without spills.
GLA_SM90 = {
    "fused-128-c32f64w8": (128, 32, 64, 8, 2, False, True),
    "fused-64-c64f64w4": (64, 64, 64, 4, 2, False, True),
    "split-128-c64f64w4": (128, 64, 64, 4, 1, True, False),
}


@pytest.mark.slow
def test_gla_tilings_compile_for_sm90_without_spills():
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    triton = pytest.importorskip("triton")
    if not shutil.which("cuobjdump", path=str(Path(triton.__file__).parent / "backends" /
                                              "nvidia" / "bin")):  # fmt: skip
        pytest.skip("the triton wheel has no CUDA tools")
    source = (Path(__file__).parent / "test_lightning.py").read_text()
    script = source.split('SM90_SCRIPT = r"""')[1].split('"""')[0]
    script = script[: script.index("for d in (64, 128):")]  # imports and build() only
    for name, (d, c, bf, w, st, load, carry) in GLA_SM90.items():
        meta = dict(BLOCK_C=c, BLOCK_F=bf, HEAD_E=d, HEAD_F=d, HAS_DECAY=False,
                    DOT_PRECISION="tf32", HAS_GATES=True, LOAD_STATE=load, CARRY=carry)  # fmt: skip
        script += f"build({name!r}, lightning_out_kernel, {meta!r}, {w}, {st})\n"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line.split() for line in run.stdout.splitlines()]
    assert [r[0] for r in rows] == list(GLA_SM90)
    for name, regs, stack, smem in rows:
        assert int(stack) == 0, f"{name}: {stack} bytes of stack (register spills)"
        assert int(regs) <= 255 and int(smem) <= 227 * 1024, (name, regs, smem)
