"""The plain 1-pass kernel's measured score-function steps, window steps and key loops.

Calibration modes of `kernels.calibrate.microbench_masks`: `score-<name>` steps (priced as
their difference to `score-softmax`, both measured on the kernel), the window kernel's
masked step (mode `window`) and what a block pays per further key loop (`loop_us`). Each
test changes one calibrated figure and checks that the block time moves by exactly that
figure times what the plan says the kernel does.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from attnsim.archs.calibration import BlockPoint, StepPoint
from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.einsum_ir.analysis.tiles import Band
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.kernels import SOFTMAX, ScoreCost, kernel_plans
from attnsim.mappers.gpu.model import KernelPlan, _block_times
from attnsim.mappers.gpu.rates import DeviceRates, Tiling, device_rates
from attnsim.mappers.gpu.window_loops import window_loops

T = Tiling(128, 64, 4, 3)
D = 128


def _arch() -> GpuArch:
    arch = load_arch("h200")
    assert isinstance(arch, GpuArch) and arch.calibration is not None
    return arch


def _step(mode: str, us: float) -> StepPoint:
    return StepPoint(mode, "bf16", D, 128, 64, 4, 3, 1, us * 1e-6)


def _rates(steps: tuple[StepPoint, ...], blocks: tuple[BlockPoint, ...] = ()) -> DeviceRates:
    arch = _arch()
    cal = arch.calibration
    assert cal is not None
    kept = tuple(p for p in cal.attention_blocks if p.mode == "online")
    cal = replace(cal, attention_steps=(_step("online", 2.0), *steps),
                  attention_blocks=kept + blocks, floors=None)  # fmt: skip
    return device_rates(replace(arch, calibration=cal), "bf16")


def _plan(shape: AttnShape, score: ScoreCost = SOFTMAX) -> KernelPlan:
    (plan,) = kernel_plans("1pass", shape, T, 132, 50 * 2**20, score=score)
    return plan


DENSE = AttnShape(1, 8, 4096, 4096, D, D, False, "bf16", 2)


@pytest.mark.parametrize(
    ("score", "names"),
    [
        (ScoreCost(sigmoid=True), ("sigmoid",)),
        (ScoreCost(softcap=True), ("softcap",)),
        (ScoreCost(softcap=True, position_bias=True), ("softcap", "alibi")),
    ],
)
def test_score_functions_add_their_measured_step_difference(score, names):
    measured = {"softmax": 3.0, "sigmoid": 2.4, "softcap": 3.9, "alibi": 3.2}
    rates = _rates(tuple(_step(f"score-{n}", us) for n, us in measured.items()))
    plain, scored = _plan(DENSE), _plan(DENSE, score)
    assert scored.scores == names
    (steps,) = {g.steps for g in plain.groups}
    ((key, softmax_s),) = _block_times(plain, rates, 1).items()
    ((_, score_s),) = _block_times(scored, rates, 1).items()
    delta_us = sum(measured[n] - measured["softmax"] for n in names)
    assert score_s - softmax_s == pytest.approx(steps * delta_us * 1e-6, rel=1e-9)


@pytest.mark.parametrize("name", ["alibi", "softcap"])
def test_an_added_modifier_never_shortens_the_step(name):
    """A modifier that only adds work measured under softmax's step adds nothing, and bounds
    the softmax step from above: sigmoid, which drops the row statistics, saves only what it
    runs under that bound (2.7 - 2.4 us here, not 3.0 - 2.4)."""
    measured = {"softmax": 3.0, "sigmoid": 2.4, name: 2.7}
    rates = _rates(tuple(_step(f"score-{n}", us) for n, us in measured.items()))
    assert rates.score_delta_s((name,), D, T, 1) == 0.0
    assert rates.score_delta_s(("sigmoid",), D, T, 1) == pytest.approx(-0.3e-6)
    assert rates.score_delta_s(("sigmoid", name), D, T, 1) == pytest.approx(-0.3e-6)
    # above softmax's step, a modifier leaves the softmax step as measured
    rates = _rates(tuple(_step(f"score-{n}", us) for n, us in {**measured, name: 3.3}.items()))
    assert rates.score_delta_s(("sigmoid",), D, T, 1) == pytest.approx(-0.6e-6)
    assert rates.score_delta_s((name,), D, T, 1) == pytest.approx(0.3e-6)


def test_without_score_entries_the_unit_model_prices_them():
    rates = _rates(())  # no score-* entries: the modelled work difference, not a measurement
    assert rates.score_delta_s(("sigmoid",), D, T, 1) is None
    plain, scored = _plan(DENSE), _plan(DENSE, ScoreCost(softcap=True))
    ((_, softmax_s),) = _block_times(plain, rates, 1).items()
    ((_, softcap_s),) = _block_times(scored, rates, 1).items()
    assert softcap_s > softmax_s  # tanh on the SFU and two multiplies per score


def _window(w: int, sinks: int) -> AttnShape:
    bands = (Band(d_lo=1 - w, d_hi=0),) + ((Band(m_hi=sinks - 1, d_hi=0),) if sinks else ())
    return AttnShape(1, 8, 4096, 4096, D, D, False, "bf16", 2, mask=bands)


def _loop_block(loop_us: float) -> BlockPoint:
    return BlockPoint("window", "bf16", D, 128, 64, 4, 3, 128, 1, 9e-6, 2e-6, loop_s=loop_us * 1e-6)


@pytest.mark.parametrize(("w", "sinks"), [(128, 0), (512, 64), (1000, 300)])
def test_window_tiles_take_the_measured_masked_step_and_loops(w, sinks):
    shape = _window(w, sinks)
    plan = _plan(shape)
    assert plan.masked_mode == "window" and plan.loops
    loops = {(a, m): n for a, m, n in plan.loops}
    per_tile = window_loops(4096, 4096, 128, 64, w, sinks)
    assert max(loops.values()) == max(per_tile)
    base = _block_times(plan, _rates((_step("window", 5.0),), (_loop_block(0.5),)), 1)
    slower = _block_times(plan, _rates((_step("window", 7.0),), (_loop_block(0.5),)), 1)
    dearer = _block_times(plan, _rates((_step("window", 5.0),), (_loop_block(1.5),)), 1)
    for (a, m), t in base.items():
        assert slower[(a, m)] - t == pytest.approx(m * 2.0e-6, rel=1e-9)  # masked steps
        extra = max(0, loops[(a, m)] - 1)
        assert dearer[(a, m)] - t == pytest.approx(extra * 1.0e-6, abs=1e-15)  # loops


def _later_block(fixed_us: float, step_us: float, loop_us: float) -> BlockPoint:
    return BlockPoint("window", "bf16", D, 128, 64, 4, 3, 1056, 1, fixed_us * 1e-6,
                      step_us * 1e-6, waves=8, tiles="host", loop_s=loop_us * 1e-6,
                      q_tiles=32)  # fmt: skip


@pytest.mark.parametrize(("w", "sinks"), [(128, 0), (512, 64)])
def test_later_window_blocks_take_the_later_wave_entry(w, sinks):
    """A later-wave entry of mode window (microbench_masks' 8-wave grids) prices the later
    waves' masked steps, fixed time (net of the call's wave transient) and loops; the first
    wave keeps the one-wave entry."""
    plan = replace(_plan(_window(w, sinks)), tiles="host")
    loops = {(a, m): max(0, n - 1) for a, m, n in plan.loops}
    first = (_step("window", 5.0),), (_loop_block(0.5),)
    rates = _rates(*first)
    later = _rates(first[0], (*first[1], _later_block(20.0, 6.0, 1.5)))
    dearer = _rates(first[0], (*first[1], _later_block(21.0, 8.0, 2.5)))
    assert _block_times(plan, later, 1) == _block_times(plan, rates, 1)
    a_s, b_s = _block_times(plan, later, 1, later=True), _block_times(plan, dearer, 1, later=True)
    for key, t in a_s.items():
        steps_masked = key[1]
        expected = 1.0e-6 + steps_masked * 2.0e-6 + loops[key] * 1.0e-6
        assert b_s[key] - t == pytest.approx(expected, rel=1e-9)
    # without the later entry the later wave is priced as before (the shared-K/V figures),
    # and so with one of another tiling or residency (its step and fixed time are its own)
    before = _block_times(plan, rates, 1, later=True)
    assert before != a_s
    for other in (replace(_later_block(20.0, 6.0, 1.5), block_n=128),
                  replace(_later_block(20.0, 6.0, 1.5), blocks_per_sm=2)):  # fmt: skip
        priced = _rates(first[0], (*first[1], other))
        assert _block_times(plan, priced, 1, later=True) == before


PP = Tiling(128, 128, 8, 3, "pingpong")


def _pp_rates(steps: tuple[StepPoint, ...]) -> DeviceRates:
    arch = _arch()
    cal = arch.calibration
    assert cal is not None
    pingpong = StepPoint("pingpong", "bf16", D, 128, 128, 8, 3, 1, 1.5e-6)
    cal = replace(cal, attention_steps=(pingpong, *steps), floors=None)
    return device_rates(replace(arch, calibration=cal), "bf16")


def _pp_plan(score: ScoreCost = SOFTMAX) -> KernelPlan:
    (plan,) = kernel_plans("1pass", DENSE, PP, 132, 50 * 2**20, score=score)
    return plan


def test_pingpong_sigmoid_takes_the_pingpong_kernels_measured_difference():
    """Modes pingpong-score-<name>: the ping-pong kernel's own sigmoid against its softmax
    (the plain kernel's score-* steps do not price it)."""

    def pp(name: str, us: float) -> StepPoint:
        return StepPoint(f"pingpong-score-{name}", "bf16", D, 128, 128, 8, 3, 1, us * 1e-6)

    plain_steps = (StepPoint("score-softmax", "bf16", D, 128, 128, 8, 3, 1, 3e-6),
                   StepPoint("score-sigmoid", "bf16", D, 128, 128, 8, 3, 1, 1e-6))  # fmt: skip
    rates = _pp_rates((*plain_steps, pp("softmax", 1.6), pp("sigmoid", 1.2)))
    softmax, sigmoid = _pp_plan(), _pp_plan(ScoreCost(sigmoid=True))
    assert sigmoid.scores == ("sigmoid",) and sigmoid.mode == "pingpong"
    (steps,) = {g.steps for g in softmax.groups}
    ((_, softmax_s),) = _block_times(softmax, rates, 1).items()
    ((_, sigmoid_s),) = _block_times(sigmoid, rates, 1).items()
    assert softmax_s - sigmoid_s == pytest.approx(steps * 0.4e-6, rel=1e-9)


def test_unmeasured_pingpong_sigmoid_is_never_slower_than_its_softmax():
    """With no pingpong-score-* steps the unit model prices sigmoid's saved work, floored at
    the matmuls (at the datasheet tile rate, above this kernel's measured step) but capped
    at the measured softmax step: sigmoid only removes work."""
    rates = _pp_rates(())
    softmax, sigmoid = _pp_plan(), _pp_plan(ScoreCost(sigmoid=True))
    ((_, softmax_s),) = _block_times(softmax, rates, 1).items()
    ((_, sigmoid_s),) = _block_times(sigmoid, rates, 1).items()
    assert sigmoid_s <= softmax_s
    assert rates.score_delta_s(("sigmoid",), D, PP, 1, "pingpong") is None


def test_the_pingpong_sigmoid_note_names_where_its_steps_came_from():
    """The H200 preset carries pingpong-score-* steps; the Result says it priced them and
    quotes the calibration's note for them (the device they ran on)."""
    from attnsim.einsum_ir import load_cascade
    from attnsim.mappers.registry import get_mapper

    arch = _arch()
    assert arch.calibration is not None
    (said,) = [n for n in arch.calibration.notes if "pingpong-score-" in n]
    mapper = get_mapper("gpu-1pass")(
        schedule="pingpong", block_m=128, block_n=128, num_warps=8, num_stages=3,
        rank_candidates=False,
    )  # fmt: skip
    sizes = dict(B=1, H=8, M=4096, P=4096, E=D, F=D)
    result = mapper.map(load_cascade("attention-1pass-mh-sigmoid"), arch, sizes)
    (note,) = [w for w in result.warnings if w.startswith("sigmoid on the ping-pong kernel")]
    assert "pingpong-score-sigmoid" in note and said in note
