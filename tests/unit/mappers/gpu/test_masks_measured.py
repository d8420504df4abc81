"""The GPU model against the window and score-function suites timed on an H200 (held out).

`kernels/measurements/masks/` (benchmarks/masks_probe.py): the plain 1-pass Triton kernel with
causal windows of 128-8K keys and 0-64 sinks over 4K-128K contexts, and with the score
functions (sigmoid, softcap, ALiBi) on the prefill grid, at two or three tilings each, with
FlexAttention and SDPA timed in the same run. Read here: the run of 2026-12-06, the kernel as
it is (sigmoid with the one-FMA tanh argument; its score suite stopped at its time budget
before two holdout shapes). The 2026-12-04 run timed the same window kernel (median call
ratio 1.00) and the earlier sigmoid. The model is calibrated on microbenchmark shapes
(`kernels.calibrate.microbench_masks`, 2026-12-06: the kernel's score-function steps, the
window's masked step and per-loop cost; none of these suites' shapes) and never on these
files. Observed when this file was last changed (`attnsim validate gpu --measurements
kernels/measurements/masks/*-2026-12-06.csv`): window MAPE 2.5% validation / 2.7% holdout,
worst 11.9%; window/causal speed ratio within 10% of the measured for 97% of 165 pairs; score
MAPE 4.5% / 2.8%, worst 14.7%; sigmoid/softmax, softcap/softmax and alibi/softmax ratios
within 10% for all 12 pairs each (worst 6.0%, 7.6%, 9.6%); tiling pick within 10% on every
shape. With the 2026-12-04 calibration on the same files: window 2.6% / 4.3%, worst 14.8%;
score 4.1% / 2.3%, worst 15.3%. Before the masks calibration (2026-12-04): window worst
-38.6%, score MAPE 9.9%. The bounds sit a little above what was observed, so a regression
trips them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attnsim.einsum_ir.analysis.tiles import Band
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.kernels import key_span, kv_refetch
from attnsim.mappers.gpu.rates import Tiling
from attnsim.reports.validation_kernels import baselines, predict_rows, probe_of, summary
from attnsim.reports.validation_probes import SCORE_FAMILY, WINDOW_FAMILY

MASKS = Path(__file__).parents[4] / "kernels" / "measurements" / "masks"
WINDOW = MASKS / "masks-window-h200-2026-12-06.csv"
SCORE = MASKS / "masks-score-h200-2026-12-06.csv"


@pytest.fixture(scope="module")
def stats() -> dict[str, dict[str, float]]:
    return summary(predict_rows([WINDOW, SCORE]))


def test_each_file_is_read_by_its_own_probe() -> None:
    window, score = probe_of(WINDOW), probe_of(SCORE)
    assert window is not None and window.family == WINDOW_FAMILY
    assert score is not None and score.family == SCORE_FAMILY


def test_window_suites_follow_the_kernel(stats: dict[str, dict[str, float]]) -> None:
    assert stats[f"{WINDOW_FAMILY} validation"]["mape_pct"] < 6.0
    assert stats[f"{WINDOW_FAMILY} holdout"]["mape_pct"] < 6.0
    assert stats[f"{WINDOW_FAMILY} all"]["worst_pct"] < 25.0  # issue 13: no point over 25%
    assert stats[f"{WINDOW_FAMILY} pick"]["within_10pct"] >= 0.95
    ratio = stats[f"{WINDOW_FAMILY} window/causal ratio"]
    assert ratio["pairs"] >= 150 and ratio["ratio_within_10pct"] >= 0.9


def test_score_suites_follow_the_kernel(stats: dict[str, dict[str, float]]) -> None:
    assert stats[f"{SCORE_FAMILY} validation"]["mape_pct"] < 8.0  # issue 13: <= 8%
    assert stats[f"{SCORE_FAMILY} holdout"]["mape_pct"] < 8.0
    assert stats[f"{SCORE_FAMILY} all"]["worst_pct"] < 25.0
    assert stats[f"{SCORE_FAMILY} pick"]["within_10pct"] >= 0.9
    softcap = stats[f"{SCORE_FAMILY} softcap/softmax ratio"]
    assert softcap["pairs"] == 12 and softcap["ratio_within_10pct"] >= 0.9
    sigmoid = stats[f"{SCORE_FAMILY} sigmoid/softmax ratio"]
    # issue 13: the sigmoid-vs-softmax speed ratio predicted within 10% of the measured
    assert sigmoid["pairs"] == 12 and sigmoid["ratio_within_10pct"] == 1.0


def test_our_window_kernel_against_flexattention() -> None:
    flex = [b for b in baselines([WINDOW]) if b.family == "flex" and "W=" in b.shape]
    assert len(flex) >= 50
    assert sum(b.speedup >= 1 for b in flex) / len(flex) >= 0.9  # issue 13: >= 90% of shapes


def _best_ms(path: Path, cols: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    """Our best measured time per shape (`cols`), over the tilings."""
    import csv

    best: dict[tuple[str, ...], float] = {}
    with path.open() as fh:
        for r in csv.DictReader(fh):
            if r["family"].startswith("triton") and r["status"] == "ok":
                k = tuple(r[c] for c in cols)
                best[k] = min(best.get(k, float("inf")), float(r["median_ms"]))
    return best


def test_a_1k_window_at_64k_is_20x_faster_than_causal() -> None:
    """Issue 13: W = 1024 (no sinks) at 64K tokens >= 20x causal's speed, best tilings."""
    cols = ("batch", "heads", "seq", "head_dim", "window", "sinks")
    best = _best_ms(WINDOW, cols)
    shapes = {k[:4] for k in best if k[2] == "65536"}
    assert shapes
    for shape in shapes:
        assert best[(*shape, "0", "0")] / best[(*shape, "1024", "0")] >= 20


def test_score_functions_against_softmax_and_flexattention() -> None:
    """Issue 13: softcap at least FlexAttention's speed (same score_mod) on every shape; ALiBi
    within 10% of softmax's time at head dim 128 (best tilings)."""
    softcap = [b for b in baselines([SCORE]) if b.family == "flex" and "softcap" in b.shape]
    assert len(softcap) >= 6 and min(b.speedup for b in softcap) >= 1
    best = _best_ms(SCORE, ("suite", "batch", "heads", "seq", "head_dim", "causal", "score"))
    alibi = [ms / best[(*k[:6], "softmax")] for k, ms in best.items()
             if k[6] == "alibi" and k[4] == "128"]  # fmt: skip
    assert len(alibi) >= 5 and all(abs(r - 1) <= 0.1 for r in alibi)


def _shape(seq: int, bands: tuple[Band, ...] = ()) -> AttnShape:
    return AttnShape(1, 4, seq, seq, 128, 128, not bands, "bf16", 2, mask=bands)


def test_a_sliding_window_reads_its_keys_once_from_hbm() -> None:
    """At 128K the K/V of a head (64 MiB) overflows the L2; a window's wave does not."""
    window = (Band(d_lo=-127, d_hi=0),)
    t, l2 = Tiling(128, 64, 8, 3), 50 * 2**20
    assert key_span(_shape(131072, window), 264 * 128) == 264 * 128 + 127
    assert kv_refetch(_shape(131072, window), t, 264, l2) == 1
    assert kv_refetch(_shape(131072), t, 264, l2) > 1  # causal: every wave reads every key
