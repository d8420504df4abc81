"""Kernel facts without torch: shape, families and their names, schedules, limits, formulas.

The attention shape, the kernel families with every name they go by, the 1-pass schedules,
tile limits, and the FLOP and byte formulas. The one home of these facts: the Triton kernels
(`kernels/`), the GPU mappers (`mappers/gpu_*.py`) and the GPU validation
(`reports/validation.py`) import them from here. Only the standard library and `einsum_ir`
(the mask as bands) are imported, so mappers and reports can read it on any machine.

Layout everywhere: (batch, heads, seq, head_dim), last dimension contiguous. The Triton
kernels' causal mask is top-left aligned: query i sees keys 0..i. A shape may carry any mask
of the linear family (`AttnShape.mask`, bands of `einsum_ir.analysis.tiles`) and grouped
K/V heads (`kv_group`) for the GPU mappers' modelled kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnsim.einsum_ir.analysis.tiles import Band, TileCounts, mask_points

# The kernels' two masks as bands: every pair, and top-left causal (key m <= query p).
NO_MASK: tuple[Band, ...] = (Band(),)
CAUSAL_TOP_LEFT: tuple[Band, ...] = (Band(d_hi=0),)


def kernel_window(bands: tuple[Band, ...]) -> tuple[int, int] | None:
    """(window, sinks) when `bands` is the 1-pass Triton kernel's sliding window, else None.

    The kernel (`attention_fwd(causal=True, window=W, sinks=S)`) keeps key m for query p when
    0 <= p - m < W, or m < S and m <= p (top-left aligned, like its causal mask): the bands
    (d_lo = 1 - W, d_hi = 0) and, with sinks, (m_hi = S - 1, d_hi = 0).
    """
    window = [b for b in bands if b == Band(d_lo=b.d_lo, d_hi=0) and b.d_lo is not None]
    sinks = [b for b in bands if b == Band(m_hi=b.m_hi, d_hi=0) and b.m_hi is not None]
    if len(window) != 1 or len(sinks) > 1 or len(window) + len(sinks) != len(bands):
        return None
    w = 1 - (window[0].d_lo or 0)
    s = (sinks[0].m_hi or 0) + 1 if sinks else 0
    return (w, s) if w >= 1 and s >= 0 else None


# ----------------------------------------------------------------------------- the shape


@dataclass(frozen=True, slots=True)
class TileLayout:
    """A block-sparse layout as the kernel runs it: the key tiles each query tile visits.

    One layout for every (batch, head) of a call (`attention_fwd(block_sparse=)` with a
    `BlockSparse` of Lb = Lh = 1). Full tiles run unmasked, partial tiles with the element
    mask (keys past seq_k, causal, segments), other tiles are never loaded.

    Attributes:
        block_q: Query rows per tile (the kernel's BLOCK_M; a call must use it).
        block_k: Keys per tile (BLOCK_N).
        full: Full key tiles per query tile.
        partial: Partial key tiles per query tile.
        points: Visible (query, key) pairs of one head.
        key_tiles: Key tiles of the plane, ceil(seq_k / block_k).
        causal: The layout's partial tiles mask keys after the query (`BlockSparse.causal`):
            the kernel then launches each head's query tiles last first.
        segments: Its partial tiles also compare segment (document) ids.
        window_bounds: Further bounds its partial tiles test per element: a 2-D neighborhood
            window's four (each key's coordinates against the row's [y0, y1) x [x0, x1),
            `kernels.triton.neighborhood_mask.in_windows`); 0 for none.
    """

    block_q: int
    block_k: int
    full: tuple[int, ...]
    partial: tuple[int, ...]
    points: int
    key_tiles: int
    causal: bool = False
    segments: bool = False
    window_bounds: int = 0

    def __post_init__(self) -> None:
        if len(self.full) != len(self.partial) or not self.full:
            raise ValueError("TileLayout.full and .partial need one count per query tile")
        if min(self.block_q, self.block_k, self.key_tiles) < 1 or self.points < 0:
            raise ValueError("TileLayout sizes must be positive and its points >= 0")
        pairs = zip(self.full, self.partial, strict=True)
        if any(a < 0 or m < 0 or a + m > self.key_tiles for a, m in pairs):
            raise ValueError(f"TileLayout: a query tile lists over {self.key_tiles} key tiles")

    def counts(self) -> TileCounts:
        """The layout as the tile classification of the GPU model (`TileCounts`)."""
        full, partial = sum(self.full), sum(self.partial)
        tq = len(self.full)
        return TileCounts(
            self.block_q, self.block_k, tq, self.key_tiles, full, partial,
            tq * self.key_tiles - full - partial, self.points, self.full, self.partial,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class AttnShape:
    """One attention problem: sizes, mask, head grouping, element type and its bytes.

    Attributes:
        batch: B.
        heads: H (query heads).
        seq_q: P, query positions.
        seq_k: M, key/value positions.
        head_dim: E, the query/key head dimension (contracted by QK^T).
        value_dim: F, the value head dimension.
        causal: The kernels' causal flag: the mask is top-left aligned causal. With `mask`
            given it must say whether `mask` is exactly that (`CAUSAL_TOP_LEFT`).
        dtype: Element type of Q, K, V and O ("fp16", "bf16", "fp32").
        elem_bytes: Bytes per element of `dtype`.
        mask: The visible (query, key) pairs of one head as a union of bands; empty: the
            kernels' mask named by `causal` (`bands`).
        kv_group: Query heads per key/value head (GQA's R = H / G; 1: multi-head). K and V
            have batch * heads / kv_group heads.
        layout: A block-sparse layout (`TileLayout`) instead of a mask: the kernel visits
            exactly its tiles, at its tile sizes; `causal` is then False (the layout's
            partial tiles carry the element mask) and `mask` empty.
    """

    batch: int
    heads: int
    seq_q: int
    seq_k: int
    head_dim: int
    value_dim: int
    causal: bool
    dtype: str
    elem_bytes: int
    mask: tuple[Band, ...] = ()
    kv_group: int = 1
    layout: TileLayout | None = None

    def __post_init__(self) -> None:
        names = ("batch", "heads", "seq_q", "seq_k", "head_dim", "value_dim", "elem_bytes")
        for name in (*names, "kv_group"):
            if getattr(self, name) < 1:
                raise ValueError(f"AttnShape.{name} must be >= 1, got {getattr(self, name)}")
        if self.mask and self.causal != (self.mask == CAUSAL_TOP_LEFT):
            raise ValueError(
                f"AttnShape.causal={self.causal} contradicts its mask {self.mask} (causal "
                "names the top-left causal mask)"
            )
        lay = self.layout
        if lay is not None:
            if self.causal or self.mask:
                raise ValueError("AttnShape with a layout takes no causal flag or mask")
            tq, tk = -(-self.seq_q // lay.block_q), -(-self.seq_k // lay.block_k)
            if (len(lay.full), lay.key_tiles) != (tq, tk):
                raise ValueError(
                    f"AttnShape layout has {len(lay.full)} x {lay.key_tiles} tiles; "
                    f"{self.seq_q} x {self.seq_k} at {lay.block_q} x {lay.block_k} has {tq} x {tk}"
                )
        if (self.batch * self.heads) % self.kv_group:
            raise ValueError(
                f"AttnShape.kv_group {self.kv_group} does not divide batch x heads "
                f"{self.batch * self.heads}"
            )

    @property
    def bands(self) -> tuple[Band, ...]:
        """The mask as bands: `mask`, else the kernels' mask that `causal` names."""
        return self.mask or (CAUSAL_TOP_LEFT if self.causal else NO_MASK)

    @property
    def is_dense(self) -> bool:
        """Whether every (query, key) pair is visible (no mask, no layout)."""
        return self.layout is None and self.bands == NO_MASK

    @property
    def points(self) -> int:
        """Visible (query, key) pairs of one head, exactly."""
        if self.layout is not None:
            return self.layout.points
        return mask_points(self.bands, self.seq_q, self.seq_k)

    @property
    def kv_heads(self) -> int:
        """Key/value heads over the whole batch: batch * heads / kv_group."""
        return self.batch * self.heads // self.kv_group

    @property
    def flops(self) -> float:
        """FLOPs of the visible pairs (`visible_flops`) in floats, as the GPU mappers report."""
        return float(visible_flops(self))


def kernel_shape(
    batch: int,
    heads: int,
    seq_q: int,
    seq_k: int,
    head_dim: int,
    causal: bool,
    dtype: str = "bf16",
    elem_bytes: int = 2,
) -> AttnShape:
    """A shape as the kernels take it: value_dim = head_dim (q, k, v share one head dim).

    The timing suites list shapes without their element type (a run picks fp16 or bf16,
    both 2 bytes), so the defaults are bf16 and 2 bytes.
    """
    return AttnShape(batch, heads, seq_q, seq_k, head_dim, head_dim, causal, dtype, elem_bytes)


# ----------------------------------------------------------------------------- families


@dataclass(frozen=True, slots=True)
class KernelFamily:
    """One attention kernel family and every name it goes by.

    Attributes:
        name: The canonical name ("1pass"); also the key of calibration `host_call_us`.
        cascade: The built-in multi-head cascade the family computes (without the
            "-causal" suffix of its causal form).
        passes: Passes over the keys (the `Result.passes` of its mapper).
        launches: Kernels one call launches.
    """

    name: str
    cascade: str
    passes: int
    launches: int

    @property
    def mapper(self) -> str:
        """The GPU mapper's registered name: gpu-<family>."""
        return f"gpu-{self.name}"

    @property
    def measured(self) -> str:
        """The measurement family (the CSV `family` column): triton-<family>."""
        return f"triton-{self.name}"


FAMILIES: tuple[KernelFamily, ...] = (
    KernelFamily("1pass", "attention-1pass-mh", passes=1, launches=1),
    KernelFamily("2pass", "attention-2pass-tilemax-mh", passes=2, launches=2),
    KernelFamily("unfused", "attention-3pass-mh", passes=3, launches=3),
)
FAMILY_NAMES: tuple[str, ...] = tuple(f.name for f in FAMILIES)
MEASURED_FAMILIES: tuple[str, ...] = tuple(f.measured for f in FAMILIES)
# Measurement families of PyTorch's SDPA backends: timed for reference, no model of their own.
SDPA_FAMILIES = ("sdpa-flash", "sdpa-cudnn", "sdpa-efficient")


def family(name: str) -> KernelFamily:
    """The family of any of its names: canonical, mapper, measurement family or cascade.

    A cascade name may carry the "-causal" suffix. Raises KeyError listing the known names.
    """
    for f in FAMILIES:
        if name in (f.name, f.mapper, f.measured, f.cascade, f.cascade + "-causal"):
            return f
    known = ", ".join(n for f in FAMILIES for n in (f.name, f.mapper, f.measured, f.cascade))
    raise KeyError(f"unknown kernel family {name!r} (known names: {known})")


# The 1-pass kernel with a block-sparse layout (`attention_fwd(block_sparse=)`): its measurement
# family name (benchmarks/blocksparse_probe.py, blocksparse_suite.py). Not in FAMILIES (no
# cascade names a layout): `mappers.gpu.blocksparse` prices a `TileLayout` on the 1-pass plan.
BLOCKSPARSE_MEASURED = "triton-blocksparse"


# The backward (kernels.triton.attn_bwd, family `triton-bwd`): its candidate tilings (block_m:
# the query tile the dK/dV kernel streams, block_n: the key tile it holds), searched by the
# GPU model (mappers.gpu.backward) and timed by benchmarks/bwd_probe.py.
BWD_TILINGS: tuple[tuple[int, int, int, int], ...] = (
    (32, 128, 4, 5),  # the tutorial's choice
    (32, 128, 4, 3),
    (32, 128, 8, 3),
    (64, 128, 8, 3),
    (64, 64, 4, 3),
    (32, 64, 4, 4),
)
# Causal backward launch order: the programs of BWD_HEAD_GROUP heads go tile-major, the
# longest tiles (most query / key tiles to walk) of all of them first, then the next group.
# Head-major order (one head's tiles, then the next head's) starts the last head's longest
# tile in the final wave, a tail of up to one whole row of steps; interleaving a group of
# heads leaves only short tiles for the end. A group rather than all heads keeps the
# programs that share one head's rows (and L2) near each other in time.
BWD_HEAD_GROUP = 8
# The causal dK/dV kernel walks its query tiles in one loop that masks every tile (False), or
# the diagonal tiles in a loop of their own and the rest unmasked (True: builds before
# 2026-12-06, a file's `diag_loop` column says which); one loop spills less on sm_90.
BWD_DIAG_LOOP = False
# The dK/dV kernel's step issues dP^T = V dO^T right after S^T = K Q^T (True), so that the
# exponent of P^T overlaps that product on the tensor cores (compiled for sm_90 the MUFU.EX2s
# sit between its HGMMAs), or after the dV product (False: the Triton tutorial's order, every
# build before 2026-12-07; a file's `dp_first` column says which). Timed on an H100 in one run
# (kernels/measurements/h100/bwd-dpfirst-h100-2026-12-07.csv): whole calls 0.93-0.97x at head
# dim 128 without a mask, 0.96-1.02x causal, 0.99-1.00x at 64; the dK/dV kernel alone 0.91-0.93x
# dense and 0.94-0.99x causal at head dim 128 (bwd-kernels-dpfirst-*). The dQ kernel keeps its
# order (alone: 0.95-1.04x, no gain).
BWD_DP_FIRST = True
# The calibration modes of that build's dK/dV kernel carry this suffix (`bwd-dkdv-dpfirst`,
# `bwd-dkdv-atomic-dpfirst[-wW]`; kernels.calibrate.microbench_bwd, mappers.gpu.backward).
BWD_DP_FIRST_SUFFIX = "-dpfirst"
# The forward kernel's causal launch order (kernels.triton.attn_fwd): 1 (head-major, each
# head's longest rows first) is what every committed forward measurement ran and the GPU
# model prices; benchmarks/fwd_order_probe.py times other groups against it.
FWD_HEAD_GROUP = 1


# ----------------------------------------------------------------------------- schedules


SCHEDULES = (
    "plain",
    "pingpong",
)  # the 1-pass family's kernels (kernels.triton.attn_fwd.attention_fwd)


def host_call_key(family_name: str, schedule: str = "plain") -> str:
    """The calibration's `host_call_us` key of a launcher: the family, then any other schedule."""
    return family_name if schedule == "plain" else f"{family_name}-{schedule}"


# ----------------------------------------------------------------------------- tile limits

KERNEL_DTYPES = ("fp16", "bf16")  # what the kernels are timed in (kernels.bench.measure)
HEAD_DIMS = (16, 32, 64, 128, 256)  # head dims the Triton kernels take (common.check_qkv)
MIN_BLOCK = 16  # BLOCK_M and BLOCK_N: powers of two from 16 (common.check_tiling)
SOFTMAX_MAX_BLOCK = 8192  # kernels.triton.attn_unfused: longest row its softmax holds in registers
# Triton specializes an integer argument divisible by this: score rows of a multiple of it
# compile with vector accesses (kernels.triton.attn_unfused's VEC), other rows with scalar ones
ALIGNED_ROW_KEYS = 16
# kernels.gluon.attn_pingpong (Hopper, `pingpong` schedule): BLOCK_M with its consumer warps,
# BLOCK_N,
# K/V slots (num_stages), head dims (E = F), and the registers per consumer thread (setmaxnreg
# 240: one block takes the SM's register file)
PINGPONG_BLOCK = (128, 8)
PINGPONG_BLOCK_N = (64, 128)
PINGPONG_STAGES = (2, 3)
PINGPONG_HEAD_DIMS = (64, 128)
PINGPONG_REGISTERS = 240
# The ping-pong tilings (BLOCK_M, BLOCK_N, warps, K/V slots) timed and searched, for each of
# PINGPONG_HEAD_DIMS: BLOCK_M 128 with 8 consumer warps, 3 K/V slots.
PINGPONG_TILINGS: tuple[tuple[int, int, int, int], ...] = ((128, 128, 8, 3), (128, 64, 8, 3))


def smem_bytes_1pass(
    block_m: int,
    block_n: int,
    head_dim: int,
    num_stages: int,
    elem_bytes: int,
    value_dim: int | None = None,
) -> int:
    """Shared memory of a fused (1-pass, or 2-pass output) program in bytes.

    The Q tile and max(num_stages - 1, 1) pipelined K and V buffers; value_dim defaults to
    head_dim.
    """
    f = head_dim if value_dim is None else value_dim
    buffers = max(num_stages - 1, 1)
    return elem_bytes * (block_m * head_dim + buffers * block_n * (head_dim + f))


def smem_bytes_pingpong(
    block_m: int,
    block_n: int,
    head_dim: int,
    num_stages: int,
    elem_bytes: int,
    value_dim: int | None = None,
) -> int:
    """Shared memory of a ping-pong program in bytes.

    Q (reused for O), num_stages K and V slots, and one 8-byte mbarrier per slot plus Q's;
    value_dim defaults to head_dim.
    """
    f = head_dim if value_dim is None else value_dim
    slots = elem_bytes * num_stages * block_n * (head_dim + f)
    return elem_bytes * block_m * head_dim + slots + 8 * (1 + num_stages)


# ----------------------------------------------------------------------------- formulas


def attn_flops(shape: AttnShape) -> int:
    """FLOPs as the measurement schema counts them: 2*B*H*Sq*Sk*(E + F), halved when causal.

    Two matmuls (QK^T over E and P.V over F), 2 FLOPs per multiply-add each: 4*B*H*Sq*Sk*D
    when E = F = D. The same count is used for every family, so TFLOP/s compare like with
    like (causal halves it regardless of the exact triangle size). It is the `flops` column
    of the committed measurement files, so it stays this convention; `visible_flops` counts
    the pairs a mask keeps exactly.
    """
    s = shape
    flops = 2 * s.batch * s.heads * s.seq_q * s.seq_k * (s.head_dim + s.value_dim)
    return flops // 2 if s.causal else flops


def visible_flops(shape: AttnShape) -> int:
    """FLOPs of the visible pairs: 2 * B * H * points * (E + F) (4*B*H*points*D when E = F).

    `points` = the exact number of (query, key) pairs of one head the mask keeps
    (`AttnShape.points`); a multiply-add counts 2.
    """
    s = shape
    return 2 * s.batch * s.heads * s.points * (s.head_dim + s.value_dim)


def causal_pairs(seq_q: int, seq_k: int) -> int:
    """Number of (i, j) pairs with j <= i (top-left aligned), 0 <= i < seq_q, 0 <= j < seq_k."""
    full = max(0, seq_q - seq_k)  # rows i >= seq_k see every key
    tri_rows = seq_q - full  # rows 0..min(seq_q, seq_k)-1 see i + 1 keys
    return tri_rows * (tri_rows + 1) // 2 + full * seq_k


def score_elements(shape: AttnShape) -> int:
    """Score matrix elements that are actually needed: the visible pairs of every head."""
    return shape.batch * shape.heads * shape.points


def qkvo_bytes(shape: AttnShape) -> int:
    """Compulsory HBM bytes: read Q, K, V once and write O once (K, V once per K/V head)."""
    s = shape
    q_o = s.batch * s.heads * s.seq_q * (s.head_dim + s.value_dim)
    k_v = s.kv_heads * s.seq_k * (s.head_dim + s.value_dim)
    return s.elem_bytes * (q_o + k_v)


def bytes_1pass(shape: AttnShape) -> int:
    """Minimum HBM bytes of the 1-pass kernel: Q, K, V read once, O written once."""
    return qkvo_bytes(shape)


def bytes_2pass(shape: AttnShape) -> int:
    """Minimum HBM bytes of the 2-pass kernels.

    Pass 1 reads Q and K and writes the fp32 row max and row sum; pass 2 reads Q, K, V and
    the two statistics and writes O.
    """
    s = shape
    bh = s.batch * s.heads
    q = bh * s.seq_q * s.head_dim * s.elem_bytes
    k = s.kv_heads * s.seq_k * s.head_dim * s.elem_bytes
    stats = bh * s.seq_q * 4 * 2  # fp32 max and sum
    pass1 = q + k + stats
    pass2 = qkvo_bytes(shape) + stats
    return pass1 + pass2


def bytes_unfused(shape: AttnShape) -> int:
    """Minimum HBM bytes of the unfused baseline (scores materialized in the input dtype).

    QK^T reads Q, K and writes S; softmax reads S and writes P in place; P.V reads P, V and
    writes O. Only the needed scores (the visible pairs) are moved. The softmax kernel's
    second read of S for long rows (two-loop variant) is not counted here.
    """
    scores = score_elements(shape) * shape.elem_bytes
    return qkvo_bytes(shape) + 4 * scores


def min_hbm_bytes(family_name: str, shape: AttnShape) -> int:
    """Minimum HBM bytes of one call of a family (`bytes_1pass`, `bytes_2pass`, `bytes_unfused`)."""
    formulas = {"1pass": bytes_1pass, "2pass": bytes_2pass, "unfused": bytes_unfused}
    return formulas[family(family_name).name](shape)


# ----------------------------------------------------------------------------- decode

# The decode kernels (kernels.triton.attn_decode): one query per sequence and query head
# against a KV cache; one launch; a segment is (sequence, K/V head[, head block]) and its key
# tiles are split among programs by one of three partitions; a segment with several
# contributors is merged by the contributor that finishes last (partial states in a
# workspace, an atomic counter per segment).
DECODE_STRATEGIES = ("unsplit", "splitk", "streamk")
# measurement family (CSV) of each strategy; "unsplit" is the split-K kernel with one split
DECODE_MEASURED = {
    "unsplit": "triton-decode-splitk",
    "splitk": "triton-decode-splitk",
    "streamk": "triton-decode-streamk",
}
DECODE_MAPPER = "gpu-decode"
DECODE_MIN_CHUNK = 512  # default_splits keeps chunks at least this many keys
DECODE_MIN_ROWS = 16  # packed query rows per tile at least (the tensor cores' minimum)
DECODE_MAX_ROWS = 64  # default head block: more query heads of a K/V head take more programs
MLA_HEAD_BLOCK = 32  # attention_mla_decode's default head block (64 spills on sm_90)


def decode_rows(query_heads: int) -> int:
    """Default rows of a decode program's query tile (`head_block`).

    The query heads of a K/V head as a power of two in 16..64 (attention_decode's default).
    """
    r = max(1, query_heads)
    return min(DECODE_MAX_ROWS, max(DECODE_MIN_ROWS, 1 << (r - 1).bit_length()))


def default_splits(segments: int, seq_k: int, sms: int) -> int:
    """The split-K kernel's default splits: about two waves of programs, chunks >= 512 keys."""
    want = max(1, -(-2 * sms // max(segments, 1)))
    return max(1, min(want, seq_k // DECODE_MIN_CHUNK))


@dataclass(frozen=True, slots=True)
class DecodeProgram:
    """What one decode program does: the key tiles it streams and the segments it touches.

    Attributes:
        tiles: Key tiles (BLOCK_N keys of K and V) it loads.
        pieces: Segments it works on (each: load the query rows, keep a softmax state).
        partials: Of those, the pieces it leaves as a partial state (the segment is split).
        merges: Partial states it merges: the contributors of the segments whose last piece
            it holds (the kernel merges in whichever contributor arrives last; the model
            gives the merge to the one holding the segment's last tiles).
    """

    tiles: int
    pieces: int
    partials: int = 0
    merges: int = 0


def decode_partition(
    seg_tiles: tuple[int, ...], strategy: str, splits: int = 1, programs: int = 0
) -> tuple[tuple[int, DecodeProgram], ...]:
    """The programs of one decode launch in launch order, as (count, program) runs.

    `seg_tiles`: key tiles of each segment (>= 1). "unsplit": one program per segment;
    "splitk": `splits` programs per segment, each `ceil(T / splits)` tiles (the last ones may
    be short or empty; the last full one merges); "streamk": `programs` programs, program p
    owning the flattened tiles [p * N // P, (p + 1) * N // P) across segment boundaries
    (N = all tiles).
    """
    if strategy not in DECODE_STRATEGIES:
        raise ValueError(f"unknown decode strategy {strategy!r} (one of {DECODE_STRATEGIES})")
    if not seg_tiles or min(seg_tiles) < 1:
        raise ValueError("every segment needs at least one key tile")
    runs: list[tuple[int, DecodeProgram]] = []

    def add(p: DecodeProgram, n: int = 1) -> None:
        if runs and runs[-1][1] == p:
            runs[-1] = (runs[-1][0] + n, p)
        else:
            runs.append((n, p))

    if strategy == "unsplit":
        for t in seg_tiles:
            add(DecodeProgram(t, 1))
        return tuple(runs)
    if strategy == "splitk":
        if splits < 1:
            raise ValueError(f"splits must be >= 1, got {splits}")
        for t in seg_tiles:
            chunk = -(-t // splits)
            used = -(-t // chunk)
            split = used > 1
            # the last contributor to arrive merges: the last of the full chunks (a short
            # last chunk, started in the same wave, arrives before them)
            merger = used - 1 if t - (used - 1) * chunk == chunk else used - 2
            for i in range(splits):
                n = max(0, min(chunk, t - i * chunk))
                last = split and i == merger
                add(DecodeProgram(n, int(n > 0), int(split and n > 0), used if last else 0))
        return tuple(runs)
    if programs < 1:
        raise ValueError(f"stream-K needs programs >= 1, got {programs}")
    total = sum(seg_tiles)
    starts = [0]
    for t in seg_tiles:
        starts.append(starts[-1] + t)
    seg = 0
    for p in range(programs):
        lo, hi = p * total // programs, (p + 1) * total // programs
        if lo == hi:
            add(DecodeProgram(0, 0))
            continue
        while starts[seg + 1] <= lo:
            seg += 1
        pieces = partials = merges = 0
        s = seg
        while s < len(seg_tiles) and starts[s] < hi:
            pieces += 1
            first_p = ((starts[s] + 1) * programs - 1) // total  # owner of the segment's 1st tile
            last_p = (starts[s + 1] * programs - 1) // total  # owner of its last tile
            if first_p != last_p:
                partials += 1
                if last_p == p:  # distinct owners (programs > tiles: one tile each)
                    merges += min(last_p - first_p + 1, seg_tiles[s])
            s += 1
        add(DecodeProgram(hi - lo, pieces, partials, merges))
    return tuple(runs)


def decode_kv_bytes(
    seq_lens: tuple[int, ...],
    kv_heads: int,
    key_dim: int,
    value_dim: int,
    elem_bytes: int,
    shared_kv: bool = False,
) -> int:
    """HBM bytes of the KV cache a decode call reads: every cached key and value once.

    `shared_kv`: V is a view of K's first `value_dim` columns (MLA's latent), read once.
    """
    per_key = key_dim if shared_kv else key_dim + value_dim
    return sum(seq_lens) * kv_heads * per_key * elem_bytes


def device_slug(name: str) -> str:
    """A device's short name for file names: 'NVIDIA H100 80GB HBM3' -> 'h100'.

    The first token of a letter and 2-4 digits (H200, A100, L40); else the last token.
    """
    import re

    found = re.search(r"\b[A-Z]\d{2,4}\b", name)
    return (found.group(0) if found else name.split()[-1]).lower()
