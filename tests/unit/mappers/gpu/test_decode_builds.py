"""gpu-decode and what each kernel build costs: per-tile ratio, residency, merges by warps,
empty programs, and which contributor of a split segment merges.

The figures come from `kernels.calibrate.microbench_decode --builds` and `--empty`.
"""

from __future__ import annotations

import dataclasses

import pytest

from attnsim.archs.calibration.decode import (
    BuildPoint,
    DecodeCalibration,
    MergePoint,
    load_decode_calibration,
)
from attnsim.einsum_ir.spec import SpecError
from attnsim.kernels.spec import DecodeProgram, decode_partition

CFG = (128, 128, 16, 64, 4, 2)


def _build(strategy: str, tile_us: float, resident: int = 0, cfg: tuple[int, ...] = CFG):
    return BuildPoint(*cfg, strategy=strategy, programs=132, tile_s=tile_us * 1e-6,
                      fixed_s=1e-5, registers=100, resident_per_sm=resident)  # fmt: skip


def test_build_factor_is_the_builds_tile_over_the_unsplit_ones() -> None:
    cal = DecodeCalibration(
        "dev", "today", "test",
        builds=(_build("unsplit", 2.0, 5), _build("streamk", 2.5, 3), _build("splitk", 2.1, 4)),
    )  # fmt: skip
    assert cal.build_factor(128, 128, 16, (64, 4, 2), "streamk") == pytest.approx(1.25)
    assert cal.build_factor(128, 128, 16, (64, 4, 2), "splitk") == pytest.approx(1.05)
    assert cal.build_factor(128, 128, 16, (64, 4, 2), "unsplit") == 1.0
    # the nearest configuration measured in both builds; none near MLA's dims
    assert cal.build_factor(128, 128, 32, (64, 8, 2), "streamk") == pytest.approx(1.25)
    assert cal.build_factor(576, 512, 16, (32, 8, 2), "streamk") == 1.0
    # residency only for exactly the configuration and build measured
    assert cal.resident(128, 128, 16, (64, 4, 2), "streamk") == 3
    assert cal.resident(128, 128, 16, (64, 4, 2), "unsplit") == 5
    assert cal.resident(128, 128, 32, (64, 4, 2), "streamk") == 0


def test_merges_are_taken_at_the_nearest_warps() -> None:
    four = MergePoint(128, 128, 16, piece_s=1e-6, part_s=0.28e-6, strategy="streamk")
    eight = dataclasses.replace(four, part_s=0.12e-6, num_warps=8)
    cal = DecodeCalibration("dev", "today", "test", merges=(four, eight))
    assert cal.merge(128, 128, 16, "streamk", 8) is eight
    assert cal.merge(128, 128, 16, "streamk", 4) is four
    assert cal.merge(128, 128, 16, "streamk") is four  # the kernel's default warps


def test_loader_reads_builds_and_empty_programs_and_reports_bad_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x-decode.yaml"
    good = (
        "device: X\ndate: '2026'\nsource: s\n"
        "empty_program_us: {contiguous: 0.1, ragged: 0.13}\n"
        "merges:\n"
        "  - {head_dim: 128, value_dim: 128, rows: 16, piece_us: 1, part_us: 0.1, num_warps: 8}\n"
        "builds:\n"
        "  - {head_dim: 128, value_dim: 128, rows: 16, block_n: 64, num_warps: 4,\n"
        "     num_stages: 2, strategy: streamk, programs: 132, tile_us: 1.7, fixed_us: 10,\n"
        "     registers: 168, resident_per_sm: 3}\n"
    )
    path.write_text(good)
    cal = load_decode_calibration(path)
    assert cal is not None
    assert cal.empty_program(False) == pytest.approx(0.1e-6)
    assert cal.empty_program(True) == pytest.approx(0.13e-6)
    assert cal.merges[0].num_warps == 8
    (b,) = cal.builds
    assert (b.config, b.strategy, b.programs, b.registers, b.resident_per_sm) == (
        CFG,
        "streamk",
        132,
        168,
        3,
    )
    assert (b.tile_s, b.fixed_s) == pytest.approx((1.7e-6, 1e-5))
    path.write_text(
        good.replace("ragged: 0.13", "paged: 0.13")
        .replace("strategy: streamk", "strategy: lean")
        .replace("resident_per_sm: 3", "resident_per_sm: 0")
        .replace("num_warps: 8}", "num_warps: -8}")
    )
    with pytest.raises(SpecError) as err:
        load_decode_calibration(path)
    text = str(err.value)
    for where, what in (
        (4, "contiguous or ragged"),
        (6, "positive integer"),
        (9, "one of unsplit, splitk, streamk"),
        (10, "positive integer"),
    ):
        assert f"{path}:{where}" in text and what in text, (where, what, text)  # fmt: skip


def test_the_last_full_chunk_of_a_split_segment_merges() -> None:
    """4096 tiles in 66 splits: 65 chunks of 63 and one of 1. The short chunk arrives first;
    the merge waits for the last of the full ones."""
    runs = decode_partition((4096,), "splitk", 66)
    progs = [p for n, p in runs for _ in range(n)]
    assert [p.tiles for p in progs[-2:]] == [63, 1]
    assert progs[-2] == DecodeProgram(63, 1, 1, 66) and progs[-1].merges == 0
    even = [p for n, p in decode_partition((128,), "splitk", 4) for _ in range(n)]
    assert even[-1] == DecodeProgram(32, 1, 1, 4)  # equal chunks: the last merges


def test_empty_programs_cost_what_was_measured_not_a_start() -> None:
    """One short sequence among long ones split 64 ways leaves 63 empty programs per segment
    of it; each costs the SM its measured 0.1 us, not a program's start."""
    from attnsim.archs.load import load_arch
    from attnsim.kernels.spec import AttnShape
    from attnsim.mappers.gpu.decode import decode_calibration, decode_problem, time_decode
    from attnsim.mappers.gpu.rates import device_rates

    arch = load_arch("h200")
    base = decode_calibration(arch)
    assert base is not None and base.empty_program(True)
    lens = (64,) * 63 + (8192,)
    shape = AttnShape(64, 32, 1, 8192, 128, 128, False, "bf16", 2, kv_group=4)
    p = decode_problem(shape, lens, shared_kv=False)
    rates = device_rates(arch, "bf16")
    measured = time_decode(p, "splitk", 64, 0, (64, 4, 2), rates, base)
    unmeasured = dataclasses.replace(base, empty_program_s=())
    as_start = time_decode(p, "splitk", 64, 0, (64, 4, 2), rates, unmeasured)
    assert measured.time_s < as_start.time_s


def test_a_slower_build_is_priced_slower() -> None:
    """MLA's 64-row stream-K build runs 1.27x the unsplit build's per-tile time on the H200."""
    from attnsim.archs.load import load_arch
    from attnsim.kernels.spec import AttnShape
    from attnsim.mappers.gpu.decode import decode_calibration, decode_problem, time_decode
    from attnsim.mappers.gpu.rates import device_rates

    arch = load_arch("h200")
    cal = decode_calibration(arch)
    assert cal is not None
    factor = cal.build_factor(576, 512, 64, (32, 8, 2), "streamk")
    assert factor > 1.2
    shape = AttnShape(32, 128, 1, 2048, 576, 512, False, "bf16", 2, kv_group=128)
    p = decode_problem(shape, (), shared_kv=True, head_block=64)
    rates = device_rates(arch, "bf16")
    priced = time_decode(p, "streamk", 0, 132, (32, 8, 2), rates, cal)
    plain = time_decode(p, "streamk", 0, 132, (32, 8, 2), rates,
                        dataclasses.replace(cal, builds=()))  # fmt: skip
    assert priced.tile_s == pytest.approx(plain.tile_s * factor, rel=1e-6)
    assert priced.time_s > 1.15 * plain.time_s
