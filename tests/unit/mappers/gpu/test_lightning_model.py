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


def test_grids_under_a_full_wave_take_their_measured_step() -> None:
    """A small grid's chunk step comes from the entries measured on such grids."""
    from dataclasses import replace

    from attnsim.archs.calibration import StepPoint

    arch = load_arch("h200")
    assert arch.calibration is not None
    t = Tiling(128, 128, 8, 2)
    base = [p for p in arch.calibration.attention_steps if not p.programs]

    def run(small_us: float, heads: int) -> float:
        small = StepPoint("lightning-fused", "bf16", 128, 128, 128, 8, 2, 1, small_us * 1e-6, 16)
        cal = replace(arch.calibration, attention_steps=(*base, small))
        rates = device_rates(replace(arch, calibration=cal), "bf16")  # type: ignore[arg-type]
        return time_lightning(1, heads, 8192, 128, 128, t, rates).scheduled_s

    chunks = 8192 // 128
    # 16 programs (one per head): the step measured on 16 programs, exactly
    assert run(4.0, 16) - run(2.0, 16) == pytest.approx(chunks * 2.0e-6, rel=1e-6)
    assert run(4.0, 264) == run(2.0, 264)  # two full waves: the full-wave steps only


def test_gla_adds_its_gate_work_bytes_and_registers() -> None:
    from attnsim.mappers.gpu.lightning import gla_step_work

    t = Tiling(64, 64, 8, 2)
    plain = fused_plan(2, 8, 4096, 128, 128, t)
    gla = fused_plan(2, 8, 4096, 128, 128, t, gated=True)
    assert gla.added == gla_step_work(64, 128, 64)
    assert gla.added.exp2 == 3 * 64 * 128 + 128
    assert gla.added.fp32_ops == 5 * 64 * 128 + 128 * 64
    assert gla.hbm_read_bytes == plain.hbm_read_bytes + 2 * 8 * 4096 * 128 * 4
    assert gla.flops == plain.flops
    assert len(gla.step.dots) == len(plain.step.dots) + 1  # the TF32 score product
    assert gla.registers_per_thread > plain.registers_per_thread
    assert gla.smem_bytes > plain.smem_bytes
