"""Every experiment under examples/ passes `attnsim check` (found by glob); the constrained
ones rank only feasible points."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnsim.reports.cli.main import main
from attnsim.reports.dse.experiment import load_experiment
from attnsim.reports.dse.feasibility import mark_rows, tally
from attnsim.reports.dse.runner import run_experiment
from attnsim.reports.dse.store import load_rows
from attnsim.reports.page.report_data import (
    PARETO_PAIRS,
    best_points,
    grouped_front,
    workload_parameters,
)

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_examples_are_found() -> None:
    assert any(p.name == "fusemax-vs-flat.yaml" for p in EXAMPLES)
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_checks(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: ok: ") or out.startswith(f"{path}: skipped: needs mappers")


# Infeasible points of the constrained examples: (constraint or "does not fit") -> count.
INFEASIBLE = {
    "fusemax-vs-flat": {"area_um2 <= 5e+09": 12, "does not fit": 8},  # unfused 256K and 1M
    "iso-area": {"area_um2 <= 1.8e+09": 39},
}


@pytest.mark.parametrize("name", sorted(INFEASIBLE))
def test_constrained_examples_rank_only_feasible_points(name: str, tmp_path: Path) -> None:
    exp = load_experiment(EXAMPLES[0].parent / f"{name}.yaml")
    summary = run_experiment(exp, tmp_path, jobs=2, quiet=True)
    assert summary.failed == 0
    rows = mark_rows(load_rows(tmp_path), exp.constraints)
    counts = tally(rows, exp.constraints)
    assert (counts.total, counts.by_reason) == (exp.count, INFEASIBLE[name])
    bad = {r["point_id"] for r in rows if not r["feasible"]}
    task = workload_parameters(rows)
    ranked = best_points(rows, exp.objectives, task)
    ranked += grouped_front(rows, exp.objectives, task)
    for x, y in PARETO_PAIRS:
        ranked += grouped_front(rows, [(x, "min"), (y, "min")], task)
    assert ranked and not {r["point_id"] for r in ranked} & bad
    assert all(c.holds(r) for c in exp.constraints for r in ranked)
    assert not list(tmp_path.glob("results.sqlite-*"))
