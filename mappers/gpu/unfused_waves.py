"""How much of its time an unfused QK^T or P.V grid keeps every SM busy (its wave share).

A calibration entry's measured rate holds its own last wave. So does a call, and the two can
differ. On an H100 (kernels/measurements/h100/unfused-kernels-align-h100-2026-12-07.csv) 8
heads of 2656 keys at head dim 64 give P.V 168 programs of 21 key tiles. Their build holds one
program per SM, so the grid runs two waves, the second 36 programs long, at the HBM stream of
those 36. The model priced such calls as the device's bandwidth allows: -13% to -40%.

`wave_share` dispatches a plan's programs in launch order to the earliest free slot (SMs x
the build's programs per SM, `COMPILED_PROGRAMS_PER_SM`). Each program's time is its key
tiles, shared by the programs resident on its SM. The result is the grid's work over the
SMs' time. `gpu_model.time_kernel` divides a call's time by its share; the entry's rate is
taken net of the entry's own share (`net_rest`).
"""

from __future__ import annotations

import heapq

from attnsim.mappers.gpu.model import KernelPlan
from attnsim.mappers.gpu.unfused_rates import UnfusedSplit

# Programs per SM of the unfused tile kernels as compiled for sm_90 (the H100 and the H200),
# launched on aligned tensors: (kernel, head dim, BLOCK_M, BLOCK_N, warps, masked) ->
# programs. Registers and shared memory as `benchmarks/unfused_registers.py` read them
# (kernels/measurements/unfused/unfused-registers-sm90-2026-12-07.yaml; a test checks them).
# A build not listed has no share (1).
COMPILED_PROGRAMS_PER_SM: dict[tuple[str, int, int, int, int, bool], int] = {
    ("qk", 64, 128, 64, 4, False): 4,
    ("pv", 64, 128, 64, 4, False): 3,
    ("qk", 64, 128, 64, 4, True): 4,
    ("pv", 64, 128, 64, 4, True): 2,
    ("qk", 64, 128, 128, 8, False): 2,
    ("pv", 64, 128, 128, 8, False): 1,
    ("qk", 64, 128, 128, 8, True): 2,
    ("pv", 64, 128, 128, 8, True): 1,
    ("qk", 64, 64, 64, 4, False): 8,
    ("pv", 64, 64, 64, 4, False): 4,
    ("qk", 64, 64, 64, 4, True): 8,
    ("pv", 64, 64, 64, 4, True): 4,
    ("qk", 128, 128, 64, 4, False): 4,
    ("pv", 128, 128, 64, 4, False): 2,
    ("qk", 128, 128, 64, 4, True): 4,
    ("pv", 128, 128, 64, 4, True): 2,
    ("qk", 128, 128, 128, 8, False): 2,
    ("pv", 128, 128, 128, 8, False): 1,
    ("qk", 128, 128, 128, 8, True): 2,
    ("pv", 128, 128, 128, 8, True): 1,
    ("qk", 128, 64, 64, 4, False): 7,
    ("pv", 128, 64, 64, 4, False): 3,
    ("qk", 128, 64, 64, 4, True): 6,
    ("pv", 128, 64, 64, 4, True): 3,
}
# a grid of more programs than this runs hundreds of waves: its last costs it under 0.3%
MANY_PROGRAMS = 400_000


def wave_share(plan: KernelPlan, sm_count: int, per_sm: int) -> float:
    """The grid's work over the time its SMs are held, in (0, 1]; 1 when it cannot tell.

    Programs in launch order (`plan.groups`), each its key tiles long (at least 1). A grid
    of at most `sm_count` programs is the occupancy scaling's (`time_kernel`), not this.
    Up to `sm_count` x `per_sm` programs all start at once: an SM takes its programs one
    after another at its full rate. Beyond that, each program takes a slot for `per_sm` x
    its tiles (its SM shared by `per_sm`), the next one the first slot that frees.
    """
    lengths = [max(g.steps + g.masked, 1) for g in plan.groups for _ in range(g.count)]
    n = len(lengths)
    if n <= sm_count or n > MANY_PROGRAMS or per_sm < 1:
        return 1.0
    work = float(sum(lengths))
    if n <= sm_count * per_sm:  # one wave: breadth-first, one per SM then a second ...
        per = [0.0] * sm_count
        for j, length in enumerate(lengths):
            per[j % sm_count] += length
        return work / (sm_count * max(per))
    slots = [0.0] * (sm_count * per_sm)
    end = 0.0
    for length in lengths:
        start = heapq.heappop(slots)
        end = max(end, start + length * per_sm)
        heapq.heappush(slots, start + length * per_sm)
    return work / (sm_count * end)


def net_rest(entry: UnfusedSplit, share: float) -> float:
    """Seconds per unit of work of `entry`'s rest at a share of 1 (at least 0).

    The entry's time is (memory + rest) / its share: at a share of 1 the same bytes take
    memory, and the rest what is left of time x share.
    """
    return max((entry.memory_s + entry.rest_s) * share - entry.memory_s, 0.0) / entry.work
