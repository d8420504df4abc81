"""The backward's kernel plans (mappers.gpu.backward): tiles, work and launches."""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir.analysis.tiles import Band, mask_points
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.backward import bwd_plans, key_tiles, time_bwd, transpose_bands
from attnsim.mappers.gpu.rates import Tiling, device_rates

T = Tiling(32, 128, 8, 3)


def _shape(causal: bool, group: int = 1, seq: int = 1024) -> AttnShape:
    return AttnShape(2, 8, seq, seq, 64, 64, causal, "bf16", 2, kv_group=group)


@pytest.mark.parametrize(
    "bands", [(Band(d_hi=0),), (Band(d_lo=-63, d_hi=0),), (Band(m_hi=3, d_hi=0), Band(d_lo=-9))]
)
def test_transposed_mask_has_the_same_pairs_swapped(bands: tuple[Band, ...]) -> None:
    assert mask_points(transpose_bands(bands), 300, 200) == mask_points(bands, 200, 300)
    assert transpose_bands(transpose_bands(bands)) == bands


def test_key_tiles_walk_the_queries_that_see_them() -> None:
    tiles = key_tiles(_shape(True), 32, 128)
    visits = [
        a + m for a, m in zip(tiles.full_per_query_tile, tiles.partial_per_query_tile, strict=True)
    ]
    assert visits[0] == 1024 // 32  # the first key tile is seen by every query tile
    assert visits == sorted(visits, reverse=True)  # later keys: fewer queries
    dense = key_tiles(_shape(False), 32, 128)
    assert sum(dense.full_per_query_tile) == (1024 // 32) * (1024 // 128)


@pytest.mark.parametrize("causal", [False, True])
def test_flops_are_two_and_a_half_forwards(causal: bool) -> None:
    s = _shape(causal)
    plans = {p.name: p for p in bwd_plans(s, T, "separate")}
    assert set(plans) == {"prepass", "dkdv", "dq"}
    total = plans["dkdv"].flops + plans["dq"].flops
    # 4 dots in dK/dV + 3 in dQ = QK^T and dO V^T recomputed once more + the 5 of the
    # backward: 3.5x the forward's, exactly when dense; causal tiles on the diagonal are
    # visited whole, so between the visible pairs' and the dense count
    if causal:
        dense = _shape(False).flops
        assert 3.5 * s.flops < total < 3.5 * (s.flops + 0.15 * dense)
    else:
        assert total == pytest.approx(3.5 * s.flops)


def test_atomic_mode_zeroes_and_casts_dq() -> None:
    names = [p.name for p in bwd_plans(_shape(False), T, "atomic")]
    assert names == ["prepass", "dq-zero", "dkdv", "dq-cast"]
    dkdv = bwd_plans(_shape(False), T, "atomic")[2]
    assert len(dkdv.step.dots) == 5


def test_gqa_programs_walk_their_group() -> None:
    mha = bwd_plans(_shape(False), T, "separate")[1]
    gqa = bwd_plans(_shape(False, group=4), T, "separate")[1]
    assert gqa.blocks * 4 == mha.blocks
    assert gqa.groups[0].steps == 4 * mha.groups[0].steps
    assert gqa.hbm_write_bytes * 4 == mha.hbm_write_bytes  # dK, dV per K/V head


def test_time_grows_with_length_and_rejects_bad_mode() -> None:
    rates = device_rates(load_arch("h200"), "bf16")
    short = time_bwd(_shape(False, seq=1024), T, "separate", rates).time_s
    long = time_bwd(_shape(False, seq=4096), T, "separate", rates).time_s
    assert 8 < long / short < 17  # quadratic work, fixed costs amortized
    with pytest.raises(ValueError, match="dq_mode"):
        bwd_plans(_shape(False), T, "both")
