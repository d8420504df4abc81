"""The POLY_EXP software exponential (kernels.triton.exp2: EXP2_POLY, exp2_poly, ...).

The numpy model repeats the kernel's float32 steps with the coefficients from
kernels.triton.exp2;
the Triton test runs `exp2_poly` itself (the interpreter on a CPU-only machine, compiled with
CUDA). The inline-PTX split is checked on the GPU only (the interpreter cannot run asm).
"""

from __future__ import annotations

import os

import numpy as np
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from attnsim.kernels.triton.exp2 import (  # noqa: E402
    EXP2_CLAMP,
    EXP2_POLY,
    EXP2_POLY_MAX_REL_ERR,
    exp2_poly,
    exp2_split,
    exp2_split_ptx,
)

DEVICE = "cuda" if HAS_CUDA else "cpu"
SUBNORMAL = 2.0**-126  # x in [-127, -126) gives a value below this (absolute error bound)


def numpy_exp2_poly(x: np.ndarray) -> np.ndarray:
    """The kernel's steps in float32 (each FMA rounded once: the product is exact in float64)."""
    c = [np.float64(np.float32(v)) for v in EXP2_POLY]
    x = np.maximum(x.astype(np.float32), np.float32(EXP2_CLAMP))
    j = np.floor(x)
    f = (x - j).astype(np.float64)  # exact
    p = (f * c[3] + c[2]).astype(np.float32)
    p = (p.astype(np.float64) * f + c[1]).astype(np.float32)
    p = (p.astype(np.float64) * f + c[0]).astype(np.float32)
    bits = p.view(np.int32) + (j.astype(np.int32) << 23)
    return bits.view(np.float32)


def grid() -> np.ndarray:
    """[-126, 0] densely (every fraction pattern of many exponents) plus edge points."""
    dense = np.linspace(-126.0, 0.0, 1_000_001, dtype=np.float32)
    edges = np.array([0.0, -0.0, -1e-30, -1.0, -0.5, -125.999, -126.0], dtype=np.float32)
    return np.concatenate([dense, edges])


def test_coefficients_are_float32_and_pin_one():
    assert EXP2_POLY[0] == 1.0  # -inf -> exactly 0 relies on P(0) == 1
    for c in EXP2_POLY:
        assert float(np.float32(c)) == c


def test_numpy_model_accuracy():
    x = grid()
    y = numpy_exp2_poly(x).astype(np.float64)
    rel = np.abs(y / np.exp2(x.astype(np.float64)) - 1.0)
    assert rel.max() < EXP2_POLY_MAX_REL_ERR, rel.max()
    assert rel.max() > 1e-6  # it is an approximation: the test would notice an exact exp2


def test_numpy_model_underflow():
    x = np.array([-np.inf, -1e30, -200.0, -127.0, -126.5, -126.0001], dtype=np.float32)
    y = numpy_exp2_poly(x)
    assert (y[:4] == 0.0).all()
    assert (y >= 0).all() and (y[4:] < SUBNORMAL).all()


@triton.jit
def _poly_kernel(X, Y, N, BLOCK: tl.constexpr, POLY_EXP: tl.constexpr, USE_ASM: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(X + offs, mask=offs < N, other=0.0)
    if POLY_EXP == 0:
        y = exp2_poly(x)
    else:
        y = exp2_split(x, POLY_EXP, USE_ASM)
    tl.store(Y + offs, y, mask=offs < N)


def _run(x: np.ndarray, poly_exp: int = 0, use_asm: bool = False) -> np.ndarray:
    xt = torch.from_numpy(x).to(DEVICE)
    yt = torch.empty_like(xt)
    block = 1024
    _poly_kernel[(triton.cdiv(x.size, block),)](xt, yt, x.size, block, poly_exp, use_asm)
    return yt.cpu().numpy()


def test_triton_exp2_poly_matches_model():
    x = np.concatenate([grid()[::50], np.array([-np.inf, -300.0, -127.0], np.float32)])
    y = _run(x)
    ref = np.exp2(x.astype(np.float64))
    ok = x >= -126
    rel = np.abs(y[ok] / ref[ok] - 1.0)
    assert rel.max() < EXP2_POLY_MAX_REL_ERR, rel.max()
    assert (y[-3:] == 0.0).all()
    np.testing.assert_allclose(y, numpy_exp2_poly(x), rtol=2e-7, atol=0)


@pytest.mark.parametrize("n_poly", [1, 2, 3, 4])
def test_ptx_text(n_poly):
    asm = exp2_split_ptx(n_poly)
    assert asm.startswith("{") and asm.endswith("}")
    assert asm.count("ex2.approx.ftz.f32") == 4 - n_poly
    assert asm.count("add.rm.ftz.f32") == n_poly
    assert "$0" in asm and "$7" in asm and "$8" not in asm
    with pytest.raises(ValueError):
        exp2_split_ptx(5)


@pytest.mark.gpu
@pytest.mark.parametrize("n_poly", [1, 2, 4])
def test_gpu_exp2_split_asm(n_poly):
    x = np.concatenate([grid()[::10], np.array([-np.inf, -300.0, -127.0, 0.0], np.float32)])
    x = x[: x.size // 4 * 4]
    y = _run(x, n_poly, True)
    ref = np.exp2(x.astype(np.float64))
    ok = x >= -126
    rel = np.abs(y[ok] / ref[ok] - 1.0)
    assert rel.max() < EXP2_POLY_MAX_REL_ERR, rel.max()
    assert (y[x <= -127] == 0.0).all()
