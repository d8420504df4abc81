"""The power cap's sigmoid weight: a sigmoid call's tensor FLOPs counted at a measured weight.

The cap is fitted on softmax calls. `benchmarks/sustained_probe.py --only sigmoid` timed four
builds and shapes with sigmoid beside softmax in one run on an H100 (2026-12-07,
`kernels/measurements/h100/sustained-sigmoid-h100-2026-12-07.csv`): each sigmoid case ran at
a higher FLOP rate than its twin and slowed down by about as much. `--merge-sigmoid` fits the
weight against that H100's own cap (its 2026-12-06 softmax file) into the H200's calibration.
These tests recompute the weight from the files, check where the model reads it, and check
what it does to the H200's score suites (files it was not fitted on).
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from attnsim.archs import load_arch
from attnsim.archs.calibration import load_calibration
from attnsim.archs.calibration.power import PowerCap, fit_sigmoid_weight
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.reports import validation_kernels as vk

ROOT = Path(__file__).resolve().parents[4]
H100 = ROOT / "kernels" / "measurements" / "h100"
PAIRS = H100 / "sustained-sigmoid-h100-2026-12-07.csv"
CAP = H100 / "sustained-h100-2026-12-06.csv"
CAL = ROOT / "archs" / "calibration" / "h200.yaml"
SCORES = sorted(ROOT.glob("kernels/measurements/masks/masks-score-h200-2026-12-0[67]*.csv"))


@pytest.fixture(scope="module")
def probe(benchmark_module: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_module("sustained_probe")


def _unweighted(files: list[Path]) -> list[vk.KernelPoint]:
    """The files' points priced with the H200 calibration's sigmoid weight set to 1."""
    import attnsim.archs.load as load

    arch = load_arch("h200")
    cal = arch.calibration
    assert cal is not None and cal.power_cap is not None
    cap = dataclasses.replace(cal.power_cap, sigmoid_weight=1.0)
    flat = dataclasses.replace(arch, calibration=dataclasses.replace(cal, power_cap=cap))
    real = load.load_arch
    load.load_arch = lambda *_a, **_k: flat  # type: ignore[assignment]
    try:
        return vk.predict_rows(files)
    finally:
        load.load_arch = real


def test_the_calibrations_weight_is_the_committed_files_fit(
    probe: ModuleType, tmp_path: Path
) -> None:
    cal = tmp_path / "h200.yaml"
    shutil.copy(CAL, cal)
    assert probe.main(["--merge-sigmoid", str(cal), str(PAIRS), str(CAP)]) == 0
    fitted, committed = (load_calibration(p).power_cap for p in (cal, CAL))
    assert fitted is not None and committed is not None
    assert fitted.sigmoid_weight == committed.sigmoid_weight < 1
    assert PAIRS.name in committed.sigmoid_source and CAP.name in committed.sigmoid_source
    # the cap itself is the H200's softmax fit, untouched
    assert dataclasses.replace(fitted, sigmoid_weight=1.0, sigmoid_source="") == (
        dataclasses.replace(committed, sigmoid_weight=1.0, sigmoid_source="")
    )


def test_the_fit_recovers_a_known_weight() -> None:
    cap = PowerCap(400e12, 0.4e-15, 40e-6)
    truth = dataclasses.replace(cap, sigmoid_weight=0.8)
    pairs = []
    for flops, soft_s, sig_s in (
        (2e12, 3.2e-3, 2.7e-3),
        (5e11, 0.8e-3, 0.7e-3),
        (2e12, 4e-3, 3.6e-3),
    ):
        soft = (flops, soft_s, soft_s * cap.slowdown(flops, soft_s))
        sig = (flops, sig_s, sig_s * truth.slowdown(flops, sig_s, sigmoid=True))
        pairs.append((soft, sig))
    assert fit_sigmoid_weight(pairs, cap) == pytest.approx(0.8, abs=0.002)
    with pytest.raises(ValueError, match="twin"):
        fit_sigmoid_weight([], cap)
    # pairs far under the knee, or a cap without slope: nothing to fit, not an arbitrary weight
    low = [((1e9, 1e-3, 1e-3), (1e9, 0.9e-3, 0.9e-3))]
    with pytest.raises(ValueError, match="knee"):
        fit_sigmoid_weight(low, cap)
    with pytest.raises(ValueError, match="slope"):
        fit_sigmoid_weight(pairs, dataclasses.replace(cap, slowdown_per_flops_per_s=0.0))


def test_a_sigmoid_call_weighs_its_flops_and_says_so() -> None:
    cascade = load_cascade("attention-1pass-mh-sigmoid")
    sizes = dict(B=1, H=16, P=8192, M=8192, E=128, F=128)
    opts = dict(schedule="pingpong", block_m=128, block_n=128, num_warps=8, num_stages=3)
    arch = load_arch("h200")
    cap = arch.calibration.power_cap if arch.calibration is not None else None
    assert cap is not None and cap.sigmoid_weight < 1
    res = get_mapper("gpu-1pass")(**opts).map(cascade, arch, sizes)
    plain = dataclasses.replace(
        arch.calibration, power_cap=dataclasses.replace(cap, sigmoid_weight=1.0)
    )  # type: ignore[arg-type]
    unweighted = get_mapper("gpu-1pass")(**opts).map(
        cascade, dataclasses.replace(arch, calibration=plain), sizes
    )
    assert 1 < res.extra("power_cap_factor") < unweighted.extra("power_cap_factor")
    (said,) = [w for w in res.warnings if w.startswith("power cap")]
    assert f"weighted {cap.sigmoid_weight:.3f}" in said and PAIRS.name in said
    # a softmax call of the same shape: no weight, no word of it
    soft = get_mapper("gpu-1pass")(**opts).map(load_cascade("attention-1pass-mh"), arch, sizes)
    assert not any("weighted" in w for w in soft.warnings)


def test_the_weight_prices_the_h200_score_suites_better() -> None:
    """Observed (2026-12-07, weight 0.887): sigmoid calls' mean error +3.1% -> +1.5%, the
    sigmoid/softmax ratio within 10% on 73 -> 75 of 76 pairs; the softmax calls unchanged."""
    files = [Path(f) for f in SCORES]
    weighted, unweighted = vk.predict_rows(files), _unweighted(files)

    def sigmoid_mean(points: list[vk.KernelPoint]) -> float:
        return statistics.fmean(p.error_pct for p in points if "sigmoid" in p.shape)

    assert abs(sigmoid_mean(weighted)) < 0.6 * abs(sigmoid_mean(unweighted))
    key = "triton-score sigmoid/softmax ratio"
    ratio = vk.summary(weighted)[key], vk.summary(unweighted)[key]
    assert ratio[0]["ratio_within_10pct"] > ratio[1]["ratio_within_10pct"]
    softmax = [(a.predicted_ms, b.predicted_ms) for a, b in zip(weighted, unweighted, strict=True)
               if "sigmoid" not in a.shape]  # fmt: skip
    assert softmax and all(a == b for a, b in softmax)


def test_merging_a_weight_needs_a_cap_and_the_pairs(probe: ModuleType, tmp_path: Path) -> None:
    cal = tmp_path / "cal.yaml"
    cal.write_text("device: X\ndate: '2026-12-07'\nsource: test\nbench_head_start_us: 39.74\n",
                   encoding="utf-8")  # fmt: skip
    assert probe.main(["--merge-sigmoid", str(cal), str(PAIRS), str(CAP)]) == 2  # no power_cap
    assert probe.main(["--merge", str(cal), str(CAP)]) == 0
    # a softmax-only file has no pairs: nothing to fit, nothing written
    assert probe.main(["--merge-sigmoid", str(cal), str(CAP), str(CAP)]) == 2
    got = load_calibration(cal).power_cap
    assert got is not None and got.sigmoid_weight == 1.0
    assert probe.main(["--merge-sigmoid", str(cal), str(PAIRS), str(CAP)]) == 0
    weighted = load_calibration(cal).power_cap
    assert weighted is not None and weighted.sigmoid_weight < 1
    # a later --merge refits the cap and keeps the weight
    assert probe.main(["--merge", str(cal), str(CAP)]) == 0
    kept = load_calibration(cal).power_cap
    assert kept is not None and kept.sigmoid_weight == weighted.sigmoid_weight


def test_the_readme_states_the_weight_and_its_effect() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    arch = load_arch("h200")
    assert arch.calibration is not None and arch.calibration.power_cap is not None
    cap = arch.calibration.power_cap
    assert f"It gives {cap.sigmoid_weight:.3f}, which the H200's calibration carries" in readme
    files = [Path(f) for f in SCORES]
    before = _unweighted(files)
    after = vk.predict_rows(files)
    means, within, worst = [], [], []
    for pts in (before, after):
        means.append(f"{statistics.fmean(p.error_pct for p in pts if 'sigmoid' in p.shape):+.1f}%")
        r = vk.ratio_errors(pts)["triton-score sigmoid/softmax"]
        within.append(str(sum(x <= vk.RATIO_TOLERANCE for x in r)))
        worst.append(f"{100 * max(r):.1f}%")
    pairs = len(vk.ratio_errors(after)["triton-score sigmoid/softmax"])
    assert (
        f"sigmoid calls {means[0]} → {means[1]} on average, the sigmoid/softmax ratio within "
        f"10% on {within[0]} → {within[1]} of {pairs} pairs (worst {worst[0]} → {worst[1]})"
    ) in readme


def test_the_pingpong_sigmoid_note_states_the_h100_suite() -> None:
    """SIGMOID_PINGPONG_PRICED's figures: the H100's ping-pong score file, H200 transferred."""
    import re

    from attnsim.mappers.gpu.scores import SIGMOID_PINGPONG_PRICED

    (name,) = re.findall(r"kernels/measurements/h100/([\w.-]+\.csv)", SIGMOID_PINGPONG_PRICED)
    points = [p for p in vk.predict_rows([H100 / name]) if p.config.endswith("/pingpong")]

    def span(score: str) -> list[int]:
        e = [p.error_pct for p in points if p.ratio is not None and p.ratio[1] == score]
        assert len(e) >= 12
        return [round(min(e)), round(max(e)), round(statistics.fmean(e))]

    lo, hi, mean = span("sigmoid")
    slo, shi, _ = span("softmax")
    assert (
        f"priced {lo:+d}% to {hi:+d}% of their measured time (mean {mean:+d}%; the same run's "
        f"ping-pong softmax calls {slo:+d}% to {shi:+d}%)"
    ) in SIGMOID_PINGPONG_PRICED
