"""gpu-decode against the decode kernel timed on an H200 (held out: never fitted).

`kernels/measurements/decode/decode-splits-h200-2026-12-03.csv` (benchmarks/decode_probe.py)
times the one-launch decode kernel (unsplit, split-K over a sweep of splits, stream-K with
SMs and 2 x SMs programs) on validation and holdout shapes. The model's figures come from
`archs/calibration/h200-decode.yaml` (kernels.calibrate.microbench_decode: other shapes, a
separate run). Observed when this file was written (per-tile times scaled by the measured
load curve, `loads`, and merges measured on each kernel build, 2026-12-04): median |error|
3.5% (validation) and 2.9% (holdout), MAPE 4.4% / 3.9%, worst 21.5% / 44.4% (1 of 293
points over 25%: a 13 us stream-K launch whose 8-warp tiling ran 1.4x faster than the
4-warp one the model prices alike). Before the load curve: MAPE 8.1% / 7.4%, worst 41% /
36%. The bounds sit about 2x above what was observed, so a regression trips them; the
stream-K over unsplit ratio at batch 1 x 8 K/V heads is the issue's acceptance bound (15%).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from attnsim.reports import validation_decode as vd

DATA = Path(__file__).parents[4] / "kernels" / "measurements" / "decode"
FILE = DATA / "decode-splits-h200-2026-12-03.csv"
TUNED = DATA / "decode-h200-2026-12-05-tuned.csv"


@pytest.fixture(scope="module")
def points() -> list[vd.DecodePoint]:
    return vd.predict_rows([FILE], suites=("validation", "holdout"))


@pytest.mark.parametrize("suite", ["validation", "holdout"])
def test_median_error(points: list[vd.DecodePoint], suite: str) -> None:
    errs = [abs(p.error_pct) for p in points if p.suite == suite]
    assert len(errs) > 100
    assert statistics.median(errs) < 6.0
    assert statistics.fmean(errs) < 8.0


@pytest.mark.parametrize("seq_k", [131072, 524288])
def test_streamk_over_unsplit_ratio(points: list[vd.DecodePoint], seq_k: int) -> None:
    """Batch 1, 32 query / 8 K/V heads: stream-K (2 x SMs programs) vs one program each."""
    shape = (1, 32, 8, seq_k, 128, 128)
    mine = [p for p in points if p.shape == shape]
    unsplit = next(p for p in mine if p.strategy == "unsplit")
    streamk = next(p for p in mine if p.strategy == "streamk" and p.programs == 264)
    measured = unsplit.measured_ms / streamk.measured_ms
    predicted = unsplit.predicted_ms / streamk.predicted_ms
    assert measured >= 3.0
    assert predicted == pytest.approx(measured, rel=0.15)


def test_split_picks(points: list[vd.DecodePoint]) -> None:
    """The model's pick per shape against the best measured configuration of that shape.

    Observed: within 10% for all 23 validation and holdout shapes (the issue asks 90%; 20
    of 23 before the per-build figures and the streaming window). For batch 1 with 8 K/V
    heads and >= 128K keys (Lean Attention's regime) all within 10%.
    """
    picks = vd.picks(points)
    assert sum(r <= 0.10 for _, r in picks) / len(picks) >= 0.90
    long = [r for k, r in picks if k[2][0] == 1 and k[2][2] == 8 and k[2][3] >= 131072]  # type: ignore[index]
    assert len(long) >= 2 and max(long) <= 0.10


def test_no_decode_point_is_off_by_more_than_a_quarter() -> None:
    """Every row the model predicts, every suite (ragged, paged, MLA's): the issue's bar.

    Observed worst 22.3% (MLA split-K over 132 splits of 64-head blocks at 128K keys).
    """
    every = vd.predict_rows([FILE])
    assert len(every) > 400
    assert max(abs(p.error_pct) for p in every) <= 25.0


@pytest.mark.parametrize("measured", [True, False])
def test_the_paged_warnings_state_what_was_measured(measured: bool) -> None:
    """Each paged-cache warning's figures (call count, mean shortfall, worst error) come from
    the files: PAGED_MEASURED_NOTE over the calls whose tiling has a measured paged factor,
    PAGED_NOTE (the 2-stage rule) over the others."""
    import re

    from attnsim.archs.load import load_arch
    from attnsim.mappers.gpu.decode import decode_calibration
    from attnsim.mappers.gpu.decode_figures import PAGED_MEASURED_NOTE, PAGED_NOTE

    cal = decode_calibration(load_arch("h200"))
    assert cal is not None
    note = PAGED_MEASURED_NOTE if measured else PAGED_NOTE
    paged = [
        p for p in vd.predict_rows([FILE, TUNED], suites=("paged-validation", "paged-holdout"))
        if (cal.paged_point(p.shape[4], p.shape[5], 16, p.tiling, 64) is not None) == measured
    ]  # fmt: skip
    assert len(paged) == int(re.findall(r"(\d+) calls", note)[0])
    mean = -statistics.fmean(p.error_pct for p in paged)
    worst = max(abs(p.error_pct) for p in paged)
    said_mean, said_worst = (float(x) for x in re.findall(r"([\d.]+)% ", note)[:2])
    # to the note's one decimal (a looser bound let a 4.2% note stand over 3.8%, 2026-12-07)
    assert mean == pytest.approx(said_mean, abs=0.05)
    assert worst == pytest.approx(said_worst, abs=0.05)


def test_paged_factors_hide_under_hbm_contention() -> None:
    """The measured paged factors (32 programs) are a latency that HBM contention hides:
    taken as a plain product on the per-tile time they priced split-K paged-validation
    18.2% off (worst 85%, 2026-12-06); as the larger of the factor and the load curve's
    slowdown, 9.1% (worst 27.8%). The bound sits between, so the product would trip it."""
    paged = vd.predict_rows([FILE, TUNED], suites=("paged-validation", "paged-holdout"))
    split = [abs(p.error_pct) for p in paged if p.family == "triton-decode-splitk"]
    assert len(split) > 100
    assert statistics.fmean(split) < 9.0
    assert max(split) < 40.0


@pytest.mark.parametrize("suite", ["validation", "holdout"])
def test_tuned_tilings_dense_suites(suite: str) -> None:
    """The tuned tilings (deeper pipelines, wider tiles; `benchmarks/decode_probe.py --tuned`,
    2026-12-05) on dense caches. Observed: split-K MAPE 4.8% / 4.8%, stream-K 5.0% / 4.1%
    (18.3% / 14.7% over the whole file before the tunings' calibration entries and the
    HBM-saturation and foreign-curve rules of `mappers.gpu.decode_figures`).
    """
    every = vd.predict_rows([TUNED], suites=(suite,))
    for family in ("triton-decode-splitk", "triton-decode-streamk"):
        errs = [abs(p.error_pct) for p in every if p.family == family]
        assert len(errs) > 50
        assert statistics.fmean(errs) < 8.0


def test_streamk_second_wave_of_one_per_sm_builds() -> None:
    """Stream-K with 264 programs on builds that hold one program per SM runs two waves.

    Each wave starts its streams at once and pays the load curve's intercept growth
    (`wave_ramps_us`). Observed on the tuned file's dense and ragged suites (27 rows):
    mean error -3.0% (-9.7% when only the first wave paid it).
    """
    every = vd.predict_rows([TUNED])
    rows = [
        p for p in every
        if p.strategy == "streamk" and p.programs == 264
        and p.tiling in ((128, 8, 3), (256, 8, 3)) and not p.suite.startswith("paged")
    ]  # fmt: skip
    assert len(rows) >= 20
    assert abs(statistics.fmean(p.error_pct for p in rows)) < 6.0


def test_streamk_waves_are_priced_and_reported() -> None:
    """The Result names what the further waves cost (0 with one wave)."""
    from attnsim.archs.load import load_arch
    from attnsim.einsum_ir import load_cascade
    from attnsim.mappers.registry import get_mapper

    cascade, arch = load_cascade(vd.CASCADE), load_arch("h200")
    sizes = dict(B=1, G=8, R=4, E=128, F=128, P=1, M=32768)
    ramps = {}
    for programs in (132, 264):
        mapper = get_mapper("gpu-decode")(
            strategy="streamk", programs=programs, block_n=128, num_warps=8, num_stages=3
        )
        ramps[programs] = dict(mapper.map(cascade, arch, sizes).extras)["wave_ramps_us"]
    assert ramps[132] == 0.0
    assert 1.0 < ramps[264] < 30.0


def test_decode_waves_rows_are_priced_as_their_configuration(tmp_path: Path) -> None:
    """Rows of benchmarks/decode_waves_probe.py (suite `waves`) are modelled, each with its
    own configuration: a tuned-file row relabelled `waves` gets the same prediction."""
    import csv

    with TUNED.open() as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if r["suite"] == "validation" and r["strategy"] == "splitk"]
    rows = rows[:5]
    path = tmp_path / "decode-waves-h200-2026-12-06.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows({**r, "suite": "waves"} for r in rows)
    assert vd.is_decode_file(path)
    waves = vd.predict_rows([path])
    direct = vd.predict_rows([TUNED], suites=("validation",))
    assert len(waves) == 5 and {p.suite for p in waves} == {"waves"}
    by_key = {(p.shape, p.splits, p.programs, p.tiling, p.measured_ms): p for p in direct}
    for p in waves:
        twin = by_key[(p.shape, p.splits, p.programs, p.tiling, p.measured_ms)]
        assert p.predicted_ms == pytest.approx(twin.predicted_ms)
