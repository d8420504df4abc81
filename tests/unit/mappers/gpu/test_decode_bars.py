"""Issue 12's decode speed bars as `benchmarks/decode_bars.py` reads them from the H200's
tuned run, and the README's figures for them, recomputed here from the file."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[4]
TUNED = ROOT / "kernels" / "measurements" / "decode" / "decode-h200-2026-12-05-tuned.csv"


@pytest.fixture(scope="module")
def bars_mod(benchmark_module: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_module("decode_bars")


@pytest.fixture(scope="module")
def readme() -> str:
    return " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())


def test_the_readme_states_the_tuned_runs_bars(bars_mod: ModuleType, readme: str) -> None:
    bars = bars_mod.shape_bars(bars_mod.read_rows(TUNED), 32768)
    assert len(bars) == 12
    assert {b.suite for b in bars} == {"validation", "holdout"}
    assert all(b.shape[3] >= 32768 for b in bars)
    fast = [b for b in bars if b.over_sdpa >= 1.0]
    full = [b for b in bars if b.hbm_share >= 0.85]
    lo, hi = min(b.over_sdpa for b in bars), max(b.over_sdpa for b in bars)
    said = re.search(r"at least as fast as SDPA's best on (\d+) of (\d+) shapes "
                     r"\(([\d.]+)-([\d.]+)x; the five short", readme)  # fmt: skip
    assert said, "README: the decode speed bars sentence"
    assert (int(said[1]), int(said[2])) == (len(fast), len(bars))
    assert (float(said[3]), float(said[4])) == (round(lo, 3), round(hi, 3))
    short = sorted(b.over_sdpa for b in bars if b.over_sdpa < 1.0)
    assert len(short) == 5 and f"{short[0]:.3f}-{short[-1]:.3f}x, batch 1-2" in readme
    assert all(b.shape[0] <= 2 and b.shape[2] == 8 for b in bars if b.over_sdpa < 1.0)
    assert f">= 85% of the HBM read rate on {len(full)} of {len(bars)}" in readme


def test_the_readme_states_the_lean_ratios(bars_mod: ModuleType, readme: str) -> None:
    ratios = {(r.shape, r.programs): r for r in bars_mod.lean_ratios(TUNED)}
    fastest = {}
    for (shape, _), r in ratios.items():  # the fastest stream-K launch per shape
        fastest.setdefault(shape, r)
    assert len(fastest) == 3
    assert all(r.measured >= 3.0 for r in fastest.values())  # the 3x
    worst = max(abs(r.predicted / r.measured - 1) for r in fastest.values())
    assert worst <= 0.15  # the 15%
    said = re.search(r"stream-K launch ([\d.]+)x, ([\d.]+)x and ([\d.]+)x .*?predicted "
                     r"within ([\d.]+)%", readme)  # fmt: skip
    assert said, "README: the Lean regime sentence"
    order = sorted(fastest, key=lambda s: (s[1], s[3]))  # 32 heads by length, then 64 heads
    assert [float(x) for x in said.groups()[:3]] == [round(fastest[s].measured, 1) for s in order]
    assert float(said[4]) == round(100 * worst, 1)


def test_a_file_of_another_kind_is_an_error_naming_the_columns(
    bars_mod: ModuleType, tmp_path: Path
) -> None:
    other = tmp_path / "other.csv"
    other.write_text("suite,strategy,kernel_ms\nvalidation,splitk,1.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"other\.csv:1: missing columns .*cudnn_ms"):
        bars_mod.read_rows(other)
    assert bars_mod.main([str(other)]) == 2


def test_bad_rows_are_reported_together_by_line_and_field(
    bars_mod: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = TUNED.read_text(encoding="utf-8").splitlines()
    head = lines[0].split(",")
    row = lines[1].split(",")
    bad_seq, bad_ms = list(row), list(row)
    bad_seq[head.index("seq_k")] = "many"
    bad_ms[head.index("kernel_ms")] = "-1"
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join([lines[0], ",".join(bad_seq), ",".join(bad_ms)]) + "\n",
                      encoding="utf-8")  # fmt: skip
    assert bars_mod.main([str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken.csv:2: seq_k: expected a whole number, got 'many'" in err
    assert "broken.csv:3: kernel_ms: expected a positive number, got '-1'" in err


def test_the_plot_hatches_exactly_the_bars_under_their_line(
    bars_mod: ModuleType, tmp_path: Path
) -> None:
    bars = bars_mod.shape_bars(bars_mod.read_rows(TUNED), 32768)
    png = tmp_path / "bars.png"
    fig = bars_mod.plot_bars(bars, 0.85, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    speed, hbm = fig.axes
    for ax, under in ((speed, [b.over_sdpa < 1.0 for b in bars]),
                      (hbm, [b.hbm_share < 0.85 for b in bars])):  # fmt: skip
        assert [bool(patch.get_hatch()) for patch in ax.patches] == under
        assert [patch.get_height() for patch in ax.patches] == pytest.approx(
            [b.over_sdpa if ax is speed else b.hbm_share for b in bars]
        )


def test_a_plot_path_that_cannot_be_written_is_an_error_not_a_traceback(
    bars_mod: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = tmp_path / "no-such-folder" / "bars.png"
    assert bars_mod.main([str(TUNED), "--plot", str(nowhere)]) == 2
    err = capsys.readouterr().err
    assert f"decode_bars: --plot: cannot write {nowhere}" in err
