"""Calibration `attention_blocks` (per-block fixed time of the fused kernels) and its lookup."""

from __future__ import annotations

import pytest

from attnsim.archs.calibration import load_calibration
from attnsim.einsum_ir.spec import SpecError

HEAD = "device: X\ndate: '2026-11-30'\nsource: test\nbench_floor_us: 2.5\nattention_blocks:\n"


def _entry(blocks, per_sm, fixed, bm=128, bn=128, w=8, mode="online", d=128):
    return (
        f"- {{mode: {mode}, dtype: bf16, head_dim: {d}, block_m: {bm}, block_n: {bn}, "
        f"num_warps: {w}, num_stages: 3, blocks: {blocks}, blocks_per_sm: {per_sm}, "
        f"fixed_us: {fixed}, step_us: 2.0}}\n"
    )


def _cal(tmp_path, body):
    p = tmp_path / "cal.yaml"
    p.write_text(HEAD + body)
    return load_calibration(p)


def test_lookup_interpolates_by_blocks_started(tmp_path):
    cal = _cal(tmp_path, _entry(16, 1, 2.0) + _entry(132, 1, 7.8) + _entry(264, 2, 9.0))
    assert cal.bench_floor_s == pytest.approx(2.5e-6)
    t = (128, 128, 8, 3)
    assert cal.block_fixed("online", 128, t, 1, 16, 132) == pytest.approx(2.0e-6)
    assert cal.block_fixed("online", 128, t, 1, 132, 132) == pytest.approx(7.8e-6)
    assert cal.block_fixed("online", 128, t, 1, 74, 132) == pytest.approx(4.9e-6)
    assert cal.block_fixed("online", 128, t, 1, 4, 132) == pytest.approx(2.0e-6)  # below: clamp
    assert cal.block_fixed("online", 128, t, 2, 264, 132) == pytest.approx(9.0e-6)
    # more per SM than measured: the largest measured count
    assert cal.block_fixed("online", 128, t, 3, 396, 132) == pytest.approx(9.0e-6)
    assert cal.block_fixed("stats", 128, t, 1, 132, 132) is None  # no such mode
    assert cal.block_fixed("online", 64, t, 1, 132, 132) is None  # no such head dim


def test_lookup_takes_the_nearest_tiling(tmp_path):
    body = _entry(132, 1, 7.0) + _entry(132, 1, 3.0, bm=64, bn=64, w=4)
    cal = _cal(tmp_path, body)
    assert cal.block_fixed("online", 128, (64, 32, 4, 3), 1, 132, 132) == pytest.approx(3.0e-6)
    assert cal.block_fixed("online", 128, (128, 64, 8, 3), 1, 132, 132) == pytest.approx(7.0e-6)


def test_negative_noise_clamps_to_zero(tmp_path):
    cal = _cal(tmp_path, _entry(132, 1, -0.2))
    assert cal.block_fixed("online", 128, (128, 128, 8, 3), 1, 132, 132) == 0.0


def test_bad_entries_are_reported_with_their_place(tmp_path):
    body = _entry(0, 1, 1.0).replace("blocks: 0", "blocks: 0") + "- {mode: online}\n"
    with pytest.raises(SpecError) as err:
        _cal(tmp_path, body)
    text = str(err.value)
    assert "blocks" in text and "expected a positive integer" in text
    assert "fixed_us" in text  # the second entry lacks it


def test_later_waves_and_measured_occupancy(tmp_path):
    later = _entry(1056, 2, 5.5).replace("blocks_per_sm: 2,", "blocks_per_sm: 2, waves: 4,")
    cal = _cal(tmp_path, _entry(16, 1, 2.0) + _entry(132, 1, 7.8) + _entry(264, 2, 9.0) + later)
    t = (128, 128, 8, 3)
    assert cal.block_fixed("online", 128, t, 2, 264, 132, later=True) == pytest.approx(5.5e-6)
    assert cal.block_fixed("online", 128, t, 2, 264, 132) == pytest.approx(9.0e-6)
    # one per SM: no later-wave entry at that count -> the first-wave value
    assert cal.block_fixed("online", 128, t, 1, 132, 132, later=True) == pytest.approx(7.8e-6)
    assert cal.occupancy("online", 128, t) == 2
    assert cal.occupancy("online", 128, (128, 64, 8, 3)) is None  # exact tiling only


def test_model_uses_the_measured_occupancy(tmp_path):
    from dataclasses import replace

    from attnsim.archs.load import load_arch
    from attnsim.kernels.spec import AttnShape
    from attnsim.mappers.gpu.kernels import kernel_plans
    from attnsim.mappers.gpu.model import plan_residency
    from attnsim.mappers.gpu.rates import Tiling

    arch = load_arch("h200")
    shape = AttnShape(1, 4, 2048, 2048, 128, 128, False, "bf16", 2)
    plan = kernel_plans("1pass", shape, Tiling(128, 128, 8, 3), 132, arch.l2_bytes)[0]
    one = _cal(tmp_path, _entry(132, 1, 7.8))
    assert plan_residency(replace(arch, calibration=one), plan).blocks_per_sm == 1
    three = _cal(tmp_path, _entry(396, 3, 9.0))
    res = plan_residency(replace(arch, calibration=three), plan)
    assert (res.blocks_per_sm, res.limiter) == (3, "measured occupancy")


def test_entries_of_the_call_s_tile_path_are_preferred(tmp_path):
    host = _entry(132, 1, 4.0).replace("fixed_us", "tiles: host, fixed_us")
    cal = _cal(tmp_path, host + _entry(132, 1, 7.0))
    t = (128, 128, 8, 3)
    assert cal.block_fixed("online", 128, t, 1, 132, 132, tiles="host") == pytest.approx(4.0e-6)
    assert cal.block_fixed("online", 128, t, 1, 132, 132, tiles="device") == pytest.approx(7.0e-6)
    only_host = _cal(tmp_path, host)  # no device entry: the host one stands in
    assert only_host.block_fixed("online", 128, t, 1, 132, 132) == pytest.approx(4.0e-6)
    with pytest.raises(SpecError, match="expected 'host' or 'device'"):
        _cal(tmp_path, _entry(132, 1, 4.0).replace("fixed_us", "tiles: gpu, fixed_us"))


def test_1pass_plans_pick_the_kernel_s_tile_path():
    from attnsim.kernels.spec import AttnShape
    from attnsim.mappers.gpu.kernels import kernel_plans
    from attnsim.mappers.gpu.rates import Tiling

    t = Tiling(128, 64, 8, 3)

    def tiles(family, seq):
        shape = AttnShape(1, 4, seq, seq, 128, 128, False, "bf16", 2)
        return [p.tiles for p in kernel_plans(family, shape, t, 132, 50 << 20)]

    assert tiles("1pass", 1024) == ["host"]
    assert tiles("1pass", 1000) == ["device"]  # the last query tile is ragged
    assert tiles("2pass", 1024) == ["device", "device"]


def test_loop_cost_is_read_and_looked_up(tmp_path):
    window = _entry(128, 1, 8.0, bm=128, bn=64, w=4, mode="window").replace(
        "step_us: 2.0}", "step_us: 2.0, loop_us: 0.7}"
    )
    noisy = _entry(256, 2, 8.0, bm=128, bn=64, w=4, mode="window").replace(
        "step_us: 2.0}", "step_us: 2.0, loop_us: -0.3}"
    )
    cal = _cal(tmp_path, window + noisy + _entry(132, 1, 7.0))
    t = (128, 64, 4, 3)
    assert cal.block_loop("window", 128, t, 1) == pytest.approx(0.7e-6)
    assert cal.block_loop("window", 128, t, 2) == 0.0  # the 2-per-SM entry: noise below 0
    assert cal.block_loop("online", 128, t, 1) == 0.0  # not measured for that mode
    assert cal.block_loop("window", 64, t, 1) == 0.0  # nor that head dim


def test_a_bad_loop_cost_is_a_located_error(tmp_path):
    body = _entry(128, 1, 8.0, mode="window").replace("step_us: 2.0}", "loop_us: fast}")
    with pytest.raises(SpecError) as err:
        _cal(tmp_path, body)
    assert "loop_us" in str(err.value)


STEPS = "device: X\ndate: '2026-11-30'\nsource: test\nattention_steps:\n"


def _step(per_sm, us, programs=0):
    grid = f", programs: {programs}" if programs else ""
    return (
        f"- {{mode: lightning-fused, dtype: bf16, head_dim: 128, block_m: 128, block_n: 128, "
        f"num_warps: 8, num_stages: 2, blocks_per_sm: {per_sm}, step_us: {us}{grid}}}\n"
    )


def test_steps_on_grids_under_a_full_wave_interpolate_by_programs(tmp_path):
    p = tmp_path / "cal.yaml"
    p.write_text(STEPS + _step(1, 8.0) + _step(2, 16.0) + _step(1, 6.5, 16) + _step(1, 6.4, 48))
    cal = load_calibration(p)
    full = cal.step("lightning-fused", 128, 128, 128, 8, 1, 2)
    assert full is not None and full.step_s == pytest.approx(8.0e-6)  # small grids not picked
    assert cal.step_at(full, 132, 132).step_s == pytest.approx(8.0e-6)
    assert cal.step_at(full, 8, 132).step_s == pytest.approx(6.5e-6)  # below: the smallest
    assert cal.step_at(full, 32, 132).step_s == pytest.approx(6.45e-6)
    assert cal.step_at(full, 90, 132).step_s == pytest.approx(6.4e-6 + 1.6e-6 * 42 / 84)
    two = cal.step("lightning-fused", 128, 128, 128, 8, 2, 2)
    assert two is not None and cal.step_at(two, 64, 132) == two  # none measured at k = 2


def test_a_bad_program_count_is_a_located_error(tmp_path):
    p = tmp_path / "cal.yaml"
    p.write_text(STEPS + _step(1, 6.5).replace("}", ", programs: 0}"))
    with pytest.raises(SpecError) as err:
        load_calibration(p)
    assert "programs" in str(err.value) and "positive" in str(err.value)


def test_entries_with_shared_k_v_are_kept_apart(tmp_path):
    """`q_tiles` entries (microbench_shared) serve `later_shared` only, not `block_fixed`."""
    later = _entry(1056, 2, 5.5).replace("blocks_per_sm: 2,", "blocks_per_sm: 2, waves: 4,")
    shared = later.replace("fixed_us: 5.5", "fixed_us: 4.0").replace("}", ", q_tiles: 4}")
    cal = _cal(tmp_path, _entry(264, 2, 9.0) + later + shared)
    t = (128, 128, 8, 3)
    assert cal.block_fixed("online", 128, t, 2, 264, 132, later=True) == pytest.approx(5.5e-6)
    got = cal.later_shared("online", 128, (128, 64, 8, 3))  # nearest tiling
    assert got is not None and (got.q_tiles, got.fixed_s) == (4, pytest.approx(4.0e-6))
    assert cal.later_shared("online", 64, t) is None
    with pytest.raises(SpecError, match="q_tiles"):
        _cal(tmp_path, shared.replace("q_tiles: 4", "q_tiles: 0"))
