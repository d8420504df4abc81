"""Constraints and designs that do not fit: kept, marked, counted, and never ranked."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.result import Occupancy, Result
from attnsim.mappers.spatial.fusemax import FuseMaxMapper, FuseMaxOptions
from attnsim.reports.cli.main import main
from attnsim.reports.dse import feasibility as F
from attnsim.reports.dse.pareto import pareto_rows
from attnsim.reports.page.report_data import (
    DEFAULT_OBJECTIVES,
    PARETO_PAIRS,
    best_points,
    grouped_front,
    load_report_data,
)

# 16 points: 2 lengths x 4 buffers x 2 arrays. The 1 KiB buffers do not fit (4 points, the
# smallest areas); 16 MiB with 256x256 and both 64 MiB ones break the area cap (6 points),
# and tie or beat feasible points on latency and energy.
EXP = """\
name: small-constrained
architectures:
  fusemax: {preset: fusemax}
cascades:
  one: attention-1pass-mh
workloads:
  tiny: {sizes: {B: 1, H: 2, E: 64, F: 64}}
mappers:
  fusemax: fusemax
designs:
  fusemax: {arch: fusemax, cascade: one, mapper: fusemax}
sweep:
  fixed: {design: fusemax}
  grid:
    workload.seq_len: [1K, 4K]
    arch.overrides.buffer_bytes: [1KiB, 1MiB, 16MiB, 64MiB]
    arch.overrides.array_shapes.array_2d: [[64, 64], [256, 256]]
objectives: [latency, energy, area]
constraints:
  - {metric: area, max: 1.5e+9}
outputs: {formats: [csv, jsonl]}
"""
SIZES = {"B": 1, "H": 2, "E": 64, "F": 64, "P": 1024, "M": 1024}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("feasibility")
    path = tmp / "exp.yaml"
    path.write_text(EXP)
    out = tmp / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["run", str(path), "--out", str(out), "--jobs", "1", "--quiet"])
    assert status == 0, err.getvalue()
    return out, err.getvalue()


def _unranked(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The rows as they were before marking: every one competes."""
    return [{k: v for k, v in r.items() if k != F.FEASIBLE} for r in rows]


def test_fit_problem_from_warnings_and_occupancy() -> None:
    one = load_cascade("attention-1pass-mh")
    tiny = load_arch("fusemax").with_overrides(buffer_bytes=1024)
    result = FuseMaxMapper(FuseMaxOptions("binding")).map(one, tiny, SIZES)
    assert F.fit_problem(result).startswith("on-chip state of 1 query block(s)")
    assert "exceeds the global_buffer capacity (512 words)" in F.fit_problem(result)
    fits = FuseMaxMapper(FuseMaxOptions("binding")).map(one, load_arch("fusemax"), SIZES)
    assert F.fit_problem(fits) == ""
    over = Occupancy("smem", "per block", 300.0, 200.0)
    bare = Result.from_json(fits.to_json())
    no_warning = dataclasses.replace(bare, warnings=(), occupancy=(over,))
    assert F.fit_problem(no_warning) == "per block at smem needs 300, more than its capacity 200"
    spilled = dataclasses.replace(bare, warnings=(), occupancy=(Occupancy("b", "t", 3, 2, 1.0),))
    assert F.fit_problem(spilled) == ""  # a modelled spill (FLAT's) is not a misfit


def test_constraint_marks_and_tally() -> None:
    cap = F.Constraint("area_um2", "max", 5e9)
    floor = F.Constraint("util.array_2d", "min", 0.05)
    rows = [
        {"area_um2": 4e9, "util.array_2d": 0.5, F.FIT: ""},
        {"area_um2": 6e9, "util.array_2d": 0.01, F.FIT: ""},
        {"area_um2": 1e9, F.FIT: "state exceeds the buffer"},
    ]
    marked = F.mark_rows(rows, [cap, floor])
    assert [r[F.FEASIBLE] for r in marked] == [True, False, False]
    assert marked[1][F.VIOLATED] == (
        "area_um2 <= 5e+09 (is 6e+09); util.array_2d >= 0.05 (is 0.01)"
    )
    assert marked[2][F.VIOLATED] == (
        "util.array_2d >= 0.05 (is missing); does not fit: state exceeds the buffer"
    )
    counts = F.tally(rows, [cap, floor])
    assert (counts.total, counts.feasible, counts.infeasible) == (3, 1, 2)
    assert counts.by_reason == {
        "area_um2 <= 5e+09": 1,
        "util.array_2d >= 0.05": 2,
        "does not fit": 1,
    }
    assert F.constraints_from_json(F.constraints_json([cap, floor])) == [cap, floor]
    assert F.is_feasible({}) and not F.is_feasible({F.FEASIBLE: "False"})


def test_run_counts_infeasible_points(run_dir: tuple[Path, str]) -> None:
    _, err = run_dir
    assert (
        "6 of 16 finished points feasible; 10 infeasible, not ranked "
        "(does not fit: 4, area_um2 <= 1.5e+09: 6)"
    ) in err


def test_no_violating_point_is_best_or_on_a_front(run_dir: tuple[Path, str]) -> None:
    out, _ = run_dir
    data = load_report_data(out)
    assert [str(c) for c in data.constraints] == ["area_um2 <= 1.5e+09"]
    bad = {r["point_id"] for r in data.rows if not r[F.FEASIBLE]}
    assert len(bad) == 10
    task = ["point.workload.seq_len"]
    pairs = [[(x, "min"), (y, "min")] for x, y in PARETO_PAIRS]
    for objectives in [*pairs, data.objectives, list(DEFAULT_OBJECTIVES)]:
        front = grouped_front(data.rows, objectives, task)
        assert front and not {r["point_id"] for r in front} & bad, objectives
        assert all(r["area_um2"] <= 1.5e9 for r in front)
    best = best_points(data.rows, data.objectives, task)
    assert len(best) == 6 and not {r["point_id"] for r in best} & bad
    # The test has teeth: without the marks, violators are best and on fronts.
    raw = _unranked(data.rows)
    assert {r["point_id"] for r in best_points(raw, data.objectives, task)} & bad
    for x, y in PARETO_PAIRS:
        if {r["point_id"] for r in pareto_rows(raw, [(x, "min"), (y, "min")])} & bad:
            break
    else:
        pytest.fail("no violator on any unconstrained front")


def test_written_tables_mark_and_exclude_violators(run_dir: tuple[Path, str]) -> None:
    out, _ = run_dir
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16
    bad = {r["point_id"]: r for r in rows if r[F.FEASIBLE] == "False"}
    assert len(bad) == 10 and all(r[F.VIOLATED] for r in bad.values())
    assert all(r[F.VIOLATED] == "" for r in rows if r[F.FEASIBLE] == "True")
    reasons = sorted(r[F.VIOLATED].split(" (")[0] for r in bad.values())
    assert reasons.count("area_um2 <= 1.5e+09") == 6
    assert sum(v.startswith("does not fit: on-chip state of") for v in reasons) == 4
    for name in ["best_points.csv", *(p.name for p in out.glob("pareto-*.csv"))]:
        with (out / name).open() as f:
            ranked = list(csv.DictReader(f))
        assert ranked and not {r["point_id"] for r in ranked} & set(bad), name
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sum(not obj["feasible"] for obj in lines) == 10
    page = (out / "report.html").read_text()
    assert "infeasible (not ranked)" in page and "area_um2 &lt;= 1.5e+09" in page


def test_export_command_marks_rows_with_the_stored_constraints(
    run_dir: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = run_dir
    target = tmp_path / "again.csv"
    assert main(["export", str(out), "--output", str(target)]) == 0
    with target.open() as f:
        assert sum(r[F.FEASIBLE] == "False" for r in csv.DictReader(f)) == 10


def test_store_leaves_no_wal_files(run_dir: tuple[Path, str]) -> None:
    out, _ = run_dir
    assert (out / "results.sqlite").exists()
    assert not list(out.glob("results.sqlite-*"))
