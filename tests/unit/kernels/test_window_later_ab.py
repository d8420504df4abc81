"""benchmarks/window_later_ab.py on the committed H100 files, and its bad-input path (CPU)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
H100 = ROOT / "kernels" / "measurements" / "h100"
SUITE = H100 / "masks-window-h100-2026-12-06.csv"
ENTRIES = H100 / "microbench-masks-window-h100-2026-12-06.yaml"
SKIP = ["--skip", "128x64/w4/s3@64", "--skip", "64x64/w4/s3@64"]  # the two measured wrong


def test_later_wave_entries_fix_the_short_windows(
    capsys: pytest.CaptureFixture[str], benchmark_module: Callable[[str], ModuleType]
) -> None:
    """The figures the H100 README quotes (as the model gives them since the wave transient
    fades with the blocks' length): without later waves the W = 128 rows run 10-12% under
    their price; with them every window/causal ratio is within 10%."""
    args = ["--suite", str(SUITE), "--entries", str(ENTRIES), *SKIP]
    assert benchmark_module("window_later_ab").main(args) == 0
    out = capsys.readouterr().out
    first, later = out.split("first waves:")[1].split("later waves too:")
    assert "MAPE 4.66%" in first and "76/91 within 10%" in first
    assert "MAPE 3.00%" in later and "91/91 within 10%" in later


def test_a_bad_entries_file_names_every_missing_field_and_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    benchmark_module: Callable[[str], ModuleType],
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("attention_blocks:\n- {mode: window, head_dim: 64}\n", encoding="utf-8")
    assert (
        benchmark_module("window_later_ab").main(["--suite", str(SUITE), "--entries", str(bad)])
        == 2
    )
    err = capsys.readouterr().err
    assert f"{bad}: attention_blocks[0]: fixed_us: missing" in err
    assert f"{bad}: attention_blocks[0]: loop_us: missing" in err
