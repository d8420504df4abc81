"""The unfused P.V kernel with fewer programs than SMs over long rows (`unfused_programs`).

A short query chunk against a long cache runs P.V as one program per (query tile, head):
each streams its row alone on an SM. `kernels.calibrate.microbench_unfused --pv-programs`
measures that program's step; the model takes the longest program's steps at that rate
instead of scaling the whole kernel, HBM stream included, by the grid's under-occupancy.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from attnsim.archs.calibration import UnfusedProgramPoint, load_calibration
from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.einsum_ir.spec import SpecError
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.kernels import kernel_plans
from attnsim.mappers.gpu.model import Tiling, device_rates, time_kernel

TILING = Tiling(128, 128, 8, 3)
ENTRY = UnfusedProgramPoint("pv", 128, 128, 128, 8, 3, 32, 8192, 1.0e-6, 6.0e-6)


def _pv_s(arch: GpuArch, seq_q: int, seq_k: int, bh: int = 48) -> tuple[float, float]:
    """(P.V kernel seconds, its HBM seconds) for a (1, bh) call."""
    shape = AttnShape(1, bh, seq_q, seq_k, 128, 128, False, "bf16", 2)
    plans = kernel_plans("unfused", shape, TILING, 132, arch.l2_bytes, arch.calibration, 132,
                         arch.hbm_latency_s)  # fmt: skip
    (pv,) = (p for p in plans if p.name == "pv")
    t = time_kernel(pv, device_rates(arch, "bf16"))
    return t.scheduled_s, t.hbm_s


def _arch(entries: tuple[UnfusedProgramPoint, ...]) -> GpuArch:
    arch = load_arch("h200")
    assert isinstance(arch, GpuArch) and arch.calibration is not None
    return replace(arch, calibration=replace(arch.calibration, unfused_programs=entries))


def test_few_programs_over_long_rows_take_the_measured_step() -> None:
    with_entry, without = _arch((ENTRY,)), _arch(())
    got, hbm = _pv_s(with_entry, 64, 24576)  # 48 programs of 192 key tiles
    latency = with_entry.hbm_latency_s * 2  # the kernel's dependent round trips
    assert got == pytest.approx(max(6.0e-6 + 192 * 1.0e-6, hbm) + latency)
    old, _ = _pv_s(without, 64, 24576)
    assert old > 1.5 * got  # the under-occupancy scaling the entry replaces


def test_short_rows_and_full_grids_keep_the_rate_model() -> None:
    with_entry, without = _arch((ENTRY,)), _arch(())
    assert _pv_s(with_entry, 512, 4096, bh=4) == _pv_s(without, 512, 4096, bh=4)  # < 8192 keys
    assert _pv_s(with_entry, 4096, 16384, bh=8) == _pv_s(without, 4096, 16384, bh=8)  # 256 blocks


def test_loader_reads_and_checks_the_entries(tmp_path) -> None:  # type: ignore[no-untyped-def]
    head = "device: X\ndate: '2026'\nsource: s\nunfused_programs:\n"
    good = (
        "- {kernel: pv, head_dim: 128, block_m: 128, block_n: 128, num_warps: 8, "
        "num_stages: 3, programs: 32, min_keys: 8192, step_us: 1.0, fixed_us: 6.0}\n"
    )
    path = tmp_path / "c.yaml"
    path.write_text(head + good)
    cal = load_calibration(path)
    assert cal.unfused_programs == (ENTRY,)
    assert cal.unfused_program("pv", 64, (128, 64, 4, 3)) == ENTRY  # nearest
    assert cal.unfused_program("qk", 128, (128, 128, 8, 3)) is None
    path.write_text(head + good.replace("min_keys: 8192", "min_keys: 0"))
    with pytest.raises(SpecError, match="min_keys"):
        load_calibration(path)
