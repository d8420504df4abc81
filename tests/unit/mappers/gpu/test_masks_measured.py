"""The GPU model against the window and score-function suites timed on an H200 (held out).

`kernels/measurements/masks/` (benchmarks/masks_probe.py, 2026-12-04): the plain 1-pass
Triton kernel with causal windows of 128-8K keys and 0-64 sinks over 4K-128K contexts, and
with the score functions (sigmoid, softcap, ALiBi) on the prefill grid, at two or three
tilings each, with FlexAttention and SDPA timed in the same run. The model is calibrated on
microbenchmark shapes (`kernels.calibrate.microbench_masks`: the kernel's score-function
steps, the window's masked step and per-loop cost; none of these suites' shapes) and never
on these files. Observed when this file was last changed (`attnsim validate gpu
--measurements kernels/measurements/masks/*.csv`): window MAPE 4.2% validation / 4.8%
holdout, worst +17.5%; window/causal speed ratio within 10% of the measured for 94% of 165
pairs; score MAPE 3.5% / 4.9%, worst 15.0%; sigmoid/softmax ratio within 10% for all 16
pairs (worst 4.3%; 11/16 before the softmax step was bounded by the add-only modifiers'
steps, 2026-12-05: at head dim 128 and 128 x 128 tiles the microbenchmark's softmax step
exceeded ALiBi's), softcap/softmax for all 16 (worst 8.0%; 3.5% before); tiling pick within
10% on every shape. Before the masks calibration (2026-12-04): window worst -38.6%, score
MAPE 9.9%. The bounds sit a little above what was observed, so a regression trips them.
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
WINDOW = MASKS / "masks-window-h200-2026-12-04.csv"
SCORE = MASKS / "masks-score-h200-2026-12-04.csv"


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
    assert softcap["pairs"] == 16 and softcap["ratio_within_10pct"] >= 0.9
    sigmoid = stats[f"{SCORE_FAMILY} sigmoid/softmax ratio"]
    # issue 13: the sigmoid-vs-softmax speed ratio predicted within 10% of the measured
    assert sigmoid["pairs"] == 16 and sigmoid["ratio_within_10pct"] == 1.0


def test_our_window_kernel_against_flexattention() -> None:
    flex = [b for b in baselines([WINDOW]) if b.family == "flex" and "W=" in b.shape]
    assert len(flex) >= 50
    assert sum(b.speedup >= 1 for b in flex) / len(flex) >= 0.9


def _shape(seq: int, bands: tuple[Band, ...] = ()) -> AttnShape:
    return AttnShape(1, 4, seq, seq, 128, 128, not bands, "bf16", 2, mask=bands)


def test_a_sliding_window_reads_its_keys_once_from_hbm() -> None:
    """At 128K the K/V of a head (64 MiB) overflows the L2; a window's wave does not."""
    window = (Band(d_lo=-127, d_hi=0),)
    t, l2 = Tiling(128, 64, 8, 3), 50 * 2**20
    assert key_span(_shape(131072, window), 264 * 128) == 264 * 128 + 127
    assert kv_refetch(_shape(131072, window), t, 264, l2) == 1
    assert kv_refetch(_shape(131072), t, 264, l2) > 1  # causal: every wave reads every key
