"""Tiling of one matmul Z[m,n] = sum_k A[k,m] * B[k,n] on the 2D array under the global buffer.

The loop nest is the one the FuseMax artifact's Timeloop constraints fix for its end-to-end
matmuls (workspace/inputs/yamls/baselines/unfused-constraints/mm.yaml at
FPSG-UIUC/micro24-fusemax-artifact@f543beb), outermost first:

    DRAM:    for m2 < M2: for n2 < N2: for k2 < K2     (K2 = 1: K is not split at DRAM)
    buffer:  for m1 < M1: for n1 < N1: for k1 < K1     (holds A and B tiles; Z bypasses it)
    array:   spatial m0 < M0 (array rows) x n0 < N0 (array columns)

Each PE keeps one Z element in its register while k runs, so Z leaves the array once per
(m, n) and goes straight to DRAM. The buffer holds an A tile of K1 x M1*M0 words and a B
tile of K1 x N1*N0 words. Timeloop's stationarity rule then gives the DRAM reads: A's tile
does not change with n2 (the loop inside m2), so A is read once; B's tile changes with n2,
so B is read once per m2 iteration, M2 times, unless all of B fits (N2 = 1). Tile counts are
divisors of the whole (Timeloop's perfect factorization). Among the tilings that fit, the one
with least DRAM traffic is taken, as the artifact's mapper (EDP objective) does: with the
array's buffer reads fixed by M0 and N0, DRAM traffic and buffer fills are all that differ.

The artifact never splits K at DRAM; when even one K x M0 activation tile and one K x N0
weight tile do not fit (K > words / (M0 + N0)), K is split (K2 > 1) and the returned tiling
says so: A is then read once per n2 and Z's partial sums make K2 - 1 DRAM round trips.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from attnsim.mappers.spatial.loopnest import Loop, TensorShape, refills

A_SHAPE = ("K", "M")  # activations: one row of the matmul per token
B_SHAPE = ("K", "N")  # weights
Z_SHAPE = ("M", "N")  # outputs


@dataclass(frozen=True, slots=True)
class MatmulTiling:
    """One tiling of Z[M,N] = A[K,M] * B[K,N]; counts are in words (elements).

    Attributes:
        m, k, n: The matmul's sizes (M token rows, K contracted, N output features).
        m0, n0: Spatial tile: rows and columns of the array the matmul uses.
        m1, n1, k1: Tiles held in the buffer at once: M1 row tiles of M0, N1 column tiles
            of N0, and K1 of K (K1 = K unless K had to be split).
    """

    m: int
    k: int
    n: int
    m0: int
    n0: int
    m1: int
    n1: int
    k1: int

    @property
    def m_tiles(self) -> int:
        """Row tiles of M0 covering M (the last one may be partial)."""
        return math.ceil(self.m / self.m0)

    @property
    def n_tiles(self) -> int:
        """Column tiles of N0 covering N."""
        return math.ceil(self.n / self.n0)

    @property
    def m2(self) -> int:
        """Row blocks at DRAM: iterations of the outermost loop."""
        return self.m_tiles // self.m1

    @property
    def n2(self) -> int:
        """Column blocks at DRAM."""
        return self.n_tiles // self.n1

    @property
    def k2(self) -> int:
        """K splits at DRAM (1 unless one K-deep tile of each operand does not fit)."""
        return self.k // self.k1

    @property
    def buffer_words(self) -> int:
        """Words the buffer holds: the A tile plus the B tile (Z bypasses the buffer)."""
        return self.k1 * (min(self.m1 * self.m0, self.m) + min(self.n1 * self.n0, self.n))

    @property
    def dram_loops(self) -> tuple[Loop, ...]:
        """The DRAM-level loops, outermost first, without single-iteration loops."""
        loops = (Loop("M", self.m2, "M2"), Loop("N", self.n2, "N2"), Loop("K", self.k2, "K2"))
        return tuple(loop for loop in loops if loop.factor > 1)

    def fetches(self, ranks: tuple[str, str]) -> int:
        """How many times each element of an input indexed by `ranks` is read from DRAM.

        Timeloop's stationarity rule (`loopnest.refills`) counts tile loads; each element
        lies in one tile per iteration of the loops relevant to it, so the load count over
        the number of distinct tiles is the times each element is fetched.
        """
        loops = self.dram_loops
        loads = refills(TensorShape("", tuple((r, 1) for r in ranks)), loops)
        distinct = math.prod(loop.factor for loop in loops if loop.rank in ranks)
        return loads // distinct

    @property
    def activation_fetches(self) -> int:
        """Times A is read from DRAM: 1, or N2 when K is split."""
        return self.fetches(A_SHAPE)

    @property
    def weight_fetches(self) -> int:
        """Times B is read from DRAM: 1 when it fits whole (N2 = K2 = 1), else M2."""
        return self.fetches(B_SHAPE)

    @property
    def activation_read_words(self) -> int:
        """DRAM reads of A."""
        return self.k * self.m * self.activation_fetches

    @property
    def weight_read_words(self) -> int:
        """DRAM reads of B."""
        return self.k * self.n * self.weight_fetches

    @property
    def output_write_words(self) -> int:
        """DRAM writes of Z: once, or once per K split (partial sums)."""
        return self.m * self.n * self.k2

    @property
    def output_read_words(self) -> int:
        """DRAM reads of Z: the partial sums read back when K is split."""
        return self.m * self.n * (self.k2 - 1)

    @property
    def dram_words(self) -> int:
        """All DRAM traffic, reads plus writes."""
        return (
            self.activation_read_words
            + self.weight_read_words
            + self.output_read_words
            + self.output_write_words
        )

    @property
    def buffer_fill_words(self) -> int:
        """Words written into the buffer: every A and B word read from DRAM."""
        return self.activation_read_words + self.weight_read_words

    @property
    def buffer_read_words(self) -> int:
        """Words the array reads from the buffer.

        Every step of the k loop reads one K-slice of the A tile (M0 words, shared by the
        array's columns) and of the B tile (N0 words, shared by its rows): A once per
        column tile, B once per row tile.
        """
        return self.k * (self.m * self.n_tiles + self.n * self.m_tiles)


@functools.cache
def divisors(n: int) -> tuple[int, ...]:
    """Divisors of `n` >= 1, ascending."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return (*small, *(n // d for d in reversed(small) if d * d != n))


def _most_row_tiles(candidates: tuple[int, ...], m: int, m0: int, room: int) -> int | None:
    """The largest count of row tiles (a candidate) whose rows fit in `room` words per k."""
    fitting = [c for c in candidates if min(c * m0, m) <= room]
    return fitting[-1] if fitting else None


def tile_matmul(
    m: int, k: int, n: int, array_rows: int, array_cols: int, buffer_words: int
) -> MatmulTiling:
    """The least-DRAM-traffic tiling of the module's loop nest that fits `buffer_words`.

    For each N1 (and each K1 < K, tried only when no tiling with K whole fits), M1 is the
    largest divisor of the row-tile count whose tiles fit beside the B tile: B's reads fall
    with M2 and nothing else depends on M1.

    Raises:
        ValueError: a size is not positive, or the buffer cannot hold even one K-slice of an
            activation tile and a weight tile (M0 + N0 words).
    """
    if min(m, k, n, array_rows, array_cols) < 1:
        raise ValueError(f"matmul sizes and array sides must be positive: {m}, {k}, {n}")
    m0, n0 = min(array_rows, m), min(array_cols, n)
    m_div, n_div = divisors(math.ceil(m / m0)), divisors(math.ceil(n / n0))
    k_splits = divisors(k)
    for k_choices in ((k,), tuple(reversed(k_splits[:-1]))):
        candidates = []
        for k1 in k_choices:
            for n1 in reversed(n_div):
                room = buffer_words // k1 - min(n1 * n0, n)
                m1 = _most_row_tiles(m_div, m, m0, room)
                if m1 is not None:
                    candidates.append(MatmulTiling(m, k, n, m0, n0, m1, n1, k1))
        if candidates:  # the first least-traffic one: larger K1 and N1 first
            return min(candidates, key=lambda c: c.dram_words)
    raise ValueError(
        f"a buffer of {buffer_words} words cannot hold one K-slice of an activation tile and "
        f"a weight tile ({m0} + {n0} words)"
    )


__all__ = ["MatmulTiling", "divisors", "tile_matmul"]
