"""reports.validation_regimes: GPU validation error by regime, and `validate gpu` showing it."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from attnsim.kernels.bench.measure import write_measurements
from attnsim.reports import validation
from attnsim.reports.cli.main import main
from attnsim.reports.validation_regimes import DIMENSIONS, format_regimes, regime_table

from .test_validation import measurement

T = (128, 64, 8, 3)


def point(error_pct: float, family: str = "triton-1pass", **shape: int) -> validation.Point:
    m = measurement(family, T, 1.0, **shape)
    return validation.Point(m, "h200", 1.0 + error_pct / 100, "tensor-core")


def test_each_point_falls_in_one_band_of_each_dimension() -> None:
    shapes = [
        dict(seq_q=512, seq_k=512, batch=1, heads=16),
        dict(seq_q=513, seq_k=4096, batch=1, heads=17),
        dict(seq_q=512, seq_k=4097, batch=2, heads=64, causal=1),
        dict(seq_q=40000, seq_k=40000, batch=1, heads=129),
        dict(seq_q=8192, seq_k=1024, batch=1, heads=1),
    ]
    for shape in shapes:
        m = point(0.0, **shape).measurement
        for dimension, bands in DIMENSIONS:
            assert sum(test(m) for _, test in bands) == 1, (dimension, shape)


def test_cells_hold_count_mape_and_signed_bias() -> None:
    errors = [10.0, -30.0]
    points = [point(e, seq_q=1024, seq_k=8192, batch=1, heads=4) for e in errors]
    points.append(point(5.0, family="triton-2pass"))
    table = regime_table(points)
    assert list(table) == ["triton-1pass", "triton-2pass"]
    cell = table["triton-1pass"]["seq_q/seq_k"]["<=1/8"]
    assert cell["n"] == 2
    assert cell["mape"] == pytest.approx(statistics.fmean(abs(e) for e in errors))
    assert cell["bias"] == pytest.approx(statistics.fmean(errors))
    assert list(table["triton-1pass"]["seq_k"]) == ["4K-32K"]  # empty bands left out
    assert table["triton-1pass"]["batch x heads"]["<=16"]["n"] == 2
    (dense,) = table["triton-2pass"]["mask"].values()
    assert list(table["triton-2pass"]["mask"]) == ["dense"]
    assert dense == {"n": 1, "mape": pytest.approx(5.0), "bias": pytest.approx(5.0)}
    text = format_regimes(table)
    assert "    seq_q/seq_k   <=1/8 20.0 (2, -10.0)" in text.splitlines()


def test_validate_gpu_reports_regimes_in_text_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.csv"
    write_measurements(path, [measurement("triton-1pass", T, 0.5), measurement("sdpa-flash", T, 1)])
    assert main(["validate", "gpu", "--measurements", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    cell = summary["regimes"]["triton-1pass"]["seq_k"]["513-4K"]
    assert cell["n"] == 1 and cell["mape"] == pytest.approx(summary["mape_overall"])
    assert main(["validate", "gpu", "--measurements", str(path), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "error by regime: band MAPE% (points, mean signed error%)" in text
    assert "    mask          dense " in text


def test_validate_gpu_no_calibration_predicts_from_the_datasheet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.csv"
    write_measurements(path, [measurement("triton-2pass", T, 0.5)])
    assert main(["validate", "gpu", "--measurements", str(path), "--json"]) == 0
    calibrated = json.loads(capsys.readouterr().out)["mape_overall"]
    args = ["validate", "gpu", "--measurements", str(path), "--no-calibration", "--no-plots"]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mape_overall"] != calibrated
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "GPU figures: the datasheet alone (calibration: none;" in text
    assert "host launcher-call figures from nowhere (measurements withheld" in text
