"""Rates of the unfused kernels from their calibration entries: per work and per program.

`mappers.gpu.kernels` splits each calibration entry of an unfused kernel into its memory
part and the rest (`UnfusedSplit`); `fit_rates` turns the entries of one kernel and tiling
into seconds per unit of work and, where short-row entries are bound by their programs,
seconds per program (`model.time_kernel` takes the larger of the two bounds).
"""

from __future__ import annotations

from dataclasses import dataclass

from attnsim.archs.calibration import UnfusedPoint


@dataclass(frozen=True, slots=True)
class UnfusedSplit:
    """A calibration entry's time as the model splits it (see `_split`)."""

    work: float
    blocks: int
    memory_s: float
    rest_s: float
    entry: UnfusedPoint


# an entry whose time is over 1.25x what the per-work rate and its bytes give is bound by
# its programs (thousands of one-tile programs, each a dependent load-compute-store chain)
PROGRAM_BOUND = 1.25


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
