"""Issue 4's kernel-speed figures from a measurement CSV (no GPU needed).

Run: python benchmarks/kernel_vs_sdpa.py kernels/measurements/validation-h200-2026-11-30.csv

For every shape: the best measured tiling of the 1-pass kernel against the SDPA flash
(FlashAttention-2) and cuDNN rows of the same run. Prints the shapes where the 1-pass kernel
is slower than flash, the smallest flash/ours ratio, and the mean of cuDNN time / our time
over head dim 128, non-causal, sequence >= 4K (the target is >= 0.85).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from attnsim.kernels.bench.measure import read_measurements


def main(argv: list[str]) -> int:
    """Print the figures for the CSV files named in argv."""
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    best: dict[tuple[int, ...], dict[str, float]] = defaultdict(dict)
    for m in read_measurements([Path(a) for a in argv]):
        key = (m.batch, m.heads, m.seq_q, m.seq_k, m.head_dim, int(m.causal))
        if m.median_ms < best[key].get(m.family, float("inf")):
            best[key][m.family] = m.median_ms
    shapes = {k: v for k, v in best.items() if {"triton-1pass", "sdpa-flash"} <= v.keys()}
    ratios = {k: v["sdpa-flash"] / v["triton-1pass"] for k, v in shapes.items()}
    slower = sorted((r, k) for k, r in ratios.items() if r < 1.0)
    print(f"1-pass slower than SDPA flash on {len(slower)} of {len(shapes)} shapes")
    for r, k in slower:
        print(f"  B={k[0]} H={k[1]} Sq={k[2]} Sk={k[3]} D={k[4]} causal={k[5]}: {r:.3f}x")
    if ratios:
        print(f"smallest flash/1-pass time ratio: {min(ratios.values()):.3f}")
    target = [
        v["sdpa-cudnn"] / v["triton-1pass"]
        for k, v in shapes.items()
        if k[4] == 128 and not k[5] and k[2] >= 4096 and "sdpa-cudnn" in v
    ]
    if target:
        mean = sum(target) / len(target)
        print(
            f"head dim 128, non-causal, seq >= 4K: mean cuDNN/1-pass {mean:.3f} over {len(target)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
