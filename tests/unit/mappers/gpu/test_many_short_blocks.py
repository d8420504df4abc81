"""MANY_SHORT_BLOCKS: which calls carry it, and its figures recomputed from the files.

Fused calls of 4 or more waves of blocks whose rows average at most 8 key tiles are priced
slow on the committed measurements (the H200 validation, holdout and regimes files with
both 1-pass kernels, and the H100 q-sweep of shapes in no suite); the warning quotes how
much, and this recomputes it from every 1-pass and 2-pass configuration the warning flags.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from attnsim.kernels.bench.measure import read_host_figures, read_measurements
from attnsim.mappers.gpu.tiling import SHORT_BIAS
from attnsim.reports.validation import arch_for_device, predict

ROOT = Path(__file__).resolve().parents[4] / "kernels" / "measurements"
FILES = (
    ROOT / "validation-h200-2026-11-30-pingpong.csv",
    ROOT / "holdout-h200-2026-11-30-pingpong.csv",
    ROOT / "regimes" / "regimes-h200-2026-12-03.csv",
    ROOT / "regimes" / "qsweep-h100-2026-12-06.csv",
)
FLAG = "ran faster than priced in the committed measurements"


def flagged_errors() -> tuple[list[float], list[float]]:
    """% errors (predicted over measured, less 1) of the flagged and the other fused rows."""
    flagged, other = [], []
    for path in FILES:
        host = read_host_figures(path)
        for m in read_measurements([path]):
            if m.family not in ("triton-1pass", "triton-2pass"):
                continue
            r = predict(m, arch_for_device(m.device), host)
            err = 100 * (r.latency_s * 1e3 / m.median_ms - 1)
            (flagged if any(FLAG in w for w in r.warnings) else other).append(err)
    return flagged, other


def test_the_warning_states_the_flagged_calls_error() -> None:
    flagged, other = flagged_errors()
    deciles = statistics.quantiles(flagged, n=10)
    got = {"n": len(flagged), "mean": round(statistics.fmean(flagged)),
           "p10": round(deciles[0]), "p90": round(deciles[-1])}  # fmt: skip
    want = {k: round(v) for k, v in SHORT_BIAS.items()}
    assert got == want, f"update mappers.gpu.tiling.SHORT_BIAS to {got}"
    # the flag picks out a bias the other calls do not share
    assert statistics.fmean(flagged) > statistics.fmean(other) + 3
