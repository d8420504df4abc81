"""Measured GPU microbenchmarks (one YAML file per device here) and their loader.

Format (units in key names; everything but `device`, `date` and `source` is optional, and a
figure that is absent falls back to the preset's datasheet value in the model)::

    device: NVIDIA H200              # torch.cuda.get_device_name
    date: '2026-11-30'               # when it was measured (ISO 8601)
    source: kernels.calibrate.microbench       # what produced the numbers
    versions: {driver: '...', torch: '...', triton: '...', cuda: '...'}
    hbm_copy_bandwidth_gb_per_s: 4223.3   # device-to-device copy, bytes read + written / s
    hbm_read_bandwidth_gb_per_s: 4696.8   # read-only stream
    l2_read_bandwidth_gb_per_s: 9000      # re-reading a buffer that fits in L2
    exp2_gops_per_s: 3900                 # exp2 results / s over the whole device
    fp32_fma_gops_per_s: 30000            # fp32 FMAs / s over the whole device
    launch_overhead_us: 2.0               # GPU side: empty kernels replayed from a CUDA graph
    host_launch_us: 6.0                   # empty kernels launched back to back from Python
    host_call_us: {1pass: 60, 2pass: 110, unfused: 70}  # host time of one launcher call
    bench_head_start_us: 60               # host head start under do_bench (its L2 flush)
    bench_flush_us: 62                    # GPU time of do_bench's L2 flush
    attention_steps:                      # attention tile chain per step, K/V on chip
      - {mode: online, dtype: bf16, head_dim: 128, block_m: 128, block_n: 128, num_warps: 8,
         num_stages: 3, blocks_per_sm: 1, step_us: 2.2}
    bench_floor_us: 2.6                   # do_bench median of an empty kernel
    attention_blocks:                     # fused kernels' per-block fixed time
      - {mode: online, dtype: bf16, head_dim: 128, block_m: 128, block_n: 128, num_warps: 8,
         num_stages: 3, blocks: 132, blocks_per_sm: 1, waves: 1, tiles: host, fixed_us: 6.1,
         step_us: 2.3}                      # mode window: also loop_us (one more key loop)
    unfused_kernels:                      # unfused baseline kernels timed alone
      - {kernel: pv, causal: 1, head_dim: 64, block_m: 128, block_n: 64, num_warps: 4,
         num_stages: 3, batch_heads: 24, seq: 4096, time_us: 900.0}
    wave_transients: [...]                # a call's first waves' excess (points.WavePoint)
    later_waves: [...]                    # a later wave by row length (later_waves.py)
    power_cap: {knee_tflops: 480, ...}    # sustained tensor load's slowdown (power.py)
    matmul:                               # dense matmul throughput by tile shape and dtype
      - {kernel: torch.matmul, dtype: bf16, m: 8192, n: 8192, k: 8192, tflops: 796.2}
      - {kernel: triton, dtype: bf16, m: 4096, n: 4096, k: 4096, block_m: 128, block_n: 64,
         block_k: 64, num_warps: 8, num_stages: 3, tflops: 610.0}
    notes: [free text]
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path

from attnsim.archs.calibration.later_waves import LaterWavePoint, later_wave_point
from attnsim.archs.calibration.points import (
    _SIXTEEN_BIT,
    BLOCK_KEYS,
    MATMUL_KEYS,
    STEP_KEYS,
    TOP_KEYS,
    UNFUSED_KEYS,
    BlockPoint,
    MatmulPoint,
    StepPoint,
    UnfusedPoint,
    UnfusedProgramPoint,
    WavePoint,
    log_distance,
    nearest_transient,
    rate_of,
    unfused_program_point,
    wave_point,
)
from attnsim.archs.calibration.power import PowerCap, power_cap
from attnsim.einsum_ir.spec import Problem, Reader, path_exists

CALIBRATION_DIR = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class Calibration:
    """Measured ceilings of one device; None marks a figure that was not measured.

    A GPU without a calibration file gets one derived from public figures (`origin`).
    """

    device: str
    date: str
    source: str
    versions: tuple[tuple[str, str], ...] = ()
    hbm_copy_bandwidth_bytes_per_s: float | None = None
    hbm_read_bandwidth_bytes_per_s: float | None = None
    l2_read_bandwidth_bytes_per_s: float | None = None
    exp2_per_s: float | None = None
    fp32_fma_per_s: float | None = None
    launch_overhead_s: float | None = None
    host_launch_s: float | None = None
    host_call_s: tuple[tuple[str, float], ...] = ()
    bench_head_start_s: float | None = None
    # GPU time of do_bench's L2 flush on the calibration GPU: with the head start, the host work
    # do_bench does before a timed call (flush - head start; reports.validation.host_adjusted)
    bench_flush_s: float | None = None
    attention_steps: tuple[StepPoint, ...] = ()
    bench_floor_s: float | None = None
    attention_blocks: tuple[BlockPoint, ...] = ()
    unfused_kernels: tuple[UnfusedPoint, ...] = ()
    unfused_programs: tuple[UnfusedProgramPoint, ...] = ()
    wave_transients: tuple[WavePoint, ...] = ()
    later_waves: tuple[LaterWavePoint, ...] = ()
    power_cap: PowerCap | None = None  # sustained tensor load's slowdown (power.py)
    matmul: tuple[MatmulPoint, ...] = ()
    notes: tuple[str, ...] = ()
    path: str = ""
    # "measured" (read from a file of this folder), or built by `archs.datasheet` for a GPU
    # without one: "transferred" (a same-architecture sibling's figures, scaled) or
    # "datasheet" (datasheet peaks x stated efficiencies); `assumptions` say what was assumed
    origin: str = "measured"
    assumptions: tuple[str, ...] = ()
    # "transferred" / "datasheet": why the GPU has no calibration of its own (the expected
    # error warning's reason, `archs.datasheet.expected_error_note`)
    uncalibrated_why: str = ""
    # "datasheet" origin: a faster GPU's measured figures, scaled to this one, that the unit
    # model's estimates may not undercut (`archs.datasheet.dominance_bounds`)
    floors: Calibration | None = None
    # "transferred" origin: the source's calibration file and the datasheet ratios (target /
    # source) of the clock and the HBM bandwidth, for files beside it (its decode figures)
    transferred_from: str = ""
    transfer_ratios: tuple[float, float] = (1.0, 1.0)  # (clock, HBM bandwidth)

    def peak_matmul_flops_per_s(self, dtype: str) -> float | None:
        """The best measured matmul FLOP/s of `dtype` (fp16 and bf16 stand in for each other)."""
        for candidates in ((dtype,), _SIXTEEN_BIT if dtype in _SIXTEEN_BIT else ()):
            rates = [p.tflops for p in self.matmul if p.dtype in candidates]
            if rates:
                return max(rates) * 1e12
        return None

    def tile_matmul(
        self, dtype: str, block_m: int, block_n: int, block_k: int, num_warps: int
    ) -> tuple[MatmulPoint, float] | None:
        """The measured Triton matmul closest to this tile shape, and its distance.

        Distance: sum of |log2| ratios of block_m, block_n, block_k and num_warps (0 = exact);
        a different 16-bit dtype adds 0.5. None when no tiled point of a usable dtype exists.
        """
        best: tuple[MatmulPoint, float] | None = None
        for p in self.matmul:
            if not p.is_tiled or (p.dtype != dtype and not {p.dtype, dtype} <= set(_SIXTEEN_BIT)):
                continue
            d = sum(
                abs(math.log2(a / b))
                for a, b in (
                    (p.block_m, block_m),
                    (p.block_n, block_n),
                    (p.block_k, block_k),
                    (max(p.num_warps, 1), max(num_warps, 1)),
                )
            ) + (0.5 if p.dtype != dtype else 0.0)
            if best is None or d < best[1]:
                best = (p, d)
        return best

    def host_call(self, family: str) -> float | None:
        """Measured host seconds of one launcher call of `family` (1pass, 2pass, unfused)."""
        return dict(self.host_call_s).get(family)

    def step(
        self,
        mode: str,
        head_dim: int,
        block_m: int,
        block_n: int,
        warps: int,
        per_sm: int,
        stages: int = 0,
    ) -> StepPoint | None:
        """The measured chain step of this mode and head dim nearest the tiling (None if none).

        Distance: sum of |log2| ratios of block_m, block_n and num_warps; `per_sm` picks the
        point measured with that many blocks per SM (the largest measured one below it);
        `stages` (when given) breaks ties between points of other pipeline depths.
        """
        best: tuple[float, StepPoint] | None = None
        for p in self.attention_steps:
            if p.mode != mode or p.head_dim != head_dim or p.blocks_per_sm > per_sm:
                continue
            if p.programs:  # a grid under a full wave: see `step_at`
                continue
            d = (
                sum(
                    abs(math.log2(a / b))
                    for a, b in ((p.block_m, block_m), (p.block_n, block_n), (p.num_warps, warps))
                )
                - 1e-3 * p.blocks_per_sm
                + (1e-2 * abs(math.log2(p.num_stages / stages)) if stages > 0 else 0.0)
            )
            if best is None or d < best[0]:
                best = (d, p)
        return best[1] if best else None

    def step_at(self, full: StepPoint, programs: int, sm_count: int) -> StepPoint:
        """`full` (a full-wave step) at a grid of `programs` programs, where measured.

        Entries of `full`'s mode, head dim, tiling and blocks per SM measured on grids under
        a full wave (`programs` > 0) and `full` itself (at SMs x blocks per SM programs):
        linear in the program count between them, the smallest grid's step below it. `full`
        unchanged when there are none or the grid fills the SMs.
        """
        key = (full.mode, full.head_dim, full.block_m, full.block_n, full.num_warps,
               full.num_stages, full.blocks_per_sm)  # fmt: skip
        small = sorted(
            (p.programs, p.step_s)
            for p in self.attention_steps
            if p.programs
            and (
                p.mode,
                p.head_dim,
                p.block_m,
                p.block_n,
                p.num_warps,
                p.num_stages,
                p.blocks_per_sm,
            )
            == key  # fmt: skip
        )
        whole = sm_count * full.blocks_per_sm
        if not small or programs >= whole:
            return full
        grid = [*[g for g in small if g[0] < whole], (whole, full.step_s)]
        if programs <= grid[0][0]:
            return replace(full, step_s=grid[0][1])
        for (n0, s0), (n1, s1) in itertools.pairwise(grid):
            if n0 <= programs <= n1:
                return replace(full, step_s=s0 + (s1 - s0) * (programs - n0) / (n1 - n0))
        return full

    def block_fixed(
        self,
        mode: str,
        head_dim: int,
        tiling: tuple[int, int, int, int],
        per_sm: int,
        started: int,
        sm_count: int,
        later: bool = False,
        tiles: str = "device",
    ) -> float | None:
        """Measured fixed seconds per block for this mode, head dim and tiling (None if none).

        The nearest measured tiling (sum of |log2| ratios of block_m, block_n, warps, stages)
        of the same mode and head dim. With `per_sm` > 1 blocks per SM: the entry measured
        with the most blocks per SM up to `per_sm`; with one per SM, interpolated linearly in
        the number of blocks started together (`started`, capped at `sm_count`) between the
        small-grid and the one-per-SM entries. `later`: a block of a later wave (entries with
        waves > 1, the most blocks per SM up to `per_sm`); the first-wave value when the
        calibration has none. Entries of the `tiles` access path are used when there are any.
        """
        near = self._blocks(mode, head_dim, tiles)
        if not near:
            return None

        def dist(p: BlockPoint) -> float:
            return p.tiling_distance(tiling)

        best = min(dist(p) for p in near)
        same = [p for p in near if dist(p) == best]
        waved = [p for p in same if p.waves > 1 and p.blocks_per_sm <= per_sm]
        if later and waved:
            return max(0.0, self.steady_fixed_s(max(waved, key=lambda p: p.blocks_per_sm)))
        same = [p for p in same if p.waves == 1]
        if per_sm > 1:
            multi = [p for p in same if 1 < p.blocks_per_sm <= per_sm]
            if multi:
                return max(0.0, max(multi, key=lambda p: p.blocks_per_sm).fixed_s)
        single = sorted((p for p in same if p.blocks_per_sm == 1), key=lambda p: p.blocks)
        if not single:
            return None
        n = min(started, sm_count)
        lo = max((p for p in single if p.blocks <= n), key=lambda p: p.blocks, default=single[0])
        hi = min((p for p in single if p.blocks >= n), key=lambda p: p.blocks, default=single[-1])
        if hi.blocks == lo.blocks:
            return max(0.0, lo.fixed_s)
        f = (n - lo.blocks) / (hi.blocks - lo.blocks)
        return max(0.0, lo.fixed_s + f * (hi.fixed_s - lo.fixed_s))

    def steady_fixed_s(self, p: BlockPoint) -> float:
        """A later-wave entry's fixed seconds net of its grid's share of the wave transient.

        transient / (waves - 1) (`WavePoint` nearest its kernel; the model adds it once a call).
        """
        t = (p.block_m, p.block_n, p.num_warps, p.num_stages)
        got = nearest_transient(self.wave_transients, p.mode, p.head_dim, t, p.q_tiles)
        if got is None or p.waves < 2:
            return p.fixed_s
        return p.fixed_s - max(0.0, got.transient_s) / (p.waves - 1)

    def block_loop(
        self, mode: str, head_dim: int, tiling: tuple[int, int, int, int], per_sm: int
    ) -> float:
        """Measured seconds per further key loop of a block (`loop_s`; 0 when none).

        The nearest measured tiling of the mode and head dim (as `block_fixed`), the entry
        with the most blocks per SM up to `per_sm`; a negative measurement (timing noise)
        counts as 0.
        """
        near = self._blocks(mode, head_dim, "", shared=False)  # first waves' entries
        if not near:
            return 0.0

        def dist(p: BlockPoint) -> float:
            return p.tiling_distance(tiling)

        best = min(dist(p) for p in near)
        same = [p for p in near if dist(p) == best]
        fits = [p for p in same if p.blocks_per_sm <= per_sm] or same
        return max(0.0, max(fits, key=lambda p: p.blocks_per_sm).loop_s)

    def _blocks(
        self, mode: str, head_dim: int, tiles: str, shared: bool = False
    ) -> list[BlockPoint]:
        """Block entries of this mode and head dim; those of `tiles` when there are any.

        `shared`: the entries measured with query tiles sharing their head's K/V
        (`q_tiles` > 1), else those with one query tile per head.
        """
        near = [
            p
            for p in self.attention_blocks
            if p.mode == mode and p.head_dim == head_dim and (p.q_tiles > 1) == shared
        ]
        same = [p for p in near if p.tiles == tiles]
        return same or near

    def later_shared(
        self,
        mode: str,
        head_dim: int,
        tiling: tuple[int, int, int, int],
        tiles: str = "device",
        per_sm: int = 0,
    ) -> BlockPoint | None:
        """The later-wave entry measured with query tiles sharing K/V, nearest this tiling.

        (`kernels.calibrate.microbench_shared`; mode `window`: `microbench_masks`; None when
        there is none.) `per_sm` > 0: of the nearest tiling's entries, the one with the most
        blocks per SM up to `per_sm` (the nearest entry when none fits).
        """
        near = [p for p in self._blocks(mode, head_dim, tiles, shared=True) if p.waves > 1]
        if not near:
            return None
        best = min(near, key=lambda p: p.tiling_distance(tiling))
        if per_sm <= 0:
            return best
        same = [p for p in near if p.tiling_distance(tiling) == best.tiling_distance(tiling)]
        fits = [p for p in same if p.blocks_per_sm <= per_sm]
        return max(fits, key=lambda p: p.blocks_per_sm) if fits else best

    def occupancy(
        self, mode: str, head_dim: int, tiling: tuple[int, int, int, int], tiles: str = "device"
    ) -> int | None:
        """Blocks per SM of the compiled fused kernel with exactly this tiling, if measured.

        `kernels.calibrate.microbench_blocks` reads it off the compiled kernel (registers, shared
        memory)
        and runs its full grid with it; the largest `blocks_per_sm` of those entries.
        """
        exact = [
            p.blocks_per_sm
            for p in self._blocks(mode, head_dim, tiles)
            if (p.block_m, p.block_n, p.num_warps, p.num_stages) == tuple(tiling)
        ]
        return max(exact) if exact else None

    def unfused(
        self, kernel: str, causal: bool, head_dim: int, block_m: int, block_n: int, warps: int
    ) -> list[UnfusedPoint]:
        """Measured entries of this unfused kernel and mask, nearest tiling first.

        Distance: sum of |log2| ratios of head dim, block_m, block_n and warps (softmax
        entries, with no tiling, are all at distance 0); ties keep the file's order.
        """

        def dist(p: UnfusedPoint) -> float:
            mine = (p.head_dim, p.block_m, p.block_n, p.num_warps)
            return log_distance(mine, (head_dim, block_m, block_n, warps))

        found = [p for p in self.unfused_kernels if p.kernel == kernel and p.causal == causal]
        return sorted(found, key=dist)

    def unfused_program(
        self, kernel: str, head_dim: int, tiling: tuple[int, int, int, int]
    ) -> UnfusedProgramPoint | None:
        """The few-programs entry of this unfused kernel nearest this head dim and tiling."""
        found = [p for p in self.unfused_programs if p.kernel == kernel]
        if not found:
            return None

        def dist(p: UnfusedProgramPoint) -> float:
            mine = (p.head_dim, p.block_m, p.block_n, p.num_warps, p.num_stages)
            return log_distance(mine, (head_dim, *tiling))

        return min(found, key=dist)


def calibration_path(name: str, base: Path | None = None) -> Path | None:
    """The calibration file for `name`: a path (relative to `base`) or a file in this folder."""
    for candidate in (
        (base / name) if base is not None else None,
        Path(name),
        CALIBRATION_DIR / name,
        CALIBRATION_DIR / f"{name}.yaml",
    ):
        if candidate is None or candidate.suffix not in (".yaml", ".yml"):
            continue
        if path_exists(candidate):
            return candidate
    return None


def _matmul(r: Reader) -> MatmulPoint | None:
    if not r.check("map"):
        return None

    def count(key: str, required: bool) -> int:
        c = r.req(key, "int") if required else r.opt(key, "int")
        if c is None:
            return 0
        if c.value < 0 or (required and c.value == 0):
            c.error(f"expected a positive integer, got {c.value}")
            return 0
        return int(c.value)

    kernel, dtype = r.req("kernel", "str"), r.req("dtype", "str")
    point = MatmulPoint(
        kernel=str(kernel.value) if kernel else "",
        dtype=str(dtype.value) if dtype else "",
        m=count("m", True),
        n=count("n", True),
        k=count("k", True),
        tflops=rate_of(r.req("tflops", "number"), 1.0) or 0.0,
        block_m=count("block_m", False),
        block_n=count("block_n", False),
        block_k=count("block_k", False),
        num_warps=count("num_warps", False),
        num_stages=count("num_stages", False),
    )
    r.done(MATMUL_KEYS)
    return point


def _step(r: Reader) -> StepPoint | None:
    if not r.check("map"):
        return None
    mode, dtype = r.req("mode", "str"), r.opt("dtype", "str")
    ints = {}
    for key in ("head_dim", "block_m", "block_n", "num_warps", "num_stages", "blocks_per_sm"):
        c = r.req(key, "int")
        ints[key] = int(c.value) if c is not None and c.value > 0 else 0
        if c is not None and c.value <= 0:
            c.error(f"expected a positive integer, got {c.value}")
    step = rate_of(r.req("step_us", "number"), 1e-6)
    programs_c = r.opt("programs", "int")
    if programs_c is not None and programs_c.value <= 0:
        programs_c.error(f"expected a positive integer, got {programs_c.value}")
    r.done(STEP_KEYS)
    if mode is None or step is None or 0 in ints.values():
        return None
    programs = int(programs_c.value) if programs_c is not None and programs_c.value > 0 else 0
    return StepPoint(str(mode.value), str(dtype.value) if dtype else "bf16", step_s=step,
                     programs=programs, **ints)  # fmt: skip


def _block(r: Reader) -> BlockPoint | None:
    if not r.check("map"):
        return None
    mode, dtype = r.req("mode", "str"), r.opt("dtype", "str")
    ints = {}
    tiles_c = r.opt("tiles", "str")
    if tiles_c is not None and tiles_c.value not in ("host", "device"):
        tiles_c.error(f"expected 'host' or 'device', got {tiles_c.value!r}")
    for key in BLOCK_KEYS[2:-5]:
        c = r.opt(key, "int") if key == "waves" else r.req(key, "int")
        ints[key] = int(c.value) if c is not None and c.value > 0 else 0
        if c is not None and c.value <= 0:
            c.error(f"expected a positive integer, got {c.value}")
    ints["waves"] = ints["waves"] or 1
    fixed_c, step_c = r.req("fixed_us", "number"), r.opt("step_us", "number")
    loop_c = r.opt("loop_us", "number")
    q_tiles_c = r.opt("q_tiles", "int")
    if q_tiles_c is not None and q_tiles_c.value < 1:
        q_tiles_c.error(f"expected a positive integer, got {q_tiles_c.value}")
    r.done(BLOCK_KEYS)
    if mode is None or fixed_c is None or 0 in ints.values():
        return None
    step = float(step_c.value) * 1e-6 if step_c is not None else 0.0
    return BlockPoint(
        str(mode.value),
        str(dtype.value) if dtype else "bf16",
        fixed_s=float(fixed_c.value) * 1e-6,  # may be slightly negative (timing noise)
        step_s=step,
        tiles=str(tiles_c.value) if tiles_c is not None else "device",
        loop_s=float(loop_c.value) * 1e-6 if loop_c is not None else 0.0,
        q_tiles=int(q_tiles_c.value) if q_tiles_c is not None and q_tiles_c.value >= 1 else 1,
        **ints,
    )


def _unfused(r: Reader) -> UnfusedPoint | None:
    if not r.check("map"):
        return None
    kernel = r.req("kernel", "str")
    ints = {}
    for key in UNFUSED_KEYS[1:-1]:
        c = r.req(key, "int") if key in ("causal", "batch_heads", "seq") else r.opt(key, "int")
        ints[key] = int(c.value) if c is not None else 0
        if c is not None and c.value < 0:
            c.error(f"expected an integer >= 0, got {c.value}")
    time_s = rate_of(r.req("time_us", "number"), 1e-6)
    r.done(UNFUSED_KEYS)
    if kernel is None or time_s is None or min(ints["batch_heads"], ints["seq"]) <= 0:
        return None
    causal = bool(ints.pop("causal"))
    return UnfusedPoint(str(kernel.value), causal, time_s=time_s, **ints)


def load_calibration(path: str | Path, problems: list[Problem] | None = None) -> Calibration:
    """Read a calibration file; problems join `problems` (or raise `SpecError` when None)."""
    root = Reader.from_file(path)
    if problems is not None:
        problems.extend(root.problems)
        root.problems = problems
    if root.node is None:
        if problems is None:
            root.finish()
        return Calibration("", "", "", path=str(path))
    if not root.is_map:
        root.error("expected a calibration mapping with keys " + ", ".join(TOP_KEYS))
        root.finish()
    device, date, source = (root.req(k) for k in ("device", "date", "source"))
    versions_r = root.opt("versions", "map")
    versions = tuple((k, str(v.value)) for k, v in versions_r.items()) if versions_r else ()
    matmul_r = root.opt("matmul", "list")
    points = [_matmul(m) for m in matmul_r.each()] if matmul_r is not None else []
    notes_r = root.opt("notes", "list")
    host_r = root.opt("host_call_us", "map")
    host_calls = []
    for fam, value in host_r.items() if host_r is not None else ():
        rate = rate_of(value, 1e-6)
        if rate is not None:
            host_calls.append((str(fam), rate))
    steps_r = root.opt("attention_steps", "list")
    steps = [_step(x) for x in steps_r.each()] if steps_r is not None else []
    blocks_r = root.opt("attention_blocks", "list")
    blocks = [_block(x) for x in blocks_r.each()] if blocks_r is not None else []
    unfused_r = root.opt("unfused_kernels", "list")
    unfused = [_unfused(x) for x in unfused_r.each()] if unfused_r is not None else []
    programs_r = root.opt("unfused_programs", "list")
    programs = [unfused_program_point(x) for x in programs_r.each()] if programs_r else []
    waves_r = root.opt("wave_transients", "list")
    waves = [wave_point(x) for x in waves_r.each()] if waves_r is not None else []
    later_r = root.opt("later_waves", "list")
    cap_r = root.opt("power_cap")
    later = [later_wave_point(x) for x in later_r.each()] if later_r is not None else []
    copy_bw = rate_of(root.opt("hbm_copy_bandwidth_gb_per_s"), 1e9)
    read_bw = rate_of(root.opt("hbm_read_bandwidth_gb_per_s"), 1e9)
    unfused = [  # the bandwidth the device had while these kernels were timed
        replace(
            p, hbm_read_bytes_per_s=read_bw or copy_bw or 0.0, hbm_write_bytes_per_s=copy_bw or 0.0
        )
        if p is not None
        else None
        for p in unfused
    ]
    cal = Calibration(
        device=str(device.value) if device else "",
        date=str(date.value) if date else "",
        source=str(source.value) if source else "",
        versions=versions,
        hbm_copy_bandwidth_bytes_per_s=copy_bw,
        hbm_read_bandwidth_bytes_per_s=read_bw,
        l2_read_bandwidth_bytes_per_s=rate_of(root.opt("l2_read_bandwidth_gb_per_s"), 1e9),
        exp2_per_s=rate_of(root.opt("exp2_gops_per_s"), 1e9),
        fp32_fma_per_s=rate_of(root.opt("fp32_fma_gops_per_s"), 1e9),
        launch_overhead_s=rate_of(root.opt("launch_overhead_us"), 1e-6),
        host_launch_s=rate_of(root.opt("host_launch_us"), 1e-6),
        host_call_s=tuple(host_calls),
        bench_head_start_s=rate_of(root.opt("bench_head_start_us"), 1e-6),
        bench_flush_s=rate_of(root.opt("bench_flush_us"), 1e-6),
        attention_steps=tuple(p for p in steps if p is not None),
        bench_floor_s=rate_of(root.opt("bench_floor_us"), 1e-6),
        attention_blocks=tuple(p for p in blocks if p is not None),
        unfused_kernels=tuple(p for p in unfused if p is not None),
        unfused_programs=tuple(p for p in programs if p is not None),
        wave_transients=tuple(p for p in waves if p is not None),
        later_waves=tuple(p for p in later if p is not None),
        power_cap=power_cap(cap_r) if cap_r is not None else None,
        matmul=tuple(p for p in points if p is not None),
        notes=tuple(str(n.value) for n in notes_r.each()) if notes_r is not None else (),
        path=str(path),
    )
    root.done(TOP_KEYS)
    if problems is None:
        root.finish()
    return cal
