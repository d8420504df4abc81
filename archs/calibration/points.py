"""The calibration file's keys and its measured points (see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from attnsim.einsum_ir.spec import Reader


def log_distance(mine: Sequence[float], want: Sequence[float]) -> float:
    """Sum of the |log2| ratios of paired figures (a pair with a side <= 0 counts 0).

    How far a measured configuration is from the one asked for: the lookups of every
    calibration section take the nearest by it.
    """
    return sum(abs(math.log2(a / b)) for a, b in zip(mine, want, strict=True) if a > 0 and b > 0)


TOP_KEYS = (
    "device",
    "date",
    "source",
    "versions",
    "hbm_copy_bandwidth_gb_per_s",
    "hbm_read_bandwidth_gb_per_s",
    "l2_read_bandwidth_gb_per_s",
    "exp2_gops_per_s",
    "fp32_fma_gops_per_s",
    "launch_overhead_us",
    "host_launch_us",
    "host_call_us",
    "bench_head_start_us",
    "bench_flush_us",
    "attention_steps",
    "bench_floor_us",
    "attention_blocks",
    "unfused_kernels",
    "unfused_programs",
    "wave_transients",
    "later_waves",
    "power_cap",
    "matmul",
    "notes",
)
MATMUL_KEYS = (
    "kernel",
    "dtype",
    "m",
    "n",
    "k",
    "block_m",
    "block_n",
    "block_k",
    "num_warps",
    "num_stages",
    "tflops",
)
STEP_KEYS = (
    "mode",
    "dtype",
    "head_dim",
    "block_m",
    "block_n",
    "num_warps",
    "num_stages",
    "blocks_per_sm",
    "step_us",
    "programs",
)
BLOCK_KEYS = (
    "mode",
    "dtype",
    "head_dim",
    "block_m",
    "block_n",
    "num_warps",
    "num_stages",
    "blocks",
    "blocks_per_sm",
    "waves",
    "tiles",
    "fixed_us",
    "step_us",
    "loop_us",
    "q_tiles",
)
# a fused kernel's build: its mode (tile chain), head dim and tiling
KERNEL_KEYS = ("mode", "head_dim", "block_m", "block_n", "num_warps", "num_stages")
WAVE_KEYS = (
    *KERNEL_KEYS,
    "q_tiles",
    "steps",
    "transient_us",
    "steady_wave_us",
    "source",
)
UNFUSED_KEYS = (
    "kernel",
    "causal",
    "head_dim",
    "block_m",
    "block_n",
    "num_warps",
    "num_stages",
    "batch_heads",
    "seq",
    "time_us",
)
_SIXTEEN_BIT = ("bf16", "fp16")


@dataclass(frozen=True, slots=True)
class UnfusedPoint:
    """Measured seconds of one unfused kernel (qk, softmax, pv) alone on a calibration shape.

    Tiling fields and head_dim are 0 for the softmax kernel (it picks its own block).
    `hbm_read_bytes_per_s` / `hbm_write_bytes_per_s`: the device's measured HBM read and copy
    bandwidth in the same calibration run (0 when unknown), so that a model can split the
    time into its memory part and the rest.
    """

    kernel: str
    causal: bool
    head_dim: int
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    batch_heads: int
    seq: int
    time_s: float
    hbm_read_bytes_per_s: float = 0.0
    hbm_write_bytes_per_s: float = 0.0


@dataclass(frozen=True, slots=True)
class BlockPoint:
    """Measured per-block fixed seconds of a fused kernel (kernels.calibrate.microbench_blocks).

    `blocks` programs (`blocks_per_sm` per SM when the grid fills the device) started
    together; `fixed_s` is the time of a block besides its loop steps (intercept of the
    kernel's time over its key-tile steps, less the do_bench floor); `step_s` the slope.
    `waves` > 1: the grid ran that many waves and `fixed_s` is a later wave's fixed time
    (its blocks start as slots free, not all at once after the flush). `tiles`: how the
    kernel reached its tiles, "device" (tensor descriptors built in the kernel, the only way
    before host-built ones existed, hence the default) or "host" (host-built descriptors).
    `loop_s` (mode `window`, `kernels.calibrate.microbench_masks`): what a block pays to enter
    one more key loop (0 when not measured). `q_tiles` > 1 (`kernels.calibrate.microbench_shared`):
    the grid's heads had that many query tiles sharing their K/V, as an attention call's do
    (1: one query tile per head, every block loading its own K/V).
    """

    mode: str
    dtype: str
    head_dim: int
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    blocks: int
    blocks_per_sm: int
    fixed_s: float
    step_s: float
    waves: int = 1
    tiles: str = "device"
    loop_s: float = 0.0
    q_tiles: int = 1

    def tiling_distance(self, tiling: Sequence[int]) -> float:
        """`log_distance` of (block_m, block_n, warps, stages) from `tiling`."""
        return log_distance((self.block_m, self.block_n, self.num_warps, self.num_stages), tiling)


@dataclass(frozen=True, slots=True)
class StepPoint:
    """Measured seconds of one round of the attention tile chain.

    One round: `blocks_per_sm` co-resident blocks each doing one step, for a mode (online,
    stats, output), head dim and tiling. `programs`: the grid it was measured on when smaller
    than a full wave (0: SMs x blocks_per_sm programs, a full wave).
    """

    mode: str
    dtype: str
    head_dim: int
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    blocks_per_sm: int
    step_s: float
    programs: int = 0


@dataclass(frozen=True, slots=True)
class MatmulPoint:
    """One measured matmul: problem and (for Triton) tile shape; block sizes 0 for libraries."""

    kernel: str
    dtype: str
    m: int
    n: int
    k: int
    tflops: float
    block_m: int = 0
    block_n: int = 0
    block_k: int = 0
    num_warps: int = 0
    num_stages: int = 0

    @property
    def is_tiled(self) -> bool:
        """Whether the tile shape is known (a Triton kernel with given blocks)."""
        return self.block_m > 0 and self.block_n > 0 and self.block_k > 0


UNFUSED_PROGRAM_KEYS = (
    "kernel",
    "head_dim",
    "block_m",
    "block_n",
    "num_warps",
    "num_stages",
    "programs",
    "min_keys",
    "step_us",
    "fixed_us",
)


@dataclass(frozen=True, slots=True)
class UnfusedProgramPoint:
    """An unfused kernel's per-step time with few programs over long rows.

    (`kernels.calibrate.microbench_unfused --pv-programs`): `programs` programs of one query
    tile each; `step_s` the slope of the kernel's time over the key tiles of a program's row,
    `fixed_s` its intercept less the do_bench floor, both fitted on rows of `min_keys` keys
    and longer (shorter rows start differently: the line holds from there on).
    """

    kernel: str
    head_dim: int
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    programs: int
    min_keys: int
    step_s: float
    fixed_s: float


@dataclass(frozen=True, slots=True)
class KernelBuild:
    """A fused kernel's build (`KERNEL_KEYS`): its mode (tile chain), head dim and tiling."""

    mode: str
    head_dim: int
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


@dataclass(frozen=True, slots=True)
class WavePoint(KernelBuild):
    """The one-off excess of a call's first later waves over its steady waves (`wave_transients`).

    From `benchmarks/short_blocks_probe.py --wave-sweep` (grids of 1-64 waves of blocks of
    `steps` key tiles, `q_tiles` query tiles per head): `steady_wave_s` is the slope of the
    call time over 8-32 waves, `transient_s` = T(4 waves) - T(1 wave) - 3 x steady: what the
    call's second to fourth waves took beyond steady ones. After do_bench's L2 flush a call's
    first waves run slower (the H200 sweep: 3.7-6.6 us in all, at 4 key tiles a block), so a
    later-wave fixed time measured on a grid of `waves` waves (`BlockPoint`) holds
    transient_s / (waves - 1) of it. `mode`: "pingpong" or "online" (the plain 1-pass kernel).
    """

    q_tiles: int
    steps: int
    transient_s: float
    steady_wave_s: float
    source: str = ""

    def distance(self, head_dim: int, tiling: Sequence[int], q_tiles: int) -> float:
        """`log_distance` of (head dim, block_m, block_n, warps, stages, q_tiles)."""
        mine = (self.head_dim, self.block_m, self.block_n, self.num_warps, self.num_stages)
        return log_distance((*mine, self.q_tiles), (head_dim, *tiling, q_tiles))


# kernel mode -> the wave-sweep kernel whose transient it takes
TRANSIENT_MODES = {
    "pingpong": "pingpong",
    "online": "online",
    "stats": "online",
    "output": "online",
}


def nearest_transient(
    points: Sequence[WavePoint],
    mode: str,
    head_dim: int,
    tiling: Sequence[int],
    q_tiles: int,
) -> WavePoint | None:
    """The wave transient measured nearest this kernel (None when there is none).

    The ping-pong kernel takes the "pingpong" entries, the plain 1-pass kernel and the 2-pass
    passes (the same Triton loop) the "online" ones (`TRANSIENT_MODES`: the modes whose
    later waves the calibration measures; others, None). Of the same head dim only (none
    measured: None), nearest by
    `WavePoint.distance`, query tiles per head included (one against several: whether a
    later block finds its head's K/V in L2).
    """
    own = TRANSIENT_MODES.get(mode)
    near = [p for p in points if p.mode == own and p.head_dim == head_dim]
    if not near:
        return None
    return min(near, key=lambda p: p.distance(head_dim, tiling, q_tiles))


def wave_point(r: Reader) -> WavePoint | None:
    """One `wave_transients` entry (problems go to the reader)."""
    if not r.check("map"):
        return None
    mode, source = r.req("mode", "str"), r.opt("source", "str")
    if mode is not None and mode.value not in ("online", "pingpong"):
        mode.error(f"expected 'online' or 'pingpong', got {mode.value!r}")
    ints = {}
    for key in WAVE_KEYS[1:8]:
        c = r.req(key, "int")
        ints[key] = int(c.value) if c is not None and c.value > 0 else 0
        if c is not None and c.value <= 0:
            c.error(f"expected a positive integer, got {c.value}")
    transient, steady = r.req("transient_us", "number"), r.req("steady_wave_us", "number")
    r.done(WAVE_KEYS)
    if mode is None or transient is None or steady is None or 0 in ints.values():
        return None
    return WavePoint(
        str(mode.value),
        transient_s=float(transient.value) * 1e-6,  # may be slightly negative (noise)
        steady_wave_s=float(steady.value) * 1e-6,
        source=str(source.value) if source is not None else "",
        **ints,
    )


def unfused_program_point(r: Reader) -> UnfusedProgramPoint | None:
    """One `unfused_programs` entry (problems go to the reader)."""
    if not r.check("map"):
        return None
    kernel = r.req("kernel", "str")
    ints = {}
    for key in UNFUSED_PROGRAM_KEYS[1:-2]:
        c = r.req(key, "int")
        ints[key] = int(c.value) if c is not None else 0
        if c is not None and c.value <= 0:
            c.error(f"expected a positive integer, got {c.value}")
    step_s = rate_of(r.req("step_us", "number"), 1e-6)
    fixed_c = r.req("fixed_us", "number")
    r.done(UNFUSED_PROGRAM_KEYS)
    if kernel is None or step_s is None or fixed_c is None or 0 in ints.values():
        return None
    fixed_s = max(0.0, float(fixed_c.value)) * 1e-6  # slightly negative: timing noise
    return UnfusedProgramPoint(str(kernel.value), step_s=step_s, fixed_s=fixed_s, **ints)


def rate_of(r: Reader | None, scale: float) -> float | None:
    """A positive number times `scale` (None, and a located problem, when it is not one)."""
    if r is None or not r.check("number"):
        return None
    if not float(r.value) > 0:
        r.error(f"expected a positive number, got {r.value}")
        return None
    return float(r.value) * scale
