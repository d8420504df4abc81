"""`microbench_bwd --merge-host`: a probe host file's backward figures into a calibration."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from attnsim.archs.load import load_arch
from attnsim.kernels.calibrate.bwd_host_merge import merge_host
from attnsim.kernels.calibrate.microbench_bwd import main
from attnsim.mappers.gpu.backward import host_key
from attnsim.mappers.gpu.rates import device_rates

ROOT = Path(__file__).resolve().parents[3]
CAL = ROOT / "archs" / "calibration" / "h200.yaml"
PROBE_HOST = ROOT / "kernels" / "measurements" / "bwd" / "bwd-h200-2026-12-06-planned-host.yaml"
BWD_KEYS = ("bwd-atomic", "bwd-atomic-causal", "bwd-separate", "bwd-separate-causal")


def _calibration_without_bwd(tmp_path: Path) -> Path:
    data = yaml.safe_load(CAL.read_text(encoding="utf-8"))
    data["host_call_us"] = {k: v for k, v in data["host_call_us"].items() if k not in BWD_KEYS}
    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _host_file(tmp_path: Path, calls: dict[str, float]) -> Path:
    path = tmp_path / "probe-host.yaml"
    path.write_text(yaml.safe_dump({"host_call_us": calls, "bench_flush_us": 60.0}), "utf-8")
    return path


def test_figures_are_scaled_by_the_forward_launchers_median_ratio(tmp_path: Path) -> None:
    cal = _calibration_without_bwd(tmp_path)
    have = yaml.safe_load(cal.read_text(encoding="utf-8"))["host_call_us"]
    # a host twice as slow on 1pass, 3x on 2pass, 1x on unfused: median ratio (ours/theirs) 1/2
    calls = {"1pass": 2 * have["1pass"], "2pass": 3 * have["2pass"], "unfused": have["unfused"]}
    calls |= {"bwd-separate": 100.0, "bwd-jit-separate": 300.0}
    note = merge_host(cal, _host_file(tmp_path, calls))
    got = yaml.safe_load(cal.read_text(encoding="utf-8"))
    assert got["host_call_us"]["bwd-separate"] == 50.0
    assert "bwd-jit-separate" not in got["host_call_us"]  # the JIT diagnostic stays out
    assert got["host_call_us"]["1pass"] == have["1pass"]
    assert note in got["notes"] and "(0.500;" in note


def test_the_committed_calibration_carries_the_probe_runs_figures(tmp_path: Path) -> None:
    """h200.yaml's backward figures are what the merge makes of the committed probe file."""
    cal = _calibration_without_bwd(tmp_path)
    shutil.copy(PROBE_HOST, tmp_path / PROBE_HOST.name)
    merge_host(cal, tmp_path / PROBE_HOST.name)
    want = yaml.safe_load(cal.read_text(encoding="utf-8"))["host_call_us"]
    have = yaml.safe_load(CAL.read_text(encoding="utf-8"))["host_call_us"]
    assert {k: have[k] for k in BWD_KEYS} == {k: want[k] for k in BWD_KEYS}
    rates = device_rates(load_arch("h200"), "bf16")
    assert host_key(rates, "separate", True) == "bwd-separate-causal"
    assert host_key(rates, "atomic", False) == "bwd-atomic"


def test_bad_files_are_reported_located_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cal = _calibration_without_bwd(tmp_path)
    before = cal.read_text(encoding="utf-8")
    bad = _host_file(tmp_path, {"flash": 10.0})
    assert main(["--merge-host", str(cal), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "probe-host.yaml: host_call_us: none of 1pass, 2pass, unfused" in err
    assert "no bwd-<dq mode>[-causal] figure" in err  # every problem at once
    assert main(["--merge-host", str(cal), str(tmp_path / "other.yaml")]) == 2
    assert "expected a probe's host file" in capsys.readouterr().err
    assert main(["--merge-host", str(cal), str(tmp_path / "gone-host.yaml")]) == 2
    assert "gone-host.yaml: no such file" in capsys.readouterr().err
    assert cal.read_text(encoding="utf-8") == before
