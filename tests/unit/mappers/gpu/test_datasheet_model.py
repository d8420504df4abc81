"""GPU model on uncalibrated GPUs: the expected-error warning, floors, unit-model fallbacks."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from attnsim.archs.datasheet import DATASHEET_ERROR, TRANSFER_ERRORS
from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.kernels import kernel_plans
from attnsim.mappers.gpu.model import Tiling, _block_times, device_rates, step_times, time_kernel
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result

SIZES = {"B": 4, "H": 16, "P": 4096, "M": 4096, "E": 128, "F": 128}


@functools.cache
def gpu(name: str, calibration: str = "preset") -> GpuArch:
    arch = load_arch(name, overrides={"calibration": calibration})
    assert isinstance(arch, GpuArch)
    return arch


def run(arch: GpuArch, mapper: str = "gpu-1pass") -> Result:
    result: Result = get_mapper(mapper)().map(load_cascade("attention-1pass-mh"), arch, SIZES)
    return result


def shape(seq: int = 4096, heads: int = 16) -> AttnShape:
    return AttnShape(4, heads, seq, seq, 128, 128, False, "bf16", 2)


@pytest.mark.parametrize(
    ("name", "calibration", "why"),
    [
        ("h100-sxm", "preset", "no measurement of it; figures transferred from h200"),
        ("a100-sxm", "preset", "no measurement of it"),
        ("h200", "none", "measurements withheld (calibration: none)"),
    ],
)
def test_uncalibrated_results_lead_with_the_expected_error(
    name: str, calibration: str, why: str
) -> None:
    r = run(gpu(name, calibration))
    first = r.warnings[0]
    assert first.startswith(f"UNCALIBRATED {name}: {why}; expect errors of about ")
    # a transferred GPU quotes the transfer's error measured on the H100, the others the
    # datasheet mode's
    e = TRANSFER_ERRORS["triton-1pass"] if name == "h100-sxm" else DATASHEET_ERROR
    assert f"{e.expected_pct:.0f}%" in first and e.command in first
    assert sum(w == first for w in r.warnings) == 1
    label = dict(r.provenance)["calibration"]
    assert label.startswith(f"{gpu(name, calibration).calibration.origin}: ")  # type: ignore[union-attr]


def test_calibrated_results_carry_no_such_warning() -> None:
    r = run(gpu("h200"))
    assert not any(w.startswith("UNCALIBRATED") for w in r.warnings)
    assert dict(r.provenance)["calibration"].endswith("h200.yaml")


def test_datasheet_pingpong_step_takes_the_plain_rule() -> None:
    """No tile matmul rates: the ping-pong step hides what any two warp groups hide."""
    rates = device_rates(gpu("h200", "none"), "bf16")
    assert not rates.has_tile_matmuls and device_rates(gpu("h200"), "bf16").has_tile_matmuls
    t = Tiling(128, 128, 8, 3, "pingpong")
    (pp,) = kernel_plans("1pass", shape(), t, 132, gpu("h200").l2_bytes)
    one = dataclasses.replace(pp, groups=(dataclasses.replace(pp.groups[0], steps=10),))
    zero = dataclasses.replace(pp, groups=(dataclasses.replace(pp.groups[0], steps=0),))
    (t10,) = _block_times(one, rates, 1).values()
    (t0,) = _block_times(zero, rates, 1).values()
    hidden = rates.overlap_efficiency * (1 - 1 / 2)  # one block, two warp groups
    step = step_times(pp.step, rates, 8).round_s(1, hidden, True)
    assert (t10 - t0) / 10 == pytest.approx(step, rel=1e-9)


def test_first_wave_pays_its_prologue_loads_at_hbm_bandwidth() -> None:
    rates = device_rates(gpu("h200", "none"), "bf16")
    t = Tiling(128, 64, 4, 3)
    (plan,) = kernel_plans("1pass", shape(), t, 132, gpu("h200").l2_bytes)
    (first,) = _block_times(plan, rates, 1, started=132).values()
    (alone,) = _block_times(plan, rates, 1, started=1).values()
    burst = plan.fixed.load_bytes + 2 * plan.step.load_bytes  # Q and two K/V tiles in flight
    assert first - alone == pytest.approx(131 * burst / rates.hbm_read_bytes_per_s, rel=1e-9)


def test_a100_steps_and_blocks_never_undercut_the_h200s_measured_cycles() -> None:
    a100 = gpu("a100-sxm")
    rates = device_rates(a100, "bf16")
    bare = device_rates(  # the same GPU without floors
        dataclasses.replace(
            a100,
            calibration=dataclasses.replace(a100.calibration, floors=None),  # type: ignore[arg-type]
        ),
        "bf16",
    )
    clock = gpu("h200").clock_hz / a100.clock_hz
    small = Tiling(64, 32, 8, 2)  # where the unit model is far under any measured step
    (plan,) = kernel_plans("1pass", shape(512, 4), small, 108, a100.l2_bytes)
    assert _block_times(plan, rates, 1) != _block_times(plan, bare, 1)
    for t in (small, Tiling(128, 128, 8, 3)):
        (plan,) = kernel_plans("1pass", shape(512, 4), t, 108, a100.l2_bytes)
        floor = rates.floor_step("online", 128, t, 1)
        assert floor is not None
        (with_floors,) = _block_times(plan, rates, 1).values()
        (without,) = _block_times(plan, bare, 1).values()
        steps = plan.groups[0].steps
        assert with_floors >= without
        assert with_floors >= steps * floor.step_s - 1e-15
        h200_step = device_rates(gpu("h200"), "bf16").chain_step("online", 128, t, 1)
        assert h200_step is not None and floor.step_s == pytest.approx(h200_step.step_s * clock)


def test_a100_unfused_kernels_are_floored_by_the_h200s_measured_rates() -> None:
    a100 = gpu("a100-sxm")
    rates = device_rates(a100, "bf16")
    t = Tiling(128, 64, 4, 3)
    plans = kernel_plans(
        "unfused", shape(), t, 216, a100.l2_bytes, a100.calibration, 108, a100.hbm_latency_s
    )
    assert all(p.measured_is_floor for p in plans)
    bare = kernel_plans("unfused", shape(), t, 216, a100.l2_bytes, None, 108, a100.hbm_latency_s)
    for floored, unit in zip(plans, bare, strict=True):
        assert floored.measured_from.startswith("floor from calibration entries")
        assert time_kernel(floored, rates).time_s >= time_kernel(unit, rates).time_s
