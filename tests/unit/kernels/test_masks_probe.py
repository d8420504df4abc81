"""The masks probe's score suites by head dim and its command line (benchmarks/masks_probe.py).

On CPU with fakes: the timing and checking helpers are replaced, so what is tested is which
shapes and configurations a suite visits, and the checks of the arguments.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton
pytest.importorskip("triton")

PATH = Path(__file__).resolve().parents[3] / "benchmarks" / "masks_probe.py"


@pytest.fixture(scope="module")
def probe(benchmark_module):
    return benchmark_module("masks_probe")


class Rows:
    """A stand-in for the probe's CSV writer: keeps the rows."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def row(self, **kw: Any) -> None:
        self.rows.append(kw)


class Flex:
    def window_mask(self, *args: Any) -> None:
        return None

    def time(self, *args: Any, **kw: Any) -> float:
        return 1.0


@pytest.fixture
def faked(probe, monkeypatch):
    monkeypatch.setattr(probe, "_inputs", lambda *a: (None, None, None))
    monkeypatch.setattr(probe, "_sdpa", lambda *a: (1.0, 1.0, 1.0))
    monkeypatch.setattr(probe, "_ours", lambda run, checked: {"median_ms": 1.0, "status": "ok"})
    monkeypatch.setattr(probe, "_score_mod", lambda *a: None)
    monkeypatch.setattr(probe.torch.cuda, "empty_cache", lambda: None)
    return probe


@pytest.mark.parametrize("head_dim", [None, 64, 128])
def test_score_suite_visits_the_shapes_of_one_head_dim(faked, head_dim):
    out = Rows()
    faked.score_suite("holdout", out, Flex(), float("inf"), head_dim)
    dims = {r["head_dim"] for r in out.rows}
    shapes = faked.SCORE_SUITES["holdout"]
    want = {d for *_, d, _ in shapes if head_dim in (None, d)}
    assert dims == want
    ours = [r for r in out.rows if r["family"] == faked.SCORE_FAMILY]
    per_shape = sum(
        len(faked.TILINGS[d][:2]) + len(faked.PINGPONG_TILINGS) * (label in faked.PINGPONG_SCORES)
        for *_, d, _ in shapes
        if head_dim in (None, d)
        for label in faked.SCORES
    )
    assert len(ours) == per_shape
    assert {r["score"] for r in ours} == set(faked.SCORES)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return subprocess.run([sys.executable, str(PATH), *args], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


def test_head_dim_needs_the_score_suites(tmp_path):
    res = _run("--out", str(tmp_path), "--head-dim", "64")
    assert res.returncode == 2
    assert "--head-dim needs --only score" in res.stderr
    assert "Traceback" not in res.stderr


def test_head_dim_takes_64_or_128(tmp_path):
    res = _run("--out", str(tmp_path), "--only", "score", "--head-dim", "96")
    assert res.returncode == 2
    assert "invalid choice" in res.stderr
