"""Chunk-size search (`chunk_search`) on the spatial mappers for chunked linear attention."""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.chunks import chunk_rank
from attnsim.mappers.spatial.view import MappingError

SIZES = dict(B=1, H=8, M=16384, P=16384, E=128, F=128)


@pytest.mark.parametrize("mapper", ["fusemax", "unfused", "flat"])
def test_the_search_returns_the_fastest_chunk_as_mapped_alone(mapper: str) -> None:
    arch, cascade = load_arch("fusemax"), load_cascade("attention-lightning-2")
    searched = get_mapper(mapper)(chunk_search=True).map(cascade, arch, dict(SIZES))
    extras = dict(searched.extras)
    chunks = [int(k.split("_")[1]) for k in extras if k.endswith("_latency_us")]
    assert chunks == [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    singles = {c: get_mapper(mapper)().map(cascade, arch, {**SIZES, "M0": c}) for c in chunks}
    for c, r in singles.items():  # every candidate is the plain mapping at that chunk
        assert extras[f"chunk_{c}_latency_us"] == pytest.approx(r.latency_s * 1e6)
    chosen = dict(searched.sizes)["M0"]
    assert dict(searched.sizes)["M1"] == SIZES["M"] // chosen
    best = min(singles.values(), key=lambda r: (r.latency_cycles, r.energy_pj))
    assert searched.latency_cycles == best.latency_cycles
    assert searched.energy_pj == singles[chosen].energy_pj
    assert dict(searched.options)["chunk_search"] is True
    assert any(f"chose {chosen}" in w and "fits the buffer" in w for w in searched.warnings)


def test_unfused_chunks_trade_state_updates_against_quadratic_work() -> None:
    """Unfused: every Einsum's output goes through DRAM, so small chunks pay the per-chunk
    state traffic and large ones the intra-chunk scores: the optimum is inside the range."""
    arch, cascade = load_arch("fusemax"), load_cascade("attention-lightning-2")
    r = get_mapper("unfused")(chunk_search=True).map(cascade, arch, dict(SIZES))
    lat = {int(k.split("_")[1]): v for k, v in r.extras if k.endswith("_latency_us")}
    chosen = dict(r.sizes)["M0"]
    assert min(lat) < chosen < max(lat)
    assert lat[min(lat)] > lat[chosen] < lat[max(lat)]


def test_a_cascade_without_chunks_is_refused_with_the_reason() -> None:
    """attention-1pass partitions M too, but into key tiles it does not compute with."""
    arch = load_arch("fusemax")
    with pytest.raises(MappingError, match="does not cut its key rank M into chunks"):
        get_mapper("fusemax")(chunk_search=True).map(
            load_cascade("attention-1pass"), arch, dict(M=4096, P=4096, E=64, F=64)
        )
    assert chunk_rank(load_cascade("attention-gla"), dict(SIZES)) == ("M", "M0")


def test_causal_linear_attention_maps_in_its_quadratic_and_chunked_forms() -> None:
    """The same function, two costs: phi(K) is a feature map of the keys, not a score, so
    both forms read as attention with a linear score; the chunked one does O(M) work."""
    arch = load_arch("fusemax")
    quad, chunked = (
        get_mapper("fusemax")().map(load_cascade(f"attention-linear-causal-{form}"), arch,
                                    dict(SIZES))
        for form in ("quadratic", "chunked")
    )  # fmt: skip
    # 2.7x at these sizes: the feature maps phi(Q), phi(K) (per position, on the 1D array)
    # bound the chunked form; its per-key work is priced at its own points (test_per_key_work)
    assert chunked.latency_s < quad.latency_s / 2
    assert chunked.flops < quad.flops / 10
    searched = get_mapper("fusemax")(chunk_search=True).map(
        load_cascade("attention-linear-causal-chunked"), arch, dict(SIZES)
    )
    assert searched.latency_cycles <= chunked.latency_cycles


def test_flat_maps_chunked_linear_attention_with_its_state_on_chip() -> None:
    """FLAT's dataflow applied to the chunks (`mappers.spatial.flat_linear`): the state
    (KV[E,F], KS[E] per head) stays in the buffer, so DRAM sees only Q, K, V and the output."""
    r = get_mapper("flat")().map(
        load_cascade("attention-linear-causal-chunked"), load_arch("fusemax"), dict(SIZES)
    )
    assert {t.tensor for t in r.traffic} == {"Q", "K", "V", "AV"}
    assert {o.tensor: o.peak_bytes for o in r.occupancy if o.tensor != "total"} == {
        "KV": 128 * 128 * 2,
        "KS": 128 * 2,
    }
