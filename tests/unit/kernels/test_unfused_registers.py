"""The unfused kernels' sm_90 registers, compiled on the CPU (benchmarks/unfused_registers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PATH = Path(__file__).resolve().parents[3] / "benchmarks" / "unfused_registers.py"


@pytest.fixture(scope="module")
def probe(benchmark_module):
    return benchmark_module("unfused_registers")


def test_cuobjdump_usage_is_parsed(probe) -> None:
    text = (
        "Resource usage:\n Common:\n  GLOBAL:11 CONSTANT[4]:8\n Function softmax_kernel:\n"
        "  REG:165 STACK:0 SHARED:1024 LOCAL:16 CONSTANT[0]:560 TEXTURE:0 SURFACE:0\n"
    )
    assert probe.parse_usage(text) == (165, 1024, 16)
    with pytest.raises(ValueError, match="no 'REG"):
        probe.parse_usage("Resource usage:\n")


@pytest.mark.parametrize(
    ("registers", "warps", "shared", "held"),
    [
        (121, 8, 1024, 2),  # 128 x 256 = 32768 registers a program
        (129, 8, 1024, 1),  # 136 x 256: one
        (32, 8, 1024, 8),  # threads: 2048 / 256
        (64, 4, 98304, 2),  # shared memory: 228 KiB / 96 KiB
    ],
)
def test_programs_per_sm_take_the_tightest_limit(probe, registers, warps, shared, held) -> None:
    assert probe.programs_per_sm(registers, warps, shared) == held


def test_the_two_loop_softmax_builds_hold_what_the_readme_says(tmp_path: Path) -> None:
    """Compiled for sm_90 (no GPU): dense two programs per SM, causal one (README)."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "regs.yaml"
    run = subprocess.run(
        [sys.executable, str(PATH), "--only", "softmax", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    builds = yaml.safe_load(out.read_text())["builds"]
    two_loops = {b["causal"]: b for b in builds if b["path"] == "two loops"}
    assert two_loops[False]["resident_per_sm"] == 2
    assert two_loops[True]["resident_per_sm"] == 1
    assert all(b["spill_bytes"] == 0 for b in builds)


def test_ragged_rows_compile_to_scalar_builds(tmp_path: Path) -> None:
    """`--ragged`: VEC = 1 builds; the widest block takes two programs per SM, not five."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "ragged.yaml"
    run = subprocess.run(
        [sys.executable, str(PATH), "--ragged", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    builds = yaml.safe_load(out.read_text())["builds"]
    assert {b["kernel"] for b in builds} == {"softmax"}
    assert {b["rows"] for b in builds} == {"ragged"}
    widest = [b for b in builds if b["path"] == "one block" and b["block_n"] == 8192]
    assert [b["resident_per_sm"] for b in widest] == [2, 2]
