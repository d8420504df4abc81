"""Issue 18 parts 2: the datasheet-only GPU model, measured on the H200, and preset rankings.

The H200's calibration withheld (`calibration: none`), the GPU mappers predict the committed
H200 measurement files from datasheet figures and stated efficiencies alone; that error is
the expected error `archs.datasheet.DATASHEET_ERROR` states in every uncalibrated result.
And the presets rank as the hardware does: an H200 (the H100's compute, more HBM
bandwidth) is never slower than an H100, and an H100 never slower than an A100, for every
shape of the validation suite and every kernel family.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from attnsim.archs.datasheet import DATASHEET_ERROR
from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.kernels.spec import FAMILIES, AttnShape, KernelFamily
from attnsim.mappers.registry import get_mapper
from attnsim.reports import validation

MEASUREMENTS = Path(__file__).resolve().parents[3] / "kernels" / "measurements"
FILES = {
    "validation": MEASUREMENTS / "validation-h200-2026-11-30-pingpong.csv",
    "holdout": MEASUREMENTS / "holdout-h200-2026-11-30-pingpong.csv",
}
TARGET_MAPE_PCT = 15.0  # issue 18's acceptance for the datasheet-only H200
RANKED = ("h200", "h100-sxm", "a100-sxm")  # fastest first


@pytest.mark.parametrize("suite", list(FILES))
def test_datasheet_only_h200_error_is_what_the_warning_states(suite: str) -> None:
    _, points, notes = validation.join_files([FILES[suite]], calibration="none")
    s = validation.summary(points)
    assert s["n_points"] > 0 and any("the datasheet alone" in n for n in notes)
    assert s["mape_overall"] <= TARGET_MAPE_PCT
    stated = getattr(DATASHEET_ERROR, f"{suite}_mape_pct")
    assert round(s["mape_overall"], 1) == stated, "update archs.datasheet.DATASHEET_ERROR"
    # withholding the calibration changes every prediction: nothing measured leaks in
    _, calibrated, _ = validation.join_files([FILES[suite]])
    assert all(a.predicted_ms != b.predicted_ms for a, b in zip(points, calibrated, strict=True))


@functools.cache
def _gpu(name: str) -> GpuArch:
    arch = load_arch(name)
    assert isinstance(arch, GpuArch)
    return arch


def _validation_shapes() -> list[AttnShape]:
    from attnsim.kernels.bench.suites import validation_shapes  # imports torch

    return validation_shapes()


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.measured)
def test_presets_rank_h200_then_h100_then_a100_on_every_validation_shape(
    family: KernelFamily,
) -> None:
    inverted = []
    mapper = get_mapper(family.mapper)()
    for s in _validation_shapes():
        cascade = load_cascade(family.cascade + ("-causal" if s.causal else ""))
        sizes = {"B": s.batch, "H": s.heads, "P": s.seq_q, "M": s.seq_k, "E": s.head_dim}
        sizes["F"] = s.value_dim
        times = [mapper.map(cascade, _gpu(name), sizes).latency_s for name in RANKED]
        pairs = zip(times, times[1:], strict=False)
        if any(slow < fast * (1 - 1e-12) for fast, slow in pairs):
            inverted.append((s.batch, s.heads, s.seq_q, s.head_dim, s.causal, times))
    assert not inverted, f"{len(inverted)} shapes ranked against the hardware: {inverted[:5]}"
