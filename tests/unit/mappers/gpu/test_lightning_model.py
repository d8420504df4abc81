"""The Lightning-2 kernel plan (mappers.gpu.lightning)."""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.mappers.gpu.lightning import fused_plan, time_lightning
from attnsim.mappers.gpu.rates import Tiling, device_rates

T = Tiling(64, 64, 4, 2)


def test_work_is_linear_in_length_and_programs_follow_value_blocks() -> None:
    short = fused_plan(1, 16, 4096, 128, 128, T)
    long = fused_plan(1, 16, 4 * 4096, 128, 128, T)
    assert long.flops == pytest.approx(4 * short.flops)
    assert long.hbm_read_bytes == pytest.approx(4 * short.hbm_read_bytes)
    assert short.blocks == 16 * 128 // 64
    assert short.groups[0].steps == 4096 // 64


def test_chunk_flops_match_the_chunked_form() -> None:
    # per chunk of C rows and value block bf: QK^T 2C^2E, scores x V 2C^2 bf, Q S and the
    # state update 2 C E bf each; QK^T is recomputed for every value block
    c, e, f, bf = 64, 128, 128, 64
    plan = fused_plan(2, 3, 1000, e, f, Tiling(c, bf, 4, 2))
    chunks = -(-1000 // c)
    per = 2 * c * c * e + 2 * c * c * bf + 4 * c * e * bf
    assert plan.flops == per * chunks * 2 * 3 * (f // bf)


def test_time_grows_with_length_and_split_is_refused() -> None:
    rates = device_rates(load_arch("h200"), "bf16")
    a = time_lightning(1, 16, 16384, 128, 128, T, rates).time_s
    b = time_lightning(1, 16, 131072, 128, 128, T, rates).time_s
    assert 7.0 < b / a <= 8.0  # linear, with fixed costs amortized
    with pytest.raises(ValueError, match="not modelled"):
        time_lightning(1, 16, 4096, 128, 128, T, rates, schedule="split")
    with pytest.raises(ValueError, match="divide"):
        fused_plan(1, 1, 64, 64, 96, T)
