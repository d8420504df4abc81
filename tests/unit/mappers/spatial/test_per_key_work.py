"""Per-key work of a chunked cascade is priced at its own points, not at the mask's tiles.

Lightning-2's chunk-level Einsums (a chunk's Kᵀ·V `CKV`, the queries' product with the state
laid out by key position `XKM`) run over the keys but not the queries: their work grows
linearly with the sequence whatever the intra-chunk mask visits. Scaling them by the mask's
visited-tile share (about 1/M1 chunks) priced them once per chunk-row instead of once per
key (fusemax and unfused did, until 2026-12-04: 150 mJ missing at 16K on FuseMax).
"""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper


@pytest.mark.parametrize("mapper", ["fusemax", "unfused"])
def test_chunk_level_work_grows_linearly_with_the_sequence(mapper: str) -> None:
    cascade = load_cascade("attention-lightning-2")
    arch = load_arch("fusemax")

    def cycles(m: int) -> dict[str, float]:
        sizes = dict(B=1, H=2, E=64, F=64, P=m, M=m, M0=128)
        r = get_mapper(mapper)().map(cascade, arch, sizes)
        return {e.einsum: e.compute_cycles for e in r.per_einsum}

    short, long = cycles(2048), cycles(8192)
    for name in ("CKV", "XKM"):
        assert long[name] == pytest.approx(4 * short[name], rel=0.02), name
    # the intra-chunk scores follow the mask's diagonal chunks: linear too (not quadratic)
    assert long["QK"] == pytest.approx(4 * short["QK"], rel=0.05)
