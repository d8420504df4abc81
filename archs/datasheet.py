"""Figures for a GPU nobody calibrated: a sibling's measurements, or datasheet x efficiencies.

A GPU preset without a calibration file gets a `Calibration` built here (its `origin` and
`assumptions` say how; the GPU mappers turn them into the Result's warnings, the expected
error first):

- "transferred": a calibrated preset of the same architecture (same compute capability, e.g.
  the H100 and the H200, both GH100 at sm_90) lends its measured figures, scaled by the
  datasheet differences: whole-device compute rates by SMs x clock, per-SM step and block
  times by the clock, matmul rates by the tensor peak, HBM bandwidth by the HBM bandwidth;
  the host-side figures (launcher calls, do_bench) are the host's and stay as measured;
- "datasheet": the preset's datasheet figures, with the tensor-core and HBM rates scaled by
  the stated architecture-level efficiencies of `EFFICIENCIES`. What a calibration would
  have measured beyond them (tile chains, block fixed times, unfused kernels) comes from
  the GPU model's unit model, bounded below by `floors` taken from a calibrated GPU that
  this one does not outdo in any datasheet figure (so the A100 is never predicted faster
  than the H200 it is slower than on paper); host-side figures come from the calibrated
  host. The `calibration: none` override asks for this mode with nothing measured at all
  (no floors, no host figures): the H200 with its calibration withheld.

`DATASHEET_ERROR` is what the datasheet mode costs on the prefill kernels: the error of the
datasheet-only H200 against the committed H200 measurement files, recomputed by the tests;
`FAMILY_ERRORS` states it per kernel family (each result's warning quotes its own family's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from attnsim.archs.calibration import Calibration, MatmulPoint
from attnsim.archs.calibration.decode import DecodeCalibration, LoadCurve
from attnsim.archs.gpu import GpuArch

LOAD_ELEM_BYTES = 2  # the decode microbenchmarks run bf16

ORIGINS = ("measured", "transferred", "datasheet")


@dataclass(frozen=True, slots=True)
class Efficiencies:
    """Achieved fractions of datasheet peaks for one GPU architecture, with their sources.

    Attributes:
        architecture: What the figures are for (names the compute capability).
        tensor_of_peak: Dense 16-bit matmul rate sustained by a long, large matmul, over the
            datasheet dense tensor-core peak (power and clock limits, issue overheads).
        hbm_of_peak: Sustained streaming HBM bandwidth over the datasheet bandwidth.
        sources: Where each figure comes from.
    """

    architecture: str
    tensor_of_peak: float
    hbm_of_peak: float
    sources: tuple[str, ...]


_MAMF = (
    "tensor: Maximum Achievable Matmul FLOPS (MAMF) table of S. Bekman's ml-engineering "
    "(github.com/stas00/ml-engineering, compute/accelerator/README.md): best BF16 "
    "torch.matmul over a scan of large shapes"
)
_HBM = (
    "HBM: stated assumption, not measured by us: streaming kernels sustain about 90% of the "
    "datasheet HBM bandwidth (refresh, ECC, row switching)"
)
# keyed by the compute capability's major version
EFFICIENCIES: dict[int, Efficiencies] = {
    8: Efficiencies(
        "Ampere (sm_8x)", 0.86, 0.90, (f"{_MAMF}: A100 SXM 267.9 of 312 TFLOP/s (85.9%)", _HBM)
    ),
    9: Efficiencies(
        "Hopper (sm_9x)", 0.80, 0.90, (f"{_MAMF}: H100 SXM 792.1 of 989 TFLOP/s (80.1%)", _HBM)
    ),
}
DEFAULT_EFFICIENCIES = dataclasses.replace(
    EFFICIENCIES[9], architecture="an architecture with no figures here (Hopper's taken)"
)


@dataclass(frozen=True, slots=True)
class DatasheetError:
    """The measured error of the datasheet-only model: H200 with its calibration withheld.

    MAPE in percent of the GPU mappers' predictions against the committed H200 measurement
    files of one group of kernel families (`kernels`), per suite, and the mean signed error
    over both suites (negative: predicted too fast); recomputed by
    tests/unit/reports/test_validation_datasheet.py with `command`.
    """

    validation_mape_pct: float
    holdout_mape_pct: float
    command: str
    kernels: str = "the prefill kernels (1-pass, 2-pass, unfused)"
    signed_pct: float = 0.0
    detail: str = ""

    @property
    def expected_pct(self) -> float:
        """The larger of the two: what to expect on a GPU nobody measured."""
        return max(self.validation_mape_pct, self.holdout_mape_pct)


_VALIDATE = "attnsim validate gpu --no-calibration --measurements kernels/measurements/"
DATASHEET_ERROR = DatasheetError(
    validation_mape_pct=11.7,
    holdout_mape_pct=11.4,
    command=(
        f"{_VALIDATE}validation-h200-2026-11-30-pingpong.csv (and "
        "holdout-h200-2026-11-30-pingpong.csv)"
    ),
    detail="more, and too fast, on short sequences (seq_k <= 512), most for the 2-pass kernels",
)


def _probe(
    file: str, kernels: str, validation: float, holdout: float, signed: float
) -> DatasheetError:
    """A later family's datasheet-mode error, measured on its own probe file."""
    return DatasheetError(validation, holdout, f"{_VALIDATE}{file}", kernels, signed)


_DECODE = "decode/decode-h200-2026-12-05-tuned.csv"
# per kernel family (the `family` column of the measurement files): the prefill kernels
# share DATASHEET_ERROR; each later family was measured by its own probe, and its datasheet
# mode prices the kernel at the stated efficiencies without the per-kernel figures
# (steps, fixed times, profiles) its calibration measures, so it comes out too fast
FAMILY_ERRORS: dict[str, DatasheetError] = {
    "triton-1pass": DATASHEET_ERROR,
    "triton-2pass": DATASHEET_ERROR,
    "triton-unfused": DATASHEET_ERROR,
    "triton-window": _probe(
        "masks/masks-window-h200-2026-12-04.csv", "the sliding-window kernel", 20.2, 19.7, -19.5
    ),
    "triton-score": _probe(
        "masks/masks-score-h200-2026-12-04.csv",
        "the score-modifier kernels (sigmoid, ALiBi, softcap)",
        6.1,
        10.4,
        -5.6,
    ),
    "triton-blocksparse": _probe(
        "blocksparse/superseded/blocksparse-suite-h200-2026-12-04.csv",  # the earlier key loop
        "the block-sparse kernel",
        15.3,
        17.4,
        -16.2,
    ),
    "triton-neighborhood": _probe(
        "neighborhood/neighborhood-all-h200-2026-12-05-gather.csv",
        "the neighborhood kernel (copies included)",
        27.3,
        29.0,
        -28.0,
    ),
    "triton-bwd": _probe(
        "bwd/bwd-h200-2026-12-06-planned.csv", "the backward kernels", 35.0, 35.9, -35.4
    ),
    "triton-lightning": _probe(
        "lightning/lightning-h200-2026-12-04.csv", "the Lightning-2 kernels", 53.2, 55.0, -53.9
    ),
    "triton-decode-splitk": _probe(
        _DECODE, "the split-K (and unsplit) decode kernel", 27.3, 24.1, -25.9
    ),
    "triton-decode-streamk": _probe(_DECODE, "the stream-K decode kernel", 27.6, 25.3, -26.5),
    "triton-mla-decode": _probe(
        "decode/decode-splits-h200-2026-12-03.csv", "the MLA decode kernel", 63.6, 68.1, -65.9
    ),
}


_H100 = "attnsim validate gpu --measurements kernels/measurements/h100/"
_H100_PREFILL = "{}-h100-80gb-hbm3-2026-12-05.csv"


def _moved(file: str, kernels: str, validation: float, holdout: float, signed: float,
           detail: str = "") -> DatasheetError:  # fmt: skip
    """A family's error on the H100 with the H200's figures transferred (nothing of its own)."""
    return DatasheetError(validation, holdout, f"{_H100}{file}", kernels, signed, detail)


# the transfer's own error on the H100 (NVIDIA H100 80GB HBM3, 2026-12-05), whose suites fit
# nothing: predicted with the H200's figures carried over (`transferred_calibration`,
# `transferred_decode`; the unfused overlap exponent, `unfused_rates.OVERLAP_P`, is from its
# microbenchmarks); recomputed by tests/unit/reports/test_validation_transfer.py.
TRANSFER_ERRORS: dict[str, DatasheetError] = {
    "triton-1pass": _moved(
        _H100_PREFILL.format("validation"), "the 1-pass kernels", 2.9, 2.8, 0.4
    ),  # fmt: skip
    "triton-2pass": _moved(
        _H100_PREFILL.format("validation"), "the 2-pass kernels", 2.1, 2.4, -0.3
    ),  # fmt: skip
    "triton-unfused": _moved(
        _H100_PREFILL.format("validation"),
        "the unfused kernels",
        4.7,
        4.2,
        2.1,
        "too slow on average (+2%, from calls of at most 16K keys, +2.5%; those over, whose "
        "two-loop row softmax is priced as a chain of steps that the clock carries, -1.0%)",
    ),  # fmt: skip
    "triton-decode-splitk": _moved(
        "decode-h100-2026-12-05.csv", "the split-K (and unsplit) decode kernel", 4.0, 3.9, -0.6
    ),
    "triton-decode-streamk": _moved(
        "decode-h100-2026-12-05.csv", "the stream-K decode kernel", 5.4, 4.9, -3.3
    ),
    "triton-mla-decode": _moved(
        "decode-h100-2026-12-05.csv", "the MLA decode kernel", 4.4, 5.2, -0.7
    ),
    # the backward (the dP-first build of 2026-12-07) with the H100 host's launcher figures;
    # its dK/dV entries on the H200 are scaled by this H100's own ratio of the two builds
    # (`kernels.calibrate.bwd_builds`), its other figures transferred
    "triton-bwd": _moved(
        "bwd-h100-2026-12-07-dpfirst.csv", "the backward kernels", 5.2, 5.2, 3.0
    ),  # fmt: skip
    "triton-window": _moved(
        "masks-window-h100-2026-12-05.csv", "the sliding-window kernel", 3.6, 3.9, -3.1
    ),  # fmt: skip
    "triton-score": _moved(
        "masks-score-h100-2026-12-06.csv", "the score-function kernels", 3.5, 3.6, 3.1
    ),  # fmt: skip
}


def efficiencies(arch: GpuArch) -> Efficiencies:
    """The architecture-level efficiencies for `arch`'s compute capability."""
    cc = arch.compute_capability
    return EFFICIENCIES.get(int(cc), DEFAULT_EFFICIENCIES) if cc else DEFAULT_EFFICIENCIES


def expected_error_note(
    arch: GpuArch, why: str, family: str = "triton-1pass", transferred: bool = False
) -> str:
    """The warning every result on a GPU without its own calibration carries, `why` first.

    `family`: the kernel family the result prices (`FAMILY_ERRORS`; the prefill kernels'
    figure for a family not listed, said so). `transferred`: a sibling's figures carried
    over: the transfer's own measured error (`TRANSFER_ERRORS`) where it was checked.
    """
    moved = TRANSFER_ERRORS.get(family) if transferred else None
    if moved is not None:
        return (
            f"UNCALIBRATED {arch.name}: {why}; expect errors of about {moved.expected_pct:.0f}% "
            f"(mean absolute) for {moved.kernels}: the transfer's error on the H100 (the H200's "
            f"figures carried over, none of its own), {moved.validation_mape_pct:.1f}% on the "
            f"validation and {moved.holdout_mape_pct:.1f}% on the holdout measurements "
            f"(`{moved.command}`); "
            + (moved.detail or f"{'too fast' if moved.signed_pct < 0 else 'too slow'} on "
               f"average ({moved.signed_pct:+.0f}%)")
        )  # fmt: skip
    e = FAMILY_ERRORS.get(family, DATASHEET_ERROR)
    unlisted = (
        f" (no datasheet-mode measurement of {family}: the prefill kernels' figure)"
        if family not in FAMILY_ERRORS
        else ""
    )
    if transferred:  # a family whose transfer nobody checked: the datasheet mode's figure
        unlisted += f" (the transfer was not checked on another GPU for {family})"
    if e.detail:
        tail = e.detail
    else:
        tail = f"{'too fast' if e.signed_pct < 0 else 'too slow'} on average ({e.signed_pct:+.0f}%)"
    return (
        f"UNCALIBRATED {arch.name}: {why}; expect errors of about "
        f"{e.expected_pct:.0f}% (mean absolute) for {e.kernels}{unlisted}: the datasheet-only "
        f"model's error on the H200 with its calibration withheld, {e.validation_mape_pct:.1f}% "
        f"on the validation and {e.holdout_mape_pct:.1f}% on the holdout measurements "
        f"(`{e.command}`); {tail}"
    )


def datasheet_calibration(arch: GpuArch, withheld: bool = False) -> Calibration:
    """No measurement: datasheet peaks x `efficiencies(arch)` (origin "datasheet").

    `withheld`: asked for by the `calibration: none` override (said so in the warning).
    """
    eff = efficiencies(arch)
    # a library matmul (no tile shape): every tile at this rate
    tflops = tuple(
        MatmulPoint("datasheet x efficiency", dtype, 0, 0, 0, peak * eff.tensor_of_peak)
        for dtype, peak in arch.tensor_tflops
    )
    hbm = arch.hbm_bandwidth_bytes_per_s * eff.hbm_of_peak
    why = "measurements withheld (calibration: none)" if withheld else "no measurement of it"
    assumptions = (
        expected_error_note(arch, why),
        f"{arch.name}: no measured figures; datasheet peaks x stated efficiencies of "
        f"{eff.architecture}: matmul {eff.tensor_of_peak:.0%} of the dense tensor peak, HBM "
        f"{eff.hbm_of_peak:.0%} of {arch.hbm_bandwidth_bytes_per_s / 1e12:.2f} TB/s; exp2, "
        "fp32, L2 and launch figures as the preset states them",
        *(f"efficiency source: {s}" for s in eff.sources),
        "not measured, so from the unit model: attention tile-chain steps, per-block fixed "
        "times, occupancy, unfused kernel rates",
    )
    return Calibration(
        device=arch.name,
        date="",
        source="attnsim.archs.datasheet",
        hbm_copy_bandwidth_bytes_per_s=hbm,
        hbm_read_bandwidth_bytes_per_s=hbm,
        matmul=tflops,
        origin="datasheet",
        assumptions=assumptions,
        uncalibrated_why=why,
    )


def with_host(cal: Calibration, host: GpuArch) -> Calibration:
    """`cal` with the host-side figures of `host`'s calibration (launcher calls, do_bench).

    They describe the machine and harness that time the kernels, not the GPU: a GPU nobody
    measured is predicted as if timed from the host we measured.
    """
    h = host.calibration
    if h is None:
        return cal
    note = (
        f"host-side figures (launcher calls, do_bench head start and floor) from "
        f"{host.name}'s calibration {h.path}: the host that timed our kernels"
    )
    return dataclasses.replace(
        cal,
        host_launch_s=h.host_launch_s,
        host_call_s=h.host_call_s,
        bench_head_start_s=h.bench_head_start_s,
        bench_flush_s=h.bench_flush_s,
        bench_floor_s=h.bench_floor_s,
        assumptions=(*cal.assumptions, note),
    )


def sibling(arch: GpuArch, calibrated: Iterable[GpuArch]) -> GpuArch | None:
    """The calibrated GPU of `arch`'s architecture (same compute capability), if any.

    Nearest SM count first, then name; None when `arch` states no compute capability.
    """
    same = [
        g
        for g in calibrated
        if g.calibration is not None
        and g.calibration.origin == "measured"
        and g.compute_capability is not None
        and g.compute_capability == arch.compute_capability
        and g.name != arch.name
    ]
    return min(same, key=lambda g: (abs(g.sm_count - arch.sm_count), g.name), default=None)


def transferred_calibration(arch: GpuArch, source: GpuArch) -> Calibration:
    """`source`'s measured calibration carried to `arch` (same architecture; origin "transferred").

    Scaled by the datasheet ratios (target / source): whole-device compute rates (exp2,
    fp32, L2, the unfused kernels' non-memory time) by SMs x clock, per-SM times (tile-chain
    steps, per-block fixed times, a lone unfused program's step) by the clock, matmul rates
    by the tensor peak, HBM bandwidth by the HBM bandwidth. Host-side figures are the timing
    host's and are kept.
    """
    cal = source.calibration
    if cal is None:
        raise ValueError(f"{source.name} has no calibration to transfer")
    device = (arch.sm_count * arch.clock_hz) / (source.sm_count * source.clock_hz)
    clock = arch.clock_hz / source.clock_hz
    hbm = arch.hbm_bandwidth_bytes_per_s / source.hbm_bandwidth_bytes_per_s
    tensor = {d: arch.tensor_flops_per_s(d) / source.tensor_flops_per_s(d)
              for d, _ in arch.tensor_tflops if d in dict(source.tensor_tflops)}  # fmt: skip

    def scaled(x: float | None, by: float) -> float | None:
        return None if x is None else x * by

    why = f"no measurement of it; figures transferred from {source.name}"
    notes = (
        expected_error_note(arch, why, transferred=True),
        f"{arch.name}: figures transferred from {source.name}'s calibration {cal.path} "
        f"({cal.device}, {cal.date}), the same architecture (compute capability "
        f"{arch.compute_capability}), scaled by the datasheet ratios {arch.name} / "
        f"{source.name}: SMs x clock {device:.3g}, clock {clock:.3g}, HBM bandwidth {hbm:.3g}, "
        f"tensor peak {tensor.get('bf16', device):.3g}; host-side figures (launcher calls, "
        f"do_bench) as measured on {source.name}'s host",
        f"transfer assumes {arch.name}'s SMs run {source.name}'s kernels as {source.name}'s do "
        "(same instructions, caches, occupancy); only the listed datasheet figures differ",
    )
    return dataclasses.replace(
        cal,
        device=f"{cal.device} (transferred to {arch.name})",
        source=f"attnsim.archs.datasheet from {cal.path}",
        hbm_copy_bandwidth_bytes_per_s=scaled(cal.hbm_copy_bandwidth_bytes_per_s, hbm),
        hbm_read_bandwidth_bytes_per_s=scaled(cal.hbm_read_bandwidth_bytes_per_s, hbm),
        l2_read_bandwidth_bytes_per_s=scaled(cal.l2_read_bandwidth_bytes_per_s, device),
        exp2_per_s=scaled(cal.exp2_per_s, device),
        fp32_fma_per_s=scaled(cal.fp32_fma_per_s, device),
        attention_steps=tuple(
            dataclasses.replace(p, step_s=p.step_s / clock) for p in cal.attention_steps
        ),
        attention_blocks=tuple(
            dataclasses.replace(p, fixed_s=p.fixed_s / clock, step_s=p.step_s / clock)
            for p in cal.attention_blocks
        ),
        # time / device and the run's bandwidths x device: the memory part the model
        # subtracts and recomputes is unchanged, the rest scales with the device
        unfused_kernels=tuple(
            dataclasses.replace(
                p,
                time_s=p.time_s / device,
                hbm_read_bytes_per_s=p.hbm_read_bytes_per_s * device,
                hbm_write_bytes_per_s=p.hbm_write_bytes_per_s * device,
            )
            for p in cal.unfused_kernels
        ),
        # a lone program's per-step and fixed time: per-SM times, by the clock
        unfused_programs=tuple(
            dataclasses.replace(p, step_s=p.step_s / clock, fixed_s=p.fixed_s / clock)
            for p in cal.unfused_programs
        ),
        # the first waves' excess after do_bench's flush: by the clock, as the block fixed times
        wave_transients=tuple(
            dataclasses.replace(
                p, transient_s=p.transient_s / clock, steady_wave_s=p.steady_wave_s / clock
            )
            for p in cal.wave_transients
        ),
        later_waves=tuple(  # the later waves the model's blocks may not undercut: so too
            dataclasses.replace(p, wave_s=tuple(w / clock for w in p.wave_s))
            for p in cal.later_waves
        ),
        power_cap=cal.power_cap,  # the same die under the same board power cap (700 W)
        matmul=tuple(
            dataclasses.replace(p, tflops=p.tflops * tensor.get(p.dtype, device))
            for p in cal.matmul
        ),
        path="",  # not a file: files beside it (decode figures) belong to the source device
        transferred_from=cal.path,
        transfer_ratios=(clock, hbm),
        origin="transferred",
        assumptions=notes,
        uncalibrated_why=why,
    )


def derived_calibration(arch: GpuArch, calibrated: Iterable[GpuArch]) -> Calibration:
    """A calibration for `arch`, which has none, from the `calibrated` GPUs.

    Transferred from a sibling (`sibling`) when there is one; else datasheet figures
    (`datasheet_calibration`) with the host-side figures of the first calibrated GPU and,
    from the first calibrated GPU that `arch` does not outdo in any figure, floors
    (`dominance_floors`).
    """
    measured = [g for g in calibrated if g.calibration and g.calibration.origin == "measured"]
    source = sibling(arch, measured)
    if source is not None:
        return transferred_calibration(arch, source)
    cal = datasheet_calibration(arch)
    faster = next((g for g in measured if not outdone_by(arch, g)), None)
    if faster is not None:
        cal = dominance_floors(cal, arch, faster)
    return with_host(cal, measured[0]) if measured else cal


def outdone_by(arch: GpuArch, other: GpuArch) -> list[str]:
    """The datasheet figures in which `arch` exceeds `other` (empty: `other` dominates it).

    Per SM and clock: dense 16-bit tensor FLOPs, exp2 and fp32 operations, shared memory
    and registers; and SM count, clock, HBM and L2 bandwidth.
    """

    def per_sm_clock(g: GpuArch, rate: float) -> float:
        return rate / (g.sm_count * g.clock_hz)

    def tensor(g: GpuArch) -> float:
        rates = dict(g.tensor_tflops)
        return per_sm_clock(g, rates.get("bf16", rates.get("fp16", 0.0)) * 1e12)

    figures = {
        "tensor FLOP per SM per clock": (tensor(arch), tensor(other)),
        "exp2 per SM per clock": (arch.sfu_ops_per_clock_per_sm, other.sfu_ops_per_clock_per_sm),
        "fp32 per SM per clock": (
            per_sm_clock(arch, arch.fp32_ops_per_s),
            per_sm_clock(other, other.fp32_ops_per_s),
        ),
        "shared memory per SM": (arch.shared_memory_per_sm_bytes, other.shared_memory_per_sm_bytes),
        "registers per SM": (arch.registers_per_sm, other.registers_per_sm),
        "SMs": (arch.sm_count, other.sm_count),
        "clock": (arch.clock_hz, other.clock_hz),
        "HBM bandwidth": (arch.hbm_bandwidth_bytes_per_s, other.hbm_bandwidth_bytes_per_s),
        "L2 bandwidth": (arch.l2_bandwidth_bytes_per_s, other.l2_bandwidth_bytes_per_s),
    }
    return [name for name, (mine, theirs) in figures.items() if mine > theirs * (1 + 1e-9)]


def dominance_floors(cal: Calibration, arch: GpuArch, faster: GpuArch) -> Calibration:
    """`cal` with floors from `faster`'s measurements (`faster` dominates `arch`).

    `arch`'s SM has no per-clock resource above `faster`'s and runs at no higher clock, so
    a tile-chain step takes it at least the cycles `faster`'s SM was measured to take
    (steps x clock ratio), a block at least `faster`'s measured fixed time (latencies), and
    an unfused kernel's non-memory work at least `faster`'s device time scaled by SMs x
    clock. The model takes the larger of its own estimate and
    the floor; they are bounds, not estimates (what `arch` adds, a slower memory system or
    fewer SMs, the unit model prices).
    """
    fc = faster.calibration
    if fc is None:
        return cal
    clock = faster.clock_hz / arch.clock_hz
    device = (faster.sm_count * faster.clock_hz) / (arch.sm_count * arch.clock_hz)
    floors = Calibration(
        device=f"{fc.device} (floors for {arch.name})",
        date=fc.date,
        source=f"attnsim.archs.datasheet floors from {fc.path}",
        hbm_copy_bandwidth_bytes_per_s=(fc.hbm_copy_bandwidth_bytes_per_s or 0.0) / device,
        hbm_read_bandwidth_bytes_per_s=(fc.hbm_read_bandwidth_bytes_per_s or 0.0) / device,
        attention_steps=tuple(
            dataclasses.replace(p, step_s=p.step_s * clock) for p in fc.attention_steps
        ),
        # block fixed times as measured: mostly latencies (start, cold loads, the store),
        # which a slower clock does not shorten
        attention_blocks=fc.attention_blocks,
        wave_transients=fc.wave_transients,  # so later-wave floors are net of it too
        # time x device and the run's bandwidths / device (the floors' own too, so that no
        # overlap law applies): the rest (arithmetic, latency) is x device
        unfused_kernels=tuple(
            dataclasses.replace(
                p,
                time_s=p.time_s * device,
                hbm_read_bytes_per_s=p.hbm_read_bytes_per_s / device,
                hbm_write_bytes_per_s=p.hbm_write_bytes_per_s / device,
            )
            for p in fc.unfused_kernels
        ),
        origin="transferred",
    )
    note = (
        f"floors from {faster.name}'s calibration {fc.path}: {arch.name} exceeds "
        f"{faster.name} in no datasheet figure (per SM and clock, SMs, clock, HBM, L2), so "
        f"its tile-chain steps take at least {faster.name}'s measured cycles (x{clock:.3g} "
        f"in time), its blocks at least {faster.name}'s measured fixed time (host-built "
        f"descriptors where measured) and its unfused kernels at least {faster.name}'s "
        f"non-memory time x {device:.3g}; where the unit model's estimate is lower, the "
        "floor is used"
    )
    return dataclasses.replace(cal, floors=floors, assumptions=(*cal.assumptions, note))


def _load_tiles(c: LoadCurve, per_sm: float, read_bw: float | None) -> tuple[float, ...]:
    """A load curve's per-tile times on the target: per-SM times by the clock, floored.

    Never faster than the target's HBM read bandwidth streams the n programs' tiles together:
    the curve's points with many programs streaming are HBM contention on the source; on a
    GPU with less bandwidth the same n programs contend more. V is read apart from K unless
    the value dim is under the head dim (MLA's latent: V is K's first columns).
    """
    width = c.head_dim + (0 if c.value_dim < c.head_dim else c.value_dim)
    tile_bytes = c.block_n * width * LOAD_ELEM_BYTES
    return tuple(
        max(x * per_sm, n * tile_bytes / read_bw if read_bw else 0.0)
        for n, x in zip(c.programs, c.tile_s, strict=True)
    )


def transferred_decode(dcal: DecodeCalibration, clock: float, hbm: float) -> DecodeCalibration:
    """A sibling's decode figures carried to this GPU, as `transferred_calibration` does.

    Every time (per tile, per program, merges, profiles, load curves, empty programs, the
    paged figures) is a per-SM time and scales by 1 / `clock`; the HBM read bandwidth by
    `hbm`, and a load curve's per-tile time is never under its programs' tiles read together
    at that bandwidth (`_load_tiles`). The host's launcher times are the timing host's and
    stay. The `waves` steady costs are not carried: long launches' programs hold the
    sibling's HBM contention. Checked on the H100 (no decode figures of its own) against its
    decode suites (kernels/measurements/h100/).
    """
    t = 1.0 / clock

    def times(xs: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(x * t for x in xs)

    rep = dataclasses.replace
    bw = dcal.hbm_read_bandwidth_bytes_per_s
    return rep(
        dcal,
        device=f"{dcal.device} (transferred)",
        hbm_read_bandwidth_bytes_per_s=bw * hbm if bw else None,
        programs=tuple(rep(p, tile_s=p.tile_s * t, fixed_s=p.fixed_s * t) for p in dcal.programs),
        profiles=tuple(rep(p, time_s=times(p.time_s)) for p in dcal.profiles),
        loads=tuple(
            rep(c, tile_s=_load_tiles(c, t, bw * hbm if bw else None), fixed_s=times(c.fixed_s))
            for c in dcal.loads
        ),
        merges=tuple(
            rep(m, piece_s=m.piece_s * t, part_s=m.part_s * t, added_s=times(m.added_s))
            for m in dcal.merges
        ),
        builds=tuple(rep(b, tile_s=b.tile_s * t, fixed_s=b.fixed_s * t) for b in dcal.builds),
        empty_program_s=tuple((k, v * t) for k, v in dcal.empty_program_s),
        paged=tuple(
            rep(p, tile_s=p.tile_s * t, contiguous_tile_s=p.contiguous_tile_s * t)
            for p in dcal.paged
        ),
        # the steady costs of long launches hold the sibling's HBM contention, which the
        # clock does not carry (scaled by it, the H100's split-K suites: 4.6 -> 5.1% MAPE)
        waves=(),
    )
