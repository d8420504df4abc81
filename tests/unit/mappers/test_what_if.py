"""Changing preset parameters through the API gives consistent, explainable results.

Each expectation is derived from the model's own first principles (work / lanes, bytes /
bandwidth, buffer capacity / per-query state), never from a published table.
"""

from __future__ import annotations

import math

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.spatial.fusemax import FuseMaxMapper
from attnsim.mappers.workloads import MODELS

CASCADE = load_cascade("attention-1pass-mh")
BERT = MODELS["BERT"]


def run(arch, sizes):  # type: ignore[no-untyped-def]
    return FuseMaxMapper().map(CASCADE, arch, sizes)


def test_quarter_size_array_takes_four_times_the_compute() -> None:
    base = load_arch("fusemax")
    small = base.with_array_shape("array_2d", 128, 128).with_array_shape("array_1d", 1, 128)
    sizes = BERT.attention_sizes(16384)
    a, b = run(base, sizes), run(small, sizes)
    # 2D work spreads over a quarter of the lanes; the 1D array has half the lanes and, with
    # key tiles of 128 instead of 256, twice the per-tile bookkeeping: both take 4x.
    assert b.unit("array_2d").busy_cycles == pytest.approx(4 * a.unit("array_2d").busy_cycles)
    assert b.unit("array_1d").busy_cycles == pytest.approx(
        4 * a.unit("array_1d").busy_cycles, rel=0.01
    )
    assert b.latency_s == pytest.approx(4 * a.latency_s, rel=0.01)
    assert b.area_um2 < a.area_um2


def test_half_buffer_doubles_key_value_refetches() -> None:
    base = load_arch("fusemax")
    half = base.with_buffer_bytes(8 * 2**20)
    sizes = BERT.attention_sizes(1 << 20)
    a, b = run(base, sizes), run(half, sizes)
    # Per query the buffer keeps Q (E), running max and sum (1 + 1) and numerator (F) words,
    # after reserving one K and one V tile: P1 query tiles of 256 fit.
    per_query = (64 + 1 + 1 + 64) * 2
    reserved = 256 * (64 + 64) * 2
    p1_full = (16 * 2**20 - reserved) // (256 * per_query)
    p1_half = (8 * 2**20 - reserved) // (256 * per_query)
    largest_divisor = lambda n, cap: max(d for d in range(1, cap + 1) if n % d == 0)  # noqa: E731
    blocks = (1 << 20) // 256
    assert a.extra("p1") == largest_divisor(blocks, p1_full)
    assert b.extra("p1") == largest_divisor(blocks, p1_half)
    kv = {t.tensor: t.read_bytes for t in a.traffic}
    kv_half = {t.tensor: t.read_bytes for t in b.traffic}
    ratio = b.extra("p2") / a.extra("p2")
    assert kv_half["K"] == pytest.approx(ratio * kv["K"])
    assert kv_half["Q"] == pytest.approx(kv["Q"])  # queries are still read once
    assert b.compute_cycles == pytest.approx(a.compute_cycles)


def test_half_bandwidth_doubles_memory_time_only() -> None:
    base = load_arch("fusemax")
    slow = base.with_dram_bandwidth(200 * 2**30)
    sizes = BERT.attention_sizes(4096)
    a, b = run(base, sizes), run(slow, sizes)
    assert b.memory_cycles == pytest.approx(2 * a.memory_cycles)
    assert b.dram_traffic_bytes == pytest.approx(a.dram_traffic_bytes)
    assert a.bound == b.bound == "compute"  # FuseMax stays compute-bound at 200 GiB/s
    assert b.latency_s == pytest.approx(a.latency_s)


def test_head_dim_96_scales_the_matmuls() -> None:
    arch = load_arch("fusemax")
    s64 = {"B": 64, "H": 12, "M": 4096, "P": 4096, "E": 64, "F": 64}
    s96 = {**s64, "E": 96, "F": 96}
    a, b = run(arch, s64), run(arch, s96)
    for name in ("QK", "SLNV", "SPNV", "RNV"):
        assert b.einsum(name).compute_cycles == pytest.approx(1.5 * a.einsum(name).compute_cycles)
    for name in ("LM", "SLN", "SLD", "RM", "PRM"):
        assert b.einsum(name).compute_cycles == pytest.approx(a.einsum(name).compute_cycles)
    q_bytes = 64 * 12 * 4096 * 96 * 2
    assert {t.tensor: t.read_bytes for t in b.traffic}["Q"] == pytest.approx(q_bytes)


def test_length_12k_is_not_a_power_of_two() -> None:
    arch = load_arch("fusemax")
    sizes = BERT.attention_sizes(12 * 1024)
    r = run(arch, sizes)
    assert dict(r.sizes)["M1"] == 48
    assert 48 % int(r.extra("p1")) == 0
    assert r.extra("p1") * r.extra("p2") == 48
    # Causal-free attention: QK does T * M * P * E MACs on 65,536 lanes.
    qk_cycles = 64 * 12 * (12 * 1024) ** 2 * 64 / 65536
    assert r.einsum("QK").compute_cycles == pytest.approx(qk_cycles)
    assert r.latency_cycles >= r.unit("array_1d").busy_cycles
    assert math.isfinite(r.energy_pj)
