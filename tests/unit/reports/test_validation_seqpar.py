"""`attnsim validate gpu` on sequence-parallel probe files (benchmarks/seqpar_probe.py rows)."""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.reports import validation_seqpar
from attnsim.reports.cli.main import main

PROBE = Path(__file__).resolve().parents[3] / "benchmarks" / "seqpar_probe.py"


def _probe_fields() -> tuple[str, ...]:
    """The probe's CSV columns (its FIELDS), read from its source: the file the H200 pair writes."""
    tree = ast.parse(PROBE.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "FIELDS" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError(f"{PROBE} defines no FIELDS")


FIELDS = _probe_fields()
CASES = (  # (scheme, causal, balance, decay, mapper, cascade, options)
    ("ring", 1, "zigzag", 0, "gpu-ring-attention", "attention-1pass-mh-causal",
     {"balance": "zigzag"}),
    ("ring", 1, "none", 0, "gpu-ring-attention", "attention-1pass-mh-causal",
     {"balance": "contiguous"}),
    ("ring", 0, "none", 0, "gpu-ring-attention", "attention-1pass-mh", {}),
    ("lasp2", 1, "none", 1, "gpu-lasp2", "attention-lightning-2", {}),
)  # fmt: skip


def model_ms(mapper: str, cascade: str, options: dict[str, str], seq: int) -> tuple[float, ...]:
    """The mapper's step, compute (+ serial) and comm at the probe's shape (2 H200s), ms."""
    sizes = {"B": 1, "H": 32, "E": 128, "F": 128, "P": seq, "M": seq}
    r = get_mapper(mapper)(devices=2, **options).map(
        load_cascade(cascade), load_arch("h200"), sizes
    )
    ex = dict(r.extras)
    serial = sum(ex[f"step{i}.serial_s"] * ex[f"step{i}.count"] for i in range(8)
                 if f"step{i}.serial_s" in ex)  # fmt: skip
    return r.latency_s * 1e3, (ex["compute_s"] + serial) * 1e3, ex["comm_s"] * 1e3


def write(path: Path, step_factor: float, **override: str) -> list[tuple[float, ...]]:
    """One row per case at 32K and 64K tokens, measured = the model's times x factors."""
    rows, models = [], []
    for seq in (32768, 65536):
        for scheme, causal, balance, decay, mapper, cascade, options in CASES:
            step, compute, comm = model_ms(mapper, cascade, options, seq)
            models.append((step, compute, comm))
            row = dict.fromkeys(FIELDS, "")
            row.update(devices="2", scheme=scheme, batch="1", heads="32", seq_total=str(seq),
                       seq_per_device=str(seq // 2), head_dim_qk="128", head_dim_v="128",
                       causal=str(causal), balance=balance, decay=str(decay), dtype="bfloat16",
                       step_ms=str(step * step_factor), compute_ms=str(compute),
                       comm_ms=str(comm), status="ok", gpu="NVIDIA H200")  # fmt: skip
            row.update(override)
            rows.append(row)
    rows.append({**rows[0], "status": "skipped: budget", "step_ms": ""})
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    return models


def test_errors_are_the_model_against_the_measurement(tmp_path: Path) -> None:
    path = tmp_path / "seqpar-h200x2.csv"
    write(path, step_factor=1.25)  # measured 25% slower than the model: error -20%
    assert validation_seqpar.is_seqpar_file(path)
    points = validation_seqpar.predict_rows([path])
    assert len(points) == 2 * len(CASES)  # the skipped row is not predicted
    for p in points:
        assert p.error_pct == pytest.approx(-20.0, rel=1e-6)
        assert p.compute_error_pct == pytest.approx(0.0, abs=1e-6)
        assert p.comm_error_pct == pytest.approx(0.0, abs=1e-6)
    s = validation_seqpar.summary(points)
    assert s["ring"]["points"] == 6 and s["lasp2"]["points"] == 2
    assert s["ring-causal-zigzag"]["mape_pct"] == pytest.approx(20.0, rel=1e-6)


def test_cli_reports_the_schemes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "seqpar.csv"
    write(path, step_factor=1.0)
    assert main(["validate", "gpu", "--measurements", str(path), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ring-causal-zigzag" in out and "lasp2-decay" in out and "(within 10%)" in out
    assert (tmp_path / "seqpar-report.txt").read_text().strip() == out.strip()
    with (tmp_path / "seqpar-points.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["scheme"] for r in rows] == [p.scheme for p in validation_seqpar.predict_rows([path])]
    assert all(float(r["error_pct"]) == pytest.approx(0.0, abs=1e-6) for r in rows)
    assert main(["validate", "gpu", "--measurements", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["seqpar"]
    assert summary["lasp2"]["mape_pct"] == pytest.approx(0.0, abs=1e-9)


def test_bad_rows_are_all_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "seqpar.csv"
    write(path, step_factor=1.0)
    rows = list(csv.DictReader(path.open()))
    rows[0]["scheme"] = "tree"
    rows[1]["balance"] = "spiral"
    rows[3]["gpu"] = "cpu"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    assert main(["validate", "gpu", "--measurements", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: scheme: expected ring or lasp2" in err
    assert f"{path}:3: balance: expected one of" in err
    assert f"{path}:5: no arch preset for device 'cpu'" in err
    assert "Traceback" not in err
