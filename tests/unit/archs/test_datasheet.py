"""GPUs nobody calibrated: transfer from a sibling, datasheet x efficiencies, floors, override."""

from __future__ import annotations

import dataclasses

import pytest

from attnsim.archs.calibration import Calibration
from attnsim.archs.datasheet import (
    DATASHEET_ERROR,
    EFFICIENCIES,
    ORIGINS,
    TRANSFER_ERRORS,
    datasheet_calibration,
    derived_calibration,
    outdone_by,
    sibling,
    transferred_calibration,
)
from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch


def gpu(name: str, **overrides: str) -> GpuArch:
    arch = load_arch(name, overrides=overrides or None)
    assert isinstance(arch, GpuArch)
    return arch


def cal(arch: GpuArch) -> Calibration:
    assert arch.calibration is not None
    return arch.calibration


def test_every_gpu_preset_has_a_calibration_and_says_where_it_comes_from() -> None:
    origins = {name: cal(gpu(name)).origin for name in ("h200", "h100-sxm", "a100-sxm")}
    assert origins == {"h200": "measured", "h100-sxm": "transferred", "a100-sxm": "datasheet"}
    assert set(origins.values()) == set(ORIGINS)
    for name in ("h100-sxm", "a100-sxm"):
        c = cal(gpu(name))
        assert c.path == ""  # not a file: no decode figures are looked up beside it
        assert c.assumptions[0].startswith(f"UNCALIBRATED {name}: ")
    # the datasheet GPU quotes the datasheet mode's error, the transferred one the transfer's
    # own, measured on the H100 (TRANSFER_ERRORS)
    assert f"{DATASHEET_ERROR.validation_mape_pct:.1f}%" in cal(gpu("a100-sxm")).assumptions[0]
    moved = TRANSFER_ERRORS["triton-1pass"]
    assert f"{moved.validation_mape_pct:.1f}%" in cal(gpu("h100-sxm")).assumptions[0]
    assert "the transfer's error on the H100" in cal(gpu("h100-sxm")).assumptions[0]


def test_h100_takes_the_h200s_measurements_scaled_by_the_datasheets() -> None:
    h200, h100 = gpu("h200"), gpu("h100-sxm")
    source, got = cal(h200), cal(h100)
    hbm = h100.hbm_bandwidth_bytes_per_s / h200.hbm_bandwidth_bytes_per_s
    assert got.hbm_read_bandwidth_bytes_per_s == pytest.approx(
        (source.hbm_read_bandwidth_bytes_per_s or 0) * hbm
    )
    assert got.hbm_copy_bandwidth_bytes_per_s == pytest.approx(
        (source.hbm_copy_bandwidth_bytes_per_s or 0) * hbm
    )
    # the same SMs at the same clock: every on-chip figure as measured
    assert (h100.sm_count, h100.clock_hz) == (h200.sm_count, h200.clock_hz)
    assert got.attention_steps == source.attention_steps
    assert got.attention_blocks == source.attention_blocks
    assert got.exp2_per_s == source.exp2_per_s and got.matmul == source.matmul
    # the host is the host
    assert got.host_call_s == source.host_call_s
    assert got.bench_head_start_s == source.bench_head_start_s
    assert any("transferred from h200" in a for a in got.assumptions)


def test_transfer_scales_by_sms_clock_and_keeps_the_unfused_split() -> None:
    h200 = gpu("h200")
    small = dataclasses.replace(
        h200, name="small-hopper", sm_count=114, clock_hz=1.755e9, calibration=None
    )
    got, source = transferred_calibration(small, h200), cal(h200)
    device = (114 * 1.755e9) / (h200.sm_count * h200.clock_hz)
    clock = 1.755e9 / h200.clock_hz
    assert got.exp2_per_s == pytest.approx((source.exp2_per_s or 0) * device)
    assert got.l2_read_bandwidth_bytes_per_s == pytest.approx(
        (source.l2_read_bandwidth_bytes_per_s or 0) * device
    )
    assert got.attention_steps[0].step_s == pytest.approx(source.attention_steps[0].step_s / clock)
    mine, theirs = got.unfused_kernels[0], source.unfused_kernels[0]
    # time / device with bandwidths x device: the memory part the model subtracts at the
    # run's bandwidth is memory / device, so the rest is (time - memory) / device
    assert mine.time_s == pytest.approx(theirs.time_s / device)
    assert mine.hbm_read_bytes_per_s == pytest.approx(theirs.hbm_read_bytes_per_s * device)
    # a lone unfused program's step and the shared-K/V later waves: per-SM times, by the clock
    assert source.unfused_programs
    lone, their_lone = got.unfused_programs[0], source.unfused_programs[0]
    assert lone.step_s == pytest.approx(their_lone.step_s / clock)
    assert lone.fixed_s == pytest.approx(their_lone.fixed_s / clock)
    shared = [p for p in got.attention_blocks if p.q_tiles > 1]
    assert shared and shared[0].step_s == pytest.approx(
        next(p for p in source.attention_blocks if p.q_tiles > 1).step_s / clock
    )


def test_a100_runs_on_its_datasheet_with_the_stated_efficiencies() -> None:
    a100 = gpu("a100-sxm")
    got, eff = cal(a100), EFFICIENCIES[8]
    assert got.peak_matmul_flops_per_s("bf16") == pytest.approx(
        a100.tensor_flops_per_s("bf16") * eff.tensor_of_peak
    )
    assert not any(p.is_tiled for p in got.matmul)
    assert got.hbm_read_bandwidth_bytes_per_s == pytest.approx(
        a100.hbm_bandwidth_bytes_per_s * eff.hbm_of_peak
    )
    assert got.attention_steps == () and got.unfused_kernels == ()
    assert any("85.9%" in a for a in got.assumptions)  # the source's own figure
    # host-side figures from the measured host, floors from the H200 it does not outdo
    assert got.host_call_s == cal(gpu("h200")).host_call_s
    assert got.floors is not None and got.floors.attention_steps


def test_floors_come_only_from_a_gpu_that_outdoes_it_everywhere() -> None:
    h200, a100 = gpu("h200"), gpu("a100-sxm")
    assert outdone_by(a100, h200) == []
    assert "HBM bandwidth" in outdone_by(h200, a100) and "SMs" in outdone_by(h200, a100)
    clock = h200.clock_hz / a100.clock_hz
    floors = cal(a100).floors
    assert floors is not None
    assert floors.attention_steps[0].step_s == pytest.approx(
        cal(h200).attention_steps[0].step_s * clock
    )
    faster_a100 = dataclasses.replace(a100, clock_hz=2.5e9, calibration=None)
    assert outdone_by(faster_a100, h200) == ["clock"]
    assert derived_calibration(faster_a100, [h200]).floors is None


def test_sibling_is_a_calibrated_gpu_of_the_same_compute_capability() -> None:
    h200, h100, a100 = gpu("h200"), gpu("h100-sxm"), gpu("a100-sxm")
    assert sibling(h100, [a100, h200]) is h200
    assert sibling(a100, [h200]) is None
    assert sibling(dataclasses.replace(h100, compute_capability=None), [h200]) is None
    assert sibling(h200, [h200]) is None  # not its own sibling


def test_calibration_none_withholds_every_measurement() -> None:
    h200 = gpu("h200", calibration="none")
    got = cal(h200)
    assert got.origin == "datasheet" and got.floors is None and got.host_call_s == ()
    assert got.attention_steps == () and got.bench_head_start_s is None
    assert got.assumptions[0].startswith(
        "UNCALIBRATED h200: measurements withheld (calibration: none); expect errors of about"
    )
    assert got == datasheet_calibration(gpu("h200"), withheld=True)
    assert gpu("h200", calibration="preset") == gpu("h200")


def test_transferred_load_curves_take_the_targets_bandwidth_as_a_floor() -> None:
    """A load curve's point is per-SM time (scaled by the clock) until its n programs would
    stream their tiles together faster than the target's HBM reads: then that bound."""
    from attnsim.archs.calibration.decode import DecodeCalibration, LoadCurve
    from attnsim.archs.datasheet import transferred_decode

    # 64-key tiles of K and V at head dim 128: 32 KiB a tile
    curve = LoadCurve(128, 128, 16, 64, 4, 2, (16, 528), (1.5e-6, 4.0e-6), (3e-6, 9e-6))
    latent = LoadCurve(576, 512, 16, 64, 4, 2, (16, 528), (1.5e-6, 4.0e-6), (3e-6, 9e-6))
    source = DecodeCalibration("src", "2026-12-05", "test", 4.5e12, loads=(curve, latent))
    moved = transferred_decode(source, clock=1.0, hbm=0.7)  # target reads at 3.15 TB/s
    assert moved.hbm_read_bandwidth_bytes_per_s == pytest.approx(3.15e12)
    few, many = moved.loads[0].tile_s
    assert few == pytest.approx(1.5e-6)  # 16 x 32 KiB / 1.5 us = 0.35 TB/s: not HBM-bound
    assert many == pytest.approx(528 * 64 * 256 * 2 / 3.15e12)  # 4.33 TB/s on the source
    assert moved.loads[0].fixed_s == curve.fixed_s
    # MLA's latent (value dim under the head dim): V is K's columns, read once
    assert moved.loads[1].tile_s[1] == pytest.approx(528 * 64 * 576 * 2 / 3.15e12)
    slower = transferred_decode(source, clock=0.5, hbm=2.0)
    assert slower.loads[0].tile_s == pytest.approx((3.0e-6, 8.0e-6))  # the clock's bound
