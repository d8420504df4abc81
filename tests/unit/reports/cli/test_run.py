"""`attnsim check`/`run`: an override a preset cannot take stops both; failed points exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from attnsim.archs.overrides import override_names
from attnsim.reports.cli.main import main

ROOT = Path(__file__).resolve().parents[4]

GPU_EXP = """\
name: gpu-buffer
architectures:
  gpu: {preset: h200, overrides: {buffer_bytes: 16MiB}}
  fm: {preset: fusemax, overrides: {clock_ghz: .nan}}
cascades:
  one: attention-1pass-mh
workloads:
  tiny: {sizes: {B: 1, H: 2, E: 64, F: 64, P: 1024, M: 1024}}
mappers:
  gpu: gpu-1pass
designs:
  g: {arch: gpu, cascade: one, mapper: gpu}
sweep:
  grid:
    arch.overrides.dram_bandwidth_gib_per_s: [100, 200]
outputs: {report: false}
"""
EXPECTED = [
    ":3:49: architectures.gpu.overrides.buffer_bytes: override 'buffer_bytes' does not apply "
    "to h200 (a GPU preset), which takes calibration; buffer_bytes is for spatial presets",
    ":4:48: architectures.fm.overrides.clock_ghz: expected a positive finite number, got nan",
    ":15:46: sweep.grid.arch.overrides.dram_bandwidth_gib_per_s: arch 'gpu': override "
    "'dram_bandwidth_gib_per_s' does not apply to h200 (a GPU preset), which takes "
    "calibration; dram_bandwidth_gib_per_s is for spatial presets",
]


@pytest.fixture
def gpu_exp(tmp_path: Path) -> Path:
    path = tmp_path / "gpu.yaml"
    path.write_text(GPU_EXP)
    return path


def test_check_rejects_overrides_the_preset_cannot_take(
    gpu_exp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(gpu_exp)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"{gpu_exp}{line}" for line in EXPECTED]


def test_run_rejects_them_before_running_anything(
    gpu_exp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["run", str(gpu_exp), "--out", str(out), "--jobs", "1", "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"{gpu_exp}{line}" for line in EXPECTED]
    assert not out.exists()


def test_check_exits_2_without_a_traceback(gpu_exp: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "attnsim.reports.cli.main", "check", str(gpu_exp)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [f"{gpu_exp}{line}" for line in EXPECTED]


FAILING_EXP = """\
name: failing
architectures:
  fm: fusemax
cascades:
  agent: attention-agent  # fusemax refuses it when mapping (its mask is outside the bands)
workloads:
  tiny: {sizes: {B: 1, H: 2, E: 64, F: 64, P: 1024, M: 1024}}
mappers:
  fm: fusemax
designs:
  f: {arch: fm, cascade: agent, mapper: fm}
sweep:
  list:
    - {workload.sizes.P: 128}
    - {workload.sizes.P: 256}
    - {workload.sizes.P: 512}
    - {workload.sizes.P: 1024}
outputs: {formats: [csv], report: false}
"""


def test_run_exits_1_when_points_fail_and_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "failing.yaml"
    path.write_text(FAILING_EXP)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--jobs", "1", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"wrote {out / 'results.csv'}\n"  # the tables are still written
    err = captured.err.splitlines()
    assert err[0].endswith(": 0 ok, 4 failed, 0 already done")
    refused = "MappingError: fusemax: AGS[b,h,e,j] = Q[b,h,e,u,u0] where j == u: the mask "
    refused += "condition 'j == u' is outside the band family (bounds on the query, the key "
    refused += "and their difference), so its empty tiles cannot be found; set "
    refused += "skip_empty_tiles=false to compute every tile"
    assert err[1:] == [
        "attnsim run: 4 of 4 points evaluated in this run failed",
        "  design f, workload.sizes.P=128: " + refused,
        "  design f, workload.sizes.P=256: " + refused,
        "  design f, workload.sizes.P=512: " + refused,
        f"every error: attnsim export {out} --format jsonl (status 'failed')",
    ]
    # A re-run retries the failures: they fail again, and the status says so again.
    assert main(["run", str(path), "--out", str(out), "--jobs", "1", "--quiet"]) == 1


def test_check_help_lists_every_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--help"]) == 0
    text = capsys.readouterr().out
    for name in override_names():
        assert f"\n  {name}" in text, name


def test_a_rerun_with_nothing_new_rewrites_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ok.yaml"
    ok = FAILING_EXP.split("sweep:")[0] + (
        "sweep:\n  - grid: {workload.seq_len: [1K, 4K]}\noutputs: {formats: [csv], report: true}\n"
    )
    ok = ok.replace("attention-agent", "attention-1pass-mh")  # maps on fusemax
    path.write_text(ok.replace("name: failing", "name: ok"))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--jobs", "1", "--quiet"]) == 0, (
        capsys.readouterr()
    )

    def outputs() -> dict[str, int]:  # what a run writes from the store (the store aside)
        skip = (".sqlite", ".lock")  # the store, and the run lock every run takes
        return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix not in skip}

    written = outputs()
    assert "report.html" in written and "results.csv" in written
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert outputs() == written
    # an edited objective changes the experiment file: the report is written again
    path.write_text(path.read_text() + "objectives: [latency]\n")
    assert main(["run", str(path), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    assert (out / "report.html").stat().st_mtime_ns != written["report.html"]


def test_check_maps_each_designs_first_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A design whose mapper refuses its cascade fails `check`, located at the design."""
    path = tmp_path / "failing.yaml"
    path.write_text(FAILING_EXP)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    line = FAILING_EXP.splitlines().index("  f: {arch: fm, cascade: agent, mapper: fm}") + 1
    assert f"{path}:{line}:" in err
    assert "design 'f': its first point (workload.sizes.P=128) fails to map" in err
    assert "MappingError" in err and "band family" in err
    ok = FAILING_EXP.replace("attention-agent", "attention-1pass-mh")
    path.write_text(ok)
    assert main(["check", str(path)]) == 0
    assert "ok: 4 points" in capsys.readouterr().out
