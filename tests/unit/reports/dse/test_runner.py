"""Runner: results, failures recorded, resume after SIGKILL, Dask on a LocalCluster, progress."""

from __future__ import annotations

import io
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from attnsim.reports.dse.experiment import load_experiment
from attnsim.reports.dse.runner import Progress, run_experiment
from attnsim.reports.dse.store import db_path, load_failures, load_rows

ROOT = Path(__file__).resolve().parents[4]

EXP = """\
name: small
architectures:
  fusemax: {preset: fusemax}
  flat: {preset: flat}
cascades:
  one: attention-1pass-mh
  three: attention-3pass-mh
  agent: attention-agent  # fusemax refuses it when mapping (its mask): a failed point
workloads:
  tiny: {sizes: {B: 1, H: 2, E: 64, F: 64}}
mappers:
  fusemax: fusemax
  unfused: unfused
designs:
  fusemax: {arch: fusemax, cascade: one, mapper: fusemax}
  unfused: {arch: flat, cascade: three, mapper: unfused}
sweep:
  - grid:
      design: [fusemax, unfused]
      workload.seq_len: [SEQS]
      arch.overrides.buffer_bytes: [1MiB, 2MiB, 4MiB, 8MiB, 16MiB]
  - fixed: {design: fusemax, workload.seq_len: 1K}
    list:
      - {cascade: agent}
outputs: {formats: [csv]}
"""


AGENT_ON_FUSEMAX = (
    "MappingError: fusemax: AGS[b,h,e,j] = Q[b,h,e,u,u0] where j == u: the mask condition "
    "'j == u' is outside the band family (bounds on the query, the key and their "
    "difference), so its empty tiles cannot be found; set skip_empty_tiles=false to compute "
    "every tile"
)


def experiment(tmp_path: Path, n_lengths: int) -> Path:
    seqs = ", ".join(str(256 * (i + 1)) for i in range(n_lengths))
    path = tmp_path / "exp.yaml"
    path.write_text(EXP.replace("SEQS", seqs))
    return path


def test_run_records_results_and_one_failure(tmp_path: Path) -> None:
    exp = load_experiment(experiment(tmp_path, 3))
    summary = run_experiment(exp, tmp_path / "out", jobs=2, quiet=True)
    assert (summary.ok, summary.failed, summary.skipped) == (30, 1, 0)
    rows = load_rows(tmp_path / "out")
    assert len(rows) == 30 and len({r["point_id"] for r in rows}) == 30
    row = rows[0]
    assert row["design"] == "fusemax" and row["status"] == "ok"
    assert row["edp_js"] == pytest.approx(row["energy_pj"] * 1e-12 * row["latency_s"])
    assert row["point.arch.overrides.buffer_bytes"] == 2**20 == row["buffer_bytes"]
    assert row["point.workload.seq_len"] == 256 == row["seq_len"]
    [failure] = load_failures(tmp_path / "out")
    assert failure["error"] == AGENT_ON_FUSEMAX
    assert failure["point.cascade"] == "agent"
    # Re-running skips every finished point and retries the failure (it fails again).
    again = run_experiment(exp, tmp_path / "out", jobs=1, quiet=True)
    assert (again.ok, again.failed, again.skipped) == (0, 1, 30)
    assert load_rows(tmp_path / "out") == rows


def test_budget_then_resume_equals_one_run(tmp_path: Path) -> None:
    exp = load_experiment(experiment(tmp_path, 3))
    first = run_experiment(exp, tmp_path / "a", jobs=1, budget=7, quiet=True)
    assert first.done == 7
    run_experiment(exp, tmp_path / "a", jobs=2, quiet=True)
    run_experiment(exp, tmp_path / "b", jobs=1, quiet=True)
    assert load_rows(tmp_path / "a") == load_rows(tmp_path / "b")


def _count_ok(out: Path) -> int:
    if not db_path(out).exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db_path(out)}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM points WHERE status='ok'").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_rerun(tmp_path: Path) -> None:
    path = experiment(tmp_path, 120)  # 1,201 points
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "attnsim.reports.cli.main", "run", str(path), "--out", str(out),
           "--jobs", "2", "--quiet"]  # fmt: skip
    threshold = random.Random().randint(50, 600)
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while _count_ok(out) < threshold and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    # a loaded machine may not reach the threshold before the deadline: the kill then comes
    # at an earlier moment, which the rest of the test checks just the same
    reached = _count_ok(out) >= threshold
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers: this test started them
    proc.wait()
    before = {r["point_id"]: r for r in load_rows(out)}
    assert len(before) >= min(threshold, 1200) or not reached
    assert len(before) < 1200 or proc.returncode == 0, "the run finished before the kill"
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1, rerun.stderr  # the sweep's one bad point fails again
    assert "attnsim run: 1 of " in rerun.stderr and "Traceback" not in rerun.stderr
    after = load_rows(out)
    ids = [r["point_id"] for r in after]
    assert len(ids) == len(set(ids)) == 1200
    assert all(before[pid] == row for row in after if (pid := row["point_id"]) in before)
    exp = load_experiment(path)
    run_experiment(exp, tmp_path / "clean", jobs=2, quiet=True)
    assert after == load_rows(tmp_path / "clean")
    assert len(load_failures(out)) == 1


def test_dask_local_cluster_matches_local(tmp_path: Path) -> None:
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed not installed (pip install 'attnsim[dask]')"
    )
    exp = load_experiment(experiment(tmp_path, 2))
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address.removeprefix("tcp://")
        summary = run_experiment(exp, tmp_path / "dask", executor=f"dask://{address}", quiet=True)
    assert (summary.ok, summary.failed) == (20, 1)
    run_experiment(exp, tmp_path / "local", jobs=2, quiet=True)
    assert load_rows(tmp_path / "dask") == load_rows(tmp_path / "local")
    assert load_failures(tmp_path / "dask") == load_failures(tmp_path / "local")


def test_unknown_executor(tmp_path: Path) -> None:
    exp = load_experiment(experiment(tmp_path, 1))
    with pytest.raises(ValueError, match="unknown executor 'ray'"):
        run_experiment(exp, tmp_path / "x", executor="ray", quiet=True)


def test_progress_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(100, stream)
    for _ in range(10):
        progress.advance(10, evaluated=10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10  # one line per decile
    assert lines[-1].startswith("attnsim run: 100/100 (100%) ")
    assert "points/s ETA" in lines[-1]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def drawn_lines(stream: io.StringIO) -> list[str]:
    """What a terminal shows of rich's updates: control sequences out, one entry per line."""
    text = ANSI.sub("", stream.getvalue())
    return [line for line in re.split(r"[\r\n]", text) if line.strip()]


def test_progress_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    stream = Tty()
    progress = Progress(4, stream)
    progress.advance(4, evaluated=4, failed=1)
    progress.close()
    last = drawn_lines(stream)[-1]
    assert last.startswith("━" * 30 + " 4/4 (100%) "), last  # rich's bar, full, then numbers
    assert "1 failed" in last and ANSI.sub("", stream.getvalue()).endswith("\n")  # line ended


@pytest.mark.parametrize("columns", [20, 40, 60, 80, 200])
def test_progress_bar_never_wraps(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    stream = Tty()
    progress = Progress(1_000_000, stream)
    progress.start -= 100.0  # a realistic rate (thousands of points/s), so a stable length
    for _ in range(5):
        progress.advance(123_456, evaluated=123_456, failed=7)
        progress.last_draw = 0.0  # draw every update
    progress.close()
    lines = drawn_lines(stream)
    assert lines and all(0 < len(line) <= columns for line in lines), lines
    assert ("35 failed" in lines[-1]) == (columns >= 60)  # the numbers are cut last
    assert ("━" in lines[-1]) == (columns >= 80)  # the bar goes before the numbers do


def test_progress_counts_against_the_budget() -> None:
    stream = io.StringIO()
    progress = Progress(1000, stream, budget=50)
    progress.advance(400)  # already done: skipped, no progress against the budget
    progress.advance(25, evaluated=25)
    progress.advance(25, evaluated=25)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("attnsim run: 0/50 of budget (1000 points, 400 done before) (0%)")
    assert lines[-1].startswith("attnsim run: 50/50 of budget (1000 points, 400 done before)")
    assert lines[-1].endswith("ETA 0:00:00")
    assert "(50%)" in lines[1]
    assert Progress(10, io.StringIO(), budget=20).target == 10  # a budget over the sweep


def test_run_with_a_budget_reports_against_it(tmp_path: Path) -> None:
    exp = load_experiment(experiment(tmp_path, 3))
    stream = io.StringIO()
    run_experiment(exp, tmp_path / "out", jobs=1, budget=8, stream=stream)
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("attnsim run: 8/8 of budget (31 points, 0 done before) (100%)")


def test_cli_check_and_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from attnsim.reports.cli.main import main

    path = experiment(tmp_path, 1)
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok: 11 points (block0 10, block1 1)\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(EXP.replace("SEQS", "1K").replace("name: small", "nme: x")))
    assert main(["check", str(path), str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{bad}:1:1: <top>: missing required key 'name'"
    assert err[1].startswith(f"{bad}:1:6: nme: unknown key 'nme'; did you mean 'name'?")
    out = tmp_path / "out"
    status = main(["run", str(path), "--out", str(out), "--jobs", "1", "--quiet"])
    assert status == 1  # one point failed: the tables are still written, the status says so
    err = capsys.readouterr().err.splitlines()
    assert err[1:] == [
        "all 10 finished points feasible",
        "attnsim run: 1 of 11 points evaluated in this run failed",
        "  design fusemax, cascade=agent: " + AGENT_ON_FUSEMAX,
        f"every error: attnsim export {out} --format jsonl (status 'failed')",
    ]
    assert (out / "results.csv").exists()
    assert main(["export", str(out), "--format", "jsonl"]) == 0
    assert (out / "results.jsonl").read_text().count("\n") == 11
