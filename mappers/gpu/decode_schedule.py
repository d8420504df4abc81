"""How `gpu-decode` schedules a launch's programs on the SMs.

Two schedules of the programs of `kernels.spec.decode_partition`, in launch order:

- `schedule_s`: each of the SMs x k slots runs one program at a time at that program's own
  speed (a latency-bound program: programs sharing an SM overlap their loads);
- `shared_schedule_s`: the k programs on an SM split its throughput (MLA's wide dot
  products: two programs per SM each stream at half speed), so a program's speed changes
  with how many others stream on its SM. A launch of 1.2 waves then ends its last fifth at
  the speed of one program alone, not at the speed the full SMs had (the H200 measured
  276 us for 320 MLA programs of 26 tiles at two per SM; a fixed two-per-SM speed gives 360).

A program is its start (latency: its first loads), its streaming over key tiles, and what
splitting adds after it (its partial store and, for the last to arrive, the merge); only
the streaming shares the SM.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from attnsim.kernels.spec import DecodeProgram

if TYPE_CHECKING:
    from attnsim.mappers.gpu.decode_figures import _Figures
    from attnsim.mappers.gpu.decode_waves import LaterWaves


def program_s(prog: DecodeProgram, f: _Figures) -> float:
    """One program's time alone on its slot: starts, streaming, partial stores and merge."""
    if prog.pieces == 0:
        return f.empty_s  # an empty share: find nothing, exit
    return prog.pieces * f.start_s + f.stream_s(prog.tiles) + _after_s(prog, f)


def _after_s(prog: DecodeProgram, f: _Figures) -> float:
    return prog.partials * f.piece_s + f.merge_s(prog.merges)


def schedule_s(
    runs: tuple[tuple[int, DecodeProgram], ...],
    slots: int,
    f: _Figures,
    later: LaterWaves | None = None,
) -> float:
    """Makespan of programs dispatched in launch order to the earliest free of `slots`.

    `later`: a program that starts on a slot after another (past the first wave) takes its
    steady time (`decode_waves.LaterWaves`), else its one-wave time.
    """
    free = [0.0] * slots
    uniform = True  # every slot frees at the same time: whole waves in closed form
    for count, prog in runs:
        first = program_s(prog, f)
        d = later.later_s(prog, first) if later is not None else first
        if uniform:
            waves, rest = divmod(count, slots)
            if free[0] == 0.0 and waves:  # the first wave on fresh slots, then later ones
                base = first + (waves - 1) * d
            else:
                base = free[0] + waves * d
            end = base + (first if free[0] == 0.0 and not waves else d)
            free = [end] * rest + [base] * (slots - rest)
            uniform = rest == 0
            heapq.heapify(free)
            continue
        for _ in range(count):
            heapq.heapreplace(free, free[0] + (first if free[0] == 0.0 else d))
        uniform = free[0] == max(free)
    return max(free)
