"""`refusals: record`: a point its mapper refuses is a recorded outcome, not a failure.

Stored as `refused` with the mapper's reason; `check` notes it, `run` lists it and exits 0,
the exports keep it, the report lists it in its Refusals table and never ranks it, and a
resumed run skips it. Also the designs' `sizes:` (numbers, expressions, null).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from attnsim.einsum_ir.spec import SpecError
from attnsim.reports.cli.main import main
from attnsim.reports.dse.design_sizes import design_sizes, size_expression
from attnsim.reports.dse.experiment import load_experiment
from attnsim.reports.dse.runner import run_experiment
from attnsim.reports.dse.store import (
    export_csv,
    export_jsonl,
    load_failures,
    load_refusals,
    load_rows,
)
from attnsim.reports.page.report import load_report_data, render_report

EXP = """\
name: refusing
REFUSALS
architectures:
  h200: {preset: h200}
cascades:
  dense: attention-1pass-mh
workloads:
  tiny: {sizes: {B: 1, H: 2, E: 64, F: 64}}
mappers:
  gpu: gpu-1pass
designs:
  dense: {arch: h200, cascade: dense, mapper: gpu}
  gpsa: {arch: h200, cascade: attention-gpsa, mapper: gpu}  # gpu-1pass refuses it
baseline: dense
sweep:
  grid:
    design: [dense, gpsa]
    workload.seq_len: [1K, 2K]
outputs: {formats: [csv, jsonl]}
"""
REASON = "attention-gpsa: the GPU mappers cannot price a keys x queries input"


def write(tmp_path: Path, refusals: str = "refusals: record", name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(EXP.replace("REFUSALS", refusals), encoding="utf-8")
    return path


def test_refusals_key_defaults_to_fail_and_rejects_other_values(tmp_path: Path) -> None:
    assert load_experiment(write(tmp_path, "")).refusals == "fail"
    assert load_experiment(write(tmp_path)).records_refusals
    with pytest.raises(SpecError) as info:
        load_experiment(write(tmp_path, "refusals: ignore"))
    [problem] = info.value.problems
    assert problem.path == "refusals" and problem.line == 2
    assert "expected fail" in problem.message and "or record" in problem.message
    assert "'ignore'" in problem.message


def test_refused_points_are_stored_with_their_reason_and_skipped_on_resume(
    tmp_path: Path,
) -> None:
    exp = load_experiment(write(tmp_path))
    out = tmp_path / "out"
    summary = run_experiment(exp, out, jobs=1, quiet=True)
    assert (summary.ok, summary.refused, summary.failed) == (2, 2, 0)
    assert load_failures(out) == []
    refused = load_refusals(out)
    assert [(r["design"], r["mapper"], r["seq_len"]) for r in refused] == [
        ("gpsa", "gpu-1pass", 1024),
        ("gpsa", "gpu-1pass", 2048),
    ]
    assert all(r["status"] == "refused" and r["refusal"].startswith(REASON) for r in refused)
    assert {r["design"] for r in load_rows(out)} == {"dense"}  # never among the priced rows
    again = run_experiment(exp, out, jobs=2, quiet=True)  # a refused point is done
    assert (again.done, again.skipped) == (0, 4)


def test_without_record_a_refusal_is_a_failure_and_is_retried(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_experiment(load_experiment(write(tmp_path)), out, jobs=1, quiet=True)
    # the same points (refusals do not enter the points hash): the refused ones run again
    summary = run_experiment(load_experiment(write(tmp_path, "")), out, jobs=1, quiet=True)
    assert (summary.done, summary.skipped, summary.failed) == (2, 2, 2)
    assert load_refusals(out) == []
    assert all(f["error"].startswith("MappingError: " + REASON) for f in load_failures(out))


def test_exports_keep_refused_points(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_experiment(load_experiment(write(tmp_path)), out, jobs=1, quiet=True)
    lines = [json.loads(x) for x in export_jsonl(out).read_text().splitlines()]
    refused = [x for x in lines if x["status"] == "refused"]
    assert len(refused) == 2 and all(x["refusal"].startswith(REASON) for x in refused)
    assert all("result" not in x and "error" not in x for x in refused)
    with export_csv(out).open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ok", "ok", "refused", "refused"]
    assert all(r["refusal"].startswith(REASON) for r in rows[2:])
    assert all(r["feasible"] == "False" and r["latency_s"] == "" for r in rows[2:])


def test_check_notes_refusals_and_run_lists_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: ok: 4 points" in out
    assert f"{path}: note: design 'gpsa': refused by mapper 'gpu-1pass'" in out
    assert REASON in out
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--jobs", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "2 ok, 2 refused by their mapper, 0 failed" in err
    assert "2 points of 1 designs refused by their mapper" in err
    where = "design gpsa, mapper gpu-1pass (2 points: workload tiny, seq_len 1K, 2K)"
    assert f"{where}: {REASON}" in err


def test_check_without_record_keeps_a_refusal_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(write(tmp_path, ""))]) == 2
    assert "design 'gpsa': its first point" in capsys.readouterr().err


def test_report_lists_refusals_and_never_ranks_them(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_experiment(load_experiment(write(tmp_path)), out, jobs=1, quiet=True)
    (out / "experiment.yaml").write_text(write(tmp_path).read_text(), encoding="utf-8")
    data = load_report_data(out)
    assert len(data.refusals) == 2 and {r["design"] for r in data.rows} == {"dense"}
    page = render_report(data, out)
    refusals = page.split('id="refusals"')[1].split("</section>")[0]
    assert "Refusals (2)" in refusals and REASON in refusals
    assert refusals.count("<tr>") == 3  # the heading row and one per refused point
    best = (out / "best_points.csv").read_text()
    assert "gpsa" not in best


def test_design_sizes_drop_set_and_compute() -> None:
    sizes = {"B": 1, "H": 32, "P": 4096, "M": 4096}
    spec = {"H": None, "D": "P + M - 1", "N": "M / 32", "W": 7}
    assert design_sizes(sizes, spec) == {
        "B": 1, "D": 8191, "M": 4096, "N": 128, "P": 4096, "W": 7,
    }  # fmt: skip
    with pytest.raises(ValueError, match="not an integer"):
        design_sizes({"M": 100}, {"N": "M / 32"})
    assert design_sizes({"M": 100}, {"N": "M // 32"}) == {"M": 100, "N": 3}
    with pytest.raises(ValueError, match="no size Q"):
        design_sizes({"M": 100}, {"N": "Q + 1"})
    with pytest.raises(ValueError, match="positive"):
        design_sizes({"M": 100}, {"N": "M - 100"})
    with pytest.raises(ValueError, match="only integers"):
        size_expression("M ** 2", set())


def test_design_sizes_are_checked_when_read(tmp_path: Path) -> None:
    text = EXP.replace("REFUSALS", "refusals: record").replace(
        "mapper: gpu}  # gpu-1pass", "mapper: gpu, sizes: {X: __import__, Y: 0, Z: [1]}}  #"
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_experiment(path)
    paths = sorted(p.path for p in info.value.problems)
    assert paths == ["designs.gpsa.sizes.Y", "designs.gpsa.sizes.Z"]  # X: a name, checked later
