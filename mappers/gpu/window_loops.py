"""The 1-pass Triton kernel's key loops under a sliding window, and its score-function names.

`kernels.triton.attn_loop.attn_rows` runs a query tile's key tiles in up to four loops, each
with its own software pipeline (so each further loop's first K/V load waits, unprefetched):
the tiles every row sees whole (unmasked), the diagonal tiles, the window's leading tiles and
the sink tiles (all three masked, with the window's mask). `window_loops` counts the non-empty
loops per query tile with the kernel's own bounds and `window_steps` their unmasked and
masked steps; the GPU model charges the measured cost of a further loop
(`kernels.calibrate.microbench_masks`, `loop_us`) for each beyond the first.
"""

from __future__ import annotations

WINDOW_MODE = "window"  # the calibration mode of the window kernel's masked step and loops


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def window_ranges(
    seq_q: int, seq_k: int, block_m: int, block_n: int, window: int, sinks: int
) -> list[tuple[tuple[int, int], ...]]:
    """Per query tile, the key ranges of `attention_fwd(causal=True, window, sinks)`'s loops.

    The bounds of `attn_rows` (WINDOW, CAUSAL, MASKED_TAIL) for query tile i, in its order:
    unmasked [lo_full, hi_full), diagonal [hi_full, hi), leading [lo_win, lo_full) and sinks
    [0, hi_sink); the last three run masked. An empty range is a loop of no steps.
    """
    out: list[tuple[tuple[int, int], ...]] = []
    for i in range(_cdiv(seq_q, block_m)):
        hi_full = min((seq_k // block_n) * block_n, i * block_m)
        hi = min(seq_k, (i + 1) * block_m)
        last_start = max(i * block_m + block_m - window, 0)
        lo_full = min(_cdiv(last_start, block_n) * block_n, hi_full)
        first_start = max(i * block_m - window + 1, 0)
        lo_win = min((first_start // block_n) * block_n, lo_full)
        hi_sink = min(_cdiv(sinks, block_n) * block_n, lo_win)
        out.append(((lo_full, hi_full), (hi_full, hi), (lo_win, lo_full), (0, hi_sink)))
    return out


def window_loops(
    seq_q: int, seq_k: int, block_m: int, block_n: int, window: int, sinks: int
) -> list[int]:
    """Non-empty key loops per query tile (see `window_ranges`)."""
    ranges = window_ranges(seq_q, seq_k, block_m, block_n, window, sinks)
    return [sum(b > a for a, b in tile) for tile in ranges]


def window_steps(
    seq_q: int, seq_k: int, block_m: int, block_n: int, window: int, sinks: int
) -> list[tuple[int, int]]:
    """Per query tile, (unmasked steps, masked steps) as the kernel's loops run them.

    The same tiles as the mask's classification visits, but the sink loop runs masked even
    over sink tiles every row sees whole (full tiles by the classification).
    """
    ranges = window_ranges(seq_q, seq_k, block_m, block_n, window, sinks)

    def steps(a: int, b: int) -> int:
        return max(0, _cdiv(b, block_n) - a // block_n) if b > a else 0

    return [(steps(*full), sum(steps(*r) for r in masked)) for full, *masked in ranges]


def loops_by_profile(
    per_tile: list[tuple[int, int]], loops: list[int]
) -> tuple[tuple[int, int, int], ...]:
    """(unmasked steps, masked steps, loops) per distinct block profile (the most loops)."""
    most: dict[tuple[int, int], int] = {}
    for profile, n in zip(per_tile, loops, strict=True):
        most[profile] = max(most.get(profile, 0), n)
    return tuple((a, m, n) for (a, m), n in sorted(most.items()))
