"""FLAT-class hardware running the attention backward (FLAT's fused dataflow applied to
FlashAttention-2's backward): work, traffic, the buffer, masks, GQA and the comparison with
the unfused backward, each checked against first principles."""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.einsum_ir.analysis.ops import count_ops
from attnsim.einsum_ir.analysis.training import is_matmul, matmul_flops
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.flat import FlatMapper
from attnsim.mappers.spatial.view import MappingError
from attnsim.reports.dse.feasibility import fit_problem

MH = dict(B=1, H=8, M=4096, P=4096, E=128, F=128)
ARCH = load_arch("flat")
UNFUSED = get_mapper("unfused")()


def _bwd(name: str, sizes: dict[str, int], arch=ARCH, **options: object) -> Result:  # type: ignore[no-untyped-def]
    return FlatMapper(**options).map(load_cascade(name), arch, dict(sizes))


def _traffic(result: Result) -> dict[str, tuple[float, float]]:
    return {t.tensor: (t.read_bytes, t.write_bytes) for t in result.traffic}


def _macs_2d(result: Result) -> float:
    return sum(e.count for e in result.energy if e.component == "array_2d" and e.action == "mac")


def test_backward_matmuls_are_two_and_a_half_forward_matmuls() -> None:
    """S recomputed, DV, DA, DQ, DK against the forward's QK, AV (E = F, no mask); the
    element-wise Einsums and the pre-pass on the 1D array (FLAT's exp unit is there)."""
    cascade = load_cascade("attention-1pass-bwd-mh")
    result = _bwd("attention-1pass-bwd-mh", MH)
    matmuls = {e.output for e in cascade.einsums if is_matmul(e)}
    assert matmuls == {"S", "DV", "DA", "DQ", "DK"}
    macs = sum(e.ops for e in result.per_einsum if e.einsum in matmuls)
    assert 2 * macs == pytest.approx(2.5 * matmul_flops(load_cascade("attention-1pass-mh"), MH))
    assert result.flops == count_ops(cascade, MH).flops
    assert {e.einsum: e.unit for e in result.per_einsum} == {
        "D": "array_1d", "A": "array_1d", "DS": "array_1d",
        **{t: "array_2d" for t in ("S", "DV", "DA", "DQ", "DK")},
    }  # fmt: skip
    assert result.mapper == "flat"


def test_traffic_from_first_principles() -> None:
    """One head, 1024 x 1024, E = F = 64, a 1 MiB buffer: only key blocks of 256 keys fit
    (K, V, DK, DV 65,536 words, the 256-row query block 49,664, S, A, DA, DS rows 262,144 of
    the 524,288), so four blocks. The pre-pass reads DO and O once and writes D; the loop
    reads K and V once, Q, DO, LSE and D once per key block, writes DQ at every block and
    reads it back at every block but the first, and writes DK and DV once."""
    arch = ARCH.with_overrides(buffer_bytes=1 << 20)
    result = _bwd("attention-1pass-bwd", dict(M=1024, P=1024, E=64, F=64), arch)
    assert (result.extra("key_block"), result.extra("key_blocks")) == (256, 4)
    assert result.extra("search_candidates") == 3 and result.extra("search_feasible") == 1
    matrix, row = 1024 * 64 * 2, 1024 * 2
    assert _traffic(result) == {
        "DO": (5 * matrix, 0.0),
        "O": (matrix, 0.0),
        "D": (4 * row, row),
        "K": (matrix, 0.0),
        "V": (matrix, 0.0),
        "Q": (4 * matrix, 0.0),
        "LSE": (4 * row, 0.0),
        "DQ": (3 * matrix, 4 * matrix),
        "DV": (0.0, matrix),
        "DK": (0.0, matrix),
    }
    total = next(o.peak_bytes for o in result.occupancy if o.tensor == "total")
    assert total == (65536 + 49664 + 262144) * 2
    assert not fit_problem(result)


def test_the_key_block_respects_the_buffer() -> None:
    """A smaller buffer: a smaller key block (never more than it holds) and more DRAM
    traffic; one too small for a single key block is refused, saying what it needs."""
    sizes = dict(MH, M=16384, P=16384)
    previous_block, previous_bytes = float("inf"), 0.0
    for size in (32 << 20, 8 << 20, 2 << 20):
        result = _bwd("attention-1pass-bwd-mh", sizes, ARCH.with_overrides(buffer_bytes=size))
        total = next(o.peak_bytes for o in result.occupancy if o.tensor == "total")
        assert total <= size
        assert result.extra("key_block") <= previous_block
        assert result.dram_traffic_bytes >= previous_bytes
        previous_block, previous_bytes = result.extra("key_block"), result.dram_traffic_bytes
    assert previous_block < 16384
    with pytest.raises(MappingError, match="smallest key block .*give a smaller p1"):
        _bwd("attention-1pass-bwd-mh", sizes, ARCH.with_overrides(buffer_bytes=512 << 10))
    small_rows = _bwd(
        "attention-1pass-bwd-mh", sizes, ARCH.with_overrides(buffer_bytes=512 << 10), p1=32
    )
    assert small_rows.extra("p1") == 32


def test_causal_skips_the_empty_block_pairs() -> None:
    """Causal: about half the matmul work and fewer query-block loads; with tile skipping off
    every block pair is computed (the dense work plus the compare-selects)."""
    dense = _bwd("attention-1pass-bwd-mh", MH)
    causal = _bwd("attention-1pass-bwd-mh-causal", MH)
    computed = _bwd("attention-1pass-bwd-mh-causal", MH, skip_empty_tiles=False)
    assert 0.5 < _macs_2d(causal) / _macs_2d(dense) < 0.6
    assert _macs_2d(computed) == pytest.approx(_macs_2d(dense))
    assert any("empty skipped" in w for w in causal.warnings)
    blocks = causal.extra("key_blocks")
    assert blocks > 1 and causal.extra("streamed_share") < 0.6
    matrix = 8 * 4096 * 128 * 2
    q_reads = _traffic(causal)["Q"][0]
    assert q_reads == pytest.approx(matrix * blocks * causal.extra("streamed_share"))
    assert causal.latency_s < computed.latency_s


def test_gqa_sums_dk_and_dv_over_the_group_on_chip() -> None:
    """Grouped heads: the R query heads of a group are packed into the query rows and share
    each key block, so DK and DV (per KV head) are written once, never per query head."""
    sizes = dict(B=1, G=2, R=4, M=2048, P=1024, E=64, F=64)
    result = _bwd("attention-1pass-bwd-gqa", sizes)
    traffic = _traffic(result)
    kv = 2 * 2048 * 64 * 2
    assert traffic["DK"] == (0.0, kv) and traffic["DV"] == (0.0, kv)
    assert traffic["K"] == (kv, 0.0) and traffic["V"] == (kv, 0.0)
    assert any("query group R (4 query heads" in w for w in result.warnings)
    dq_write = traffic["DQ"][1]
    assert dq_write == 2 * 4 * 1024 * 64 * 2 * result.extra("key_blocks")


@pytest.mark.parametrize("name", ["attention-1pass-bwd-mh", "attention-1pass-bwd-mh-causal"])
def test_fused_backward_beats_the_unfused_one_on_flat_hardware(name: str) -> None:
    """At 1K and 8K tokens: over 2x faster than the unfused backward on the same hardware,
    under a third of its DRAM bytes, less energy, the same operations."""
    for length in (1024, 8192):
        sizes = dict(MH, M=length, P=length)
        fused, unfused = (m.map(load_cascade(name), ARCH, sizes) for m in (FlatMapper(), UNFUSED))
        assert 2 * fused.latency_s < unfused.latency_s
        assert 3 * fused.dram_traffic_bytes < unfused.dram_traffic_bytes
        assert (fused.flops, fused.energy_pj < unfused.energy_pj) == (unfused.flops, True)


def test_recompute_versus_store_and_the_nests_are_stated() -> None:
    result = _bwd("attention-1pass-bwd-mh", MH)
    text = " | ".join(result.warnings)
    assert "recompute vs store: key x query tensors S, A, DA, DS stay on chip" in text
    assert "recomputed from the forward's inputs instead of stored: S, A" in text
    assert sum(w.startswith("2D nest: ") for w in result.warnings) == 5
    assert "A, DS on array_1d" in text


def test_the_3pass_backward_is_refused_saying_why() -> None:
    with pytest.raises(MappingError, match=r"flat: .*stored key x query.*flat's backward"):
        _bwd("attention-3pass-bwd-mh", MH)


def test_options_the_backward_does_not_use_are_named() -> None:
    result = _bwd("attention-1pass-bwd-mh", MH, qk_stationarity="weight")
    assert any("qk_stationarity describe the forward's dataflow" in w for w in result.warnings)


def test_the_result_round_trips() -> None:
    result = _bwd("attention-1pass-bwd-gqa-causal", dict(B=1, G=2, R=4, M=2048, P=1024, E=64, F=64))
    assert Result.from_json(result.to_json()) == result
    assert all(0 <= u.utilization <= 1 for u in result.units)
    assert all(0 <= e.utilization <= 1 for e in result.per_einsum)


def test_sigmoid_backward_has_no_prepass_and_no_statistics() -> None:
    """Sigmoid's backward reads no LSE and needs no D: no pre-pass, no per-row statistics."""
    result = _bwd("attention-1pass-bwd-mh-sigmoid", dict(MH, M=1024, P=1024))
    assert "D" not in {e.einsum for e in result.per_einsum}
    assert not {"LSE", "D", "O"} & set(_traffic(result))
    assert result.extra("prepass_cycles") == 0
