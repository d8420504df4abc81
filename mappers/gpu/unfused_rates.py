"""Rates of the unfused kernels from their calibration entries: per work and per program.

`mappers.gpu.kernels` splits each calibration entry of an unfused kernel into its memory
part and the rest (`UnfusedSplit`); `fit_rates` turns the entries of one kernel and tiling
into seconds per unit of work and, where short-row entries are bound by their programs,
seconds per program (`model.time_kernel` takes the larger of the two bounds); for the tile
kernels that per-program time goes by the program's key tiles (`fit_program_bound`,
`ProgramBound`). `split_entry`
first carries an entry timed on a device of another memory speed by the overlap law
(`overlapped`, `rest_of`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from attnsim.archs.calibration import Calibration, UnfusedPoint
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.model import KernelPlan


@dataclass(frozen=True, slots=True)
class UnfusedSplit:
    """A calibration entry's time as the model splits it (see `_split`)."""

    work: float
    blocks: int
    memory_s: float
    rest_s: float
    entry: UnfusedPoint
    # (programs, key-tile steps each) of the entry's grid, in launch order (`KernelPlan.groups`)
    programs: tuple[tuple[int, int], ...] = ()


# An unfused kernel's HBM stream and the rest of its work (score arithmetic, store issue,
# latency) overlap in part: time = (memory**P + rest**P) ** (1/P), between the sum (P = 1)
# and the larger of the two (P -> inf). One device cannot tell these apart (its entries'
# rest is whatever their time leaves), a second memory speed can: the H100's unfused
# entries (kernels/measurements/h100/microbench-h100-2026-12-05.yaml, 112 kernels and shapes
# the H200's calibration also times; each device's own measured HBM bandwidths) predicted
# from the H200's gave a mean error of +11.2% with the sum, -0.6% (MAPE 3.0%) with P = 3,
# the minimum of MAPE over P (2.75-3.25 within 0.15 points; tests/unit/mappers/gpu/
# test_unfused_overlap.py). That file fits this constant and nothing else. The law moves
# entries between devices (`split_entry`); a call is still priced as its bytes plus the rest
# at its own shape (the law there too priced the H200's unfused suites worse: MAPE 4.60% ->
# 5.28%, its long causal calls from about +2% to -8%).
OVERLAP_P = 3.0


def overlapped(memory_s: float, rest_s: float, p: float = OVERLAP_P) -> float:
    """Seconds of a kernel whose memory part and rest overlap as exponent `p` says."""
    return float((memory_s**p + rest_s**p) ** (1.0 / p))


def rest_of(time_s: float, memory_s: float, p: float = OVERLAP_P) -> float:
    """The rest of a measured time `time_s` whose memory part is `memory_s` (0 if none)."""
    return float(max(time_s**p - memory_s**p, 0.0) ** (1.0 / p))


# an entry whose time is over 1.25x what the per-work rate and its bytes give is bound by
# its programs (thousands of one-tile programs, each a dependent load-compute-store chain)
PROGRAM_BOUND = 1.25
TILE_KERNELS = ("qk", "pv")  # the unfused kernels whose programs loop over key tiles


def fit_rates(split: list[UnfusedSplit]) -> tuple[float, float]:
    """Seconds per unit of work, and seconds per program of the per-program bound.

    The per-work rate comes from the entry with the most work (long rows: its programs
    overlap with its HBM streaming). An entry the rate and its bytes explain by less than
    1/PROGRAM_BOUND of its time (`kernels.calibrate.microbench_unfused`'s short rows: a grid
    of thousands of one- or two-tile programs) is bound by its programs instead: from such
    entries a time per program is fitted (least squares on relative error), and the model
    takes the larger of the two bounds (`gpu_model.time_kernel`). 0: no entry is
    program-bound.
    """
    big = max(split, key=lambda x: x.work)
    rate = big.rest_s / big.work
    # (programs / time) of each program-bound entry
    xs = [
        x.blocks / (x.memory_s + x.rest_s)
        for x in split
        if x.blocks and PROGRAM_BOUND * (x.memory_s + rate * x.work) < x.memory_s + x.rest_s
    ]
    return rate, (sum(xs) / sum(b * b for b in xs) if xs else 0.0)


@dataclass(frozen=True, slots=True)
class ProgramBound:
    """Device-wide seconds per program of a tile kernel's grid of short programs, by length.

    A QK^T or P.V program loops over its key tiles (software-pipelined); a grid of thousands
    of one- to three-tile programs is bound by them, each taking `fixed_s + per_step_s *
    min(steps, max_steps)` (at least 0; past the longest program the short entries measured
    it is held: longer programs are the per-work rate's, which then bounds them).
    """

    fixed_s: float
    per_step_s: float
    max_steps: int

    def program_s(self, steps: int) -> float:
        """Device-wide seconds of one program of `steps` key tiles."""
        return max(self.fixed_s + self.per_step_s * min(steps, self.max_steps), 0.0)

    def grid_s(self, programs: Iterable[tuple[int, int]]) -> float:
        """Seconds of a grid of (count, steps) programs."""
        return sum(n * self.program_s(k) for n, k in programs)


def fit_program_bound(split: list[UnfusedSplit], rate: float) -> ProgramBound | None:
    """A tile kernel's per-program bound by program length, from its program-bound entries.

    The entries `fit_rates` finds program-bound (their time over PROGRAM_BOUND x what the
    per-work `rate` and their bytes give): each entry's time is its programs' (count, steps)
    at fixed + per step a program (least squares on relative error) where their lengths
    differ, at a time per program where they do not. None without such an entry.
    """
    big = max(split, key=lambda x: x.work)
    bound = [
        x
        for x in split
        if x is not big
        and x.blocks
        and PROGRAM_BOUND * (x.memory_s + rate * x.work) < x.memory_s + x.rest_s
    ]
    if not bound:
        return None
    longest = max(k for x in bound for _, k in x.programs)
    a = np.array([[x.blocks, sum(n * min(k, longest) for n, k in x.programs)] for x in bound])
    y = np.array([x.memory_s + x.rest_s for x in bound])
    if np.linalg.matrix_rank(a) < 2:  # programs of one length: a time per program
        return ProgramBound(float(np.sum(y / a[:, 0]) / len(y)), 0.0, longest)
    (fixed, per_step), *_ = np.linalg.lstsq(a / y[:, None], np.ones(len(y)), rcond=None)
    return ProgramBound(float(fixed), float(per_step), longest)


def split_entry(
    e: UnfusedPoint, ref: KernelPlan, cal: Calibration, latency_s: float
) -> UnfusedSplit:
    """Entry `e` (whose kernel and shape `ref` plans) as memory seconds and rest seconds.

    The entry's memory part is its bytes at the bandwidths of the run that timed it; the
    device `cal` describes (another one when the calibration was transferred,
    `archs.datasheet`) may stream them at others. The entry's time is first carried there by
    the overlap law (`overlapped`), and the split is that time's: its bytes at `cal`'s own
    bandwidths (the model prices a kernel's bytes at them) and the rest. On the device that
    timed the entry the two agree, and the split is the entry's time less its memory part.
    `latency_s` per dependent round trip is left out of the rest (the model adds it).
    A chain-bound kernel (`KernelPlan.chain_bound`) has no memory part: its whole time is the
    rest, which does not move with the bandwidth.
    """
    programs = tuple((g.count, g.steps + g.masked) for g in ref.groups)
    if ref.chain_bound:
        rest = max(e.time_s - ref.round_trips * latency_s, 0.0)
        return UnfusedSplit(ref.work, ref.blocks, 0.0, rest, e, programs)
    own_read = cal.hbm_read_bandwidth_bytes_per_s or cal.hbm_copy_bandwidth_bytes_per_s or 0.0
    own_write = cal.hbm_copy_bandwidth_bytes_per_s or 0.0
    memory = _memory_s(
        ref, e.hbm_read_bytes_per_s or own_read, e.hbm_write_bytes_per_s or own_write
    )
    here = _memory_s(ref, own_read, own_write)
    rest = rest_of(max(e.time_s - ref.round_trips * latency_s, 0.0), memory)
    return UnfusedSplit(ref.work, ref.blocks, here, overlapped(here, rest) - here, e, programs)


def _memory_s(plan: KernelPlan, read_bw: float, write_bw: float) -> float:
    """Seconds of `plan`'s HBM bytes at these bandwidths (a zero bandwidth: not counted)."""
    memory = plan.hbm_read_bytes / read_bw if read_bw else 0.0
    return memory + (plan.hbm_write_bytes / write_bw if write_bw else 0.0)


def row_alignment_bytes(seq: int, elem_bytes: int) -> int:
    """How aligned the rows of a (rows, seq) score matrix start, in bytes (at most 16).

    The largest power of two up to 16 that divides the row pitch seq * elem_bytes.
    """
    pitch = seq * elem_bytes
    return min(16, pitch & -pitch)


def same_alignment(s: AttnShape, entries: list[UnfusedPoint]) -> tuple[list[UnfusedPoint], str]:
    """The ragged entries whose score rows start as aligned as the call's, and a note.

    Triton compiles every seq_k that is no multiple of 16 the same way, but the rows' byte
    alignment still decides how many memory sectors each row's accesses touch
    (`kernels.calibrate.microbench_unfused --row-alignment` measures 4- and 2-byte rows). The
    entries of the nearest alignment are taken (the less aligned of two as near); a note says
    when they are not the call's own.
    """
    own = row_alignment_bytes(s.seq_k, s.elem_bytes)
    kinds = {row_alignment_bytes(e.seq, s.elem_bytes) for e in entries}
    near = min(kinds, key=lambda a: (abs(a.bit_length() - own.bit_length()), a))
    taken = [e for e in entries if row_alignment_bytes(e.seq, s.elem_bytes) == near]
    if near == own:
        return taken, f"; rows {own}-byte aligned, as this call's"
    return taken, (
        f"; this call's score rows start {own}-byte aligned, the entries' {near}-byte: rows "
        "of this alignment are not measured and may run at another rate"
    )
