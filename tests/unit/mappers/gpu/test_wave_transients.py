"""The wave transient: its calibration entries recomputed from the sweeps, and how it prices.

`benchmarks/short_blocks_probe.py --wave-sweep` timed grids of 1-64 waves; a call's first
later waves ran slower than its steady ones. The calibration's `wave_transients` hold that
excess, the later-wave fixed times (measured on 4-wave grids) are taken net of their share,
and every call of several waves pays it once.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from attnsim.archs import load_arch
from attnsim.archs.calibration import load_calibration
from attnsim.archs.datasheet import transferred_calibration
from attnsim.einsum_ir.spec import read_yaml
from attnsim.mappers.gpu.problem import AttnShape
from attnsim.mappers.gpu.rates import (
    TRANSIENT_FULL_STEPS,
    TRANSIENT_NONE_STEPS,
    Tiling,
    device_rates,
    transient_fade,
)
from attnsim.mappers.gpu.tiling import evaluate

ROOT = Path(__file__).resolve().parents[4]
PROBE = ROOT / "benchmarks" / "short_blocks_probe.py"


def probe():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("short_blocks_probe", PROBE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_calibrations_transients_are_the_committed_sweeps() -> None:
    cal = load_calibration(ROOT / "archs" / "calibration" / "h200.yaml")
    assert cal.wave_transients, "h200.yaml has no wave_transients"
    sweeps = sorted({p.source for p in cal.wave_transients})
    found = []
    for name in sweeps:
        path = ROOT / "kernels" / "measurements" / "blocks" / name
        found += probe().wave_transients(read_yaml(path)["attention_waves"], name)
    got = {(p.mode, p.head_dim, p.block_m, p.block_n, p.num_warps, p.num_stages, p.q_tiles):
           (round(p.transient_s * 1e6, 3), round(p.steady_wave_s * 1e6, 3))
           for p in cal.wave_transients}  # fmt: skip
    want = {tuple(e[k] for k in ("mode", "head_dim", "block_m", "block_n", "num_warps",
                                 "num_stages", "q_tiles")): (e["transient_us"], e["steady_wave_us"])
            for e in found}  # fmt: skip
    assert got == want
    # what the entries say: a call's second to fourth waves ran slower than steady ones
    assert all(p.transient_s > 0 for p in cal.wave_transients)


def _kernel(  # type: ignore[no-untyped-def]
    arch_name: str, waves: int, transients: bool, steps: int = 4
):
    arch = load_arch(arch_name)
    assert arch.calibration is not None
    # the transient alone: without the measured later waves' floor (test_later_waves.py)
    cal = dataclasses.replace(arch.calibration, later_waves=())
    if not transients:
        cal = dataclasses.replace(cal, wave_transients=())
    arch = dataclasses.replace(arch, calibration=cal)
    rates = device_rates(arch, "bf16")
    # one query tile per head, `steps` key tiles, one block per SM
    shape = AttnShape(1, arch.sm_count * waves, 128, steps * 128, 128, 128, False, "bf16", 2)
    kernel = evaluate("1pass", shape, Tiling(128, 128, 8, 3), rates).kernels[0]
    assert kernel.resident_per_sm == 1 and kernel.bound != "hbm"
    return kernel, rates


@pytest.mark.parametrize("steps", [4, 10, 16, 32])
@pytest.mark.parametrize("waves", [1, 2, 4, 8, 32])
def test_a_call_pays_the_transient_once_and_its_later_waves_run_steady(
    waves: int, steps: int
) -> None:
    """The calibration's later-wave fixed times come from 4-wave grids of 2 key tiles a
    block (`microbench_blocks`), which held the whole transient: each later wave is x / 3
    faster without it. A call pays it once, faded by its blocks' length."""
    with_t, rates = _kernel("h200", waves, True, steps)
    without, _ = _kernel("h200", waves, False, steps)
    x = rates.wave_transient_s("online", 128, Tiling(128, 128, 8, 3), 1)
    assert x > 0
    paid = x * transient_fade(steps)
    assert paid == pytest.approx({4: x, 10: x / 2, 16: 0.0, 32: 0.0}[steps])
    share = x / 3
    want = 0.0 if waves == 1 else paid - (waves - 1) * share
    assert with_t.scheduled_s - without.scheduled_s == pytest.approx(want, abs=1e-9)
    if waves == 4 and steps == 4:  # a calibration grid's length: priced as it was measured
        assert with_t.scheduled_s == pytest.approx(without.scheduled_s)


def test_a_transferred_calibration_scales_the_transient_as_the_block_times() -> None:
    """By the clock, as the later-wave fixed times that hold a share of it: the share taken
    off them on the target is the one their source measurement held."""
    h200, h100 = load_arch("h200"), load_arch("h100-sxm")
    got = transferred_calibration(h100, h200)
    assert h200.calibration is not None
    clock = h100.clock_hz / h200.clock_hz
    for mine, theirs in zip(got.wave_transients, h200.calibration.wave_transients, strict=True):
        assert mine.transient_s == pytest.approx(theirs.transient_s / clock)
    later = [p for p in h200.calibration.attention_blocks if p.waves > 1]
    for p in later:
        moved = dataclasses.replace(p, fixed_s=p.fixed_s / clock, step_s=p.step_s / clock)
        assert got.steady_fixed_s(moved) == pytest.approx(
            h200.calibration.steady_fixed_s(p) / clock
        )


def test_a_bad_transient_entry_is_a_located_problem(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(
        "device: X\ndate: '2026-12-06'\nsource: test\nwave_transients:\n"
        "  - {mode: warp, head_dim: 128, block_m: 128, block_n: 128, num_warps: 8,\n"
        "     num_stages: 3, q_tiles: 0, steps: 4, transient_us: 5.0, steady_wave_us: 9.0}\n",
        encoding="utf-8",
    )
    problems: list = []  # type: ignore[type-arg]
    cal = load_calibration(path, problems)
    text = "\n".join(str(p) for p in problems)
    assert "'online' or 'pingpong'" in text and "q_tiles" in text and "cal.yaml" in text
    assert cal.wave_transients == ()


@pytest.mark.parametrize("option", ["--merge-transients", "--merge-later"])
def test_merging_names_a_missing_file_and_exits_2(
    option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as got:
        probe().main([option, str(tmp_path / "cal.yaml"), str(tmp_path / "s.yaml")])
    assert got.value.code == 2
    assert f"{option}: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as got:  # CAL alone
        probe().main([option, str(ROOT / "archs" / "calibration" / "h200.yaml")])
    assert got.value.code == 2
    assert "needs CAL and at least one FILE" in capsys.readouterr().err


def test_merging_writes_the_sweeps_transients_into_a_calibration(tmp_path: Path) -> None:
    cal = tmp_path / "cal.yaml"
    cal.write_text("device: X\ndate: '2026-12-06'\nsource: test\n", encoding="utf-8")
    sweep = ROOT / "kernels" / "measurements" / "blocks" / "wave-sweep-h200-2026-12-06.yaml"
    assert probe().main(["--merge-transients", str(cal), str(sweep)]) == 0
    got = load_calibration(cal).wave_transients
    want = probe().wave_transients(read_yaml(sweep)["attention_waves"], sweep.name)
    assert len(got) == len(want) > 0


def test_the_transient_fades_with_the_blocks_length_in_the_sweep() -> None:
    """`transient_fade`'s premise, from the H200 wave sweep (the suites' do_bench): a second
    wave's excess over the next two (T2 - T1 - (T4 - T2) / 2) is 0.4-5 us at 4 key tiles a
    block and within about 1 us of none at 16, for every kernel, tiling and query-tile series."""
    path = ROOT / "kernels" / "measurements" / "blocks" / "wave-sweep-h200-2026-12-06.yaml"
    series: dict[tuple[str, int, int, int, int], dict[int, float]] = {}
    for e in read_yaml(path)["attention_waves"]:
        if e["bench"] == "long":
            key = (e["mode"], e["block_m"], e["block_n"], e["q_tiles"], e["steps"])
            series.setdefault(key, {})[e["waves"]] = e["t_us"]
    excess: dict[int, list[float]] = {4: [], 16: []}
    for key, t in series.items():
        excess[key[-1]].append(t[2] - t[1] - (t[4] - t[2]) / 2)
    assert len(excess[4]) == len(excess[16]) == 6
    assert min(excess[4]) > 0.3 and sum(excess[4]) / 6 > 2.0
    assert max(abs(x) for x in excess[16]) < 1.5 and abs(sum(excess[16]) / 6) < 0.5
    assert transient_fade(TRANSIENT_FULL_STEPS) == 1.0
    assert transient_fade(TRANSIENT_NONE_STEPS) == 0.0
