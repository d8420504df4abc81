"""FLAT's dataflow on linear attention (`mappers.spatial.flat_linear`): the chunked causal form
with its state in the buffer and its chunk searched under the capacity, the non-causal form,
and what is refused."""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

HEADS = dict(B=1, H=8, E=128, F=128)


def flat(cascade: str, sizes: dict[str, int], arch: str = "flat", **options: object) -> Result:
    result: Result = get_mapper("flat")(**options).map(
        load_cascade(cascade), load_arch(arch), sizes
    )
    return result


def dram(result: Result) -> dict[str, tuple[float, float]]:
    return {t.tensor: (t.read_bytes, t.write_bytes) for t in result.traffic if t.level == "dram"}


def buffer_words(result: Result) -> dict[str, float]:
    """Global-buffer words read and written (energy counts are rows of 256 words)."""
    return {e.action: e.count * 256 for e in result.energy if e.component == "global_buffer"}


def test_flat_maps_lightning_2_chunk_by_chunk_with_its_state_on_chip() -> None:
    sizes = {**HEADS, "P": 16384, "M": 16384, "M0": 64}
    r = flat("attention-lightning-2", sizes)
    words = 8 * 16384 * 128 * 2  # B x H x positions x head dim, fp16
    # Q, K, V read once, the output written once; the state never reaches DRAM
    assert dram(r) == {"Q": (words, 0), "K": (words, 0), "V": (words, 0), "DL": (16, 0),
                       "AV": (0, words)}  # fmt: skip
    state = {o.tensor: o.peak_bytes for o in r.occupancy}
    assert state["KV"] == 128 * 128 * 2 == dict(r.extras)["state_bytes"]
    assert all(o.spilled_bytes == 0 and o.peak_bytes <= o.capacity_bytes for o in r.occupancy)
    unit = {e.einsum: e.unit for e in r.per_einsum}
    assert [e for e, u in unit.items() if u == "array_2d"] == ["QK", "IKV", "CKV", "XKM"]
    assert r.passes == 1 and r.mapper == "flat"
    # the intra-chunk work is the diagonal chunks only: per head M x M0 x E MACs (plus the
    # mask's compare-selects), far from P x M x E
    assert 8 * 16384 * 64 * 128 <= r.einsum("QK").ops < 1.01 * 8 * 16384 * 64 * 128
    # the inter-chunk work is per key, whatever the mask's tiles: M x E x F per head each
    for name in ("CKV", "XKM"):
        assert r.einsum(name).ops == 8 * 16384 * 128 * 128
    # a 64 x 64 x 128 block fills an eighth (QK, IKV) or a quarter (CKV, XKM) of 256 x 256
    util = {e.einsum: e.utilization for e in r.per_einsum}
    busy_2d = r.unit("array_2d").busy_cycles
    assert busy_2d == sum(e.compute_cycles for e in r.per_einsum if e.unit == "array_2d")
    assert r.unit("array_2d").utilization == pytest.approx(sum(
        util[e] for e in ("QK", "IKV", "CKV", "XKM")))  # fmt: skip
    assert any("state KV[E,F] (32768 B per head, independent of M)" in w for w in r.warnings)
    assert any("QK (M0 64 x P 64 x E 128)" in w for w in r.warnings)


def test_cost_is_linear_in_length_at_a_fixed_chunk() -> None:
    short, long = (flat("attention-lightning-2", {**HEADS, "P": n, "M": n, "M0": 128})
                   for n in (8192, 65536))  # fmt: skip
    assert long.latency_s / short.latency_s == pytest.approx(8.0, rel=1e-3)
    assert long.energy_pj / short.energy_pj == pytest.approx(8.0, rel=1e-3)
    # Q, K, V, the output; the per-head decay input (16 B) does not grow
    assert long.dram_traffic_bytes - 16 == 8 * (short.dram_traffic_bytes - 16)
    assert long.flops / short.flops == pytest.approx(8.0, rel=1e-3)


def test_state_bytes_do_not_depend_on_the_length() -> None:
    states = []
    for n in (4096, 65536):
        r = flat("attention-linear-causal-chunked", {**HEADS, "P": n, "M": n, "M0": 64})
        states.append({o.tensor: o.peak_bytes for o in r.occupancy if o.tensor != "total"})
        assert dict(r.extras)["block_bytes"] == next(
            o.peak_bytes for o in r.occupancy if o.tensor == "total"
        )
    assert states[0] == states[1] == {"KV": 128 * 128 * 2, "KS": 128 * 2}


def test_the_chunk_search_keeps_a_chunk_that_fits_the_buffer() -> None:
    """A smaller buffer forces a smaller chunk; one too small for any chunk is refused, one
    too small for the state too."""
    sizes = {**HEADS, "P": 16384, "M": 16384}
    cascade, arch = load_cascade("attention-lightning-2"), load_arch("flat")
    searched = get_mapper("flat")(chunk_search=True).map(cascade, arch, sizes)
    chosen = dict(searched.sizes)["M0"]
    extras = dict(searched.extras)
    latency = {int(k.split("_")[1]): v for k, v in extras.items() if k.endswith("_latency_us")}
    assert sorted(latency) == [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    assert latency[chosen] == min(latency.values()) == pytest.approx(searched.latency_s * 1e6)
    assert chosen == 256  # the first chunk that fills the 256-row array
    # the 4096 chunk's two 4096 x 4096 score blocks alone exceed 32 MiB: it spills
    assert any("4096: " in w and "(spills)" in w and f"chose {chosen}" in w
               for w in searched.warnings)  # fmt: skip
    # a 256 KiB buffer holds a block of 64 keys (about 224 KiB with its state) but not 128
    small = arch.with_buffer_bytes(256 * 1024)
    fitted = get_mapper("flat")(chunk_search=True).map(cascade, small, sizes)
    assert dict(fitted.sizes)["M0"] == 64
    assert dict(fitted.extras)["block_bytes"] <= 256 * 1024
    single = get_mapper("flat")().map(cascade, small, {**sizes, "M0": 128})
    assert single.occupancy[0].spilled_bytes > 0  # 128 spills its score blocks through DRAM
    assert any("spilled through DRAM" in w and "QK, SD" in w for w in single.warnings)
    assert dram(single)["QK"][1] > 0
    with pytest.raises(MappingError, match="no chunk size fits the 65536 B global_buffer"):
        get_mapper("flat")(chunk_search=True).map(cascade, arch.with_buffer_bytes(65536), sizes)
    with pytest.raises(MappingError, match=r"the state \(KV, 32768 B per head\) does not fit"):
        get_mapper("flat")().map(cascade, arch.with_buffer_bytes(16384), {**sizes, "M0": 64})


def test_traffic_and_cycles_of_a_tiny_case_from_first_principles() -> None:
    """One head, E = F = 16, 64 positions in 4 chunks of 16, on a 16 x 16 array.

    DRAM: Q, K, V (64 x 16 words each) and the decay input DL (1 word) read once, the output
    (64 x 16) written once, 2 bytes a word. 2D array: every contraction is a 16 x 16 x 16
    block per chunk, 16 temporal steps whatever the stationarity: QK and IKV on the 4
    diagonal chunks, CKV and XKM on every chunk (4 x 16 cycles each), plus QK's
    compare-selects of the 4 partial tiles (4 x 256 pairs over 256 lanes: 4 cycles).
    Buffer: each block's nest reads its two 16 x 16 operands once (512 words) and writes its
    16 x 16 output once; the 1D Einsums read each input element once and write each output
    element once (AV, the output, goes to DRAM); DRAM fills land in the buffer once.
    """
    arch = load_arch("flat").with_array_shape("array_2d", 16, 16)
    sizes = dict(B=1, H=1, E=16, F=16, P=64, M=64, M0=16)
    r = get_mapper("flat")().map(load_cascade("attention-lightning-2"), arch, sizes)
    tile = 64 * 16 * 2
    assert dram(r) == {"Q": (tile, 0), "K": (tile, 0), "V": (tile, 0), "DL": (2, 0),
                       "AV": (0, tile)}  # fmt: skip
    cycles = {e.einsum: e.compute_cycles for e in r.per_einsum if e.unit == "array_2d"}
    assert cycles == {"QK": 4 * 16 + 4, "IKV": 4 * 16, "CKV": 4 * 16, "XKM": 4 * 16}
    two_d_reads, two_d_writes = 4 * 4 * 512, 4 * 4 * 256
    one_d_reads = (
        4  # LG reads DL; DK, DQ, DC read LG (one word each, broadcast)
        + 1
        + 1024  # SD: LG, and QK on the 4 diagonal 16 x 16 blocks
        + 16
        + 1024  # KD: the 16 decays DK, every K element
        + 1
        + 1024
        + 1024  # KV: DC, the previous state per chunk, CKV
        + 16
        + 1024  # QD: DQ, every Q element (one key per query)
        + 1024  # XKV: XKM gathered back to the queries
        + 1024
        + 1024  # AV: IKV + XKV
    )
    one_d_writes = 1 + 16 + 16 + 1 + 1024 * 5  # LG, DK, DQ, DC; SD, KD, KV, QD, XKV
    fills = 3 * 64 * 16 + 1
    assert buffer_words(r) == {"read": two_d_reads + one_d_reads,
                               "write": two_d_writes + one_d_writes + fills}  # fmt: skip
    assert r.latency_cycles == sum(cycles.values())  # compute-bound on the 2D array


def test_the_recurrent_form_is_refused_naming_its_state() -> None:
    with pytest.raises(MappingError, match=r"recurrent form: its state \(KV\[E,F\], KS\[E\]"):
        flat("attention-linear-causal-recurrent", {**HEADS, "P": 4096, "M": 4096})


def test_gla_priced_where_the_2d_array_composes_its_gate_refused_where_not() -> None:
    """GLA's per-feature gate exp(BQ - BC) sits inside the score sum: one exp per head-dim
    element of every (key, query) pair. FLAT's own 2D array has no exp unit: refused with
    the reason; on FuseMax's arrays (exp from the MACs) it is priced as stated."""
    sizes = {**HEADS, "P": 4096, "M": 4096}
    with pytest.raises(MappingError, match=r"FLAT: QK\[.*applies exp inside its sum.*GLA"):
        flat("attention-gla", sizes)
    with pytest.raises(MappingError, match="no chunk size maps.*per-feature gate"):
        flat("attention-gla", sizes, chunk_search=True)
    gla, lightning = (flat(c, sizes, "fusemax") for c in ("attention-gla", "attention-lightning-2"))
    # the same nests; the gated score pays its exp (6 MACs and an add) per point
    assert gla.einsum("QK").compute_cycles > 8 * lightning.einsum("QK").compute_cycles
    assert dram(gla)["GL"] == (8 * 4096 * 128 * 2, 0)  # the gate input read once
    for name in ("IKV", "CKV", "XKM"):
        assert gla.einsum(name).compute_cycles == lightning.einsum(name).compute_cycles


def test_non_causal_linear_attention_builds_its_state_then_reads_it() -> None:
    short, long = (flat("attention-linear", {**HEADS, "P": n, "M": n}) for n in (4096, 32768))
    words = 8 * 4096 * 128 * 2
    assert dram(short) == {"Q": (words, 0), "K": (words, 0), "V": (words, 0), "AV": (0, words)}
    assert long.latency_s / short.latency_s == pytest.approx(8.0, rel=1e-6)
    assert {o.tensor for o in short.occupancy} == {"total", "KV", "KS"}
    assert any("non-causal: blocks of 256 keys build the state" in w for w in short.warnings)


def test_softmax_options_are_reported_unused_and_softmax_has_no_chunks() -> None:
    sizes = {**HEADS, "P": 4096, "M": 4096}
    r = flat("attention-lightning-2", sizes, qk_stationarity="weight", granularity="row")
    assert any("FLAT options qk_stationarity, granularity describe the softmax" in w
               for w in r.warnings)  # fmt: skip
    with pytest.raises(MappingError, match="does not cut its key rank M into chunks"):
        flat("attention-1pass-mh-causal", sizes, chunk_search=True)


def test_on_one_design_linear_overtakes_causal_softmax_with_length() -> None:
    """FLAT hardware, 16 heads of 128: causal softmax (FLAT's own dataflow search) against
    Lightning-2 (chunk searched): softmax is faster at 128 tokens, Lightning-2 from 256."""
    heads = {**HEADS, "H": 16}
    speedup = {}
    for n in (128, 256, 4096):
        sizes = {**heads, "P": n, "M": n}
        soft = flat("attention-1pass-mh-causal", sizes)
        linear = flat("attention-lightning-2", sizes, chunk_search=True)
        speedup[n] = soft.latency_s / linear.latency_s
        assert {e.component for e in linear.energy} == {e.component for e in soft.energy}
    assert speedup[128] < 1 < speedup[256] < speedup[4096]
