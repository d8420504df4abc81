"""kernels.triton.lightning: Lightning Attention-2 forward vs float64 references (interpreter).

Two independent references in numpy float64: the token recurrence (S_t = lambda S_(t-1) +
k_t v_t^T, o_t = q_t S_t) and the quadratic masked form (O = (Q K^T o D) V with
D[t,s] = lambda^(t-s) for s <= t). Tiny shapes; on a CPU-only machine the kernels run in
Triton's interpreter in fp32.
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
    LIGHTNING_TILINGS,
    default_lightning_tiling,
    default_state_tile,
    lightning_bytes,
    lightning_flops,
    lightning_fwd,
    lightning_state_bytes,
    lightning_tilings,
    state_warps,
)

DEVICE = "cuda" if HAS_CUDA else "cpu"
LAMBDA = (0.9, 0.55)  # two heads: a slow and a fast decay


def recurrent(q, k, v, lam=None, scale=1.0):
    """o_t = scale * q_t . S_t with S_t = lambda S_(t-1) + k_t v_t^T, token by token (float64)."""
    q, k, v = (np.asarray(t.detach().cpu(), dtype=np.float64) for t in (q, k, v))
    b, h, s, e = q.shape
    out = np.zeros((b, h, s, v.shape[3]))
    for i in range(b):
        for j in range(h):
            state = np.zeros((e, v.shape[3]))
            step = 1.0 if lam is None else lam[j]
            for t in range(s):
                state = step * state + np.outer(k[i, j, t], v[i, j, t])
                out[i, j, t] = scale * q[i, j, t] @ state
    return out


def quadratic(q, k, v, lam=None):
    """O = (Q K^T o D) V with D[t, s] = lambda^(t - s) for s <= t, else 0 (float64)."""
    q, k, v = (np.asarray(t.detach().cpu(), dtype=np.float64) for t in (q, k, v))
    s = q.shape[2]
    gap = np.arange(s)[:, None] - np.arange(s)[None, :]
    out = np.zeros((*q.shape[:3], v.shape[3]))
    for j in range(q.shape[1]):
        step = 1.0 if lam is None else lam[j]
        d = np.where(gap >= 0, step ** np.maximum(gap, 0), 0.0)
        out[:, j] = ((q[:, j] @ k[:, j].transpose(0, 2, 1)) * d) @ v[:, j]
    return out


def inputs(b, h, s, e, f, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    mk = lambda d: torch.randn(b, h, s, d, generator=g).to(DEVICE, dtype)  # noqa: E731
    return mk(e), mk(e), mk(f)


def rel_err(out, ref):
    out = np.asarray(out.detach().cpu(), dtype=np.float64)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def test_the_two_references_agree():
    q, k, v = inputs(1, 2, 40, 16, 32, seed=1)
    for lam in (None, LAMBDA):
        a, b = recurrent(q, k, v, lam), quadratic(q, k, v, lam)
        assert np.allclose(a, b, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("schedule", ["fused", "split"])
@pytest.mark.parametrize("block_c", [16, 32])
@pytest.mark.parametrize("seq", [64, 50])
@pytest.mark.parametrize("has_decay", [False, True])
@pytest.mark.parametrize("block_f", [32, 16])
def test_matches_the_recurrence(schedule, block_c, seq, has_decay, block_f):
    q, k, v = inputs(2, 2, seq, 32, 32, seed=seq + block_c)
    lam = LAMBDA if has_decay else None
    decay = torch.tensor(lam) if has_decay else None
    out = lightning_fwd(q, k, v, decay, block_c=block_c, block_f=block_f, schedule=schedule,
                        state_tile=(16, 32 // block_f * 16))  # fmt: skip
    assert out.shape == v.shape and out.dtype == q.dtype
    assert torch.isfinite(out).all()
    assert rel_err(out, recurrent(q, k, v, lam)) < 1e-5


@pytest.mark.parametrize("state_chunks", [2, 4])
@pytest.mark.parametrize("seq", [128, 75])
def test_split_with_several_chunks_per_state(state_chunks, seq):
    q, k, v = inputs(1, 2, seq, 32, 32, seed=state_chunks)
    for lam in (None, LAMBDA):
        out = lightning_fwd(q, k, v, lam, block_c=16, schedule="split", state_chunks=state_chunks)
        assert rel_err(out, recurrent(q, k, v, lam)) < 1e-5


@pytest.mark.parametrize("schedule", ["fused", "split"])
def test_matches_the_quadratic_form_with_e_unlike_f(schedule):
    q, k, v = inputs(1, 2, 48, 32, 16, seed=3)
    out = lightning_fwd(q, k, v, LAMBDA, block_c=16, schedule=schedule)
    assert out.shape == (1, 2, 48, 16)
    assert rel_err(out, quadratic(q, k, v, LAMBDA)) < 1e-5


@pytest.mark.parametrize("schedule", ["fused", "split"])
def test_head_dim_64_chunk_longer_than_the_sequence(schedule):
    q, k, v = inputs(1, 2, 20, 64, 64, seed=4)
    out = lightning_fwd(q, k, v, LAMBDA, block_c=32, schedule=schedule)  # one masked chunk
    assert rel_err(out, quadratic(q, k, v, LAMBDA)) < 1e-5


def test_scale_and_strided_layout():
    q, k, v = inputs(1, 2, 40, 16, 16, seed=5)
    # a (batch, seq, heads, dim) buffer seen as (batch, heads, seq, dim): row stride heads*dim
    qs, ks, vs = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q, k, v))
    assert qs.stride(2) == 2 * 16
    out = lightning_fwd(qs, ks, vs, LAMBDA, block_c=16, scale=0.25)
    assert rel_err(out, recurrent(q, k, v, LAMBDA, scale=0.25)) < 1e-5


def test_unit_decay_is_no_decay_and_strong_decay_stays_finite():
    q, k, v = inputs(1, 2, 40, 16, 16, seed=6)
    plain = lightning_fwd(q, k, v, None, block_c=16)
    ones = lightning_fwd(q, k, v, torch.ones(2), block_c=16)
    assert torch.allclose(plain, ones, rtol=1e-6, atol=1e-5)
    strong = (1e-3, 1e-30)
    out = lightning_fwd(q, k, v, strong, block_c=16, schedule="split")
    assert torch.isfinite(out).all()
    assert rel_err(out, recurrent(q, k, v, strong)) < 1e-5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(block_c=24), "block_c must be a power of two in 16..256, got 24"),
        (dict(block_c=8), "block_c must be a power of two in 16..256, got 8"),
        (dict(block_c=512), "block_c must be a power of two in 16..256, got 512"),
        (dict(block_f=48), "block_f must be a power of two in 16..32, got 48"),
        (dict(block_f=64), "block_f must be a power of two in 16..32, got 64"),
        (
            dict(state_tile=(64, 16), schedule="split"),
            "state_tile[0] (E block) must be a power of two in 16..32, got 64",
        ),
        (
            dict(state_tile=(16, 24), schedule="split"),
            "state_tile[1] (F block) must be a power of two in 16..32, got 24",
        ),
        (dict(state_tile=16), "state_tile must be a pair (E block, F block), got 16"),
        (dict(state_chunks=3), "state_chunks must be a power of two in 1..256, got 3"),
        (
            dict(state_chunks=8, block_c=64),
            "state_chunks * block_c must be at most 256 (the state pass's step), got 8 * 64",
        ),
        (dict(schedule="tiled"), "schedule must be one of ('fused', 'split'), got 'tiled'"),
        (dict(num_warps=3), "num_warps must be one of (1, 2, 4, 8, 16), got 3"),
        (dict(num_stages=0), "num_stages must be an integer in 1..8, got 0"),
        (dict(decay=(0.5,)), "decay must have shape (2,) (one lambda per head), got (1,)"),
        (dict(decay=(0.5, 0.0)), "decay values must lie in (0, 1], got [0.0]"),
        (dict(decay=(1.5, 0.5)), "decay values must lie in (0, 1], got [1.5]"),
    ],
)
def test_bad_parameters_raise_clear_errors(kwargs, message):
    q, k, v = inputs(1, 2, 32, 32, 32)
    with pytest.raises(ValueError) as err:
        lightning_fwd(q, k, v, **kwargs)
    assert str(err.value) == message


def test_bad_inputs_raise_clear_errors():
    q, k, v = inputs(1, 2, 32, 32, 32)
    with pytest.raises(ValueError, match="q and k shapes differ"):
        lightning_fwd(q, k[:, :1], v)
    with pytest.raises(ValueError, match="disagree on B, H or S"):
        lightning_fwd(q, k, v[:, :, :16])
    with pytest.raises(ValueError, match="share one dtype"):
        lightning_fwd(q, k, v.double())
    with pytest.raises(ValueError, match=r"unsupported dtype torch.float64"):
        lightning_fwd(q.double(), k.double(), v.double())
    with pytest.raises(ValueError, match=r"head dim F \(v\) must be one of"):
        lightning_fwd(q, k, torch.randn(1, 2, 32, 24))
    with pytest.raises(ValueError, match="must be 4-D"):
        lightning_fwd(q[0], k[0], v[0])
    long = torch.empty(1, 1, 65536 * 16 + 1, 16)  # never filled: refused before any launch
    with pytest.raises(ValueError, match=r"programs per head \(65537\) must be at most 65535"):
        lightning_fwd(long, long, long, block_c=16, schedule="split")


def explicit_flops(batch, heads, seq, e, f, block_c):
    """2 m n k for every matrix product the kernels issue, chunk by chunk."""
    total = 0
    for _chunk in range(0, seq, block_c):
        c = block_c  # the last chunk is padded to a full one
        products = [(c, c, e), (c, f, c), (c, f, e), (e, f, c)]  # QK^T, AV, QS, K^T V
        total += sum(2 * m * n * kk for m, n, kk in products)
    return batch * heads * total


@pytest.mark.parametrize(
    ("batch", "heads", "seq", "e", "f", "block_c"),
    [(1, 1, 64, 32, 32, 16), (2, 3, 100, 64, 32, 32), (8, 16, 2048, 128, 128, 64)],
)
def test_flops_formula_counts_the_matrix_products(batch, heads, seq, e, f, block_c):
    flops = lightning_flops(batch, heads, seq, e, f, block_c)
    assert flops == explicit_flops(batch, heads, seq, e, f, block_c)
    if seq % block_c == 0:
        s, c = seq, block_c
        assert flops == batch * heads * (2 * s * c * e + 2 * s * c * f + 4 * s * e * f)


def test_byte_formulas():
    assert lightning_bytes(2, 3, 100, 64, 32, 2) == 2 * 3 * 100 * (64 + 64 + 32 + 32) * 2
    # split: 4 chunk-start states of 64 x 32, written and read, in fp32
    assert lightning_state_bytes(1, 1, 100, 64, 32, 32, 4) == 2 * 4 * 64 * 32 * 4
    assert lightning_state_bytes(1, 1, 100, 64, 32, 32, 4, state_chunks=2) == 2 * 2 * 64 * 32 * 4


def test_state_tile_defaults_and_warps():
    assert default_state_tile(128, 32) == (64, 32)
    assert [state_warps(t) for t in ((32, 32), (64, 32), (64, 64), (128, 128))] == [1, 2, 4, 8]


def test_tilings_are_valid_and_fit_the_head_dim():
    for head_dim in (16, 32, 64, 128):
        c, f, w, st = default_lightning_tiling(head_dim)
        assert f <= head_dim and head_dim % f == 0 and c >= 16
        assert all(t[1] <= head_dim for t in lightning_tilings(head_dim))
    assert lightning_tilings(128) == LIGHTNING_TILINGS
    assert len(set(LIGHTNING_TILINGS)) == len(LIGHTNING_TILINGS)
    assert (64, 128, 8, 2) not in lightning_tilings(64)


# Compiles the kernels for sm_90 on this host (no GPU needed: Triton's CUDA backend and its
# ptxas/cuobjdump ship in the triton wheel) and prints, per kernel, "name regs stack smem".
# Runs in a subprocess: under TRITON_INTERPRET=1 the kernels are not compilable objects.
SM90_SCRIPT = r"""
import os, re, subprocess, sys, tempfile
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from attnsim.kernels.triton.lightning import (
    default_lightning_tiling, default_state_tile, state_warps)
from attnsim.kernels.triton.lightning_kernel import lightning_out_kernel, lightning_states_kernel

BIN = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")

def build(name, fn, const, warps, stages):
    sig, attrs = {}, {}
    for i, p in enumerate(fn.arg_names):
        if p in const:
            sig[p] = "constexpr"
        elif p in ("Decay", "Gates"):
            sig[p] = "*fp32"
        elif p[0].isupper():
            sig[p] = "*bf16"
        else:
            sig[p] = "fp32" if p == "scale" else "i32"
        if p[0].isupper() or p.startswith("stride"):
            attrs[(i,)] = [["tt.divisibility", 16]]
    consts = {(fn.arg_names.index(k),): v for k, v in const.items()}
    k = triton.compile(ASTSource(fn, sig, consts, attrs), target=GPUTarget("cuda", 90, 32),
                       options=dict(num_warps=warps, num_stages=stages))
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as fh:
        fh.write(k.asm["cubin"])
    usage = subprocess.run([os.path.join(BIN, "cuobjdump"), "-res-usage", fh.name],
                           capture_output=True, text=True, check=True).stdout
    regs, stack = re.search(r"REG:(\d+) STACK:(\d+)", usage).groups()
    print(name, regs, stack, k.metadata.shared, flush=True)

for d in (64, 128):
    c, bf, w, st = default_lightning_tiling(d)
    meta = dict(BLOCK_C=c, BLOCK_F=bf, HEAD_E=d, HEAD_F=d, HAS_DECAY=True, DOT_PRECISION="tf32",
                HAS_GATES=False)
    for name, load, carry in (("fused", False, True), ("split", True, False),
                              ("split4", True, True)):
        build(f"out-{name}-{d}", lightning_out_kernel,
              {**meta, "LOAD_STATE": load, "CARRY": carry}, w, st if carry else 1)
    se, sf = default_state_tile(d, d)
    for r in (1, 4):
        build(f"states{r}-{d}", lightning_states_kernel,
              {**meta, "BLOCK_C": r * c, "BLOCK_E": se, "BLOCK_F": sf},
              state_warps((se, sf)), st)
"""


@pytest.mark.slow
def test_default_tilings_compile_for_sm90_without_spills():
    """The default tilings build for Hopper (bf16): no register spills, shared memory fits."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    triton = pytest.importorskip("triton")
    if not shutil.which("cuobjdump", path=str(Path(triton.__file__).parent / "backends" /
                                              "nvidia" / "bin")):  # fmt: skip
        pytest.skip("the triton wheel has no CUDA tools")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-c", SM90_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line.split() for line in run.stdout.splitlines()]
    kernels = ("out-fused", "out-split", "out-split4", "states1", "states4")
    assert [r[0] for r in rows] == [f"{k}-{d}" for d in (64, 128) for k in kernels]
    for name, regs, stack, smem in rows:
        assert int(stack) == 0, f"{name}: {stack} bytes of stack (register spills)"
        assert int(regs) <= 255 and int(smem) <= 227 * 1024, (name, regs, smem)


def test_gated_blocks_under_64_are_refused_on_sm90_only() -> None:
    """GLA's 32-wide blocks fault on sm_90 (measured on the H200): refused there, with why."""
    from attnsim.kernels.triton.lightning import check_gated_blocks

    with pytest.raises(ValueError, match=r"block_f = 32, state_tile\[0\] = 32 .*illegal memory"):
        check_gated_blocks((9, 0), 64, 32, (32, 64))
    check_gated_blocks((9, 0), 64, 64, (64, 64))  # 64 and up run
    check_gated_blocks((8, 0), 32, 32, (32, 32))  # other GPUs: not refused
    gated = lightning_tilings(128, gated=True)
    assert gated and all(min(t[0], t[1]) >= 64 for t in gated)
    assert set(gated) < set(lightning_tilings(128))
