"""gpu-decode on launches of many waves of short programs (benchmarks/decode_waves_probe.py).

The decode figures are one-wave launches'; `WAVES_NOTE` states how launches of
`WAVES_NOTED` or more waves were priced on the H200, and these tests recompute its figures
from the committed file, so a model change that moves them fails here.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.decode import decode_calibration, decode_problem, time_decode
from attnsim.mappers.gpu.decode_figures import WAVES_NOTE, WAVES_NOTED, waves_notes
from attnsim.mappers.gpu.rates import device_rates
from attnsim.reports import validation_decode as vd

FILE = (
    Path(__file__).parents[4]
    / "kernels" / "measurements" / "decode" / "decode-waves-h200-2026-12-06.csv"
)  # fmt: skip


def _many_wave_errors() -> list[float]:
    arch = load_arch("h200")
    rates, cal = device_rates(arch, "bf16"), decode_calibration(arch)
    out = []
    for p in vd.predict_rows([FILE]):
        b, h, g, m, e, f = p.shape
        shape = AttnShape(b, h, 1, m, e, f, False, "bf16", 2, kv_group=h // g)
        t = time_decode(decode_problem(shape, (), False), p.strategy, p.splits, p.programs,
                        p.tiling, rates, cal)  # fmt: skip
        if t.programs >= WAVES_NOTED * arch.sm_count * t.per_sm:
            out.append(p.error_pct)
    return out


def test_the_waves_warning_states_what_was_measured() -> None:
    errs = _many_wave_errors()
    said = [float(x) for x in re.findall(r"([\d.]+)% ", WAVES_NOTE)]
    assert len(errs) == int(re.findall(r"(\d+) calls", WAVES_NOTE)[0])
    assert statistics.fmean(errs) == pytest.approx(said[0], abs=0.5)
    assert min(errs) == pytest.approx(-said[1], abs=1.0)
    assert max(errs) == pytest.approx(said[2], abs=1.0)


def test_the_waves_suite_is_modelled_by_tiling_not_by_one_rule() -> None:
    """Observed (2026-12-06): MAPE 11.0% over the 84 launches, none over 35.0%; the bounds
    sit above, so a change that makes it worse trips them."""
    every = vd.predict_rows([FILE])
    assert len(every) == 84
    errs = [abs(p.error_pct) for p in every]
    assert statistics.fmean(errs) < 12.0
    assert max(errs) < 36.0


def test_waves_notes_only_for_many_split_waves() -> None:
    assert waves_notes(4 * 132, 132, "splitk")
    assert not waves_notes(4 * 132 - 1, 132, "splitk")
    assert not waves_notes(100 * 132, 132, "streamk")


def test_the_mapper_warns_of_many_waves() -> None:
    from attnsim.einsum_ir import load_cascade
    from attnsim.mappers.registry import get_mapper

    res = get_mapper("gpu-decode")(
        strategy="splitk", splits=32, block_n=128, num_warps=8, num_stages=3
    ).map(load_cascade("attention-1pass-gqa"), load_arch("h200"),
          dict(B=64, G=8, R=4, E=128, F=128, P=1, M=4096))  # fmt: skip
    assert any("waves of programs on the SMs' slots" in w for w in res.warnings)
