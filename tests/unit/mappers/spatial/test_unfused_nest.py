"""The unfused mapper's buffer accesses follow its 2D loop nest at every head dim.

Expected values are derived here from the architecture (array rows x cols, energy table) and
the workload (B, H, P, M, E = F), as the module docstring of `unfused_nest` derives them:
query tiles ceil(P / rows), key tiles ceil(M / cols), the head dim temporal and innermost.
"""

from __future__ import annotations

import math

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir.load import load_cascade
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.mask_cost import (
    mask_cost,
)
from attnsim.mappers.spatial.unfused import UnfusedMapper
from attnsim.mappers.spatial.unfused_nest import OperandAccess, contraction_accesses
from attnsim.mappers.spatial.view import (
    view,
)

CASCADE = "attention-3pass-mh"
SHAPES = [(1024, 1024), (1000, 3000), (300, 700), (4096, 256), (200, 4096)]  # (P, M)
ARRAYS = [(256, 256), (128, 512)]  # (rows, cols) of the 2D array


def _sizes(p: int, m: int, e: int, b: int = 2, h: int = 3) -> dict[str, int]:
    return {"B": b, "H": h, "P": p, "M": m, "E": e, "F": e}


def _arch(rows: int = 256, cols: int = 256):
    return load_arch("flat").with_array_shape("array_2d", rows, cols)


def _records(name: str, sizes: dict[str, int], rows: int, cols: int) -> dict[str, OperandAccess]:
    cv = view(load_cascade(CASCADE), sizes, None)
    index = next(i for i, e in enumerate(cv.cascade.einsums) if e.output == name)
    arch = _arch(rows, cols)
    return {r.tensor: r for r in contraction_accesses(cv, index, arch.array_2d)}


@pytest.mark.parametrize("rows, cols", ARRAYS)
@pytest.mark.parametrize("p, m", SHAPES)
@pytest.mark.parametrize("e", [32, 64, 96, 128, 256, 320])
def test_qk_reads_operands_per_tile_and_writes_scores_to_dram(
    e: int, p: int, m: int, rows: int, cols: int
) -> None:
    s = _sizes(p, m, e)
    t = s["B"] * s["H"]
    got = _records("QK", s, rows, cols)
    q_tiles, k_tiles = math.ceil(p / rows), math.ceil(m / cols)
    # Q[e, query tile] is read once per key tile, K[e, key tile] once per query tile, each
    # filled from DRAM once; an operand no tile re-reads streams past the buffer
    q_kept, k_kept = k_tiles > 1, q_tiles > 1
    assert got["Q"].buffer_reads == q_kept * t * e * p * k_tiles
    assert got["K"].buffer_reads == k_kept * t * e * m * q_tiles
    assert got["Q"].buffer_writes == q_kept * t * e * p
    assert got["K"].buffer_writes == k_kept * t * e * m
    # output-stationary: each score leaves its PE once, straight to DRAM
    assert (got["QK"].buffer_reads, got["QK"].buffer_writes) == (0.0, 0.0)
    assert got["QK"].pe_words == t * p * m


@pytest.mark.parametrize("rows, cols", ARRAYS)
@pytest.mark.parametrize("p, m", SHAPES)
@pytest.mark.parametrize("f", [32, 64, 96, 128, 256, 320])
def test_av_streams_weights_and_keeps_partial_sums_in_the_buffer(
    f: int, p: int, m: int, rows: int, cols: int
) -> None:
    s = _sizes(p, m, f)
    t = s["B"] * s["H"]
    got = _records("AV", s, rows, cols)
    q_tiles, k_tiles = math.ceil(p / rows), math.ceil(m / cols)
    # A is stationary across the F loop: each weight reaches one PE once, from DRAM
    assert (got["A"].buffer_reads, got["A"].buffer_writes) == (0.0, 0.0)
    assert got["A"].pe_words == t * p * m
    # V[f, key tile] is read once per query tile (past the buffer when there is one)
    assert got["V"].buffer_reads == (q_tiles > 1) * t * f * m * q_tiles
    assert got["V"].buffer_writes == (q_tiles > 1) * t * f * m
    # AV[f, query tile] is accumulated over the key tiles in the buffer
    assert got["AV"].buffer_writes == (k_tiles > 1) * t * f * p * k_tiles
    assert got["AV"].buffer_reads == t * f * p * (k_tiles - 1)


@pytest.mark.parametrize("p, m", SHAPES)
def test_head_dim_is_temporal_no_step_at_the_array_side(p: int, m: int) -> None:
    """Reads per head-dim element are the same below, at and above the array's side."""
    per_e = set()
    for e in (1, 64, 255, 256, 257, 512, 1024):
        got = _records("QK", _sizes(p, m, e), 256, 256)
        reads = got["Q"].buffer_reads + got["K"].buffer_reads
        av = _records("AV", _sizes(p, m, e), 256, 256)
        per_e.add((reads / e, (av["V"].buffer_reads + av["AV"].buffer_reads) / e))
    assert len(per_e) == 1


def _slope_pj(arch, s: dict[str, int]) -> float:
    """d energy / d E with E = F, from the nest: MACs, DRAM words, buffer words per E."""
    t, p, m = s["B"] * s["H"], s["P"], s["M"]
    qt, kt = math.ceil(p / arch.array_2d.rows), math.ceil(m / arch.array_2d.cols)
    mac = 2 * p * m * arch.array_2d.operation("mac").energy_pj  # QK and AV
    dram_words = 2 * p + 2 * m  # Q, K, V read once, AV written once
    dram = dram_words * arch.word_bytes / arch.dram.access_bytes * arch.dram.energy_pj_per_access
    words_per_row = arch.buffer.row_bytes / arch.word_bytes
    # Q and the AV partial sums use the buffer only across key tiles, K and V only across
    # query tiles (reads per tile, one fill)
    q_kept, kv_kept = kt > 1, qt > 1
    reads = q_kept * p * kt + 2 * kv_kept * m * qt + p * (kt - 1)  # Q, K, V, AV sums
    writes = q_kept * p + 2 * kv_kept * m + q_kept * p * kt  # Q, K, V fills, AV sums
    buf = (
        reads * arch.buffer.read_energy_pj_per_row + writes * arch.buffer.write_energy_pj_per_row
    ) / words_per_row
    return t * (mac + dram + buf)


def _energy(arch, s: dict[str, int]) -> Result:
    return UnfusedMapper().map(load_cascade(CASCADE), arch, s)


@pytest.mark.parametrize("rows, cols", ARRAYS)
@pytest.mark.parametrize("p, m", SHAPES)
def test_energy_grows_with_head_dim_as_derived(p: int, m: int, rows: int, cols: int) -> None:
    arch = _arch(rows, cols)
    energies = {e: _energy(arch, _sizes(p, m, e)).energy_pj for e in (64, 96, 128, 256)}
    slope = _slope_pj(arch, _sizes(p, m, 64))
    for lo, hi in ((64, 96), (96, 128), (128, 256)):
        assert energies[hi] - energies[lo] == pytest.approx(slope * (hi - lo), rel=1e-9)


@pytest.mark.parametrize("length", [1024, 4096, 3000])
def test_head_dims_96_and_256_run_and_are_monotone(length: int) -> None:
    arch = load_arch("flat")
    heads = {e: _energy(arch, _sizes(length, length, e, b=64, h=16)) for e in (64, 96, 128, 256)}
    dims = sorted(heads)
    for lo, hi in zip(dims, dims[1:], strict=False):
        a, b = heads[lo], heads[hi]
        assert b.energy_pj > a.energy_pj
        assert b.dram_traffic_bytes > a.dram_traffic_bytes
        assert b.latency_s >= a.latency_s
        assert _component(b, "global_buffer") > _component(a, "global_buffer")
        # the softmax does not depend on the head dim: energy per MAC falls as E grows
        assert b.energy_pj / hi < a.energy_pj / lo
    for r in heads.values():
        assert all(item.energy_pj >= 0 for item in r.energy)


def _component(r: Result, name: str) -> float:
    return sum(item.energy_pj for item in r.energy if item.component == name)


def test_masked_tiles_read_operands_for_visited_tiles_only() -> None:
    s = _sizes(4096, 4096, 128)
    cascade = load_cascade("attention-3pass-mh-causal")
    cv = view(cascade, s, None)
    arch = load_arch("flat")
    mask = mask_cost(cv, arch.array_2d.rows, arch.array_2d.cols, True, "unfused")
    assert 0.5 < mask.visited < 0.6
    dense = _records("QK", s, 256, 256)
    index = next(i for i, e in enumerate(cascade.einsums) if e.output == "QK")
    masked = {r.tensor: r for r in contraction_accesses(cv, index, arch.array_2d, mask.visited)}
    for name in ("Q", "K"):
        assert masked[name].buffer_reads == pytest.approx(dense[name].buffer_reads * mask.visited)
        assert masked[name].buffer_writes == dense[name].buffer_writes  # read from DRAM once
