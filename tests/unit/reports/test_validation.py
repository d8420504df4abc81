"""`attnsim validate gpu` and reports.validation on small synthetic measurement CSVs."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from attnsim.kernels.bench.measure import Measurement, write_measurements
from attnsim.reports import validation, validation_kernels
from attnsim.reports.cli.main import main

TILINGS = ((128, 64, 8, 3), (64, 64, 4, 3))


def measurement(
    family: str, tiling: tuple[int, int, int, int], ms: float, **kw: int
) -> Measurement:
    shape = {"batch": 2, "heads": 8, "seq_q": 2048, "seq_k": 2048, "head_dim": 64, "causal": 0}
    shape.update(kw)
    flops = 4 * shape["batch"] * shape["heads"] * shape["seq_q"] * shape["seq_k"] * 64
    return Measurement(
        family,
        shape["batch"],
        shape["heads"],
        shape["seq_q"],
        shape["seq_k"],
        shape["head_dim"],
        shape["causal"],
        "bf16",
        *tiling,
        ms,
        ms * 0.99,
        ms * 1.01,
        flops,
        flops / ms / 1e9,
        "NVIDIA H200",
        "570.00",
        "2.11.0",
        "3.6.0",
        "2026-12-01T00:00:00Z",
    )


def perfect_rows() -> list[Measurement]:
    """Rows whose 'measured' time is exactly the model's prediction (plus an SDPA row)."""
    rows = []
    for family in ("triton-1pass", "triton-2pass", "triton-unfused"):
        for t in TILINGS:
            m = measurement(family, t, 1.0)
            ms = validation.predict(m, "h200").latency_s * 1e3
            rows.append(measurement(family, t, ms))
    rows.append(measurement("sdpa-flash", (0, 0, 0, 0), 0.5))
    return rows


def test_perfect_predictions_have_zero_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.csv"
    write_measurements(path, perfect_rows())
    assert main(["validate", "gpu", "--measurements", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"n_points", "mape_overall", "mape", "max_abs_pct_error", "regimes",
                        "unstable_points", "stable_mape", "stable_max_abs_pct_error",
                        "p10_mape", "varying_points"}  # fmt: skip
    assert out["varying_points"] == 0
    assert out["unstable_points"] == 0
    assert out["n_points"] == 6
    assert set(out["mape"]) == {"triton-1pass", "triton-2pass", "triton-unfused"}
    assert out["mape_overall"] == pytest.approx(0, abs=1e-9)
    assert out["max_abs_pct_error"] == pytest.approx(0, abs=1e-9)


def test_errors_and_picks_are_computed_from_measured_times() -> None:
    m_fast = measurement("triton-1pass", TILINGS[0], 1.0)
    m_slow = measurement("triton-1pass", TILINGS[1], 2.0)
    points = [
        validation.Point(m_fast, "h200", 1.1, "tensor-core"),  # +10%
        validation.Point(m_slow, "h200", 1.0, "l2"),  # -50%, and the model's pick
    ]
    s = validation.summary(points)
    assert s["mape"]["triton-1pass"] == pytest.approx(30.0)
    assert s["max_abs_pct_error"] == pytest.approx(50.0)
    (pick,) = validation.tiling_picks(points)
    assert pick.picked == "64x64/w4/s3" and pick.best == "128x64/w8/s3"
    assert pick.slowdown == pytest.approx(2.0) and not pick.within_tolerance
    assert validation.pick_fraction([pick]) == 0.0
    assert validation.worst(points, 1)[0].measurement is m_slow


def test_out_dir_gets_report_points_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.csv"
    write_measurements(path, perfect_rows())
    out = tmp_path / "out"
    assert main(["validate", "gpu", "--measurements", str(path), "--out", str(out)]) == 0
    assert "MAPE overall" in capsys.readouterr().out
    for name in (
        "report.txt",
        "points.csv",
        "summary.json",
        "predicted_vs_measured.png",
        "roofline.png",
        "tiling_pick.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "summary.json").read_text())["tiling_pick_within_10pct"] == 1.0


@pytest.mark.parametrize(
    "content, message",
    [
        ("family,batch\ntriton-1pass,1\n", "header does not match the measurement schema"),
        (None, "cannot read measurements"),
    ],
)
def test_bad_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    assert main(["validate", "gpu", "--measurements", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnsim: error: cannot read measurements") and message in err
    assert "Traceback" not in err


def test_malformed_row_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.csv"
    write_measurements(path, perfect_rows()[:1])
    text = path.read_text().replace("triton-1pass", "triton-9pass")
    path.write_text(text)
    assert main(["validate", "gpu", "--measurements", str(path)]) == 2
    assert f"{path}:2:" in capsys.readouterr().err


def test_every_bad_file_and_row_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "rows.csv"
    write_measurements(rows, perfect_rows()[:3])
    text = rows.read_text().splitlines()
    text[1] = text[1].replace("triton-1pass", "triton-9pass")
    text[3] = text[3].replace("bf16", "bf17")
    rows.write_text("\n".join(text) + "\n")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert main(["validate", "gpu", "--measurements", str(rows), str(other)]) == 2
    err = capsys.readouterr().err
    assert f"{rows}:2:" in err and f"{rows}:4:" in err and f"{other}:1: header" in err
    assert "validate gpu reads prefill measurement CSVs" in err and "Traceback" not in err


def test_only_sdpa_rows_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.csv"
    write_measurements(path, perfect_rows()[-1:])
    assert main(["validate", "gpu", "--measurements", str(path)]) == 2
    assert "no rows of a modelled family" in capsys.readouterr().err


def test_device_names_map_to_presets() -> None:
    assert validation.arch_for_device("NVIDIA H200") == "h200"
    assert validation.arch_for_device("NVIDIA H100 80GB HBM3") == "h100-sxm"
    with pytest.raises(validation.ValidationError, match="use --arch"):
        validation.arch_for_device("Radeon")


PINGPONG = (128, 128, 8, 3)


def pingpong(ms: float, **kw: int) -> Measurement:
    return dataclasses.replace(measurement("triton-1pass", PINGPONG, ms, **kw), schedule="pingpong")


def test_pingpong_rows_are_predicted_with_their_kernel() -> None:
    plain_m = measurement("triton-1pass", PINGPONG, 1.0)
    pp_m = pingpong(1.0)
    pp, plain = validation.predict(pp_m, "h200"), validation.predict(plain_m, "h200")
    assert dict(pp.options)["schedule"] == "pingpong" and dict(plain.options)["schedule"] == "plain"
    assert [e.einsum for e in pp.per_einsum] == ["attn_fwd_pingpong"]
    assert [e.einsum for e in plain.per_einsum] == ["attn_fwd"]
    assert pp.latency_s != plain.latency_s
    assert not any("cannot run" in w for w in pp.warnings)
    # measured on a GPU the kernel cannot run on: predicted, with the reason
    a100 = validation.predict(pp_m, "a100-sxm")
    assert any("cannot run as modelled" in w and "sm_90" in w for w in a100.warnings)


def test_pingpong_points_are_labelled_and_picked_apart_from_plain(tmp_path: Path) -> None:
    rows = [measurement("triton-1pass", PINGPONG, 2.0), pingpong(1.0)]
    points = validation.join(rows)
    assert [p.tiling for p in points] == ["128x128/w8/s3", "128x128/w8/s3/pingpong"]
    (pick,) = validation.tiling_picks(points)  # one shape, two measured kernels
    assert pick.candidates == 2 and pick.best == "128x128/w8/s3/pingpong"
    assert pick.picked in ("128x128/w8/s3", "128x128/w8/s3/pingpong")
    out = tmp_path / "points.csv"
    validation.write_points(out, points)
    labels = [r["tiling"] for r in csv.DictReader(out.open(newline="", encoding="utf-8"))]
    assert labels == ["128x128/w8/s3", "128x128/w8/s3/pingpong"]
    assert "128x128/w8/s3/pingpong" in validation.format_report(points, [pick])


def test_validate_cli_takes_pingpong_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exact = validation.predict(pingpong(1.0), "h200").latency_s * 1e3
    path = tmp_path / "m.csv"
    write_measurements(path, [*perfect_rows(), pingpong(exact)])
    assert main(["validate", "gpu", "--measurements", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_points"] == 7 and out["max_abs_pct_error"] == pytest.approx(0, abs=1e-9)


def test_unstable_measurements_are_counted_apart() -> None:
    """A row whose repeats spread (p10-p90) over 20% of its median is reported apart."""
    steady = measurement("triton-1pass", TILINGS[0], 1.0)  # p10-p90: 2% of the median
    shaky = dataclasses.replace(measurement("triton-1pass", TILINGS[1], 2.0), p10_ms=1.5,
                                p90_ms=2.5)  # fmt: skip
    points = [
        validation.Point(steady, "h200", 1.1, "tensor-core"),  # +10%
        validation.Point(shaky, "h200", 1.0, "l2"),  # -50%, spread 50%
    ]
    assert [p.unstable for p in points] == [False, True]
    s = validation.summary(points)
    assert s["unstable_points"] == 1
    assert s["stable_mape"] == pytest.approx(10.0)
    assert s["stable_max_abs_pct_error"] == pytest.approx(10.0)
    report = validation.format_report(points, validation.tiling_picks(points))
    assert "1 points whose repeats spread (p10-p90) over 20% of their median" in report
    assert "[unstable: p10-p90 50%]" in report


def test_mixed_files_give_one_json_object_and_a_report_per_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prefill rows and a kernel-probe file together: --json prints one object (the prefill
    summary with the probes' under "probes"), --out writes each kind's report."""
    prefill = tmp_path / "m.csv"
    write_measurements(prefill, perfect_rows())
    measured = Path(__file__).resolve().parents[3] / "kernels" / "measurements"
    probe = measured / "bwd" / "bwd-h200-2026-12-06-planned.csv"
    argv = ["validate", "gpu", "--measurements", str(prefill), str(probe), "--no-plots"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_points"] == 6 and "triton-bwd holdout" in out["probes"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "GPU model validation: 6 points" in text and "kernel probes" in text
    written = {p.name for p in (tmp_path / "o").iterdir()}
    assert {"report.txt", "probe-report.txt", "summary.json", "points.csv"} <= written
    assert "kernel probes" in (tmp_path / "o" / "probe-report.txt").read_text()
    with (tmp_path / "o" / "probe-points.csv").open(newline="") as fh:  # every probe point
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(validation_kernels.predict_rows([probe])) > 0
    for row in rows:
        want = 100 * (float(row["predicted_ms"]) / float(row["measured_ms"]) - 1)
        assert float(row["error_pct"]) == pytest.approx(want, abs=1e-3)
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["n_points"] == 6 and "triton-bwd holdout" in summary["probes"]
    assert summary["tiling_pick_within_10pct"] == 1.0


def test_a_folder_reads_its_files_of_known_kinds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--measurements DIR: its CSV files (recursively) of kinds validate gpu reads; others are
    skipped and listed; a folder with none is an error."""
    (tmp_path / "sub").mkdir()
    write_measurements(tmp_path / "sub" / "m.csv", perfect_rows())
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert main(["validate", "gpu", "--measurements", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_points"] == 6 and out["skipped_files"] == [str(tmp_path / "other.csv")]
    (tmp_path / "sub" / "m.csv").unlink()
    assert main(["validate", "gpu", "--measurements", str(tmp_path)]) == 2
    assert "no measurement file of a kind validate gpu reads" in capsys.readouterr().err


def test_a_folder_skips_its_superseded_builds_unless_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files under a `superseded/` folder (an earlier kernel build's measurements) are skipped
    and listed when their parent is given, and read when named."""
    write_measurements(tmp_path / "m.csv", perfect_rows())
    old = tmp_path / "superseded" / "old.csv"
    old.parent.mkdir()
    write_measurements(old, perfect_rows()[:2])
    assert main(["validate", "gpu", "--measurements", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_points"] == 6 and out["skipped_files"] == [str(old)]
    assert main(["validate", "gpu", "--measurements", str(old), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_points"] == 2


def test_points_whose_fastest_repeats_match_are_marked_varying() -> None:
    """Median > 10% slower than predicted, p10 within 5%: the speed varied across repeats."""
    base = measurement("triton-1pass", TILINGS[0], 1.2)
    varying = dataclasses.replace(base, p10_ms=1.02, p90_ms=1.25)
    slow = dataclasses.replace(base, p10_ms=1.15, p90_ms=1.25)  # every repeat slow
    points = [validation.Point(m, "h200", 1.0, "tensor-core") for m in (varying, slow)]
    assert [round(p.error_pct, 1) for p in points] == [-16.7, -16.7]
    assert points[0].p10_error_pct == pytest.approx(100 * (1.0 - 1.02) / 1.02)
    assert [p.varying for p in points] == [True, False]
    s = validation.summary(points)
    assert s["varying_points"] == 1
    assert s["p10_mape"] == pytest.approx((100 * 0.02 / 1.02 + 100 * 0.15 / 1.15) / 2)
    report = validation.format_report(points, [])
    assert "1 points ran over 10% slower than predicted at their median" in report
    assert report.count("[p10 -2.0%]") == 1
