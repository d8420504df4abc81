"""Device rates for the GPU model: calibrated figures where measured, datasheet otherwise.

Also the tiling parameters shared by kernels and mappers (`Tiling`).
"""

from __future__ import annotations

from dataclasses import dataclass

from attnsim.archs.calibration import BlockPoint, StepPoint
from attnsim.archs.calibration.later_waves import LaterWaves, later_curve
from attnsim.archs.calibration.points import nearest_transient
from attnsim.archs.datasheet import expected_error_note
from attnsim.archs.gpu import GpuArch

OVERLAP_EFFICIENCY = 0.5
# score functions whose calibrated step may undercut softmax's (`score_delta_s`): sigmoid
# weights drop the running max, the row sum and the accumulator's rescale
REMOVES_SOFTMAX_WORK = ("sigmoid",)
# ... and those that only add work to the softmax step (their steps bound it from above)
ADDS_TO_SOFTMAX = ("alibi", "softcap")

# A call's first later waves pay a one-off transient (`wave_transients`), measured on grids of
# TRANSIENT_FULL_STEPS key tiles a block (`benchmarks/short_blocks_probe.py --transients`). The
# H200's wave sweep (kernels/measurements/blocks/wave-sweep-h200-2026-12-06.yaml, 4 and 16
# key tiles a block, six kernel, tiling and query-tile series under the suites' do_bench)
# shows it fading with the blocks' length: at 4 tiles the second wave took 0.4-5 us more than
# the third and fourth, at 16 within about 1 us of them. The model takes it in full up to
# TRANSIENT_FULL_STEPS and none from TRANSIENT_NONE_STEPS on, linear between (8-12 instead of
# 16 moved the H200 suites' 1-pass MAPE by under 0.2 points). The calibration's later-wave
# fixed times come from 4-wave grids of 2 key tiles a block (`microbench_blocks`), which held
# the whole transient, so they stay net of its full share; the measured later waves
# (`later_waves`, 1-32 key tiles) of their own length's share.
TRANSIENT_FULL_STEPS = 4.0
TRANSIENT_NONE_STEPS = 16.0


def transient_fade(steps: float) -> float:
    """The share of the measured wave transient a call of blocks of `steps` key tiles pays."""
    span = TRANSIENT_NONE_STEPS - TRANSIENT_FULL_STEPS
    return max(0.0, min(1.0, (TRANSIENT_NONE_STEPS - steps) / span))


@dataclass(frozen=True, slots=True)
class Tiling:
    """Tiling parameters shared by kernels and mappers (BLOCK_M, BLOCK_N, warps, stages).

    `schedule` (one of `kernels.spec.SCHEDULES`) picks the 1-pass family's kernel: "plain"
    (the Triton kernel) or "pingpong" (kernels.gluon.attn_pingpong: Hopper, two consumer warp
    groups of 64 rows taking turns on the tensor cores, a TMA producer warp and a signal warp
    besides `num_warps`; num_stages is its number of K/V slots).
    """

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    schedule: str = "plain"

    def __str__(self) -> str:
        t = f"{self.block_m}x{self.block_n}/w{self.num_warps}/s{self.num_stages}"
        return t if self.schedule == "plain" else f"{t}/{self.schedule}"


@dataclass(frozen=True, slots=True)
class DeviceRates:
    """Whole-device rates the model uses, each from the calibration file when measured."""

    arch: GpuArch
    dtype: str
    hbm_read_bytes_per_s: float
    hbm_write_bytes_per_s: float
    l2_bytes_per_s: float
    exp2_per_s: float
    fp32_per_s: float
    launch_s: float
    host_launch_s: float
    bench_head_start_s: float
    bench_floor_s: float
    peak_matmul_flops_per_s: float
    overlap_efficiency: float
    notes: tuple[str, ...]
    # for a GPU without its own calibration (`archs.datasheet`): the expected-error warning
    # (also in `notes`), which results show first
    uncalibrated: str = ""

    @property
    def has_tile_matmuls(self) -> bool:
        """Whether matmul rates were measured by tile shape (Triton tiles, not a library)."""
        cal = self.arch.calibration
        return cal is not None and any(p.is_tiled for p in cal.matmul)

    @property
    def calibration_label(self) -> str:
        """Where the measured figures come from, for provenance ("" when none at all)."""
        cal = self.arch.calibration
        if cal is None:
            return ""
        return cal.path if cal.origin == "measured" else f"{cal.origin}: {cal.source}"

    def matmul_flops_per_s(self, block_m: int, block_n: int, block_k: int, warps: int) -> float:
        """Calibrated Triton matmul FLOP/s nearest this tile shape, else the peak matmul rate."""
        cal = self.arch.calibration
        near = cal.tile_matmul(self.dtype, block_m, block_n, block_k, warps) if cal else None
        return near[0].tflops * 1e12 if near is not None else self.peak_matmul_flops_per_s

    def host_call_s(self, family: str, launches: int) -> float:
        """Host seconds of one launcher call: measured per family, else launches x one launch."""
        cal = self.arch.calibration
        measured = cal.host_call(family) if cal else None
        return measured if measured is not None else launches * self.host_launch_s

    def chain_step(
        self, mode: str, head_dim: int, tiling: Tiling, per_sm: int, programs: int = 0
    ) -> StepPoint | None:
        """Measured attention tile-chain step nearest this tiling (None when not calibrated).

        `programs` (> 0): the grid's programs, for modes measured on grids under a full wave
        (`Calibration.step_at`).
        """
        cal = self.arch.calibration
        if cal is None or not mode:
            return None
        t = tiling
        got = cal.step(mode, head_dim, t.block_m, t.block_n, t.num_warps, per_sm, t.num_stages)
        if got is not None and programs > 0:
            got = cal.step_at(got, programs, self.arch.sm_count)
        return got

    def tested_steps(
        self, mode: str, head_dim: int, tiling: Tiling, per_sm: int
    ) -> tuple[float, float] | None:
        """A layout's measured steps with and without its element test, per round of `per_sm`.

        Modes `mode` (every tile tested) and `mode`-full (none) of exactly this head dim,
        block_m, block_n and num_warps (`kernels.calibrate.microbench_neighborhood`: the same
        layout and key-tile indirection, timed both ways); (full round, what the test adds,
        never negative), or None when either is unmeasured.
        """
        if not mode:
            return None
        got = []
        for name in (f"{mode}-full", mode):
            p = self.chain_step(name, head_dim, tiling, per_sm)
            if p is None or (p.block_m, p.block_n, p.num_warps) != (
                tiling.block_m,
                tiling.block_n,
                tiling.num_warps,
            ):
                return None
            got.append(p.step_s * per_sm / p.blocks_per_sm)
        return got[0], max(0.0, got[1] - got[0])

    def score_delta_s(
        self, scores: tuple[str, ...], head_dim: int, tiling: Tiling, per_sm: int,
        mode: str = "online",
    ) -> float | None:  # fmt: skip
        """Measured seconds a block's step gains with these score functions (None: not all are).

        Per score function s: the step of mode `score-s` (the plain kernel, `mode` online) or
        `<mode>-score-s` (the ping-pong kernel's sigmoid: `pingpong-score-sigmoid`) less the
        softmax step measured so, per block of the measured round; summed over `scores`
        (`kernels.calibrate.microbench_masks`: the real kernels, every mode measured the same
        way). A modifier that only adds work
        to the softmax step (ALiBi's bias FMA, softcap's tanh and multiplies: all but sigmoid,
        which drops the row max, sum and rescale) cannot shorten it, so its measured step is
        an upper bound on the softmax step: the softmax step taken is the least of
        `score-softmax` and those modes' steps. On the H200 at head dim 128, 128x128/w8 the
        microbenchmark ran softmax at 2.24 us and ALiBi at 2.01 us (the kernel timed on the
        prefill grid runs ALiBi at 0.97-1.02x softmax's time): softmax is taken as 2.01 us,
        ALiBi adds 0 and sigmoid saves 0.09 us, not 0.32 us (the multi-head suites measured
        sigmoid at 1.03-1.05x softmax's speed at that tiling).
        """
        cal = self.arch.calibration
        if cal is None or not scores:
            return None
        t = tiling

        prefix = "score-" if mode == "online" else f"{mode}-score-"

        def step(name: str) -> StepPoint | None:
            return cal.step(
                f"{prefix}{name}", head_dim, t.block_m, t.block_n, t.num_warps, per_sm,
                t.num_stages,
            )  # fmt: skip

        base = step("softmax")
        if base is None:
            return None
        bounds = [p for n in ADDS_TO_SOFTMAX if (p := step(n)) is not None]
        k = base.blocks_per_sm
        base_s = min([base.step_s] + [p.step_s for p in bounds if p.blocks_per_sm == k])
        total = 0.0
        for name in scores:
            got = step(name)
            if got is None or got.blocks_per_sm != k:
                return None
            delta = (got.step_s - base_s) / k
            total += delta if name in REMOVES_SOFTMAX_WORK else max(0.0, delta)
        return total

    def loop_s(self, mode: str, head_dim: int, tiling: Tiling, per_sm: int) -> float:
        """Measured seconds a block of `mode` pays per further key loop (0 when not measured)."""
        cal = self.arch.calibration
        if cal is None or not mode:
            return 0.0
        t = (tiling.block_m, tiling.block_n, tiling.num_warps, tiling.num_stages)
        return cal.block_loop(mode, head_dim, t, per_sm)

    def floor_step(self, mode: str, head_dim: int, tiling: Tiling, per_sm: int) -> StepPoint | None:
        """A faster GPU's measured step that this one's cannot undercut (None when none).

        From the derived calibration's `floors` (`archs.datasheet.dominance_floors`).
        """
        cal = self.arch.calibration
        floors = cal.floors if cal is not None else None
        if floors is None or not mode:
            return None
        t = tiling
        return floors.step(mode, head_dim, t.block_m, t.block_n, t.num_warps, per_sm)

    def block_fixed_s(
        self,
        mode: str,
        head_dim: int,
        tiling: Tiling,
        per_sm: int,
        started: int,
        later: bool,
        tiles: str = "device",
    ) -> float | None:
        """Measured per-block fixed seconds of a fused kernel (None when not calibrated).

        `later`: a block of a later wave (see `Calibration.block_fixed`).
        """
        cal = self.arch.calibration
        if cal is None or not mode:
            return None
        t = (tiling.block_m, tiling.block_n, tiling.num_warps, tiling.num_stages)
        sms = self.arch.sm_count
        return cal.block_fixed(mode, head_dim, t, per_sm, started, sms, later, tiles)

    def uncalibrated_for(self, family: str) -> str:
        """The expected-error headline for results of `family`'s kernels ("" if calibrated).

        `uncalibrated` states the prefill kernels' error; this one the family's own
        (`archs.datasheet.FAMILY_ERRORS`).
        """
        cal = self.arch.calibration
        if not self.uncalibrated or cal is None:
            return ""
        return expected_error_note(
            self.arch, cal.uncalibrated_why, family, cal.origin == "transferred"
        )

    def headline_and_notes(self, family: str) -> tuple[list[str], list[str]]:
        """`family`'s expected-error headline (empty if calibrated), and the other notes."""
        head = self.uncalibrated_for(family)
        return ([head] if head else []), [n for n in self.notes if n != self.uncalibrated]

    def later_shared(
        self, mode: str, head_dim: int, tiling: Tiling, tiles: str, per_sm: int = 0
    ) -> BlockPoint | None:
        """The calibration's later-wave entry measured with K/V shared by query tiles.

        (`Calibration.later_shared`; None when not calibrated.)
        """
        cal = self.arch.calibration
        if cal is None or not mode:
            return None
        t = (tiling.block_m, tiling.block_n, tiling.num_warps, tiling.num_stages)
        return cal.later_shared(mode, head_dim, t, tiles, per_sm)

    def steady_fixed_s(self, p: BlockPoint) -> float:
        """A later-wave entry's fixed seconds net of its grid's wave transient (calibration)."""
        cal = self.arch.calibration
        return p.fixed_s if cal is None else cal.steady_fixed_s(p)

    def wave_transient_s(
        self, mode: str, head_dim: int, tiling: Tiling, q_tiles: int, steps: float | None = None
    ) -> float:
        """Seconds a call of several waves pays once for its first waves (0 when unmeasured).

        The nearest `wave_transients` entry (`archs.calibration.points.nearest_transient`);
        a negative measurement (timing noise) counts as 0. `steps`: key tiles per block, by
        which the transient fades (`transient_fade`); None: the entries' own length.
        """
        cal = self.arch.calibration
        if cal is None or not mode:
            return 0.0
        t = (tiling.block_m, tiling.block_n, tiling.num_warps, tiling.num_stages)
        got = nearest_transient(cal.wave_transients, mode, head_dim, t, q_tiles)
        if got is None:
            return 0.0
        return max(0.0, got.transient_s) * (1.0 if steps is None else transient_fade(steps))

    def later_waves(
        self, mode: str, head_dim: int, tiling: Tiling, tiles: str, q_tiles: int, per_sm: int
    ) -> LaterWaves | None:
        """This kernel's measured later waves by steps, net of the wave transient's share.

        Calibration `later_waves` (`archs.calibration.later_waves.later_curve`: the exact
        kernel, tiling, descriptor path and blocks per SM; the fewest measured query tiles a
        head at least `q_tiles`); None when not measured.
        """
        cal = self.arch.calibration
        if cal is None or not mode or not cal.later_waves:
            return None
        t = (tiling.block_m, tiling.block_n, tiling.num_warps, tiling.num_stages)
        got = later_curve(cal.later_waves, mode, head_dim, t, tiles, q_tiles, per_sm)
        if got is None:
            return None
        q, waves, points = got
        share = self.wave_transient_s(mode, head_dim, tiling, q) / (waves - 1)
        return LaterWaves(q, tuple((n, max(0.0, s - share * transient_fade(n))) for n, s in points))

    def sustained_slowdown(self, flops: float, gpu_s: float, sigmoid: bool = False) -> float:
        """The power cap's factor on a call's full-clock GPU time under sustained load.

        Calibration `power_cap` (`archs.calibration.power.PowerCap`; `sigmoid`: a sigmoid
        call's FLOPs weighted); 1 when not measured.
        """
        cal = self.arch.calibration
        cap = cal.power_cap if cal is not None else None
        return cap.slowdown(flops, gpu_s, sigmoid) if cap is not None else 1.0

    def floor_block_fixed_s(
        self, mode: str, head_dim: int, tiling: Tiling, per_sm: int, started: int, later: bool
    ) -> float | None:
        """A faster GPU's measured per-block fixed seconds this one's cannot undercut.

        From the derived calibration's `floors`, through host-built descriptors where
        measured (no in-kernel descriptor work to carry over); None when there are none.
        """
        cal = self.arch.calibration
        floors = cal.floors if cal is not None else None
        if floors is None or not mode:
            return None
        t = (tiling.block_m, tiling.block_n, tiling.num_warps, tiling.num_stages)
        sms = self.arch.sm_count
        return floors.block_fixed(mode, head_dim, t, per_sm, started, sms, later, "host")


def device_rates(arch: GpuArch, dtype: str) -> DeviceRates:
    """Rates for `dtype` on `arch`: calibrated figures where measured, datasheet otherwise.

    Every fallback is recorded in `notes` (they end up in the Result's warnings).
    """
    cal = arch.calibration
    notes: list[str] = []
    derived = cal is not None and cal.origin != "measured"
    if cal is not None and derived:
        notes += cal.assumptions
        where = f"{cal.origin} figures ({cal.source})"
    else:
        where = f"calibration {cal.path} ({cal.source}, {cal.date})" if cal else "no calibration"
    notes.append(f"rates from {where}; missing figures from the {arch.name} datasheet preset")

    def pick(measured: float | None, datasheet: float, what: str) -> float:
        if measured is not None:
            return measured
        notes.append(f"{what}: not calibrated, datasheet {datasheet:.4g}")
        return datasheet

    peak = cal.peak_matmul_flops_per_s(dtype) if cal else None
    peak_rate = pick(peak, arch.tensor_flops_per_s(dtype), f"{dtype} matmul FLOP/s")
    if cal is None or not any(p.is_tiled for p in cal.matmul):
        notes.append("no tile-shape matmul calibration: every tile at the peak matmul rate")
    launch = pick(cal.launch_overhead_s if cal else None, arch.launch_overhead_s, "launch s")
    floor = cal.bench_floor_s if cal else None
    if floor is None:
        notes.append("do_bench floor not calibrated: the GPU launch overhead stands in")
    copy = cal.hbm_copy_bandwidth_bytes_per_s if cal else None
    read = cal.hbm_read_bandwidth_bytes_per_s if cal else None
    return DeviceRates(
        arch=arch,
        dtype=dtype,
        hbm_read_bytes_per_s=pick(read or copy, arch.hbm_bandwidth_bytes_per_s, "HBM read B/s"),
        hbm_write_bytes_per_s=pick(copy, arch.hbm_bandwidth_bytes_per_s, "HBM write B/s"),
        l2_bytes_per_s=pick(
            cal.l2_read_bandwidth_bytes_per_s if cal else None,
            arch.l2_bandwidth_bytes_per_s,
            "L2 B/s",
        ),
        exp2_per_s=pick(cal.exp2_per_s if cal else None, arch.sfu_ops_per_s, "exp2/s"),
        fp32_per_s=pick(cal.fp32_fma_per_s if cal else None, arch.fp32_ops_per_s, "fp32 op/s"),
        launch_s=launch,
        host_launch_s=(cal.host_launch_s if cal else None) or 0.0,
        bench_head_start_s=(cal.bench_head_start_s if cal else None) or 0.0,
        bench_floor_s=max(floor or launch, launch),
        peak_matmul_flops_per_s=peak_rate,
        overlap_efficiency=OVERLAP_EFFICIENCY,
        notes=tuple(notes),
        uncalibrated=cal.assumptions[0] if cal is not None and derived and cal.assumptions else "",
    )
