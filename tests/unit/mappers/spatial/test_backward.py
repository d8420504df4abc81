"""Backward (training) cascades on the spatial mappers: unfused prices them Einsum by Einsum;
FuseMax's fused backward is tested in test_fusemax_bwd.py and FLAT's in test_flat_bwd.py;
both refuse the 3-pass backward (it reads the stored probabilities they recompute) and say
which mapper prices it."""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.view import MappingError

SIZES = dict(B=1, H=8, M=4096, P=4096, E=128, F=128)


def _macs_2d(result) -> float:  # type: ignore[no-untyped-def]
    return sum(e.count for e in result.energy if e.component == "array_2d" and e.action == "mac")


@pytest.mark.parametrize("causal", [False, True])
def test_unfused_prices_the_backward_at_two_and_a_half_forward_matmuls(causal: bool) -> None:
    """FlashAttention-2's accounting: the backward's five matmuls (S recomputed, dV, dP, dQ,
    dK) are 2.5x the forward's two; a causal mask skips the same empty tiles in both."""
    arch, unfused = load_arch("fusemax"), get_mapper("unfused")()
    tail = "-causal" if causal else ""
    fwd = unfused.map(load_cascade(f"attention-3pass-mh{tail}"), arch, dict(SIZES))
    bwd = unfused.map(load_cascade(f"attention-1pass-bwd-mh{tail}"), arch, dict(SIZES))
    assert _macs_2d(bwd) / _macs_2d(fwd) == pytest.approx(2.5, rel=0.02)
    assert {e.einsum for e in bwd.per_einsum if e.unit == "array_2d"} >= {
        "S", "DV", "DA", "DQ", "DK"
    }  # fmt: skip
    written = {t.tensor for t in bwd.traffic if t.write_bytes}
    assert {"DQ", "DK", "DV"} <= written
    assert any("backward (gradient) cascade" in w for w in bwd.warnings)
    if causal:
        assert any(w.startswith("mask band [m <= p]") for w in bwd.warnings)


@pytest.mark.parametrize("mapper", ["fusemax", "flat"])
def test_fused_mappers_refuse_a_3pass_backward_and_point_to_unfused(mapper: str) -> None:
    with pytest.raises(MappingError, match="stored key x query.*with the unfused mapper"):
        get_mapper(mapper)().map(
            load_cascade("attention-3pass-bwd-mh-causal"), load_arch(mapper), dict(SIZES)
        )
