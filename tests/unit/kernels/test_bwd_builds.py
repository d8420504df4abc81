"""kernels.calibrate.bwd_builds: the dP-first build's entries scaled from the earlier build's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from attnsim.kernels.calibrate.bwd_builds import build_jobs, scale_build
from attnsim.kernels.calibrate.microbench_bwd import DP_FIRST_SUFFIX, main, spread_mode


def entry(mode: str, step: float, fixed: float | None = None, k: int = 1) -> dict[str, Any]:
    e: dict[str, Any] = dict(mode=mode, dtype="bf16", head_dim=128, block_m=64, block_n=128,
                             num_warps=8, num_stages=3, blocks_per_sm=k, step_us=step)  # fmt: skip
    if fixed is not None:
        e["fixed_us"] = fixed
    return e


def run_file(path: Path, suffix: str, steps: dict[str, float], fixed: float) -> Path:
    """A `microbench_bwd --dkdv-only --out` file of one build: both dK/dV modes, one tiling."""
    pairs = (("", steps["plain"]), ("-atomic", steps["atomic"]))
    modes = {f"bwd-dkdv{a}{suffix}": s for a, s in pairs}
    data = {
        "attention_steps": [entry(m, s) for m, s in modes.items()],
        "attention_blocks": [entry(m, s, fixed) for m, s in modes.items()],
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    earlier = run_file(tmp_path / "earlier.yaml", "", {"plain": 2.0, "atomic": 4.0}, 10.0)
    newer = run_file(tmp_path / "newer.yaml", DP_FIRST_SUFFIX, {"plain": 1.8, "atomic": 4.4}, 8.0)
    cal = tmp_path / "cal.yaml"
    cal.write_text(
        "# Written by a test.\n"
        + yaml.safe_dump(
            {
                "device": "GPU X",
                "attention_steps": [
                    entry("bwd-dkdv", 3.0),
                    entry("bwd-dkdv-atomic", 5.0),
                    entry("bwd-dkdv-w16", 3.5),
                    entry("bwd-dq", 7.0),
                ],
                "attention_blocks": [entry("bwd-dkdv", 3.0, 20.0)],
                "notes": ["an earlier note"],
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    return cal, earlier, newer


def _by_mode(path: Path, section: str) -> dict[str, dict[str, Any]]:
    return {e["mode"]: e for e in yaml.safe_load(path.read_text())[section]}


def test_each_entry_takes_its_own_modes_ratio(runs: tuple[Path, Path, Path]) -> None:
    cal, earlier, newer = runs
    line = scale_build(cal, earlier, newer, "GPU Y")
    steps = _by_mode(cal, "attention_steps")
    assert steps["bwd-dkdv-dpfirst"]["step_us"] == pytest.approx(3.0 * 1.8 / 2.0)
    assert steps["bwd-dkdv-atomic-dpfirst"]["step_us"] == pytest.approx(5.0 * 4.4 / 4.0)
    # a spread entry takes its one-head mode's ratio; the dQ kernel is not scaled
    assert steps["bwd-dkdv-dpfirst-w16"]["step_us"] == pytest.approx(3.5 * 1.8 / 2.0)
    assert "bwd-dq-dpfirst" not in steps and steps["bwd-dq"]["step_us"] == 7.0
    blocks = _by_mode(cal, "attention_blocks")
    assert blocks["bwd-dkdv-dpfirst"]["fixed_us"] == pytest.approx(20.0 * 8.0 / 10.0)
    assert blocks["bwd-dkdv"]["fixed_us"] == 20.0  # the earlier build's entries stay
    assert "3 dK/dV step entries" in line and "0.900-1.100" in line
    text = cal.read_text()
    assert text.startswith("# Written by a test.\n")
    notes = yaml.safe_load(text)["notes"]
    assert notes[0] == "an earlier note" and "GPU Y" in notes[-1] and "earlier.yaml" in notes[-1]


def test_scaling_again_replaces_the_earlier_scaling(runs: tuple[Path, Path, Path]) -> None:
    cal, earlier, newer = runs
    scale_build(cal, earlier, newer, "GPU Y")
    once = yaml.safe_load(cal.read_text())
    scale_build(cal, earlier, newer, "GPU Y")
    assert yaml.safe_load(cal.read_text()) == once


def test_an_entry_without_a_measured_pair_is_named(runs: tuple[Path, Path, Path]) -> None:
    cal, earlier, newer = runs
    data = yaml.safe_load(cal.read_text())
    data["attention_steps"].append(dict(entry("bwd-dkdv", 1.0), head_dim=64))
    cal.write_text(yaml.safe_dump(data), encoding="utf-8")
    before = cal.read_text()
    with pytest.raises(ValueError, match=r"attention_steps bwd-dkdv .*'head_dim': 64"):
        scale_build(cal, earlier, newer, "GPU Y")
    assert cal.read_text() == before  # nothing written


def test_the_command_line_exits_2_with_the_problem(
    runs: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cal, earlier, newer = runs
    # the runs swapped: the "earlier" file has no entries of the earlier build
    assert main(["--scale-build", str(cal), str(newer), str(earlier)]) == 2
    assert "no entries of modes bwd-dkdv, bwd-dkdv-atomic" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main(["--scale-build", str(cal), str(earlier), str(cal.with_name("none.yaml"))])
    assert err.value.code == 2
    assert main(["--scale-build", str(cal), str(earlier), str(newer)]) == 0


def test_mode_names_and_compile_jobs_follow_the_build() -> None:
    from attnsim.kernels.spec import BWD_DP_FIRST
    from attnsim.kernels.triton.attn_bwd import BWD_TILINGS

    assert spread_mode("bwd-dkdv", 16, dp_first=True) == "bwd-dkdv-dpfirst-w16"
    assert spread_mode("bwd-dkdv-atomic", 0, dp_first=True) == "bwd-dkdv-atomic-dpfirst"
    assert spread_mode("bwd-dq", 0, dp_first=True) == "bwd-dq"  # the dQ kernel has one order
    jobs = build_jobs()
    assert len(jobs) == 2 * 2 * len(BWD_TILINGS)
    assert {j[0] for j in jobs} == {BWD_DP_FIRST}


def test_a_field_that_is_no_number_is_named_with_its_file(runs: tuple[Path, Path, Path]) -> None:
    cal, earlier, newer = runs
    data = yaml.safe_load(cal.read_text())
    data["attention_steps"][1]["step_us"] = "fast"
    cal.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"cal\.yaml: attention_steps\[1\]: step_us: expected a number"
    ):
        scale_build(cal, earlier, newer, "GPU Y")
