"""The unfused kernels at many short rows: a bound by their programs, from calibration shapes.

At S <= 512 a grid holds thousands of one-tile programs (one per row for the softmax) and
their count, not their work, sets the time. The calibration times the three kernels on two
short shapes (B*H = 2048 at S = 96, 640 at S = 192: `microbench_unfused.SHORT_SHAPES`) that
are in no measurement file; the model takes per-program seconds from them. Checked here on
the regimes file (timed 2026-12-03, before those entries existed): its short-row unfused
points were off by up to -64% with the per-work rate alone.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch
from attnsim.kernels.calibrate.microbench_unfused import SHORT_SHAPES
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu import kernels
from attnsim.mappers.gpu.rates import Tiling, device_rates
from attnsim.mappers.gpu.tiling import evaluate
from attnsim.mappers.gpu.unfused_rates import UnfusedSplit, fit_rates
from attnsim.reports import validation

ROOT = Path(__file__).resolve().parents[4]
REGIMES = ROOT / "kernels" / "measurements" / "regimes" / "regimes-h200-2026-12-03.csv"
SHORT = 512  # seq_k of a short row


def short_points() -> list[validation.Point]:
    points = validation.join_files([REGIMES])[1]
    return [
        p for p in points if p.family == "triton-unfused" and p.measurement.seq_k <= SHORT
    ]  # fmt: skip


def test_short_calibration_shapes_are_in_no_measurement_file() -> None:
    files = sorted((ROOT / "kernels" / "measurements").glob("**/*.csv"))
    assert REGIMES in files
    for path in files:
        with path.open() as f:
            for row in csv.DictReader(f):
                if "batch" not in row or "seq_k" not in row:
                    break
                bh = int(row["batch"]) * int(row["heads"])
                assert (bh, int(row["seq_k"])) not in SHORT_SHAPES, path.name


def test_h200_calibration_holds_the_short_entries() -> None:
    cal = load_arch("h200").calibration
    assert cal is not None
    found = {(e.kernel, e.batch_heads, e.seq) for e in cal.unfused_kernels}
    for bh, seq in SHORT_SHAPES:
        assert {("qk", bh, seq), ("softmax", bh, seq), ("pv", bh, seq)} <= found


def test_short_rows_of_the_regimes_file_within_25_percent() -> None:
    points = short_points()
    assert len(points) >= 8
    errors = [p.error_pct for p in points]
    assert max(abs(e) for e in errors) <= 25.0, errors
    assert statistics.fmean(abs(e) for e in errors) <= 10.0, errors


def test_without_the_short_entries_the_model_misses_them() -> None:
    """The mechanism carries the fix: drop the short entries and the error comes back."""
    arch = load_arch("h200")
    cal = arch.calibration
    assert cal is not None
    shorts = {(bh, seq) for bh, seq in SHORT_SHAPES}
    long_only = replace(
        cal,
        unfused_kernels=tuple(
            e for e in cal.unfused_kernels if (e.batch_heads, e.seq) not in shorts
        ),
    )
    shape = AttnShape(256, 12, 64, 64, 64, 64, False, "bf16", 2)
    tiling = Tiling(128, 128, 8, 3)
    with_short = evaluate("unfused", shape, tiling, device_rates(arch, "bf16"))
    without = evaluate(
        "unfused", shape, tiling, device_rates(replace(arch, calibration=long_only), "bf16")
    )
    softmax_with, softmax_without = with_short.kernels[1], without.kernels[1]
    assert softmax_with.time_s > 3 * softmax_without.time_s  # 196608 one-row programs
    assert "per-program bound" in " ".join(p.measured_from for p in _plans(arch, shape, tiling))


def _plans(arch, shape: AttnShape, tiling: Tiling) -> tuple[kernels.KernelPlan, ...]:  # type: ignore[no-untyped-def]
    return kernels.kernel_plans(
        "unfused",
        shape,
        tiling,
        arch.sm_count,
        arch.l2_bytes,
        arch.calibration,
        arch.sm_count,
        arch.hbm_latency_s,
    )


def _split(work: float, blocks: int, memory_us: float, rest_us: float) -> UnfusedSplit:
    entry = load_arch("h200").calibration.unfused_kernels[0]  # type: ignore[union-attr]
    return UnfusedSplit(work, blocks, memory_us * 1e-6, rest_us * 1e-6, entry)


def test_fit_takes_the_per_work_rate_from_the_longest_entry() -> None:
    rate, per_program = fit_rates([_split(1000.0, 10, 50.0, 100.0)])
    assert rate == pytest.approx(0.1e-6)
    assert per_program == 0.0  # no program-bound entry


def test_fit_takes_seconds_per_program_from_program_bound_entries() -> None:
    long = _split(1000.0, 10, 50.0, 100.0)
    # 2 units of work: 0.2 us by the rate, 1 us of memory; 60 us measured over 3000 programs
    short = _split(2.0, 3000, 1.0, 59.0)
    rate, per_program = fit_rates([long, short])
    assert rate == pytest.approx(0.1e-6)
    assert per_program == pytest.approx(60e-6 / 3000)
    # an entry the rate and its bytes explain is not program-bound
    rate, per_program = fit_rates([long, _split(100.0, 3000, 10.0, 10.0)])
    assert per_program == 0.0
