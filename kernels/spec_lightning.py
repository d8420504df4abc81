"""The Lightning-2 / GLA kernel's tiling candidates and limits (torch-free).

`kernels.triton.lightning` runs them, `mappers.gpu.lightning_mapper` searches them,
`benchmarks/lightning_probe.py` and `kernels.calibrate.microbench_lightning` time them.
"""

from __future__ import annotations

# Candidate (block_c, block_f, num_warps, num_stages) for the Hopper search, timed on the H200
# by benchmarks/lightning_probe.py. `lightning_tilings` keeps those fitting F.
# Compiled for sm_90 on a CPU host (Triton 3.6, bf16, E = F = 128), the fused kernel needs
# 247 registers per thread at (64, 64, 4, 2) with no spills; the 4-warp C = 128 variant
# spilled 0.8 KB per thread and is left out; the split kernels need 80-200 and never spill.
LIGHTNING_TILINGS: tuple[tuple[int, int, int, int], ...] = (
    (64, 64, 4, 2),
    (64, 64, 4, 3),
    (64, 32, 4, 2),
    (64, 128, 8, 2),
    (128, 64, 8, 2),
    (128, 128, 8, 2),
    (32, 64, 4, 2),
)


# GLA's gated kernels on sm_90 (Triton 3.6): a chunk or value block under 64 faults. Measured
# on the H200 (2026-12-05, benchmarks/lightning_probe.py --gla): the fused gated kernel at
# (64, 32, 4, 2), head dim 128, raised "an illegal memory access"; the ungated kernel runs every
# tiling correctly. Triton's known sm_90 fault with several tl.dot of a 16/32-wide dimension
# (triton-lang/triton#10486, #11366; pytorch/helion#1905 keeps such blocks out of its search).
GATED_MIN_BLOCK = 64


# GLA's fused kernel at head dim 128 spills at every `LIGHTNING_TILINGS` candidate on sm_90
# (cuobjdump: 56-1128 bytes of stack); the spill-free ones had a 32-wide chunk, which faults
# (`GATED_MIN_BLOCK`). These, 8 warps at C = 64, are timed and calibrated for GLA too.
GLA_EXTRA_TILINGS: tuple[tuple[int, int, int, int], ...] = ((64, 64, 8, 2), (64, 128, 8, 3))


def lightning_tilings(head_dim: int, gated: bool = False) -> tuple[tuple[int, int, int, int], ...]:
    """The `LIGHTNING_TILINGS` whose block_f fits a value head dim of `head_dim`.

    `gated` (GLA): only those whose chunk and value block are at least `GATED_MIN_BLOCK`.
    """
    fits = tuple(t for t in LIGHTNING_TILINGS if t[1] <= head_dim)
    if gated:
        fits = tuple(t for t in fits if min(t[0], t[1]) >= GATED_MIN_BLOCK)
    return fits
