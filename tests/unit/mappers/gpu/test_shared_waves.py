"""Later waves of calls whose heads have several query tiles (microbench_shared entries).

A head's query tiles share its K/V through L2; `kernels.calibrate.microbench_shared` timed
waves of such blocks. A later-wave block then takes that entry's fixed time and its step as
the entry's ratio to the tile chain's step of the same tiling.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from attnsim.archs.calibration import BlockPoint
from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu import model
from attnsim.mappers.gpu.kernels import kernel_plans
from attnsim.mappers.gpu.model import Tiling, device_rates

TILING = Tiling(128, 64, 8, 3)


def _arch(shared_step_scale: float | None, fixed_us: float = 1.0) -> GpuArch:
    """The H200 with its shared entries replaced by one for TILING (None: none at all)."""
    arch = load_arch("h200")
    assert isinstance(arch, GpuArch) and arch.calibration is not None
    cal = arch.calibration
    blocks = tuple(b for b in cal.attention_blocks if b.q_tiles == 1)
    if shared_step_scale is not None:
        chain = device_rates(arch, "bf16").chain_step("online", 128, TILING, 1)
        assert chain is not None
        step = chain.step_s / chain.blocks_per_sm * shared_step_scale
        blocks += (
            BlockPoint("online", "bf16", 128, 128, 64, 8, 3, 528, 1, fixed_us * 1e-6, step,
                       waves=4, tiles="host", q_tiles=4),
        )  # fmt: skip
    # no wave transient: the later-wave figures as measured (test_wave_transients.py)
    return replace(arch, calibration=replace(cal, attention_blocks=blocks, wave_transients=()))


def _block_s(arch: GpuArch, seq_q: int, later: bool) -> float:
    shape = AttnShape(8, 32, seq_q, 4096, 128, 128, False, "bf16", 2)
    rates = device_rates(arch, "bf16")
    (plan,) = kernel_plans("1pass", shape, TILING, 132, arch.l2_bytes, arch.calibration, 132)
    assert plan.q_tiles == -(-seq_q // 128)
    (t,) = model._block_times(plan, rates, 1, later=later).values()
    return t


def test_a_later_block_takes_the_shared_step_ratio_and_fixed_time() -> None:
    base, half = _arch(None), _arch(0.5, fixed_us=1.0)
    steps = 4096 // 64
    plain = _block_s(base, 4096, later=True)  # steps x chain step + the one-tile fixed time
    chain_step = (plain - _fixed_s(base)) / steps
    # half the chain's step, and the shared entry's 1 us fixed time
    assert _block_s(half, 4096, later=True) == pytest.approx(steps * chain_step / 2 + 1e-6)


def _fixed_s(arch: GpuArch) -> float:
    rates = device_rates(arch, "bf16")
    got = rates.block_fixed_s("online", 128, TILING, 1, 132, True, "host")
    assert got is not None
    return got


def test_first_waves_and_single_tile_heads_keep_the_chain_step() -> None:
    base, half = _arch(None), _arch(0.5)
    assert _block_s(half, 4096, later=False) == _block_s(base, 4096, later=False)
    assert _block_s(half, 128, later=True) == _block_s(base, 128, later=True)  # 1 tile a head
