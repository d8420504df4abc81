"""The end-to-end matmul tiling (`mappers.spatial.matmul_tiling`) against its loop nest.

Three independent checks of Z[M,N] = A[K,M] * B[K,N] under the FuseMax artifact's nest
(DRAM: m2, n2, k2; buffer: m1, n1, k1 holding an A and a B tile; Z bypasses the buffer):

- the closed-form DRAM counts equal a literal walk over the DRAM loops that loads a tile
  whenever the resident one changes;
- the chosen tiling fits the buffer and no fitting tiling moves fewer words;
- the mechanism stated from the sizes alone: compulsory traffic when the whole weight fits
  beside one row tile of activations, otherwise the weight is re-read once per row block,
  the fewest row blocks whose activation tile fits beside one weight column tile.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from attnsim.mappers.spatial.matmul_tiling import MatmulTiling, divisors, tile_matmul


def _walk(t: MatmulTiling) -> tuple[int, int, int, int]:
    """(A reads, B reads, Z reads, Z writes) in words, by walking the DRAM loops."""
    a_reads = b_reads = z_reads = z_writes = 0
    resident_a = resident_b = None
    seen_z: set[tuple[int, int]] = set()

    def rows(i: int) -> int:  # token rows in row block i (the last one may be partial)
        return min(t.m, (i + 1) * t.m1 * t.m0) - i * t.m1 * t.m0

    def cols(j: int) -> int:
        return min(t.n, (j + 1) * t.n1 * t.n0) - j * t.n1 * t.n0

    for m2 in range(t.m2):
        for n2 in range(t.n2):
            for k2 in range(t.k2):
                if resident_a != (m2, k2):
                    resident_a = (m2, k2)
                    a_reads += t.k1 * rows(m2)
                if resident_b != (n2, k2):
                    resident_b = (n2, k2)
                    b_reads += t.k1 * cols(n2)
                if (m2, n2) in seen_z:  # a partial sum comes back to accumulate
                    z_reads += rows(m2) * cols(n2)
                seen_z.add((m2, n2))
                z_writes += rows(m2) * cols(n2)
    return a_reads, b_reads, z_reads, z_writes


@st.composite
def _tilings(draw: st.DrawFn) -> MatmulTiling:
    m, k, n = draw(st.integers(1, 600)), draw(st.integers(1, 64)), draw(st.integers(1, 600))
    m0, n0 = draw(st.integers(1, 32)), draw(st.integers(1, 32))
    m0, n0 = min(m0, m), min(n0, n)
    m1 = draw(st.sampled_from(divisors(math.ceil(m / m0))))
    n1 = draw(st.sampled_from(divisors(math.ceil(n / n0))))
    k1 = draw(st.sampled_from(divisors(k)))
    tiling = MatmulTiling(m, k, n, m0, n0, m1, n1, k1)
    assume(tiling.m2 * tiling.n2 * tiling.k2 <= 4000)  # keep the walk short
    return tiling


@settings(max_examples=300, deadline=None)
@given(_tilings())
def test_counts_equal_a_walk_of_the_loop_nest(t: MatmulTiling) -> None:
    a, b, z_read, z_write = _walk(t)
    assert t.activation_read_words == a
    assert t.weight_read_words == b
    assert (t.output_read_words, t.output_write_words) == (z_read, z_write)
    assert t.dram_words == a + b + z_read + z_write
    # the array reads one K-slice of each tile per step: 2 * side words per cycle when full
    assert t.buffer_read_words == t.k * (t.m * t.n_tiles + t.n * t.m_tiles)
    assert t.buffer_fill_words == a + b


@st.composite
def _problems(draw: st.DrawFn) -> tuple[int, int, int, int, int, int]:
    side_r, side_c = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    m, k, n = draw(st.integers(1, 2000)), draw(st.integers(1, 200)), draw(st.integers(1, 500))
    minimum = min(m, side_r) + min(n, side_c)  # one K-slice of each operand's tile
    words = draw(st.integers(minimum, max(minimum, k * (m + n) + 1)))
    return m, k, n, side_r, side_c, words


@settings(max_examples=300, deadline=None)
@given(_problems())
def test_choice_fits_and_is_least_traffic(problem: tuple[int, int, int, int, int, int]) -> None:
    m, k, n, rows, cols, words = problem
    t = tile_matmul(m, k, n, rows, cols, words)
    assert t.buffer_words <= words
    m0, n0 = min(rows, m), min(cols, n)
    fitting = [
        MatmulTiling(m, k, n, m0, n0, m1, n1, k1)
        for k1 in divisors(k)
        for m1 in divisors(math.ceil(m / m0))
        for n1 in divisors(math.ceil(n / n0))
    ]
    fitting = [c for c in fitting if c.buffer_words <= words]
    whole_k = [c for c in fitting if c.k1 == k]
    # K is split at DRAM only when no tiling with K whole fits (the artifact never splits it)
    assert (t.k1 == k) == bool(whole_k)
    assert t.dram_words == min(c.dram_words for c in (whole_k or fitting))


@settings(max_examples=300, deadline=None)
@given(_problems())
def test_weight_refetch_mechanism(problem: tuple[int, int, int, int, int, int]) -> None:
    m, k, n, rows, cols, words = problem
    m0, n0 = min(rows, m), min(cols, n)
    row_tiles = math.ceil(m / m0)
    t = tile_matmul(m, k, n, rows, cols, words)
    compulsory = k * m + k * n + m * n
    if k * (m0 + n) <= words:  # the whole weight fits beside one row tile
        assert t.weight_fetches == 1
        assert t.dram_words == compulsory
    elif k * (m0 + n0) <= words:  # the weight is streamed in column tiles per row block
        blocks = min(
            b for b in divisors(row_tiles) if k * (min(row_tiles // b * m0, m) + n0) <= words
        )
        assert t.weight_fetches == blocks
        assert t.activation_fetches == 1
        assert t.dram_words == compulsory + k * n * (blocks - 1)
    else:  # not even one K-deep slice of each operand fits: K is split, partial sums move
        assert t.k2 > 1
        assert t.output_read_words == m * n * (t.k2 - 1)


def test_xlm_ffn_on_the_fusemax_buffer() -> None:
    """XLM's FFN2 (K = 8192, N = 2048) at 1K tokens x batch 64 on 16 MiB: 128 row blocks.

    8M words hold a 8192 x 256 weight tile (2M) and at most 3 row tiles of 256 (6M); the
    largest divisor of the 256 row tiles that fits is 2, so the 16M-word weight is read 128
    times: the artifact's end2end-proposal traffic for XLM (see test_layer_matmuls.py).
    """
    t = tile_matmul(64 * 1024, 8192, 2048, 256, 256, 16 * 2**20 // 2)
    assert (t.m1, t.m2, t.weight_fetches, t.activation_fetches) == (2, 128, 128, 1)


def test_buffer_too_small_for_one_slice() -> None:
    with pytest.raises(ValueError, match="cannot hold one K-slice"):
        tile_matmul(1024, 64, 1024, 256, 256, 511)
