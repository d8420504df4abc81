"""What the GPU model assumes, as every fused and unfused Result states it in its warnings.

One home for the list (`mappers.gpu.tiling`, `backward_mapper` and `lightning_mapper` put it
in their Results) and for the figures it quotes.
"""

from __future__ import annotations

from attnsim.mappers.gpu.rates import OVERLAP_EFFICIENCY
from attnsim.mappers.gpu.unfused_rates import OVERLAP_P

BASE_REGISTERS_PER_THREAD = 24  # addresses, loop counters, row statistics
ASSUMPTIONS = (
    "per-step time = busiest SM unit + the rest of the dependent chain (tensor, sfu, "
    f"cuda-core) of which {OVERLAP_EFFICIENCY:.0%} x (1 - 1/streams) is hidden; streams = "
    "resident blocks x warpgroups per block",
    "loads are prefetched when num_stages >= 2 (bound only by L2 bandwidth shared evenly by "
    "the SMs); with num_stages == 1 they join the dependent chain",
    "blocks per SM: the compiled kernel's measured occupancy (calibration attention_blocks) "
    "for the tilings measured; otherwise estimated from shared memory and register use, "
    "register use estimated from live fp32 tiles (accumulator + scores) + "
    f"{BASE_REGISTERS_PER_THREAD} per thread; > max registers per thread is a spill (invalid)",
    "blocks dispatched in launch order to the earliest free slot (sm_count x blocks per SM); "
    "unequal blocks share their SM's time with the blocks resident at each moment",
    "unfused kernels with a calibration entry (timed alone on another shape): time = HBM "
    "bytes / bandwidth + their work (score tiles, softmax row bytes, P.V tile steps) at the "
    "measured rate of the entry's time less its bytes at the calibration run's bandwidth "
    "(entries timed on another device, in a transferred calibration: their time carried over "
    f"first as (memory^p + rest^p)^(1/p), p = {OVERLAP_P:g}, from that device's bandwidth to "
    "this one's); "
    "softmax work counted in BLOCK-wide row steps (masked lanes included), but masked rows "
    "of no multiple of 16 keys in the widest block (scalar accesses) by their visible keys, "
    "and masked rows of the widest block with vector accesses as their HBM time and the rest "
    f"overlapped, (memory^p + rest^p)^(1/p), p = {OVERLAP_P:g} (the masked lanes' work runs "
    "under the visible lanes' stream); "
    "rows longer than "
    "one block (two loops) are a chain of steps: their visible chunks plus a row's own share "
    "at the measured rate, their bytes only a floor, the second loop's read from L2 while "
    "the rows read at once fit in half the L2 (the build's compiled programs per SM); QK^T "
    "and P.V grids of more programs than SMs: time / their wave share (programs in launch "
    "order to the first free slot at the build's compiled programs per SM; the entry's rate "
    "net of its own share); a grid of short programs is no faster than the time per "
    "program of the calibration's program-bound short entries (the row softmax: one time "
    "a row; QK^T and P.V: fixed + per key tile a program, held past the longest program "
    "those entries timed); each such kernel "
    "also pays its dependent HBM round trips (first load, last store) at the preset's HBM "
    "latency; a grid of fewer programs than SMs over rows at least as long as the "
    "calibration's unfused_programs entry (P.V of a short query chunk against a long cache) "
    "takes its longest program's steps at that entry's measured rate, bounded by HBM",
    "per-block fixed time (start, Q and first K/V loads after the L2 flush, output store) "
    "from the calibration's attention_blocks when measured (nearest tiling; by blocks per SM "
    "and blocks started together), else prologue work + 2 HBM latencies",
    "blocks of later waves in calls whose heads have several query tiles (sharing the head's "
    "K/V through L2): the fixed time and step measured on such waves "
    "(kernels.calibrate.microbench_shared; nearest tiling, its step as a ratio to the tile "
    "chain's step of that tiling), 0.91-1.10x the chain's step on the H200",
    "a call of several waves pays once the excess of its first later waves over steady ones "
    "(after do_bench's L2 flush; calibration wave_transients, nearest kernel, tiling and query "
    "tiles per head, measured at 4 key tiles a block), in full up to 4 key tiles a block and "
    "none from 16 on, linear between (the H200's wave sweep); later-wave fixed times measured "
    "on grids of W waves are taken less transient / (W - 1)",
    "a later-wave block of a kernel, tiling, blocks per SM and query tiles a head measured "
    "so (calibration later_waves: 1-32 key tiles, 1 or 4 query tiles a head, full query "
    "tiles) takes at least that wave, net of its share of the transient (linear between "
    "the measured lengths; 2-4 query tiles take the 4-tile wave, a lower bound)",
    "kernel time = max(host launch time, launch overhead + max(scheduled block time, HBM "
    "bytes / bandwidth)); a timed call adds do_bench's floor (an empty kernel) once",
    "energy = board power x latency (an upper bound; no activity-based GPU energy model)",
    "the plain 1-pass kernel's score functions and sliding-window tiles: its measured steps "
    "where calibrated (modes score-<name> against score-softmax; window: the masked step "
    "and the cost of each key loop past the first), see the score and mask notes",
    "1-pass schedule pingpong (kernels.gluon.attn_pingpong, sm_90): one block per SM (its consumer "
    "warps take the register file), its key-tile step and per-block fixed time measured on "
    "the real kernel (calibration mode pingpong; steps of tilings not measured take the "
    "nearest measured tiling's); without that calibration its step is the busiest unit's "
    "time at the calibrated tile matmul rates, the rest of the chain hidden by the warp "
    "groups' turns; with no tile matmul rates either (datasheet figures), the plain rule",
)
