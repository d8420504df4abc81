"""Shared pieces of the attention kernels: FLOP/byte formulas and the one inner loop.

The FLOP and byte formulas are plain Python (no GPU needed). The `@triton.jit` helpers hold
the single attention inner loop that the 1-pass kernel and both passes of the 2-pass kernel
share: `attn_inner` walks key tiles, and a constexpr `MODE` picks what it does per tile
(online softmax with rescaling; statistics only; normalized output with known statistics).
`attn_rows` is the whole per-program body: it loads the query tile, runs the unmasked
key range and then the masked range (causal diagonal or the ragged last key tile) through
`attn_inner` with a constexpr `MASKED` flag, so the loop body exists once.

Layout everywhere: (batch, heads, seq, head_dim), last dimension contiguous.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import triton
import triton.language as tl

LOG2E = 1.4426950408889634  # log2(e): exp(x) = exp2(x * LOG2E), folded into the softmax scale

# inner-loop modes (constexpr MODE)
MODE_ONLINE = tl.constexpr(0)  # 1-pass: online softmax, running max/sum, rescaled accumulator
MODE_STATS = tl.constexpr(1)  # 2-pass, pass 1: row max and row sum of exp only (no P.V)
MODE_OUTPUT = tl.constexpr(2)  # 2-pass, pass 2: exact probabilities from known max/sum, P.V
# LAZY_RESCALE threshold in log2 units: the stale max may trail the true one by up to 8, so
# probabilities stay <= 256 (exact in fp16/bf16 range; FlashAttention-4 uses the same idea).
RESCALE_TAU = tl.constexpr(8.0)

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


# ----------------------------------------------------------------------------- formulas


@dataclass(frozen=True)
class AttnShape:
    """One attention problem: (batch, heads, seq_q, seq_k, head_dim), causal or not."""

    batch: int
    heads: int
    seq_q: int
    seq_k: int
    head_dim: int
    causal: bool

    def __post_init__(self) -> None:
        for name in ("batch", "heads", "seq_q", "seq_k", "head_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"AttnShape.{name} must be >= 1, got {getattr(self, name)}")


def attn_flops(shape: AttnShape) -> int:
    """FLOPs of attention as the schema counts them: 4*B*H*Sq*Sk*D, halved when causal.

    Two matmuls (QK^T and P.V), 2 FLOPs per multiply-add each. The same count is used for
    every family, so TFLOP/s compare like with like (causal halves it regardless of the
    exact triangle size).
    """
    s = shape
    flops = 4 * s.batch * s.heads * s.seq_q * s.seq_k * s.head_dim
    return flops // 2 if s.causal else flops


def causal_pairs(seq_q: int, seq_k: int) -> int:
    """Number of (i, j) pairs with j <= i (top-left aligned), 0 <= i < seq_q, 0 <= j < seq_k."""
    full = max(0, seq_q - seq_k)  # rows i >= seq_k see every key
    tri_rows = seq_q - full  # rows 0..min(seq_q, seq_k)-1 see i + 1 keys
    return tri_rows * (tri_rows + 1) // 2 + full * seq_k


def score_elements(shape: AttnShape) -> int:
    """Score matrix elements that are actually needed (the causal triangle when causal)."""
    s = shape
    per_head = causal_pairs(s.seq_q, s.seq_k) if s.causal else s.seq_q * s.seq_k
    return s.batch * s.heads * per_head


def qkvo_bytes(shape: AttnShape, elem_bytes: int) -> int:
    """Compulsory HBM bytes: read Q, K, V once and write O once."""
    s = shape
    return elem_bytes * s.batch * s.heads * (2 * s.seq_q + 2 * s.seq_k) * s.head_dim


def bytes_1pass(shape: AttnShape, elem_bytes: int) -> int:
    """Minimum HBM bytes of the 1-pass kernel: Q, K, V read once, O written once."""
    return qkvo_bytes(shape, elem_bytes)


def bytes_2pass(shape: AttnShape, elem_bytes: int) -> int:
    """Minimum HBM bytes of the 2-pass kernels.

    Pass 1 reads Q and K and writes the fp32 row max and row sum; pass 2 reads Q, K, V and
    the two statistics and writes O.
    """
    s = shape
    bh = s.batch * s.heads
    q = bh * s.seq_q * s.head_dim * elem_bytes
    k = bh * s.seq_k * s.head_dim * elem_bytes
    stats = bh * s.seq_q * 4 * 2  # fp32 max and sum
    pass1 = q + k + stats
    pass2 = qkvo_bytes(shape, elem_bytes) + stats
    return pass1 + pass2


def bytes_unfused(shape: AttnShape, elem_bytes: int) -> int:
    """Minimum HBM bytes of the unfused baseline (scores materialized in the input dtype).

    QK^T reads Q, K and writes S; softmax reads S and writes P in place; P.V reads P, V and
    writes O. Only the needed scores (causal triangle) are moved. The softmax kernel's
    second read of S for long rows (two-loop variant) is not counted here.
    """
    scores = score_elements(shape) * elem_bytes
    return qkvo_bytes(shape, elem_bytes) + 4 * scores


def smem_bytes_1pass(block_m: int, block_n: int, head_dim: int, num_stages: int, elem: int) -> int:
    """Estimated shared memory of the 1-pass kernel: Q tile plus pipelined K and V buffers."""
    buffers = max(num_stages - 1, 1)
    return elem * (block_m * head_dim + 2 * buffers * block_n * head_dim)


def device_smem_limit() -> int:
    """Shared memory per block (opt-in maximum) of the current CUDA device; 227 KiB if none."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        limit = getattr(props, "shared_memory_per_block_optin", 0)
        if limit:
            return int(limit)
    return 227 * 1024


def default_scale(head_dim: int) -> float:
    """Softmax scale 1/sqrt(head_dim)."""
    return 1.0 / math.sqrt(head_dim)


def use_tma(device_type: str) -> bool:
    """Whether to load tiles through tensor descriptors (TMA on sm_90+) rather than block pointers.

    Tensor descriptors need Hopper or newer on the GPU; the CPU interpreter handles both paths.
    """
    import torch

    if device_type != "cuda":
        return False
    return torch.cuda.get_device_capability()[0] >= 9


_ALLOCATOR_SET = False
_SCRATCH: dict[tuple[int, int], tuple[int, object]] = {}  # (stream, device) -> (bytes, buffer)
_SCRATCH_OLD: list[object] = []  # outgrown buffers, kept alive (a captured graph may use them)
_SCRATCH_MIN = 1 << 20


def _scratch_alloc(size: int, alignment: int, stream: int) -> int:
    """Triton global-scratch allocator: one reused buffer per stream, returned as a raw pointer.

    In-kernel tensor descriptors (`tl.make_tensor_descriptor`) need global scratch: Triton's
    launcher asks the allocator for grid_size * 128 * (descriptors) bytes on every launch.
    Scratch only lives for one launch and launches on one stream run in order, so one buffer
    per stream serves every launch; it grows when a bigger grid asks (the old buffer is kept
    alive, so graphs captured with it stay valid). Returning an int instead of a tensor also
    spares Triton's launcher the `data_ptr()` call and the `cuPointerGetAttribute` check.
    Cost per launch: a dict lookup (vs a `torch.empty` per launch before).
    """
    import torch

    key = (stream, torch.cuda.current_device())  # the null stream is 0 on every device
    entry = _SCRATCH.get(key)
    if entry is None or entry[0] < size:
        nbytes = max(_SCRATCH_MIN, 2 * size)
        buf = torch.empty(nbytes, device="cuda", dtype=torch.int8)  # caching-allocator aligned
        if entry is not None:
            _SCRATCH_OLD.append(entry[1])
        entry = (nbytes, buf)
        _SCRATCH[key] = entry
        _SCRATCH_PTR[key] = buf.data_ptr()
    return _SCRATCH_PTR[key]


_SCRATCH_PTR: dict[tuple[int, int], int] = {}


def ensure_allocator() -> None:
    """Give Triton a scratch allocator once per process (in-kernel tensor descriptors need it).

    `triton.set_allocator` is called only the first time; later calls return at once.
    """
    global _ALLOCATOR_SET
    if _ALLOCATOR_SET:
        return
    triton.set_allocator(_scratch_alloc)
    _ALLOCATOR_SET = True


# ----------------------------------------------------------------------------- jit helpers


@triton.jit
def make_tile_source(
    base, seq, stride_s, ROWS: tl.constexpr, HEAD_DIM: tl.constexpr, USE_TMA: tl.constexpr
):
    """A (seq, HEAD_DIM) view of one head: a tensor descriptor (TMA) or the base pointer."""
    if USE_TMA:
        return tl.make_tensor_descriptor(
            base, shape=[seq, HEAD_DIM], strides=[stride_s, 1], block_shape=[ROWS, HEAD_DIM]
        )
    else:
        return base


@triton.jit
def load_tile(
    src, row, seq, stride_s, ROWS: tl.constexpr, HEAD_DIM: tl.constexpr, USE_TMA: tl.constexpr
):
    """Load rows [row, row + ROWS) of a head; rows past `seq` read as zero."""
    if USE_TMA:
        return src.load([row, 0])
    else:
        ptr = tl.make_block_ptr(
            src,
            shape=(seq, HEAD_DIM),
            strides=(stride_s, 1),
            offsets=(row, 0),
            block_shape=(ROWS, HEAD_DIM),
            order=(1, 0),
        )
        return tl.load(ptr, boundary_check=(0,), padding_option="zero")


@triton.jit
def store_tile(
    dst,
    row,
    seq,
    stride_s,
    value,
    ROWS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """Store rows [row, row + ROWS) of a head; rows past `seq` are dropped."""
    if USE_TMA:
        dst.store([row, 0], value)
    else:
        ptr = tl.make_block_ptr(
            dst,
            shape=(seq, HEAD_DIM),
            strides=(stride_s, 1),
            offsets=(row, 0),
            block_shape=(ROWS, HEAD_DIM),
            order=(1, 0),
        )
        tl.store(ptr, value, boundary_check=(0,))


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


@triton.jit
def online_step(
    acc,
    l_i,
    m_i,
    qk,
    v_src,
    start_n,
    seq_k,
    stride_vs,
    qk_scale,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    SCALED: tl.constexpr,
    LAZY_RESCALE: tl.constexpr,
    USE_TMA: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    POLY_EXP: tl.constexpr = 0,
    USE_ASM: tl.constexpr = False,
):
    """One key tile of the online softmax (1-pass): update max, sum and the accumulator.

    `qk` holds raw scores q.k (SCALED=False: the log2-domain score is qk * qk_scale, folded
    into one FMA inside the exp2) or scores already in the log2 domain (SCALED=True: masked
    tiles, or Q pre-scaled by qk_scale), masked entries -inf.
    LAZY_RESCALE (FlashAttention-4's conditional rescale): the running max `m_i` is only
    raised, and the accumulator and sum rescaled, when some row's max grew by more than
    RESCALE_TAU (log2 units) in this tile; otherwise the stale max is kept and p <= 2**TAU.
    The final O = acc / l is exact either way (acc and l share the same stale max). The test
    is one reduction over the tile's rows, so the rescale is skipped for the whole tile.
    POLY_EXP (FlashAttention-4's exponential split): the probabilities come from
    `exp2_split(s, POLY_EXP, USE_ASM)`: POLY_EXP of every 4 on the FMA units (polynomial), the
    rest on the MUFU; the rescale factors stay on `tl.math.exp2` (one per row).
    """
    if SCALED:
        m_new = tl.maximum(m_i, tl.max(qk, 1))
    else:
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
    if LAZY_RESCALE:
        if tl.max(m_new - m_i, 0) > RESCALE_TAU:
            alpha = tl.math.exp2(m_i - m_new)
            acc = acc * alpha[:, None]
            l_i = l_i * alpha
            m_i = m_new
    else:
        alpha = tl.math.exp2(m_i - m_new)
        acc = acc * alpha[:, None]
        l_i = l_i * alpha
        m_i = m_new
    if SCALED:
        p = exp2_split(qk - m_i[:, None], POLY_EXP, USE_ASM)
    else:
        p = exp2_split(qk * qk_scale - m_i[:, None], POLY_EXP, USE_ASM)
    l_i = l_i + tl.sum(p, 1)
    v = load_tile(v_src, start_n, seq_k, stride_vs, BLOCK_N, HEAD_DIM, USE_TMA)
    acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
    return acc, l_i, m_i


@triton.jit
def attn_inner(
    acc,
    l_i,
    m_i,
    q,
    k_src,
    v_src,
    lo,
    hi,
    offs_m,
    seq_k,
    stride_ks,
    stride_vs,
    qk_scale,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    MODE: tl.constexpr,
    MASKED: tl.constexpr,
    CAUSAL: tl.constexpr,
    USE_TMA: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    PRESCALED: tl.constexpr = False,
    LAZY_RESCALE: tl.constexpr = False,
    WARP_SPECIALIZE: tl.constexpr = False,
    POLY_EXP: tl.constexpr = 0,
    USE_ASM: tl.constexpr = False,
):
    """Walk key tiles [lo, hi) for one query tile; the only attention inner loop.

    Scores live in the log2 domain: s = (q.k) * qk_scale with qk_scale = scale * log2(e).
    MASKED tiles mask keys >= seq_k and, when CAUSAL, keys after the query (j > i); unmasked
    tiles do no mask arithmetic at all. MODE_ONLINE keeps a running max `m_i`, sum `l_i`
    and rescales `acc` (`online_step`); MODE_STATS only updates `m_i`, `l_i`; MODE_OUTPUT
    takes the final `m_i` and 1/l (passed in `l_i`) and accumulates exact probabilities times V.

    1-pass variants (MODE_ONLINE only; all default off, the 2-pass kernel never sets them):
    PRESCALED: `q` was multiplied by qk_scale in the prologue, so scores need no scaling.
    LAZY_RESCALE, POLY_EXP (with USE_ASM): see `online_step`.
    WARP_SPECIALIZE: the unmasked MODE_ONLINE loop carries `tl.range(warp_specialize=True)`
    (one loop; the flag is a constexpr computed from WARP_SPECIALIZE, MODE and MASKED). On
    sm_90 Triton 3.6 hands such loops to `nvidia.passes.hopper.add_hopper_warpspec`: one
    producer warp group issuing the tensor-descriptor (TMA) loads that feed the wgmma, and one
    or two consumer warp groups (data-partitioned along BLOCK_M). Per the pass source
    (third_party/nvidia/hopper/lib/Transforms/WarpSpecialization.cpp) it does nothing, silently,
    unless: num_warps == 4 (the consumers then bring the kernel to 8 or 12 warps), the loop's
    num_stages > 1, and no `scf.if` in the kernel has an else region (a runtime `if` that
    assigns values has one: LAZY_RESCALE turns it off; constexpr `if`s are fine). Compiled for
    sm_90 on a CPU host (`triton.compile(..., target=GPUTarget("cuda", 90, 32))`): with 4
    warps it builds 1 producer + 2 consumer warp groups (12 warps; 128x128 hd128 needs 197 KB
    shared memory at 2 stages, 263 KB at 3: too much); it fails to compile ("PassManager::run
    failed", an MLIR dominance assertion) with block-pointer loads (USE_TMA off) or when the
    masked key loop follows, so callers drop that loop (`attn_rows` MASKED_TAIL). sm_100 uses
    a different pass; the interpreter ignores the keyword.
    (Tried and dropped, 2026-12: issuing the next tile's QK^T before this tile's softmax by
    hand. Triton 3.6 waits for that wgmma right after issuing it (WARPGROUP.DEPBAR.LE gsb0,
    0x0 before the first MUFU.EX2 in the SASS), so nothing overlaps, and with 128x128 tiles
    the extra K buffer exceeds shared memory.)
    """
    offs_n = tl.arange(0, BLOCK_N)
    ws: tl.constexpr = WARP_SPECIALIZE and MODE == 0 and not MASKED
    if True:  # one loop; the body is chosen by constexpr flags
        for n0 in tl.range(lo, hi, BLOCK_N, warp_specialize=ws):
            start_n = tl.multiple_of(n0, BLOCK_N)
            k = load_tile(k_src, start_n, seq_k, stride_ks, BLOCK_N, HEAD_DIM, USE_TMA)
            qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
            if MODE == 0:
                if MASKED:
                    keep = (start_n + offs_n)[None, :] < seq_k
                    if CAUSAL:
                        keep = keep & (offs_m[:, None] >= (start_n + offs_n)[None, :])
                    if PRESCALED:
                        qk = tl.where(keep, qk, float("-inf"))
                    else:
                        qk = tl.where(keep, qk * qk_scale, float("-inf"))
                    acc, l_i, m_i = online_step(
                        acc, l_i, m_i, qk, v_src, start_n, seq_k, stride_vs, qk_scale,
                        BLOCK_N, HEAD_DIM, True, LAZY_RESCALE, USE_TMA, DOT_PRECISION,
                        POLY_EXP, USE_ASM,
                    )  # fmt: skip
                else:
                    acc, l_i, m_i = online_step(
                        acc, l_i, m_i, qk, v_src, start_n, seq_k, stride_vs, qk_scale,
                        BLOCK_N, HEAD_DIM, PRESCALED, LAZY_RESCALE, USE_TMA, DOT_PRECISION,
                        POLY_EXP, USE_ASM,
                    )  # fmt: skip
            else:
                if MASKED:
                    keep = (start_n + offs_n)[None, :] < seq_k
                    if CAUSAL:
                        keep = keep & (offs_m[:, None] >= (start_n + offs_n)[None, :])
                    qk = tl.where(keep, qk * qk_scale, float("-inf"))
                    if MODE == 2:
                        p = tl.math.exp2(qk - m_i[:, None])
                    else:
                        m_ij = tl.maximum(m_i, tl.max(qk, 1))
                        p = tl.math.exp2(qk - m_ij[:, None])
                else:
                    if MODE == 2:
                        p = tl.math.exp2(qk * qk_scale - m_i[:, None])
                    else:
                        m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
                        p = tl.math.exp2(qk * qk_scale - m_ij[:, None])
                if MODE == 2:
                    v = load_tile(v_src, start_n, seq_k, stride_vs, BLOCK_N, HEAD_DIM, USE_TMA)
                    p = p * l_i[:, None]  # l_i holds 1 / row sum in this mode
                    acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
                else:
                    alpha = tl.math.exp2(m_i - m_ij)
                    l_i = l_i * alpha + tl.sum(p, 1)
                    m_i = m_ij
    return acc, l_i, m_i


@triton.jit
def attn_rows(
    q_src,
    k_src,
    v_src,
    acc,
    l_i,
    m_i,
    start_m,
    seq_q,
    seq_k,
    stride_qs,
    stride_ks,
    stride_vs,
    qk_scale,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    MODE: tl.constexpr,
    CAUSAL: tl.constexpr,
    USE_TMA: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    PRESCALE_Q: tl.constexpr = False,
    LAZY_RESCALE: tl.constexpr = False,
    WARP_SPECIALIZE: tl.constexpr = False,
    POLY_EXP: tl.constexpr = 0,
    USE_ASM: tl.constexpr = False,
    MASKED_TAIL: tl.constexpr = True,
):
    """One query tile of one head: unmasked key tiles first, then the masked ones.

    Key tiles that are fully visible (below the causal diagonal and inside seq_k) run without
    masks; the diagonal tiles (causal) or the ragged last tile (seq_k % BLOCK_N != 0) run
    with masks; tiles above the diagonal are never visited. Needs BLOCK_M % BLOCK_N == 0
    when CAUSAL so that the diagonal starts on a key-tile boundary. PRESCALE_Q (MODE_ONLINE):
    multiply the Q tile by qk_scale once (in fp32, rounded back to the input dtype) so that
    scores come out of the dot in the log2 domain; LAZY_RESCALE, WARP_SPECIALIZE (unmasked
    loop only), POLY_EXP and USE_ASM (all MODE_ONLINE only): see `attn_inner`.
    MASKED_TAIL=False drops the masked loop: only for callers that know it is empty (not
    CAUSAL and seq_k % BLOCK_N == 0). Triton 3.6's Hopper warp specialization fails (an MLIR
    dominance assertion, "PassManager::run failed") when another key loop follows the
    specialized one, so the 1-pass launcher passes False with WARP_SPECIALIZE.
    """
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    q = load_tile(q_src, start_m * BLOCK_M, seq_q, stride_qs, BLOCK_M, HEAD_DIM, USE_TMA)
    if MODE == 0 and PRESCALE_Q:
        q = (q.to(tl.float32) * qk_scale).to(q.dtype)
    prescaled: tl.constexpr = MODE == 0 and PRESCALE_Q
    hi_full = (seq_k // BLOCK_N) * BLOCK_N
    hi = seq_k
    if CAUSAL:
        hi_full = tl.minimum(hi_full, start_m * BLOCK_M)
        hi = tl.minimum(hi, (start_m + 1) * BLOCK_M)
    acc, l_i, m_i = attn_inner(
        acc, l_i, m_i, q, k_src, v_src, 0, hi_full, offs_m, seq_k, stride_ks, stride_vs,
        qk_scale, BLOCK_N, HEAD_DIM, MODE, False, CAUSAL, USE_TMA, DOT_PRECISION,
        prescaled, LAZY_RESCALE, WARP_SPECIALIZE, POLY_EXP, USE_ASM,
    )  # fmt: skip
    if MASKED_TAIL:
        acc, l_i, m_i = attn_inner(
            acc, l_i, m_i, q, k_src, v_src, hi_full, hi, offs_m, seq_k, stride_ks, stride_vs,
            qk_scale, BLOCK_N, HEAD_DIM, MODE, True, CAUSAL, USE_TMA, DOT_PRECISION,
            prescaled, LAZY_RESCALE, False, POLY_EXP, USE_ASM,
        )  # fmt: skip
    return acc, l_i, m_i


# ----------------------------------------------------------------------------- launcher helpers


def check_qkv(q, k, v):  # type: ignore[no-untyped-def]
    """Validate (batch, heads, seq, head_dim) inputs; return them with a contiguous last dim."""
    import torch

    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D (batch, heads, seq, head_dim)")
    if k.shape != v.shape:
        raise ValueError(f"k and v shapes differ: {tuple(k.shape)} vs {tuple(v.shape)}")
    if q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} disagree on B, H or D")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError("q, k, v must share one dtype")
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"unsupported dtype {q.dtype} (fp16, bf16 or fp32)")
    d = q.shape[3]
    if d not in (16, 32, 64, 128, 256):
        raise ValueError(f"head_dim must be a power of two in 16..256, got {d}")
    return tuple(t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))


def check_tiling(block_m: int, block_n: int, causal: bool) -> None:
    """Reject tilings the kernels cannot run."""
    for name, b in (("block_m", block_m), ("block_n", block_n)):
        if b < 16 or b & (b - 1):
            raise ValueError(f"{name} must be a power of two >= 16, got {b}")
    if causal and block_m % block_n:
        raise ValueError(f"causal needs block_m % block_n == 0, got {block_m}, {block_n}")


def dot_precision(dtype: object) -> str:
    """tl.dot input precision: exact fp32 for fp32 inputs (no TF32), default otherwise."""
    import torch

    return "ieee" if dtype == torch.float32 else "tf32"


def prune_by_smem(configs, named_args, **kwargs):  # type: ignore[no-untyped-def]
    """Autotune early prune: drop configs over the device's shared memory or invalid for causal.

    Shared by the 1-pass and 2-pass autotuned entries (same tile footprint).
    """
    head_dim = kwargs.get("HEAD_DIM", named_args.get("HEAD_DIM"))
    causal = kwargs.get("CAUSAL", named_args.get("CAUSAL", False))
    elem = named_args["Q"].element_size()
    limit = device_smem_limit()
    kept = []
    for c in configs:
        bm, bn = c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]
        if causal and bm % bn:
            continue
        if smem_bytes_1pass(bm, bn, head_dim, c.num_stages, elem) > limit:
            continue
        kept.append(c)
    return kept or configs[:1]


def autotune_configs() -> list[triton.Config]:
    """Candidate tilings for the autotuned entries (pruned per shape by `prune_by_smem`)."""
    out = []
    for bm, bn, warps, stages in [
        (128, 64, 4, 3),
        (128, 64, 8, 3),
        (128, 128, 8, 3),
        (128, 128, 8, 2),
        (128, 64, 4, 4),
        (128, 128, 4, 3),
        (64, 64, 4, 3),
        (64, 64, 4, 4),
    ]:
        out.append(
            triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=warps, num_stages=stages)
        )
    return out


def default_tiling(head_dim: int) -> tuple[int, int, int, int]:
    """Default (block_m, block_n, num_warps, num_stages) for the fused kernels on Hopper."""
    # From benchmarks/tune_attn.py on the H200 (2026-11-30): best at 8K tokens per sequence.
    if head_dim <= 64:
        return 128, 128, 4, 3
    return 128, 128, 8, 3


SMALL_TILING = (64, 64, 4, 3)  # under-filled grids: twice the programs, 2 per SM (hd <= 128)


def pick_tiling(
    batch: int, heads: int, seq_q: int, head_dim: int, n_sm: int = 132
) -> tuple[int, int, int, int]:
    """The 1-pass tiling used when the caller fixes none: small problems get BLOCK_M 64.

    With BLOCK_M = 128 a problem has batch * heads * ceil(seq_q / 128) programs; when that is
    under one per multiprocessor the grid leaves SMs idle and each program walks the whole
    key range alone, so halving BLOCK_M doubles the programs and halves the critical path
    (64x64, 4 warps, 3 stages: the best small-shape tiling of the 2026-11-30 H200 validation
    run, and one of the validation suite's 1-pass tilings). Otherwise `default_tiling`.
    """
    if batch * heads * -(-seq_q // 128) < n_sm:
        return SMALL_TILING
    return default_tiling(head_dim)


_N_SM: dict[int, int] = {}


def num_sms(device_index: int) -> int:
    """Multiprocessor count of a CUDA device (cached); 132 (H200/H100 SXM) for CPU tensors."""
    n = _N_SM.get(device_index)
    if n is None:
        import torch

        n = 132
        if device_index >= 0 and torch.cuda.is_available():
            n = torch.cuda.get_device_properties(device_index).multi_processor_count
        _N_SM[device_index] = n
    return n
