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


def test_variant_zoo_covers_the_zoo_and_refuses_only_with_reasons(tmp_path: Path) -> None:
    """Every zoo built-in is a design of examples/variant-zoo.yaml (a new variant must be
    added there); at the smallest length each point is priced or refused with its mapper's
    reason, none fails, and dense attention is priced on both hardware."""
    from attnsim.einsum_ir.library import ZOO
    from attnsim.reports.dse.store import load_failures, load_refusals

    path = EXAMPLES[0].parent / "variant-zoo.yaml"
    exp = load_experiment(path)
    designs = exp.tables.designs.values()
    cascades = {exp.tables.cascades[d["cascade"]].get("builtin") for d in designs}
    from attnsim.einsum_ir.library.zoo_linear import BACKWARD_OF  # backwards: no forward rival

    assert {e.name for e in ZOO if e.name not in BACKWARD_OF} <= cascades
    assert set(exp.tables.designs) == set(exp.sweep["design"])  # each design is swept
    text = path.read_text(encoding="utf-8").replace("[4K, 16K, 64K]", "[4K]")
    small = tmp_path / "variant-zoo.yaml"
    small.write_text(text, encoding="utf-8")
    exp = load_experiment(small)
    summary = run_experiment(exp, tmp_path / "out", jobs=2, quiet=True)
    assert summary.failed == 0 and load_failures(tmp_path / "out") == []
    # every design on both hardware, but the kernel designs run on the H200 only
    on_one = [n for n, d in exp.tables.designs.items() if d["arch"] == "h200"]
    assert summary.ok + summary.refused == exp.count == 2 * len(exp.tables.designs) - len(on_one)
    rows = load_rows(tmp_path / "out")
    refused = load_refusals(tmp_path / "out")
    assert all(r["refusal"] for r in refused)
    priced = {(r["design"], r["mapper"]) for r in rows}
    assert {("dense", "fusemax"), ("dense", "gpu-1pass")} <= priced
    assert ("lightning-2-kernel", "gpu-lightning") in priced
    assert priced.isdisjoint((r["design"], r["mapper"]) for r in refused)


def test_softmax_vs_linear_crossover_is_within_one_length_of_the_measured(tmp_path: Path) -> None:
    """The report's H200 crossover of Lightning-2 against causal softmax lies within one swept
    length of the one timed on the H200 (kernels/measurements/crossover/, never fitted)."""
    import csv

    from attnsim.reports.page.compare import GROUP, compare_to_baseline, crossovers

    exp = load_experiment(EXAMPLES[0].parent / "softmax-vs-linear.yaml")
    summary = run_experiment(exp, tmp_path, jobs=2, quiet=True)
    assert summary.failed == 0 and summary.refused > 0  # GLA on FLAT (no exp on its 2D array)
    rows = mark_rows(load_rows(tmp_path), exp.constraints)
    compared = compare_to_baseline(rows, ["workload", "seq_len"], "softmax")
    assert all(r[GROUP] for r in compared)
    found = {(r["design"], r["workload"]): r for r in crossovers(compared, "softmax")}
    modelled = found[("lightning-2", "on-h200")]["crossover_seq_len"]
    best: dict[tuple[int, str], float] = {}
    data = EXAMPLES[0].parents[1] / "kernels/measurements/crossover/crossover-h200-2026-12-04.csv"
    with data.open() as fh:
        for r in csv.DictReader(fh):
            if r["status"] == "ok":
                key = (int(r["seq"]), r["family"])
                best[key] = min(best.get(key, float("inf")), float(r["median_ms"]))
    lengths = sorted({s for s, _ in best})
    faster = [
        s for s in lengths if best[(s, "triton-lightning")] < best[(s, "triton-1pass-causal")]
    ]
    measured = next(s for s in lengths if all(x in faster for x in lengths if x >= s))
    assert abs(lengths.index(measured) - lengths.index(modelled)) <= 1, (measured, modelled)


def test_long_context_masks_pay_for_the_window_only_with_tile_skipping(tmp_path: Path) -> None:
    """Windows beat causal attention on the H200 and on FuseMax with tile skipping, the
    narrower the faster; with every tile computed FuseMax pays causal attention's price."""
    from attnsim.reports.page.compare import SPEEDUP, compare_to_baseline

    text = (EXAMPLES[0].parent / "long-context-masks.yaml").read_text(encoding="utf-8")
    small = tmp_path / "masks.yaml"
    small.write_text(text.replace("[8K, 32K, 128K]", "[32K]"), encoding="utf-8")
    exp = load_experiment(small)
    summary = run_experiment(exp, tmp_path / "out", jobs=2, quiet=True)
    assert summary.failed == 0 and summary.ok == exp.count
    compared = compare_to_baseline(load_rows(tmp_path / "out"), ["workload", "seq_len"], "causal")
    speedup = {(r["workload"], r["design"]): r[SPEEDUP] for r in compared}
    for hw in ("on-h200", "on-fusemax"):
        assert speedup[(hw, "w256")] > speedup[(hw, "w1k")] > speedup[(hw, "w4k")] > 1
        assert speedup[(hw, "w1k")] > speedup[(hw, "w1k-s64")]  # sinks cost their tiles
    for design in ("w256", "w1k", "w4k"):
        assert speedup[("on-fusemax-every-tile", design)] == pytest.approx(1.0, rel=0.01)
