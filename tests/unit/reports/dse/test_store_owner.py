"""An output folder belongs to one experiment: another one (or an edit that drops points) stops."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest

from attnsim.reports.cli.main import main
from attnsim.reports.dse.experiment import load_experiment
from attnsim.reports.dse.runner import ForeignStoreError, run_experiment
from attnsim.reports.dse.store import Store, db_path, load_rows, read_meta

EXP = """\
name: NAME
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
    workload.seq_len: [SEQS]
    arch.overrides.buffer_bytes: [1MiB, 16MiB]
constraints:
  - {metric: area, max: AREA}
outputs: {formats: [csv], report: false}
"""


def write(tmp_path: Path, name: str, seqs: str, area: str = "1.0e+12", file: str = "") -> Path:
    path = tmp_path / (file or f"{name}.yaml")
    path.write_text(EXP.replace("NAME", name).replace("SEQS", seqs).replace("AREA", area))
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["run", *argv, "--jobs", "1", "--quiet"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_another_experiment_stops_with_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    first = write(tmp_path, "first", "256, 512")
    second = write(tmp_path, "second", "1K")
    assert cli(capsys, str(first), "--out", str(out))[0] == 0
    before = load_rows(out)
    status, stdout, err = cli(capsys, str(second), "--out", str(out))
    assert status == 2 and stdout == ""
    assert err == (
        f"attnsim: error: {out} holds 4 points of experiment 'first' (from {first}), not of "
        "'second': an output folder belongs to one experiment. Choose another folder "
        "(--out DIR), or pass --fresh to discard the 4 stored points\n"
    )
    assert load_rows(out) == before and read_meta(out)["experiment"] == "first"
    # --fresh discards the other experiment's points (and the files made from them).
    status, stdout, err = cli(capsys, str(second), "--out", str(out), "--fresh")
    assert status == 0, err
    assert "--fresh: discarded 4 stored points" in err
    rows = load_rows(out)
    assert len(rows) == 2 and {r["seq_len"] for r in rows} == {1024}
    with (out / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2
    assert read_meta(out)["experiment"] == "second"


def test_an_edit_that_drops_points_stops_one_that_adds_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    path = write(tmp_path, "study", "256, 512")
    assert cli(capsys, str(path), "--out", str(out))[0] == 0
    write(tmp_path, "study", "256", file=path.name)  # 2 of the 4 stored points are gone
    status, stdout, err = cli(capsys, str(path), "--out", str(out))
    assert status == 2 and "Traceback" not in err
    assert f"{out} holds 2 of its 4 points that experiment 'study' does not have" in err
    assert "--fresh" in err and "--out DIR" in err
    assert len(load_rows(out)) == 4
    # Adding points (and changing a constraint) keeps the finished ones and runs the new.
    write(tmp_path, "study", "256, 512, 1K", area="1.0e+9", file=path.name)
    status, stdout, err = cli(capsys, str(path), "--out", str(out))
    assert status == 0, err
    assert ": 2 ok, 0 failed, 4 already done" in err
    assert "0 of 6 finished points feasible; 6 infeasible" in err  # the new cap applies to all
    assert read_meta(out)["points_hash"] == load_experiment(path).points_hash


def test_same_experiment_resumes_and_legacy_store_is_adopted(tmp_path: Path) -> None:
    path = write(tmp_path, "study", "256, 512")
    exp = load_experiment(path)
    out = tmp_path / "out"
    assert run_experiment(exp, out, jobs=1, budget=3, quiet=True).ok == 3
    again = run_experiment(load_experiment(path), out, jobs=1, quiet=True)
    assert (again.ok, again.skipped) == (1, 3)
    # A store written before stores had an owner: adopted when its points are this experiment's.
    conn = sqlite3.connect(db_path(out))
    conn.execute("DELETE FROM meta")
    conn.commit()
    conn.close()
    assert run_experiment(exp, out, jobs=1, quiet=True).skipped == 4
    assert read_meta(out)["experiment"] == "study"
    other = load_experiment(write(tmp_path, "other", "1K"))
    with pytest.raises(ForeignStoreError, match="holds 4 points of experiment 'study'"):
        run_experiment(other, out, jobs=1, quiet=True)


def test_store_counts_points_outside_a_set(tmp_path: Path) -> None:
    path = write(tmp_path, "study", "256, 512")
    out = tmp_path / "out"
    run_experiment(load_experiment(path), out, jobs=1, quiet=True)
    store = Store(out)
    try:
        ids = [r["point_id"] for r in load_rows(out)]
        assert store.point_count == 4
        assert store.count_other(ids) == 0 and store.count_other(ids[:1]) == 3
    finally:
        store.close()
    assert not list(out.glob("results.sqlite-*"))


def test_points_priced_by_other_model_code_are_not_resumed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed model or calibration makes other point ids: the stored ones would be stale."""
    from attnsim.reports.dse import experiment

    out = tmp_path / "out"
    exp = write(tmp_path, "study", "256, 512")
    assert cli(capsys, str(exp), "--out", str(out))[0] == 0
    status, _, err = cli(capsys, str(exp), "--out", str(out))  # the same code: resumed
    assert status == 0 and "4 already done" in err
    monkeypatch.setattr(experiment, "code_fingerprint", lambda: "another-model")
    status, stdout, err = cli(capsys, str(exp), "--out", str(out))
    assert status == 2 and stdout == ""
    assert "attnsim changed since they were run" in err and "--fresh" in err
    status, _, err = cli(capsys, str(exp), "--out", str(out), "--fresh")
    assert status == 0, err
    assert len(load_rows(out)) == 4


def test_the_fingerprint_follows_model_code_and_calibrations(tmp_path: Path) -> None:
    from attnsim.reports.dse.experiment import code_fingerprint

    files = {"mappers/gpu/model.py": "A = 1\n", "archs/calibration/h200.yaml": "x: 1\n",
             "kernels/spec.py": "S = 1\n", "kernels/spec_lightning.py": "L = 1\n",
             "reports/page/plots.py": "P = 1\n"}  # fmt: skip
    seen = set()
    for i, name in enumerate([None, *files]):
        root = tmp_path / f"tree{i}"
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text + ("# edited\n" if rel == name else ""))
        seen.add(code_fingerprint(root))
    # the model, a calibration and the kernel specs each change it; the report code does not
    assert len(seen) == 5
