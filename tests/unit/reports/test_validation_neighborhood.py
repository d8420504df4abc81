"""reports.validation_neighborhood: the neighborhood probe's files as `validate gpu` reads them.

A small synthetic probe file (the columns of benchmarks/neighborhood_probe.py, measured times
set from the model's own prediction times a known factor) is read, predicted and summarised;
unreadable rows are named file:line: field, all at once, and the CLI exits 2 on them.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from attnsim.reports.validation_kernels import (
    baselines,
    format_report,
    predict_rows,
    probe_of,
    summary,
)
from attnsim.reports.validation_neighborhood import NEIGHBORHOOD, _predict


def _probe_fields() -> tuple[str, ...]:
    """The columns benchmarks/neighborhood_probe.py writes (its FIELDS, read from the file)."""
    import ast

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "neighborhood_probe.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FIELDS":
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("no FIELDS in the probe")


FIELDS = _probe_fields()


def problem(suite, b, h, e, image, kernel, dilation=(1, 1), causal=(0, 0)):
    return dict(suite=suite, batch=b, heads=h, head_dim=e, image_h=image[0], image_w=image[1],
                kernel_h=kernel[0], kernel_w=kernel[1], dilation_h=dilation[0],
                dilation_w=dilation[1], causal_h=causal[0], causal_w=causal[1])  # fmt: skip


def ours(shape, q_tile, kv_tile, warps, positions, factor):
    bm, bn = q_tile[0] * q_tile[1], kv_tile[0] * kv_tile[1]
    row = dict(family="triton-neighborhood", q_tile=f"{q_tile[0]}x{q_tile[1]}",
               kv_tile=f"{kv_tile[0]}x{kv_tile[1]}", block_m=bm, block_n=bn, num_warps=warps,
               num_stages=3, positions=positions, status="ok", **shape)  # fmt: skip
    from attnsim.archs.load import load_arch

    row = {k: str(v) for k, v in row.items()}
    predicted, _ = _predict(row, load_arch("h200"))
    return {**row, "median_ms": str(predicted / factor)}


def write(path, rows):
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def probe_file(tmp_path: Path) -> Path:
    """Two 2-D shapes and a 1-D one, two configurations each, with the baselines."""
    v = problem("validation", 4, 16, 128, (64, 64), (7, 7))
    d = problem("validation", 1, 16, 64, (128, 128), (31, 31), (1, 1))
    h = problem("holdout", 2, 8, 64, (1, 12288), (1, 127), (1, 2))
    rows = [
        ours(v, (8, 16), (8, 8), 8, 4096, 1.10),  # predicted 10% over the measured
        ours(v, (2, 64), (1, 64), 8, 4096, 0.95),
        ours(d, (8, 16), (8, 8), 4, 16384, 1.0),
        ours(d, (1, 128), (1, 64), 4, 16384, 1.0),
        ours(h, (1, 128), (1, 64), 4, 12288, 1.0),
        ours(h, (1, 64), (1, 64), 4, 12288, 1.0),
        {**{k: str(x) for k, x in v.items()}, "family": "flex", "median_ms": "9.0",
         "status": "ok"},
        {**{k: str(x) for k, x in v.items()}, "family": "sdpa-dense", "median_ms": "5.0",
         "status": "ok"},
        {**{k: str(x) for k, x in v.items()}, "family": "flex", "status": "error: flex: x"},
    ]  # fmt: skip
    return write(tmp_path / "neighborhood-validation-h200-2026-12-05.csv", rows)


def test_the_file_is_recognised_predicted_and_summarised(probe_file: Path) -> None:
    assert probe_of(probe_file) is NEIGHBORHOOD
    points = predict_rows([probe_file])
    assert len(points) == 6 and {p.family for p in points} == {"triton-neighborhood"}
    assert [round(p.error_pct, 6) for p in points[:2]] == [10.0, -5.0]
    assert all(abs(p.error_pct) < 1e-9 for p in points[2:])
    s = summary(points)
    assert s["triton-neighborhood validation"]["points"] == 4
    assert s["triton-neighborhood holdout"]["mape_pct"] == pytest.approx(0.0, abs=1e-9)
    assert s["triton-neighborhood pick"]["shapes"] == 3
    assert points[0].shape == "B=4 H=16 E=128 64x64 k=7x7 d=1x1"
    assert points[4].shape == "B=2 H=8 E=64 L=12288 k=127 d=2" and "copies" in points[4].bound
    base = baselines([probe_file])
    assert {b.family for b in base} == {"flex", "sdpa-dense"}
    assert "ours vs flex" in format_report(points, base)


def test_bad_rows_are_named_by_file_line_and_field(probe_file: Path, tmp_path: Path) -> None:
    with probe_file.open() as fh:
        good = next(csv.DictReader(fh))
    bad = write(tmp_path / "bad.csv", [
        {**good, "kernel_h": "8"},
        {**good, "q_tile": "8x8"},
        {**good, "kv_tile": "2x32"},
        {**good, "positions": "4000"},
        {**good, "dilation_w": "0"},
        good,
    ])  # fmt: skip
    with pytest.raises(ValueError) as info:
        predict_rows([bad])
    lines = str(info.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "kernel_h", "q_tile", "kv_tile", "positions", "dilation_w"
    ]  # fmt: skip
    assert all(line.startswith(f"{bad}:{n}: ") for n, line in zip(range(2, 7), lines, strict=True))
    assert "expected an odd size" in lines[0] and "block_m = 128" in lines[1]


def test_the_cli_exits_2_on_a_bad_row(probe_file: Path, tmp_path: Path) -> None:
    with probe_file.open() as fh:
        good = next(csv.DictReader(fh))
    bad = write(tmp_path / "bad.csv", [{**good, "kernel_w": "64"}])
    run = subprocess.run(
        [sys.executable, "-m", "attnsim.reports.cli.main", "validate", "gpu", "--no-plots",
         "--measurements", str(bad)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert f"{bad}:2: kernel_w: expected" in run.stderr and "Traceback" not in run.stderr


def test_the_committed_h200_file_is_predicted_within_its_stated_error() -> None:
    """The gather build's file (2026-12-05): MAPE 13.3% with the window test counted as the
    kernel runs it (18.2% when it was priced as the segment mask's one compare). The bound
    sits a little above what was observed, so a regression trips it."""
    from attnsim.reports import validation_kernels

    root = Path(__file__).resolve().parents[3] / "kernels" / "measurements" / "neighborhood"
    points = validation_kernels.predict_rows([root / "neighborhood-all-h200-2026-12-05-gather.csv"])
    s = validation_kernels.summary(points)["triton-neighborhood all"]
    assert s["points"] == 30 and s["mape_pct"] < 14.0 and s["worst_pct"] < 41.0
