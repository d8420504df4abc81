"""gpu-decode on paged KV caches: the measured per-tile factor through a block table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from attnsim.archs.calibration.decode import load_decode_calibration
from attnsim.archs.calibration.decode_paged import PagedPoint
from attnsim.archs.load import load_arch
from attnsim.einsum_ir.spec import SpecError
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.decode import decode_calibration, decode_problem, time_decode
from attnsim.mappers.gpu.rates import device_rates

HEADER = "device: X\ndate: '2026-12-05'\nsource: s\n"


def _file(tmp_path, *entries: tuple[float, ...]):  # type: ignore[no-untyped-def]
    """A decode calibration of only `paged` entries, each (block_n, warps, stages, page,
    tile_us) of head dim 128, 16 rows, against a contiguous 2.0 us per tile."""
    keys = ("block_n", "num_warps", "num_stages", "page_size", "tile_us")
    lines = [
        "  - {head_dim: 128, value_dim: 128, rows: 16, programs: 32, contiguous_tile_us: 2.0, "
        + ", ".join(f"{k}: {v}" for k, v in zip(keys, e, strict=True))
        + "}\n"
        for e in entries
    ]
    f = tmp_path / "x-decode.yaml"
    f.write_text(HEADER + "paged:\n" + "".join(lines))
    return f


def test_paged_section_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cal = load_decode_calibration(_file(tmp_path, (128, 8, 3, 256, 3.0)))
    assert cal is not None and len(cal.paged) == 1
    point = cal.paged_point(128, 128, 16, (128, 8, 3), 256)
    assert point is not None and point.factor == pytest.approx(1.5)
    # another tiling's figure says nothing about this one's pipeline
    assert cal.paged_point(128, 128, 16, (128, 8, 2), 256) is None
    # nor another head dim's more than a factor 2 away
    assert cal.paged_point(576, 512, 16, (128, 8, 3), 256) is None


def test_bad_paged_entries_are_all_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = _file(tmp_path, (128, 8, 3, 64, 3.0), (64, 8, 3, 64, -1))
    with pytest.raises(SpecError) as err:
        load_decode_calibration(f)
    text = str(err.value)
    assert f"{f}:5" in text and "multiple of block_n" in text
    assert f"{f}:6" in text and "tile_us" in text


def _paged_call(cal, page_size: int) -> float:  # type: ignore[no-untyped-def]
    arch = load_arch("h200")
    shape = AttnShape(4, 32, 1, 131072, 128, 128, False, "bf16", 2, kv_group=4)
    p = decode_problem(shape, (), False)
    t = time_decode(p, "splitk", 2, 0, (128, 8, 3), device_rates(arch, "bf16"), cal, page_size)
    return t.time_s


def test_a_measured_paged_factor_scales_the_streaming_time() -> None:
    """64 programs streaming 64K keys each (occupancy-bound): the measured factor through
    the block table nearly multiplies the call; unmeasured, the 2-stage rule applies."""
    cal = decode_calibration(load_arch("h200"))
    assert cal is not None
    point = PagedPoint(128, 128, 16, 128, 8, 3, 256, 32, 3.0e-6, 2.0e-6)
    measured = replace(cal, paged=(point,))
    flat = _paged_call(measured, 0)
    paged = _paged_call(measured, 256)
    assert 1.35 * flat < paged < 1.5 * flat
    # page 64 has no figure of its own: the nearest page size's is taken
    assert _paged_call(measured, 64) == pytest.approx(paged)
    # without a paged figure for this tiling, the contiguous 2-stage figures price it
    assert _paged_call(replace(cal, paged=()), 256) != pytest.approx(paged)


def test_the_mapper_says_which_paged_figure_it_used() -> None:
    from attnsim.einsum_ir import load_cascade
    from attnsim.mappers.gpu import decode as d
    from attnsim.mappers.registry import get_mapper

    arch = load_arch("h200")
    cal = decode_calibration(arch)
    assert cal is not None
    point = PagedPoint(128, 128, 16, 128, 8, 3, 256, 32, 3.0e-6, 2.0e-6)
    original = d.decode_calibration
    d.decode_calibration = lambda _arch: replace(cal, paged=(point,))  # type: ignore[assignment]
    try:
        result = get_mapper("gpu-decode")(
            strategy="splitk", splits=2, block_n=128, num_warps=8, num_stages=3, page_size=256
        ).map(load_cascade("attention-1pass-gqa"), arch,
              dict(B=4, G=8, R=4, E=128, F=128, P=1, M=131072))  # fmt: skip
    finally:
        d.decode_calibration = original  # type: ignore[assignment]
    assert any("per-tile times x 1.50" in w and "(128, 8, 3)" in w for w in result.warnings)
    assert not any("2 pipeline stages" in w for w in result.warnings)
