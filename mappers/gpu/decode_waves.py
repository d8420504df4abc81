"""What `gpu-decode` prices a split-K program after the first wave of its launch at.

The decode figures (start, streaming profile, partial store, merge) come from launches of
about one wave, and a launch's later waves run at another cost: `benchmarks/
decode_waves_probe.py` timed split-K launches of up to ~60 programs per SM of 1-4-tile
programs on the H200 (2026-12-06), and the slope of launch time over programs, per SM
(`archs/calibration/decode_waves.py`), differed from what the one-wave figures price by
tiling: 0.69x at (128, 8, 3) and head dim 128 with one-tile programs, 1.15x at (64, 4, 4)
(0.76x before 2026-12-07, when (128, 8, 3) was priced on another tiling's profile: its own
was dropped unread, `archs/calibration/h200-decode.yaml` notes).

A later program is priced at its one-wave time plus the steady excess of its tiling at its
tiles: k x the measured per-SM cost (k programs per SM share it) less what the one-wave
figures price the probe's program at (its start, its tiles' streaming, its partial store
and its share of a merge of the probe's splits), linear in tiles between the measured tile
counts and the end points' beyond them. So a program unlike the probe's (more tiles, more
splits) keeps what the one-wave figures say of its difference from the probe's. Only
split-K programs of a tiling the probe measured, in launches of at least `STEADY_WAVES`
waves. A paged call takes the steady costs its tiling measured through a block table
(`decode_waves_probe.py --paged`: entries with a `page_size`) over its paged one-wave
figures where the calibration has them. Otherwise (contiguous entries only) its later program
is its paged one-wave price plus the contiguous excess over the unpaged one-wave figures (what
a long launch adds per program taken to be the same through a block table, an approximation
the Result states; kept out, split-K paged-validation priced 9.1% off, 8.1% with it,
`kernels/measurements/decode/decode-h200-2026-12-05-tuned.csv` with the 2026-12-03 file).
The steady costs apply from `STEADY_WAVES` waves: the probe's slopes over its first waves (its
launches of ~4 and ~16 programs per SM) ran 1-36% above the steady ones, and priced from the
second wave the H200 decode files' split pick fell to 88% of 88 shapes (92% from 4
waves, 90% ramped in over waves 1-4). Transferred calibrations carry no steady costs
(`archs.datasheet.transferred_decode`).

Not priced: the probe's `transient_us`, what a long launch took beyond its one-program-per-SM
launch and its further programs at the steady cost (3.3-10.3 us on the H200). Added once to
launches of >= 4 waves it priced the probe's own file worse (waves suite 9.0 -> 9.9% MAPE;
validation 3.8 -> 3.6%, holdout 4.1 -> 3.9%): the one-wave price it would sit on is itself
off both ways at k > 1 programs per SM (the probe's 4-per-SM launches at (64, 4, 2), head
dim 64: up to 35% slow; its one-per-SM launches at (128, 8, 3): up to 31% fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from attnsim.archs.calibration.decode_waves import WavePoint
from attnsim.kernels.spec import DecodeProgram

if TYPE_CHECKING:
    from attnsim.archs.calibration.decode import DecodeCalibration
    from attnsim.mappers.gpu.decode import DecodeProblem
    from attnsim.mappers.gpu.decode_figures import _Figures

STEADY_WAVES = 4  # launches of fewer waves of programs on the SMs' slots keep one-wave prices
STEADY_NOTE = (
    "{waves:.0f} waves of programs on the SMs' slots: split-K programs after the first wave "
    "priced at the steady cost of tiling {tiling} measured over long launches ({cost}; "
    "benchmarks/decode_waves_probe.py, the decode calibration's `waves`), the first wave at "
    "the one-wave figures; on the H200 split-K launches of >= 4 waves of 1-4-tile programs so "
    "priced were 2.9% slow on average, from 7.1% fast to 12.7% slow (kernels/measurements/"
    "decode/decode-waves-h200-2026-12-06.csv; 36 calls); the one-off transient measured with "
    "them (`transient_us`) is not priced"
)

PAGED_NOTE = (
    "; through a block table: a later program at its paged one-wave price plus the excess "
    "measured on contiguous caches (the probe read no block table; assumed the same per "
    "program)"
)
PAGED_MEASURED_NOTE = (
    "; these steady costs measured through a shuffled block table of {page}-key pages "
    "(decode_waves_probe.py --paged), over the call's paged one-wave figures"
)


@dataclass(frozen=True, slots=True)
class LaterWaves:
    """One tiling's measured steady costs (`points`, by tiles) over its one-wave prices."""

    points: tuple[WavePoint, ...]
    excess_s: tuple[float, ...]  # per point: the steady cost less the one-wave price

    def excess_at(self, tiles: float) -> float:
        """A later program's steady cost over its one-wave price (seconds; < 0: cheaper)."""
        return _by_tiles(tuple(p.tiles for p in self.points), self.excess_s, tiles)

    def later_s(self, prog: DecodeProgram, one_wave_s: float) -> float:
        """The time of `prog` (one-wave time `one_wave_s`) after the first wave."""
        if prog.pieces != 1 or not prog.partials:  # not a split-K program: as measured alone
            return one_wave_s
        return max(0.0, one_wave_s + self.excess_at(prog.tiles))

    def note(self, tiling: tuple[int, int, int], waves: float, paged: bool = False) -> str:
        """STEADY_NOTE for this tiling.

        `paged`: a paged call, priced with paged entries or with the block-table approximation.
        """
        cost = ", ".join(
            f"{p.sm_program_s * 1e6:.2f} us per SM a {p.tiles}-tile program" for p in self.points
        )
        first = self.points[0]
        page = first.page_size
        tail = PAGED_MEASURED_NOTE.format(page=page) if page else PAGED_NOTE * paged
        if page:  # the paged entries' build, as compiled (not the stages a paged price reads)
            tiling = (first.block_n, first.num_warps, first.num_stages)
        return STEADY_NOTE.format(tiling=tiling, cost=cost, waves=waves) + tail


def _by_tiles(tiles: tuple[int, ...], ys: tuple[float, ...], at: float) -> float:
    """`ys` over `tiles` at `at`: linear between points, the end points' beyond them."""
    if at <= tiles[0]:
        return ys[0]
    for t0, t1, y0, y1 in zip(tiles, tiles[1:], ys, ys[1:], strict=False):
        if at <= t1:
            return y0 + (y1 - y0) * (at - t0) / (t1 - t0)
    return ys[-1]


def later_waves(
    dcal: DecodeCalibration | None,
    p: DecodeProblem,
    tiling: tuple[int, int, int],
    per_sm: int,
    strategy: str,
    f: _Figures,
    waves: float,
    contiguous: _Figures | None = None,
    paged: tuple[int, int, int] | None = None,
) -> LaterWaves | None:
    """The steady costs that price this split-K launch's later programs (None: none apply).

    `f`: the launch's one-wave figures, which price the probe's programs the excess is taken
    over (at the launch's streaming load: a launch that streams fewer programs at once, as a
    ragged batch's, keeps the one-wave figures' lighter load). `waves`: the launch's programs
    over the SMs' slots; under `STEADY_WAVES`, None. `paged`: a paged call's tiling as
    compiled; its entries measured through a block table, if any, are taken over `f`, else
    `tiling`'s contiguous ones over `contiguous` (the unpaged figures, None: `f`).
    """
    if dcal is None or strategy != "splitk" or waves < STEADY_WAVES:
        return None
    s = p.shape
    points = dcal.wave_points(s.head_dim, s.value_dim, p.rows, paged, True) if paged else ()
    if not points:
        points = dcal.wave_points(s.head_dim, s.value_dim, p.rows, tiling)
    c = f if points and points[0].page_size else contiguous or f
    excess = tuple(
        per_sm * q.sm_program_s
        - (c.start_s + c.stream_s(q.tiles) + c.piece_s + c.merge_s(q.splits) / q.splits)
        for q in points
    )  # fmt: skip
    return LaterWaves(points, excess) if points else None
