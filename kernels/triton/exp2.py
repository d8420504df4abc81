"""FlashAttention-4's software exponential for the 1-pass kernel (`attn_loop.online_step`).

`exp2_split(x, POLY_EXP, USE_ASM)` computes 2**x (x <= 0) with POLY_EXP of every 4 elements
on the FMA units by a degree-3 polynomial and the rest on the MUFU; `exp2_poly` is the same
polynomial in plain Triton (the interpreter's path), `exp2_split_ptx` the inline PTX.
"""

from __future__ import annotations

import struct

import triton
import triton.language as tl

# POLY_EXP (FlashAttention-4's software exponential): 2**x for x <= 0 as 2**floor(x) * P(f),
# f = x - floor(x) in [0, 1), P(f) = c0 + f*(c1 + f*(c2 + f*c3)) with c0 = 1 exactly (so
# x = -inf, clamped to -127, gives the bit pattern 0). Relative-error minimax fit of 2**f on
# [0, 1] with c0 pinned to 1 (Lawson's iteration), coefficients rounded to float32: max relative
# error 8.6e-5 over [-126, 0] in float32 arithmetic (tests/unit/kernels/test_poly_exp.py),
# far below the bf16/fp16 rounding of P (2**-9 / 2**-11). The one place these numbers live.
EXP2_POLY = (1.0, 0.6951168179512024, 0.22764484584331512, 0.07706717401742935)
EXP2_POLY_MAX_REL_ERR = 1e-4  # the bound the unit test enforces
EXP2_CLAMP = -127.0  # inputs below this give 0 (2**-127 is under float32's normal range)
_EXP2_C1 = tl.constexpr(EXP2_POLY[1])
_EXP2_C2 = tl.constexpr(EXP2_POLY[2])
_EXP2_C3 = tl.constexpr(EXP2_POLY[3])
_EXP2_CLAMP = tl.constexpr(EXP2_CLAMP)


def _f32_ptx(value: float) -> str:
    """A float32 immediate in PTX hex form (0fXXXXXXXX)."""
    return f"0f{struct.unpack('<I', struct.pack('<f', value))[0]:08X}"


def exp2_split_ptx(n_poly: int) -> str:
    """PTX for `tl.inline_asm_elementwise` (pack 4, f32 in/out as .b32 "r" registers).

    Of each pack of 4 elements, the first 4 - n_poly go to the MUFU (`ex2.approx.ftz.f32`)
    and the last n_poly to the FMA/ALU pipes (FlashAttention-4's split):

        max.ftz.f32    x, in, -127         clamp: -inf and x < -127 give exactly 0
        add.rm.ftz.f32 t, x, 0x1.8p23      t = 1.5*2**23 + floor(x) (ulp 1 here, round down)
        sub.ftz.f32    j, t, 0x1.8p23      j = floor(x), exact
        sub.ftz.f32    f, x, j             f in [0, 1), exact
        fma.rn.ftz.f32 p, f, c3, c2 ; p = p*f + c1 ; p = p*f + 1     P(f) in [1, 2)
        shl.b32        e, t, 23            low bits of t are floor(x): e = floor(x) << 23
        add.s32        out, p, e           2**floor(x) * P(f) by adding to the exponent field

    No cvt (F2I sits on the same narrow pipe as MUFU on Hopper). All scratch registers are
    .b32 (bit-size registers fit both the float and the integer instructions), declared inside
    one `{ }` scope per instance so the many inlined copies do not clash.
    """
    if not 0 <= n_poly <= 4:
        raise ValueError(f"n_poly must be in 0..4, got {n_poly}")
    c0, c1, c2, c3 = (_f32_ptx(c) for c in EXP2_POLY)
    if c0 != _f32_ptx(1.0):
        raise ValueError("EXP2_POLY[0] must be 1.0: the -inf -> 0 bit trick relies on it")
    magic, clamp = _f32_ptx(1.5 * 2**23), _f32_ptx(EXP2_CLAMP)
    lines = ["{"]
    for i in range(4 - n_poly, 4):
        lines.append(f".reg .b32 ex2x{i}, ex2t{i}, ex2j{i}, ex2f{i}, ex2p{i}, ex2e{i};")
    for i in range(4):
        src, dst = f"${i + 4}", f"${i}"
        if i < 4 - n_poly:
            lines.append(f"ex2.approx.ftz.f32 {dst}, {src};")
            continue
        x, t, j, f, p, e = (f"ex2{n}{i}" for n in "xtjfpe")
        lines += [
            f"max.ftz.f32 {x}, {src}, {clamp};",
            f"add.rm.ftz.f32 {t}, {x}, {magic};",
            f"sub.ftz.f32 {j}, {t}, {magic};",
            f"sub.ftz.f32 {f}, {x}, {j};",
            f"fma.rn.ftz.f32 {p}, {f}, {c3}, {c2};",
            f"fma.rn.ftz.f32 {p}, {p}, {f}, {c1};",
            f"fma.rn.ftz.f32 {p}, {p}, {f}, {c0};",
            f"shl.b32 {e}, {t}, 23;",
            f"add.s32 {dst}, {p}, {e};",
        ]
    lines.append("}")
    return "\n".join(lines)


_EXP2_PTX1 = tl.constexpr(exp2_split_ptx(1))
_EXP2_PTX2 = tl.constexpr(exp2_split_ptx(2))
_EXP2_PTX3 = tl.constexpr(exp2_split_ptx(3))
_EXP2_PTX4 = tl.constexpr(exp2_split_ptx(4))


@triton.jit
def exp2_poly(x):
    """2**x for float32 x <= 0 on the FMA units, no MUFU: the same steps as `exp2_split_ptx`.

    Pure Triton (runs in the interpreter too). x < -127 (and -inf) gives 0; x in [-127, -126)
    gives a subnormal below 2**-126; elsewhere the relative error is EXP2_POLY's (< 1e-4).
    """
    x = tl.maximum(x, _EXP2_CLAMP)
    j = tl.floor(x)
    f = x - j
    p = tl.fma(tl.fma(tl.fma(f, _EXP2_C3, _EXP2_C2), f, _EXP2_C1), f, 1.0)
    bits = p.to(tl.int32, bitcast=True) + (j.to(tl.int32) << 23)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _exp2_asm(x, ASM: tl.constexpr):
    return tl.inline_asm_elementwise(
        ASM, "=r,=r,=r,=r,r,r,r,r", [x], dtype=tl.float32, is_pure=True, pack=4
    )


@triton.jit
def exp2_split(x, POLY_EXP: tl.constexpr, USE_ASM: tl.constexpr):
    """2**x (float32, x <= 0) with POLY_EXP of every 4 elements computed by the polynomial.

    POLY_EXP 0: `tl.math.exp2` (MUFU). USE_ASM (compiled on NVIDIA): inline PTX, pack 4,
    `exp2_split_ptx(POLY_EXP)`. Without USE_ASM (the interpreter cannot run inline asm):
    `exp2_poly` on every element, so CPU tests still see the polynomial's error.
    """
    if POLY_EXP == 0:
        y = tl.math.exp2(x)
    elif not USE_ASM:
        y = exp2_poly(x)
    elif POLY_EXP == 1:
        y = _exp2_asm(x, _EXP2_PTX1)
    elif POLY_EXP == 2:
        y = _exp2_asm(x, _EXP2_PTX2)
    elif POLY_EXP == 3:
        y = _exp2_asm(x, _EXP2_PTX3)
    else:
        y = _exp2_asm(x, _EXP2_PTX4)
    return y
