"""The power cap: sustained tensor-heavy calls priced at the clock the board allows them.

`benchmarks/sustained_probe.py` timed ten builds and shapes back to back after an idle spell
(H200 and H100, 2026-12-06). The H200's file is fitted into the calibration's `power_cap`
(`--merge`); the H100's, which fitted nothing, checks the fit where it is transferred.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import statistics
from pathlib import Path

import pytest

from attnsim.archs import load_arch
from attnsim.archs.calibration import load_calibration
from attnsim.archs.calibration.power import PowerCap, fit_power_cap
from attnsim.archs.datasheet import transferred_calibration
from attnsim.mappers.gpu.problem import AttnShape
from attnsim.mappers.gpu.rates import Tiling, device_rates
from attnsim.mappers.gpu.tiling import evaluate

ROOT = Path(__file__).resolve().parents[4]
H200 = ROOT / "kernels" / "measurements" / "regimes" / "sustained-h200-2026-12-06.csv"
H100 = ROOT / "kernels" / "measurements" / "h100" / "sustained-h100-2026-12-06.csv"
PROBE = ROOT / "benchmarks" / "sustained_probe.py"


def cases(path: Path) -> list[tuple[float, float, float]]:
    """(useful FLOPs, first five calls' median s, do_bench median s) per case of a file."""
    with path.open(newline="") as fh:
        return [
            (4.0 * int(r["batch"]) * int(r["heads"]) * int(r["seq"]) ** 2 * int(r["head_dim"]),
             float(r["first5_median_ms"]) * 1e-3, float(r["do_bench_median_ms"]) * 1e-3)
            for r in csv.DictReader(fh)
        ]  # fmt: skip


def test_the_calibrations_power_cap_is_the_fit_of_the_committed_probe_file() -> None:
    cal = load_calibration(ROOT / "archs" / "calibration" / "h200.yaml")
    assert cal.power_cap is not None and cal.bench_head_start_s is not None
    fit = fit_power_cap(cases(H200), cal.bench_head_start_s)
    got = cal.power_cap
    assert got.knee_flops_per_s == pytest.approx(fit.knee_flops_per_s, rel=1e-3)
    assert got.slowdown_per_flops_per_s == pytest.approx(fit.slowdown_per_flops_per_s, rel=1e-3)
    assert got.gap_s == cal.bench_head_start_s and got.cases == 10
    assert got.source == H200.name


def test_the_fit_recovers_a_known_knee_and_slope() -> None:
    true = PowerCap(500e12, 0.4e-15, 40e-6)
    synthetic = []
    for tflops in (300, 420, 520, 600, 680, 720):
        t = 1e-3
        flops = tflops * 1e12 * (t + true.gap_s)  # demand = tflops
        synthetic.append((flops, t, t * true.slowdown(flops, t)))
    got = fit_power_cap(synthetic, true.gap_s)
    assert got.knee_flops_per_s == pytest.approx(500e12, abs=10e12)
    assert got.slowdown_per_flops_per_s == pytest.approx(0.4e-15, rel=0.1)
    with pytest.raises(ValueError, match="fewer than two"):
        fit_power_cap([(1e12, 1e-3, 1e-3), (2e12, 1e-3, 1.01e-3)], 40e-6)


def _call(arch_name: str, head_dim: int, capped: bool) -> float:
    """Seconds of a long non-causal ping-pong 128 x 128 call (16 heads x 16K)."""
    arch = load_arch(arch_name)
    assert arch.calibration is not None
    if not capped:
        arch = dataclasses.replace(
            arch, calibration=dataclasses.replace(arch.calibration, power_cap=None)
        )
    shape = AttnShape(1, 16, 16384, 16384, head_dim, head_dim, False, "bf16", 2)
    tiling = Tiling(128, 128, 8, 3, "pingpong")
    return evaluate("1pass", shape, tiling, device_rates(arch, "bf16")).time_s


def test_a_heavy_call_slows_by_the_fit_and_a_light_one_not() -> None:
    cal = load_arch("h200").calibration
    assert cal is not None and cal.power_cap is not None
    full, capped = _call("h200", 128, False), _call("h200", 128, True)
    # the probe's own case: 1.122x do_bench over the first calls, measured
    assert 1.08 <= capped / full <= 1.16
    # head dim 64 runs ~420 TFLOP/s, under the knee: measured 0.99x, priced as before
    assert _call("h200", 64, True) == pytest.approx(_call("h200", 64, False))


def test_the_transferred_cap_predicts_the_h100s_own_slowdowns() -> None:
    """The H100's sustained file (not fitted): the H200's cap, carried to the H100."""
    h200, h100 = load_arch("h200"), load_arch("h100-sxm")
    cap = transferred_calibration(h100, h200).power_cap
    assert cap is not None
    errors = [cap.slowdown(f, t) - max(1.0, s / t) for f, t, s in cases(H100)]
    assert len(errors) == 10
    assert statistics.fmean(abs(e) for e in errors) <= 0.03, errors
    assert max(abs(e) for e in errors) <= 0.05, errors


@pytest.mark.parametrize(
    ("entry", "fields"),
    [
        ("{knee_tflops: -5, slowdown_per_tflops: 0.0005, watts: 700}",
         ("knee_tflops", "gap_us", "watts")),
        # the sigmoid weight (--merge-sigmoid): in (0, 2]
        ("{knee_tflops: 480, slowdown_per_tflops: 0.0005, gap_us: 40, sigmoid_weight: 3}",
         ("sigmoid_weight",)),
    ],
)  # fmt: skip
def test_a_bad_power_cap_is_a_located_problem(
    tmp_path: Path, entry: str, fields: tuple[str, ...]
) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(
        f"device: X\ndate: '2026-12-06'\nsource: test\npower_cap: {entry}\n", encoding="utf-8"
    )
    problems: list = []  # type: ignore[type-arg]
    cal = load_calibration(path, problems)
    text = "\n".join(str(p) for p in problems)
    assert "cal.yaml" in text and all(f in text for f in fields), text
    assert cal.power_cap is None


def probe():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("sustained_probe", PROBE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_merging_fits_the_file_into_a_calibration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cal = tmp_path / "cal.yaml"
    cal.write_text("device: X\ndate: '2026-12-06'\nsource: test\n", encoding="utf-8")
    assert probe().main(["--merge", str(cal), str(H200)]) == 2  # no do_bench gap to use
    assert "bench_head_start_us" in capsys.readouterr().err
    cal.write_text(cal.read_text() + "bench_head_start_us: 39.74\n", encoding="utf-8")
    assert probe().main(["--merge", str(cal), str(H200)]) == 0
    got = load_calibration(cal).power_cap
    assert got is not None and got.cases == 10
    with pytest.raises(SystemExit) as exited:
        probe().main(["--merge", str(cal), str(tmp_path / "none.csv")])
    assert exited.value.code == 2 and "no such file" in capsys.readouterr().err


def test_a_malformed_summary_names_each_bad_cell_and_merges_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cal = tmp_path / "cal.yaml"
    cal.write_text("device: X\ndate: '2026-12-06'\nsource: test\nbench_head_start_us: 39.74\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("case,batch,heads,seq,head_dim,first5_median_ms\nx,1,abc,16,128,3.1\n")
    before = cal.read_text()
    assert probe().main(["--merge", str(cal), str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: heads: expected a positive int, got 'abc'" in err
    assert f"{bad}:2: do_bench_median_ms: expected a positive float, got None" in err
    assert cal.read_text() == before


def test_the_fit_reads_the_softmax_cases_only(tmp_path: Path) -> None:
    """A summary with `score`: sigmoid rows (the -sig cases) are left out of the cap's fit."""
    import csv

    with H200.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    mixed = tmp_path / "sustained-mixed.csv"
    with mixed.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, [*rows[0], "score"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "score": "softmax"})
            # a sigmoid twin that slowed down twice as much: it must not move the fit
            slow = float(r["first5_median_ms"]) * 2.5
            w.writerow({**r, "case": r["case"] + "-sig", "score": "sigmoid",
                        "do_bench_median_ms": slow})  # fmt: skip
    for name, src in (("plain", H200), ("mixed", mixed)):
        cal = tmp_path / f"{name}.yaml"
        cal.write_text("device: X\ndate: '2026-12-06'\nsource: test\nbench_head_start_us: "
                       "39.74\n", encoding="utf-8")  # fmt: skip
        assert probe().main(["--merge", str(cal), str(src)]) == 0
    a, b = (load_calibration(tmp_path / f"{n}.yaml").power_cap for n in ("plain", "mixed"))
    assert a is not None and b is not None and a.cases == b.cases == 10
    assert (a.knee_flops_per_s, a.slowdown_per_flops_per_s) == (
        b.knee_flops_per_s,
        b.slowdown_per_flops_per_s,
    )
    assert probe().score_of("pp128-sig-h16-8k") == "sigmoid"
    assert probe().score_of("pp128-h16-8k") == "softmax"


def test_only_names_an_unknown_case(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        probe().main(["--out", "unused", "--only", "sigmoid,nope"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "nope" in err and "sigmoid" in err
    assert set(probe().SIGMOID_CASES) <= set(probe().CASES)
