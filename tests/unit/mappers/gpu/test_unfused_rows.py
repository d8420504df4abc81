"""The unfused row softmax: its compiled paths and what each path's measured rate is per."""

from __future__ import annotations

from dataclasses import replace

import pytest

from attnsim.archs.calibration import UnfusedPoint
from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.kernels.spec import SOFTMAX_MAX_BLOCK, AttnShape
from attnsim.mappers.gpu.model import Tiling, device_rates
from attnsim.mappers.gpu.scores import SOFTMAX
from attnsim.mappers.gpu.tiling import evaluate
from attnsim.mappers.gpu.unfused_rows import row_kernel, softmax_path

TILING = Tiling(128, 64, 4, 3)


def h200() -> GpuArch:
    arch = load_arch("h200")
    assert isinstance(arch, GpuArch) and arch.calibration is not None
    return arch


def shape(bh: int, seq: int, causal: bool) -> AttnShape:
    return AttnShape(1, bh, seq, seq, 64, 64, causal, "bf16", 2)


def softmax_s(arch: GpuArch, s: AttnShape) -> float:
    _, softmax, _ = evaluate("unfused", s, TILING, device_rates(arch, "bf16")).kernels
    return softmax.scheduled_s


@pytest.mark.parametrize(
    "seq,path",
    [(96, "one block"), (SOFTMAX_MAX_BLOCK // 2, "one block"),
     (SOFTMAX_MAX_BLOCK // 2 + 1, "widest block"), (SOFTMAX_MAX_BLOCK, "widest block"),
     (SOFTMAX_MAX_BLOCK + 1, "two loops")],
)  # fmt: skip
def test_softmax_paths_follow_the_compiled_block(seq: int, path: str) -> None:
    assert softmax_path(seq) == path


def test_two_loop_work_is_rows_not_lanes() -> None:
    """Long rows: a time per row (a causal row's masked lanes load nothing)."""
    for causal in (False, True):
        for seq in (12288, 36864):
            s = shape(6, seq, causal)
            plan = row_kernel(s, float(seq * seq), SOFTMAX)
            assert plan.work == 6 * seq
            assert plan.longest == 1.0


def test_causal_long_rows_cost_their_rows_plus_their_bytes() -> None:
    """Twice the row length, same heads: twice the rows' rest, four times the bytes' time
    (the per-lane rule charged a 32K causal row 2.5 blocks of lanes on average, a 16K one
    1.5: 3.3x the rest)."""
    arch = h200()
    rates = device_rates(arch, "bf16")
    short, long = shape(6, 16384, True), shape(6, 32768, True)
    _, sm_short, _ = evaluate("unfused", short, TILING, rates).kernels
    _, sm_long, _ = evaluate("unfused", long, TILING, rates).kernels
    # the rows double (rest doubles), the visible bytes quadruple (memory x4)
    rest = sm_short.scheduled_s - sm_short.hbm_s
    assert sm_long.scheduled_s == pytest.approx(2 * rest + sm_long.hbm_s, rel=0.02)
    assert sm_long.hbm_s == pytest.approx(4 * sm_short.hbm_s, rel=0.02)


def test_widest_block_rows_take_their_own_entries() -> None:
    """Rows of 4097-8192 keys take the 8192-lane block's entries where the file has them;
    without them, the one-block entries (the rate before)."""
    arch = h200()
    assert arch.calibration is not None
    entries = arch.calibration.unfused_kernels
    wide = [e for e in entries if e.kernel == "softmax" and softmax_path(e.seq) == "widest block"]
    assert {e.seq % 16 == 0 for e in wide} == {True, False}  # aligned and ragged rows
    without = replace(
        arch,
        calibration=replace(
            arch.calibration, unfused_kernels=tuple(e for e in entries if e not in wide)
        ),  # fmt: skip
    )
    ragged = shape(16, 7016, True)  # the ragged 8192-lane block: slower per lane than 4088's
    assert softmax_s(arch, ragged) > 1.3 * softmax_s(without, ragged)
    # a 4096-key row never reads them
    aligned = shape(24, 3072, True)
    assert softmax_s(arch, aligned) == pytest.approx(softmax_s(without, aligned), rel=1e-9)


def test_an_entry_reproduces_itself() -> None:
    """The calibration shape of a widest-block entry predicts that entry's time."""
    arch = h200()
    assert arch.calibration is not None
    for e in arch.calibration.unfused_kernels:
        if e.kernel != "softmax" or softmax_path(e.seq) != "widest block":
            continue
        assert isinstance(e, UnfusedPoint)
        got = softmax_s(arch, shape(e.batch_heads, e.seq, bool(e.causal)))
        assert got == pytest.approx(e.time_s, rel=0.03), e
