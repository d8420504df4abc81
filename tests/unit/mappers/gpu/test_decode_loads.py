"""gpu-decode's load curve and merge curve: the calibration's shapes and what the model does.

`loads` (kernels.calibrate.microbench_decode --extend) is a program's per-tile time over how
many programs stream at once; merges may carry their measured added time over split counts.
"""

from __future__ import annotations

import dataclasses

import pytest

from attnsim.archs.calibration.decode import (
    LoadCurve,
    MergePoint,
    load_decode_calibration,
)
from attnsim.einsum_ir.spec import SpecError

CURVE = LoadCurve(
    128, 128, 16, 64, 4, 2, (16, 32, 132, 264, 528),
    (1.7e-6, 1.5e-6, 1.6e-6, 2.0e-6, 3.6e-6), (3e-6, 6e-6, 10e-6, 13e-6, 14e-6),
)  # fmt: skip


def test_tile_factor_is_one_up_to_the_reference_and_interpolated_above() -> None:
    assert CURVE.tile_factor(8) == 1.0  # the 16-program point (1.7) is noise, not load
    assert CURVE.tile_factor(32) == 1.0
    assert CURVE.tile_factor(264) == pytest.approx(2.0 / 1.5)
    assert CURVE.tile_factor(198) == pytest.approx((1.6 + 0.5 * 0.4) / 1.5)
    # beyond the last measured count: in proportion to the programs (HBM-bound)
    assert CURVE.tile_factor(1056) == pytest.approx(2 * 3.6 / 1.5)


def test_extra_fixed_is_the_intercepts_growth_over_the_reference() -> None:
    assert CURVE.extra_fixed_s(16) == 0.0
    assert CURVE.extra_fixed_s(132) == pytest.approx(4e-6)
    assert CURVE.extra_fixed_s(2000) == pytest.approx(8e-6)


def test_merge_curve_replaces_the_linear_fit_where_measured() -> None:
    linear = MergePoint(128, 128, 16, piece_s=1e-6, part_s=0.25e-6)
    curve = dataclasses.replace(linear, splits=(2, 16, 64), added_s=(1.5e-6, 5e-6, 25e-6))
    assert linear.merge_s(0) == curve.merge_s(0) == 0.0
    assert linear.merge_s(64) == pytest.approx(16e-6)
    assert curve.merge_s(64) == pytest.approx(24e-6)  # added(64) less the piece
    assert curve.merge_s(40) == pytest.approx((5 + 24 / 48 * 20) * 1e-6 - 1e-6)
    assert curve.merge_s(128) == pytest.approx(24e-6 + 64 * 0.25e-6)  # part_s beyond


def test_loader_reads_loads_and_merge_curves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x-decode.yaml"
    path.write_text(
        "device: X\ndate: '2026'\nsource: s\n"
        "merges:\n"
        "  - {head_dim: 128, value_dim: 128, rows: 16, piece_us: 1, part_us: 0.25,\n"
        "     splits: [2, 16], added_us: [1.5, 5]}\n"
        "loads:\n"
        "  - {head_dim: 128, value_dim: 128, rows: 16, block_n: 64, num_warps: 4,\n"
        "     num_stages: 2, programs: [32, 264], tile_us: [1.5, 2.0], fixed_us: [6, 13]}\n"
    )
    cal = load_decode_calibration(path)
    assert cal is not None
    assert cal.merges[0].splits == (2, 16)
    assert cal.merges[0].added_s == pytest.approx((1.5e-6, 5e-6))
    assert cal.load(128, 128, 16, (64, 4, 2)) == LoadCurve(
        128, 128, 16, 64, 4, 2, (32, 264), (1.5e-6, 2.0e-6), (6e-6, 13e-6)
    )
    assert cal.load(576, 512, 16, (32, 8, 2)) is None  # no curve within 2x of MLA's dims


def test_loader_reports_every_bad_curve_with_its_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x-decode.yaml"
    path.write_text(
        "device: X\ndate: '2026'\nsource: s\n"
        "loads:\n"
        "  - {head_dim: 128, value_dim: 128, rows: 16, block_n: 64, num_warps: 4,\n"
        "     num_stages: 2, programs: [264, 32], tile_us: [1.5, 2.0], fixed_us: [6, 13]}\n"
        "  - {head_dim: 128, value_dim: 128, rows: 16, block_n: 64, num_warps: 4,\n"
        "     num_stages: 2, programs: [32, 264], tile_us: [1.5], fixed_us: [6, 13]}\n"
    )
    with pytest.raises(SpecError) as err:
        load_decode_calibration(path)
    text = str(err.value)
    assert f"{path}:6" in text and f"{path}:8" in text and "increasing programs" in text


def test_a_profile_or_curve_of_zero_tiles_or_programs_is_reported_not_dropped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Until 2026-12-07 the loader skipped such entries silently (three measured H200 profiles
    of tuned tilings, recorded with a 0-tile point, were priced on another tiling's)."""
    path = tmp_path / "x-decode.yaml"
    path.write_text(
        "device: X\ndate: '2026'\nsource: s\n"
        "profiles:\n"
        "  - {head_dim: 128, value_dim: 128, rows: 16, block_n: 128, num_warps: 8,\n"
        "     num_stages: 3, tiles: [0, 2, 8], time_us: [4.9, 7.4, 15.8]}\n"
        "loads:\n"
        "  - {head_dim: 128, value_dim: 128, rows: 16, block_n: 64, num_warps: 4,\n"
        "     num_stages: 2, programs: [0, 264], tile_us: [1.5, 2.0], fixed_us: [6, 13]}\n"
    )
    with pytest.raises(SpecError) as err:
        load_decode_calibration(path)
    text = str(err.value)
    assert f"{path}:6" in text and "profiles[0].tiles: expected tile counts >= 1" in text
    assert f"{path}:9" in text and "loads[0].programs: expected program counts >= 1" in text


def test_profile_points_count_a_partial_tile_as_one_visit() -> None:
    from attnsim.kernels.calibrate.microbench_decode import profile_points

    lengths, times = (64, 256, 1024), [5e-6, 6e-6, 9e-6]
    assert profile_points(lengths, 64, times, 1e-6) == {
        "tiles": [1, 4, 16], "time_us": [4.0, 5.0, 8.0]
    }  # fmt: skip
    assert profile_points(lengths, 128, times, 1e-6)["tiles"] == [1, 2, 8]
    # 64 and 256 keys both visit one 256-key tile: the whole tile's time is kept
    assert profile_points(lengths, 256, times, 1e-6) == {"tiles": [1, 4], "time_us": [5.0, 8.0]}


def _time(seq_lens: tuple[int, ...], loads: tuple[LoadCurve, ...], batch: int):  # type: ignore[no-untyped-def]
    from attnsim.archs.load import load_arch
    from attnsim.kernels.spec import AttnShape
    from attnsim.mappers.gpu.decode import decode_calibration, decode_problem, time_decode
    from attnsim.mappers.gpu.rates import device_rates

    arch = load_arch("h200")
    cal = dataclasses.replace(decode_calibration(arch), loads=loads)  # type: ignore[type-var]
    shape = AttnShape(batch, 8, 1, max(seq_lens), 128, 128, False, "bf16", 2, kv_group=8)
    p = decode_problem(shape, seq_lens, shared_kv=False)
    return time_decode(p, "unsplit", 1, 0, (64, 4, 2), device_rates(arch, "bf16"), cal)


def test_programs_streaming_together_slow_each_other_as_the_curve_says() -> None:
    """264 programs of 128 tiles each: the streaming part grows by the curve's factor."""
    lens = (8192,) * 264
    steep = dataclasses.replace(CURVE, tile_s=(1.7e-6, 1.5e-6, 1.6e-6, 3.0e-6, 3.6e-6))
    alone, loaded = _time(lens, (), 264), _time(lens, (steep,), 264)
    assert alone.bound == "hbm"  # 1.1 GB: at 1.5 us per tile the programs outrun HBM
    assert loaded.bound.startswith("per-program") and loaded.time_s > alone.time_s * 1.3
    streaming = alone.scheduled_s - alone.fixed_s
    assert loaded.scheduled_s == pytest.approx(
        alone.scheduled_s + (steep.tile_factor(264) - 1) * streaming + steep.extra_fixed_s(264),
        rel=0.05,
    )


def test_a_ragged_batch_loads_the_gpu_only_while_its_programs_stream() -> None:
    """One long sequence among 263 short ones streams mostly alone: it is not charged the
    factor of 264 programs at once."""
    ragged = (65536,) + (64,) * 263
    alone, loaded = _time(ragged, (), 264), _time(ragged, (CURVE,), 264)
    assert loaded.time_s < alone.time_s * 1.1


def test_merges_are_taken_from_the_strategys_kernel_build() -> None:
    from attnsim.archs.calibration.decode import DecodeCalibration

    split = MergePoint(576, 512, 64, piece_s=4e-6, part_s=3e-6)
    stream = dataclasses.replace(split, part_s=4.3e-6, strategy="streamk")
    cal = DecodeCalibration("dev", "today", "test", merges=(split, stream))
    assert cal.merge(576, 512, 64, "streamk") is stream
    assert cal.merge(576, 512, 64, "splitk") is split
    only_split = DecodeCalibration("dev", "today", "test", merges=(split,))
    assert only_split.merge(576, 512, 64, "streamk") is split  # none measured: the other's
