"""Serving cascades on the spatial mappers: MLA's latent, GQA on FLAT, decode, split-K."""

from __future__ import annotations

import math

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.flat import FlatMapper
from attnsim.mappers.spatial.fusemax import FuseMaxMapper
from attnsim.mappers.spatial.view import MappingError

WORD = 2  # fusemax preset: fp16
# DeepSeek-V3 (the cascades' params: H = 128, C = 512, R = 64), head dims 128
H, C, R, E, F = 128, 512, 64, 128, 128
DECODE = {"B": 1, "E": E, "F": F, "P": 1, "M": 32768}


def dram(result: Result, tensor: str) -> float:
    return sum(t.total_bytes for t in result.traffic if t.tensor == tensor and t.level == "dram")


def test_mla_absorbed_decode_reads_the_latent_once() -> None:
    r = FuseMaxMapper().map(load_cascade("attention-mla-absorbed"), load_arch("fusemax"), DECODE)
    m = DECODE["M"]
    assert dram(r, "CKV") == C * m * WORD  # once, not once per head (x H)
    assert dram(r, "KR") == R * m * WORD
    assert dram(r, "WUK") == H * C * E * WORD and dram(r, "WUV") == H * C * F * WORD
    assert dram(r, "Q") == H * E * WORD and dram(r, "AV") == H * F * WORD
    assert r.bound == "memory:dram"
    assert any(w.startswith("bandwidth-bound") and "CKV" in w for w in r.warnings)
    # the absorption matmuls are counted: QC = Q.WUK and AV = OC.WUV, H*C*E MACs each
    ops = {e.einsum: e.ops for e in r.per_einsum}
    assert ops["QC"] == H * C * E and ops["AV"] == H * C * F  # one MAC action each


def test_mla_naive_decode_restreams_weights_per_key_tile() -> None:
    r = FuseMaxMapper().map(load_cascade("attention-mla-naive"), load_arch("fusemax"), DECODE)
    m = DECODE["M"]
    tiles = math.ceil(m / 256)  # key tiles of the array's 256 columns
    assert dram(r, "CKV") == C * m * WORD
    # 2 x 128 x 512 x 128 words of weights do not fit the 16 MiB buffer with the state
    assert dram(r, "WUK") == H * C * E * WORD * tiles
    assert dram(r, "WUV") == H * C * F * WORD * tiles
    ops = {e.einsum: e.ops for e in r.per_einsum}
    assert ops["K"] == H * C * E * m and ops["V"] == H * C * F * m  # up-projection
    assert any("re-read from DRAM for each of the 128 key tiles" in w for w in r.warnings)


def test_mla_naive_prefill_recomputes_up_projection_per_block() -> None:
    sizes = {"B": 1, "E": E, "F": F, "P": 4096, "M": 1024}
    cascade = load_cascade("attention-mla-naive")
    r = FuseMaxMapper(buffer_budget_bytes=2**20).map(cascade, load_arch("fusemax"), sizes)
    rows = r.extra("p0") * r.extra("p1")
    assert rows < sizes["P"]
    again = math.ceil(sizes["P"] / rows)  # blocks one head's 4096 rows span (head-major)
    ops = {e.einsum: e.ops for e in r.per_einsum}
    assert ops["K"] == pytest.approx(H * C * E * sizes["M"] * again, rel=1e-9)
    assert dram(r, "CKV") == C * sizes["M"] * WORD * r.extra("p2")


def test_gqa_on_flat_reads_kv_once_per_kv_head() -> None:
    sizes = {"B": 1, "E": 128, "F": 128, "P": 1, "M": 8192}
    arch = load_arch("fusemax")
    grouped = FlatMapper().map(load_cascade("attention-1pass-gqa"), arch, {**sizes, "G": 8, "R": 4})
    multi = FlatMapper().map(load_cascade("attention-1pass-mh"), arch, {**sizes, "H": 32})
    for tensor in ("K", "V"):
        assert dram(grouped, tensor) == 8 * sizes["M"] * 128 * WORD
        assert dram(grouped, tensor) == pytest.approx(dram(multi, tensor) * 8 / 32, rel=1e-12)


@pytest.mark.parametrize("mapper", [FuseMaxMapper(), FlatMapper()], ids=["fusemax", "flat"])
def test_decode_says_it_is_bandwidth_bound(mapper: FuseMaxMapper) -> None:
    sizes = {"B": 1, "G": 8, "R": 4, "E": 128, "F": 128, "M": 131072}
    r = mapper.map(load_cascade("attention-decode-gqa"), load_arch("fusemax"), sizes)
    assert r.bound == "memory:dram"
    (note,) = [w for w in r.warnings if w.startswith("bandwidth-bound")]
    assert "4 query row(s) per key/value element" in note and "decode" in note
    kv = 2 * 8 * sizes["M"] * 128 * WORD  # K and V of 8 KV heads, read once
    assert dram(r, "K") + dram(r, "V") == kv


def test_splitk_on_fusemax_holds_per_split_state() -> None:
    sizes = {"B": 1, "G": 8, "R": 4, "E": 128, "F": 128, "P": 1, "M": 131072}
    arch = load_arch("fusemax")
    split = FuseMaxMapper().map(load_cascade("attention-splitk-gqa"), arch, sizes)
    plain = FuseMaxMapper().map(load_cascade("attention-1pass-gqa"), arch, sizes)
    splits = sizes["M"] // (16 * 256)
    rows = 4  # R heads of one query position
    extra_words = (splits - 1) * rows * (F + 2)  # RM, RD, RNV[F] held per split
    (a,), (b,) = split.occupancy, plain.occupancy
    assert a.peak_bytes - b.peak_bytes == extra_words * WORD
    assert dram(split, "K") == dram(plain, "K") and split.passes == 1
    assert any(w.startswith(f"split-K: {splits} split(s)") for w in split.warnings)


def test_flat_refuses_splitk() -> None:
    sizes = {"B": 1, "E": 128, "F": 128, "P": 1, "M": 8192}
    with pytest.raises(MappingError, match="split-K"):
        FlatMapper().map(load_cascade("attention-splitk-gqa"), load_arch("fusemax"), sizes)


@pytest.mark.parametrize("name", ["attention-mla-naive", "attention-mla-absorbed"])
def test_flat_refuses_mla_naming_the_latent(name: str) -> None:
    with pytest.raises(MappingError, match="latent CKV"):
        FlatMapper().map(load_cascade(name), load_arch("fusemax"), DECODE)


def test_unfused_says_what_it_does_with_latent_and_split_structure() -> None:
    from attnsim.mappers.registry import get_mapper

    unfused = get_mapper("unfused")()
    arch = load_arch("flat")
    absorbed = unfused.map(load_cascade("attention-mla-absorbed"), arch, DECODE)
    assert any("latent CKV: an operand of 2 phase(s) (SC, SLNV)" in w for w in absorbed.warnings)
    assert dram(absorbed, "CKV") >= 2 * C * DECODE["M"] * arch.word_bytes  # once per phase
    naive = unfused.map(load_cascade("attention-mla-naive"), arch, DECODE)
    assert any("per-key projections (K, V) are phases of their own" in w for w in naive.warnings)
    split = unfused.map(
        load_cascade("attention-splitk-gqa"),
        arch,
        {"B": 1, "G": 2, "R": 4, "E": 64, "F": 64, "P": 1, "M": 65536},
    )
    assert any(w.startswith("split-K (") and "merge is its own" in w for w in split.warnings)
    plain = unfused.map(
        load_cascade("attention-1pass-mh"),
        arch,
        {"B": 1, "H": 2, "P": 64, "M": 64, "E": 64, "F": 64},
    )
    assert not any(w.startswith(("latent", "per-key", "split-K")) for w in plain.warnings)
