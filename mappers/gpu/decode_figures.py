"""Per-program figures of `gpu-decode` from the decode calibration.

What one decode program costs on a configuration (head and value dims, packed rows, tiling)
with k programs per SM and n programs streaming at once: its per-tile time and its measured
time-over-tiles profile, the load curve's slowdown, its start and what splitting adds
(`mappers.gpu.decode` schedules the programs and takes the launch's bounds). The figures
come from kernels.calibrate.microbench_decode (`archs/calibration/<device>-decode.yaml`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attnsim.archs.calibration.decode import (
    REFERENCE_PROGRAMS,
    DecodeCalibration,
    LoadCurve,
    MergePoint,
    Profile,
    ProgramPoint,
    decode_calibration_path,
    load_decode_calibration,
)
from attnsim.archs.gpu import GpuArch
from attnsim.mappers.gpu.rates import DeviceRates

if TYPE_CHECKING:
    from attnsim.mappers.gpu.decode import DecodeProblem

PARTIAL_WORD_BYTES = 4  # partial outputs and log-sum-exps are fp32

# Paged caches: each tile's K/V loads wait for its page index (a load from the block table),
# so the software pipeline runs no further ahead than a 2-stage build's one tile: measured on
# the H200 (decode-h200-2026-12-05-tuned.csv, pages of 64 and 256 keys), tilings of 3-4
# stages ran at 0.61-1.08x the speed of (64, 4, 2) on paged caches (median 0.95-0.99x, 48
# pairs) and up to 1.73x faster on contiguous ones (median 1.05x, where per-program
# streaming bounds the call). A tiling with a measured paged point (`microbench_decode
# --paged`: 32 programs, where latency bounds the per-tile time) pays its factor where the
# load curve slows the contiguous tile by less: the page-index wait is a latency, and with
# many programs streaming HBM's queue hides it (the H200 2026-12-06 factors taken as a plain
# product priced the paged suites 85% slow at worst, split-K paged-validation 18.2%; the
# H100's did likewise on the H200's suites, 15.9%). Tilings without one are priced with the
# figures of their tiling at PAGED_STAGES stages; their block-table lookups are not
# modelled otherwise (measured: see PAGED_NOTE).
PAGED_STAGES = 2
PAGED_MEASURED_NOTE = (
    "paged KV cache ({page} keys per page): per-tile times x {factor:.2f}, the measured "
    "per-tile time of tiling {tiling} through a shuffled block table over the contiguous "
    "cache's with 32 programs (kernels.calibrate.microbench_decode --paged), or the load "
    "curve's slowdown where that is larger (the page-index wait hides under HBM contention); "
    "measured on the unsplit build only: on the H200 paged calls so priced ran 3.8% slower "
    "on average than this prediction, worst 41.7% (stream-K at 264 programs of one-per-SM "
    "builds; kernels/measurements/decode/decode-splits-h200-2026-12-03.csv and "
    "decode-h200-2026-12-05-tuned.csv, suites paged-*; 160 calls)"
)
PAGED_NOTE = (
    "paged KV cache ({page} keys per page): no paged figure measured for this tiling; priced "
    f"as a contiguous cache read at {PAGED_STAGES} pipeline stages (a tile's loads wait for "
    "its page index); the block-table lookups are not modelled otherwise: on the H200 such "
    "paged calls ran 5.6% slower on average than this prediction, worst 10.8% (kernels/"
    "measurements/decode/decode-splits-h200-2026-12-03.csv and decode-h200-2026-12-05-"
    "tuned.csv, suites paged-*; 8 calls)"
)

# Launches of many waves of programs: the decode figures (start, piece, merge, profile) come
# from launches of about one wave. benchmarks/decode_waves_probe.py timed split-K launches of
# 1-62 waves of 1-4-tile programs on the H200 (2026-12-06): the steady-state cost of a
# further program differs from the one-wave figures by tiling, not by one rule (per slot,
# the (128, 8, 3) build at head dim 128: 4.9 us a one-tile program against 7.1 priced; the
# (256, 8, 3) build at head dim 64: 4.7 against 5.8; both on their own profiles since
# 2026-12-07, 6.4 and 4.5 on another tiling's before). Split-K launches of >= 4 waves of a
# tiling the probe measured now price their later programs at that tiling's measured steady
# cost (`mappers.gpu.decode_waves`, STEADY_NOTE); WAVES_NOTE states what the one-wave
# figures gave the probe's launches, for the launches still priced with them (unsplit, paged,
# other tilings, transferred calibrations).
WAVES_NOTED = 4  # waves of programs on the SMs' slots from which WAVES_NOTE is given
WAVES_NOTE = (
    "{waves:.0f} waves of programs on the SMs' slots, priced with the decode figures of "
    "launches of about one wave (no measured steady cost for this launch: the calibration's "
    "`waves`); on the H200 split-K launches of >= 4 waves of 1-4-tile programs so priced "
    "were 16.7% slow on average, from 10.2% fast to 54.3% slow by tiling (benchmarks/"
    "decode_waves_probe.py, kernels/measurements/decode/decode-waves-h200-2026-12-06.csv; "
    "36 calls)"
)


def waves_notes(programs: int, slots: int, strategy: str) -> tuple[str, ...]:
    """WAVES_NOTE for a split-K or unsplit launch of `WAVES_NOTED` or more waves."""
    if strategy == "streamk" or programs < WAVES_NOTED * slots:
        return ()
    return (WAVES_NOTE.format(waves=programs / slots),)


@dataclass(frozen=True, slots=True)
class _Figures:
    """Per-program figures for one configuration with k programs per SM."""

    tile_s: float
    fixed_s: float  # once per launch: start of the grid, first loads, drain
    start_s: float  # per piece: its query rows and state (one dependent HBM load)
    piece_s: float
    part_s: float
    measured: bool
    curve: Profile | None = None  # measured time over a program's tiles (past its start: x `scale`)
    scale: float = 1.0
    shared_tile_s: float = 0.0  # per tile at the SM's L2 share split among its k programs
    merge: MergePoint | None = None  # the measured merge (its curve over partial counts)
    empty_s: float = 0.0  # a program that finds no tile, on one of its SM's k slots
    foreign_curve: bool = False  # `curve` was measured at another tiling (its start unscaled)

    def merge_s(self, parts: int) -> float:
        """What merging `parts` partial states adds to the merging program."""
        return self.merge.merge_s(parts) if self.merge is not None else parts * self.part_s

    def stream_s(self, tiles: int) -> float:
        """A program's streaming time over `tiles` key tiles (the curve when measured)."""
        if self.curve is None:
            own = tiles * self.tile_s
        elif self.foreign_curve:  # another tiling's curve: its streaming scaled, not its start
            start = self.curve.start_s()
            own = start + (self.curve.program_s(tiles) - start) * self.scale
        else:
            own = self.curve.program_s(tiles) * self.scale
        return max(own, tiles * self.shared_tile_s)


def decode_calibration(arch: GpuArch) -> DecodeCalibration | None:
    """The decode figures measured for `arch`'s device (beside its main calibration)."""
    cal = arch.calibration
    if cal is not None and cal.origin == "transferred" and cal.transferred_from:
        return _transferred(cal.transferred_from, *cal.transfer_ratios)
    if cal is None or not cal.path:
        return None
    return _load_decode(str(decode_calibration_path(cal.path)))


@functools.lru_cache(maxsize=16)
def _transferred(source: str, clock: float, hbm: float) -> DecodeCalibration | None:
    """The decode figures beside a sibling's calibration `source`, carried to this GPU."""
    from attnsim.archs.datasheet import transferred_decode

    found = _load_decode(str(decode_calibration_path(source)))
    return transferred_decode(found, clock, hbm) if found is not None else None


@functools.lru_cache(maxsize=16)
def _load_decode(path: str) -> DecodeCalibration | None:
    return load_decode_calibration(path)


def _figures(
    p: DecodeProblem,
    tiling: tuple[int, int, int],
    k: int,
    rates: DeviceRates,
    dcal: DecodeCalibration | None,
    streaming: float = 0.0,
    strategy: str = "splitk",
    loading: float | None = None,
    paged: float = 1.0,
) -> _Figures:
    """Per-program figures with k programs per SM and `streaming` programs at once.

    `streaming` > 0 with a measured load curve: per-tile times scale by that curve's time
    at `streaming` programs over its time at the reference count (the profiles' and k = 1
    figures'), and the launch adds the curve's intercept growth once, at `loading` programs
    (default `streaming`: the mean number over the makespan when the caller knows it); not for a
    configuration whose programs split the SM's throughput (`_sm_share`), priced by the cap.
    Per-tile time: the unsplit build's, times the measured ratio of `strategy`'s build
    (`DecodeCalibration.build_factor`), times the larger of the load curve's slowdown and
    `paged` (the measured per-tile time through a block table over the contiguous one,
    `DecodeCalibration.paged_point`, a latency that HBM contention hides). Merges: those
    measured on `strategy`'s kernel build (stream-K or split-K) at the nearest warps.
    """
    s, arch = p.shape, rates.arch
    block_n, warps, stages = tiling
    # the program's own streaming rate: measured with few programs (no HBM contention);
    # contention is the HBM bound of the whole launch (time_decode)
    near = dcal.program(s.head_dim, s.value_dim, p.rows, tiling, 1) if dcal else None
    merge = dcal.merge(s.head_dim, s.value_dim, p.rows, strategy, warps) if dcal else None
    l2_share = rates.l2_bytes_per_s / arch.sm_count
    partial = p.rows * (s.value_dim + 1) * PARTIAL_WORD_BYTES
    tile_bytes = block_n * (s.head_dim + (0 if p.shared_kv else s.value_dim)) * s.elem_bytes
    if near is not None:
        pt, _ = near
        measured_bytes = pt.block_n * (pt.head_dim + (0 if p.shared_kv else pt.value_dim))
        # the unsplit build's figures, times what `strategy`'s build costs per tile
        build = dcal.build_factor(s.head_dim, s.value_dim, p.rows, tiling, strategy)  # type: ignore[union-attr]
        tile = pt.tile_s * tile_bytes / (measured_bytes * s.elem_bytes) * build
        fixed = pt.fixed_s
    else:
        # Little's law: num_stages - 1 tiles in flight per program over the HBM latency
        tile = arch.hbm_latency_s / max(1, stages - 1)
        fixed = 2 * arch.hbm_latency_s
    # the SM's share of L2 bandwidth split among its k programs
    capped = k * tile_bytes / l2_share
    if near is not None and k > 1:
        # and the SM's own throughput split among them: the fastest per-tile time per program
        # measured at any programs per SM, divided by that count (a compute-bound kernel such
        # as MLA's runs k programs k times slower; a latency-bound one overlaps them)
        share = _sm_share(dcal, near[0], arch.sm_count, p.shared_kv)  # type: ignore[arg-type]
        capped = max(capped, k * tile * share / near[0].tile_s)
    curve = dcal.profile(s.head_dim, s.value_dim, p.rows, tiling) if dcal and near else None
    scale = 1.0
    if curve is not None and near is not None:
        ref = dcal.program(curve.head_dim, curve.value_dim, curve.rows,  # type: ignore[union-attr]
                           (curve.block_n, curve.num_warps, curve.num_stages), 1)  # fmt: skip
        scale = tile / ref[0].tile_s if ref is not None else 1.0
        # every program (and every further segment piece) pays the curve's start: its
        # dependent first loads (segment, query rows, first K/V tile) and its store; a
        # latency, which a profile of another tiling gives unscaled (its per-tile time differs
        # from this tiling's, its first loads do not: 2.6 us at (64, 4, 2), 3.6 at (64, 8, 3))
        foreign = curve.config != (s.head_dim, s.value_dim, p.rows, *tiling)
        start = curve.start_s() * (1.0 if foreign else scale)
        fixed = 0.0
    else:
        curve, foreign = None, False
    load = dcal.load(s.head_dim, s.value_dim, p.rows, tiling) if dcal and streaming else None
    # a configuration whose programs split the SM's throughput (MLA) is slowed by sharing
    # SMs, which the cap above already prices: its load curve would count that twice
    sharing = near is not None and _sm_share(dcal, near[0], arch.sm_count, p.shared_kv)  # type: ignore[arg-type]
    if load is not None and near is not None and not sharing:
        factor = load.tile_factor(streaming)
        if load.config != (s.head_dim, s.value_dim, p.rows, *tiling):
            # another configuration's curve: what it shows past the reference count is HBM's
            # share per program (per byte of its tiles), a floor under this one's own time
            # rather than a factor on it (a program slower alone is slowed less)
            width = load.head_dim + (0 if p.shared_kv else load.value_dim)
            floor = load.tile_at(streaming) * tile_bytes / (load.block_n * width * s.elem_bytes)
            factor = max(1.0, floor / tile) if streaming > REFERENCE_PROGRAMS else 1.0
        tile, scale = tile * factor, scale * factor
        fixed += load.extra_fixed_s(streaming if loading is None else loading)
    else:
        factor = 1.0
    # through a block table: the measured paged factor, or the load's slowdown if larger;
    # a factor below 1 (the H200's (64, 4, 2) at 64 keys a page: 0.93) is taken as 1 (as
    # a factor it priced split-K paged-validation 10.2% off, not 9.1%)
    over = max(1.0, paged / factor)
    tile, scale = tile * over, scale * over
    if merge is not None:
        piece, part = merge.piece_s, merge.part_s
    else:
        piece = 2 * arch.hbm_latency_s + partial / l2_share  # partial store + atomic arrival
        part = partial / l2_share
    if curve is None:
        start = arch.hbm_latency_s
    # an empty program: its measured cost to the SM (dispatch, the length read), taken by one
    # of the SM's k slots; unmeasured, a start
    ragged = any(n != s.seq_k for n in p.seq_lens)
    per_sm = dcal.empty_program(ragged) if dcal else None
    empty = k * per_sm if per_sm is not None else start
    return _Figures(
        tile, fixed, start, piece, part, near is not None, curve, scale, capped, merge, empty,
        foreign,
    )  # fmt: skip


# a k-programs-per-SM measurement that streamed at this share of the calibration's HBM read
# bandwidth (all k x SMs programs together) was bound by HBM, not by the SM
HBM_SATURATED = 0.8
MEASURED_ELEM_BYTES = 2  # the decode microbenchmarks run bf16


def _sm_share(
    dcal: DecodeCalibration, pt: ProgramPoint, sms: int, shared_kv: bool = False
) -> float:
    """Seconds per tile per program when programs of `pt`'s configuration share an SM.

    Measured at k >= 2 programs per SM: when a program's tile time grew (nearly) in
    proportion to k (at least 0.8 k times its one-program time), k programs on an SM do not
    overlap: either the SM's throughput bounds them, or only one fits and the k x SMs
    programs of the measurement ran in k waves (MLA's kernels on the H200: 140-255 registers,
    one program per SM, which the measured residency now gives k = 1 for). 0 when no k shows
    that: the program is latency-bound and co-resident programs overlap (their HBM
    contention is the launch's HBM bound, priced on its own). A measurement whose k x `sms`
    programs together streamed at `HBM_SATURATED` of the HBM read bandwidth shows HBM's limit,
    not the SM's (the tuned GQA tilings on the H200: about 1 us per 64-key tile alone, 4.5 TB/s
    at two programs per SM), and is left out: priced as sharing, a ragged batch's long
    sequences would stream at the shared rate after the short ones have finished.
    """
    key = (pt.head_dim, pt.value_dim, pt.rows, pt.block_n, pt.num_warps, pt.num_stages)
    same = [
        q for q in dcal.programs
        if (q.head_dim, q.value_dim, q.rows, q.block_n, q.num_warps, q.num_stages) == key
    ]  # fmt: skip
    one = min((q.tile_s for q in same if q.programs_per_sm == 1), default=0.0)
    width = pt.head_dim + (0 if shared_kv else pt.value_dim)
    tile_bytes = pt.block_n * width * MEASURED_ELEM_BYTES
    hbm = dcal.hbm_read_bandwidth_bytes_per_s or math.inf
    shared = [
        q.tile_s / q.programs_per_sm
        for q in same
        if q.programs_per_sm >= 2 and one and q.tile_s >= 0.8 * q.programs_per_sm * one
        and q.programs_per_sm * sms * tile_bytes / q.tile_s < HBM_SATURATED * hbm
    ]  # fmt: skip
    return min(shared, default=0.0)


def figure_notes(
    arch: GpuArch, dcal: DecodeCalibration | None, p: DecodeProblem, tiling: tuple[int, int, int]
) -> tuple[str, ...]:
    """Where the chosen configuration's decode figures came from, when not its own."""
    if dcal is None:
        return (
            f"no decode calibration for {arch.name} (kernels.calibrate.microbench_decode): "
            "per-tile time from the HBM latency and L2 share, fixed time 2 HBM latencies",
        )
    s = p.shape
    notes: tuple[str, ...] = ()
    cal = arch.calibration
    if cal is not None and cal.origin == "transferred":
        clock, hbm = cal.transfer_ratios
        notes += (
            f"decode figures transferred: those beside {cal.transferred_from} "
            f"(archs.datasheet.transferred_decode), per-SM times x {1 / clock:.3g} "
            f"(clock), HBM read bandwidth x {hbm:.3g}",
        )
    own = (s.head_dim, s.value_dim, p.rows, *tiling)
    near = dcal.program(s.head_dim, s.value_dim, p.rows, tiling, 1)
    if near is not None and near[1]:
        pt = near[0]
        notes += (
            f"decode figures from the nearest measured configuration (head dim "
            f"{pt.head_dim}, value dim {pt.value_dim}, {pt.rows} rows, block_n "
            f"{pt.block_n}, {pt.num_warps} warps, {pt.num_stages} stages), per-tile "
            "time scaled by the tile's bytes",
        )
    if near is None:
        return notes
    where = (s.head_dim, s.value_dim, p.rows, tiling)
    borrowed: tuple[tuple[str, Profile | LoadCurve | None, str], ...] = (
        ("time-over-tiles profile", dcal.profile(*where),
         "its streaming scaled by this tiling's measured per-tile time and its start unscaled"),
        ("load curve", dcal.load(*where),
         "gives a per-byte floor under the per-tile time with many programs streaming"),
    )  # fmt: skip
    for what, c, use in borrowed:
        if c is not None and c.config != own:
            notes += (f"no {what} measured at (block_n, warps, stages) {tiling}: that of "
                      f"{_named(c)}, {use}",)  # fmt: skip
    return notes


def _named(c: Profile | LoadCurve) -> str:
    return (
        f"head dim {c.head_dim}, value dim {c.value_dim}, {c.rows} rows, (block_n, warps, "
        f"stages) {c.config[3:]}"
    )
