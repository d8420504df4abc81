"""gpu-decode searches the decode kernel's tiling among those its calibration measured.

A tiling (block_n, num_warps, num_stages) is a candidate only when the decode calibration
has `programs` figures for exactly the problem's head dim, value dim and packed rows at it
(`microbench_decode --tunings` adds the deeper pipelines decode_tune_probe found fastest);
the kernel's default is always one. The chosen tiling is the one whose best partition is
fastest, and the Result's options and warnings name it.
"""

from __future__ import annotations

import pytest

from attnsim.archs.calibration.decode import DecodeCalibration, ProgramPoint
from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.decode import DecodeOptions, decode_problem, tiling_candidates
from attnsim.mappers.gpu.decode_figures import decode_calibration
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.view import MappingError

GQA = "attention-1pass-gqa"
SIZES = dict(B=1, G=8, R=4, E=128, F=128, P=1, M=131072)


def _map(**opts: object):  # type: ignore[no-untyped-def]
    return get_mapper("gpu-decode")(**opts).map(load_cascade(GQA), load_arch("h200"), SIZES)


def _point(e: int, rows: int, bn: int, w: int, st: int) -> ProgramPoint:
    return ProgramPoint(e, e, rows, bn, w, st, programs_per_sm=1, tile_s=1e-6, fixed_s=1e-5)


def _problem(group: int = 4, e: int = 128):  # type: ignore[no-untyped-def]
    shape = AttnShape(1, 8 * group, 1, 4096, e, e, False, "bf16", 2, kv_group=group)
    return decode_problem(shape, (), shared_kv=False)


def test_candidates_are_the_default_and_the_measured_tilings_of_these_dims() -> None:
    cal = DecodeCalibration(
        "dev", "today", "test",
        programs=(_point(128, 16, 64, 4, 4), _point(128, 16, 128, 8, 3),
                  _point(128, 64, 64, 8, 5), _point(64, 16, 256, 8, 3),
                  _point(128, 16, 64, 4, 4)),  # a second k: one candidate
    )  # fmt: skip
    p = _problem()
    assert p.rows == 16
    got = tiling_candidates(p, DecodeOptions(), cal, (64, 4, 2))
    assert got == [(64, 4, 2), (64, 4, 4), (128, 8, 3)]  # not 64 rows', not head dim 64's
    # options the caller fixed filter the measured ones
    assert tiling_candidates(p, DecodeOptions(num_stages=3), cal, (64, 4, 3)) == [
        (64, 4, 3),
        (128, 8, 3),
    ]
    assert tiling_candidates(p, DecodeOptions(block_n=64), cal, (64, 4, 2)) == [
        (64, 4, 2),
        (64, 4, 4),
    ]
    # a fully fixed tiling is the only candidate; no calibration leaves the default
    fixed = DecodeOptions(block_n=128, num_warps=8, num_stages=3)
    assert tiling_candidates(p, fixed, cal, (128, 8, 3)) == [(128, 8, 3)]
    assert tiling_candidates(p, DecodeOptions(), None, (64, 4, 2)) == [(64, 4, 2)]


def test_the_chosen_tiling_is_the_fastest_measured_one_and_is_named() -> None:
    cal = decode_calibration(load_arch("h200"))
    assert cal is not None
    p = decode_problem(
        AttnShape(1, 32, 1, SIZES["M"], 128, 128, False, "bf16", 2, kv_group=4), (), False
    )
    tilings = tiling_candidates(p, DecodeOptions(), cal, (64, 4, 2))
    assert len(tilings) > 1, "the H200 decode calibration measures several tilings"
    searched = _map()
    each = {
        t: _map(block_n=t[0], num_warps=t[1], num_stages=t[2]).latency_s for t in tilings
    }  # fmt: skip
    best = min(each, key=lambda t: each[t])
    opts = dict(searched.options)
    assert (opts["block_n"], opts["num_warps"], opts["num_stages"]) == best
    assert searched.latency_s == pytest.approx(each[best])
    assert any(f"chose {best}" in w and "tiling searched" in w for w in searched.warnings)
    # the caller's fixed tiling is honoured and no search is reported
    one = _map(block_n=64, num_warps=4, num_stages=2)
    assert (dict(one.options)["num_stages"], one.latency_s) == (2, each[(64, 4, 2)])
    assert not any("tiling searched" in w for w in one.warnings)


def test_a_page_size_keeps_only_tilings_whose_tiles_fit_a_page() -> None:
    r = _map(page_size=64)
    assert dict(r.options)["block_n"] <= 64
    assert dict(_map(page_size=96).options)["block_n"] == 32  # measured at 32 keys too
    with pytest.raises(MappingError, match=r"page_size 48 is no multiple of block_n 32 or 64"):
        _map(page_size=48)
