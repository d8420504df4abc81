"""GPU only: a later wave's per-block fixed time when query tiles share their head's K/V.

    python -m attnsim.kernels.calibrate.microbench_shared --out entries.yaml
    python -m attnsim.kernels.calibrate.microbench_shared --merge archs/calibration/h200.yaml \
        --entries entries.yaml

`kernels.calibrate.microbench_blocks` gives each block its own head (one query tile per
head), so every block of a later wave loads its first K/V tiles from HBM. In an attention
call a head's query tiles are launched next to each other and share its K/V: the first to
start brings the tiles into L2 and its siblings find them there. This module times the same
kernels and tilings (`microbench_blocks.BLOCK_PLAN`) with `Q_TILES` query tiles per head:
the full-occupancy grid for one wave and for WAVES waves, at 8 and 32 key-tile steps (the
blocks of attention calls run 4-256; 2 is timed for the log), and takes the later wave's
fixed time as microbench_blocks does:

    step_W = (T_W(32) - T_W(8)) / (24 * W)
    fixed_later = (T_W(8) - T(8)) / (W - 1) - 8 * step_W

The entries are `attention_blocks` entries with `q_tiles: Q_TILES` (one in Q_TILES blocks
loads the head's K/V from HBM); the GPU model mixes them with the one-tile-per-head entries
by the call's query tiles per head. Shapes: heads of 2-8 key tiles, outside the validation
grids.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

Q_TILES = 4  # query tiles per head (132 SMs x 1-3 blocks per SM divide by it)
BUDGET_S = 200.0
# key-tile steps per block: the fit takes the last two (attention calls' blocks run 4-256
# steps); the first is timed for the log (what a 2-step block pays, microbench_blocks' fit)
SHARED_STEPS = (2, 8, 32)


def measure(torch: Any) -> dict[str, list[dict[str, Any]]]:
    """`attention_blocks` entries with `q_tiles` for every tiling of BLOCK_PLAN."""
    from attnsim.kernels.calibrate.microbench_blocks import (
        BLOCK_PLAN,
        WAVES,
        _caller,
        _ms,
        _point,
        bench_floor_us,
        resident,
        within_budget,
    )
    from attnsim.kernels.triton.common import ensure_allocator

    ensure_allocator()
    floor_us = bench_floor_us(torch)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    out: list[dict[str, Any]] = []
    for mode, d, tiling, tiles in within_budget(BLOCK_PLAN, BUDGET_S):
        try:
            occ = resident(torch, mode, d, tiling, sms, SHARED_STEPS[0], tiles)
            one = sms * occ
            if one % Q_TILES:
                print(f"  {mode} d{d} {tiling}: {one} blocks not divisible", file=sys.stderr)
                continue
            runs: dict[int, list[float]] = {}
            for blocks in (one, one * WAVES):
                runs[blocks] = []
                for n in SHARED_STEPS:
                    call, _ = _caller(torch, mode, d, tiling, blocks, n, tiles, Q_TILES)
                    runs[blocks].append(_ms(call) * 1e3)
                    torch.cuda.empty_cache()
            first, many = runs[one][-2:], runs[one * WAVES][-2:]
            lo, hi = SHARED_STEPS[-2:]
            step_w = (many[1] - many[0]) / ((hi - lo) * WAVES)
            later = (many[0] - first[0]) / (WAVES - 1) - lo * step_w
            first, many = runs[one], runs[one * WAVES]
            point = _point(mode, d, tiling, one * WAVES, occ, WAVES, later, step_w, tiles)
            point["q_tiles"] = Q_TILES
            out.append(point)
            print(f"  {point} T1={[round(t, 2) for t in first]} TW={[round(t, 2) for t in many]}"
                  f" floor={floor_us:.2f}", file=sys.stderr)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - keep the other entries
            print(f"  skip {mode} d{d} {tiling} {tiles}: {exc}"[:300], file=sys.stderr)
    return {"attention_blocks": out}


def merge(path: Path, found: dict[str, list[dict[str, Any]]], device: str) -> None:
    """Add the entries to a calibration file's `attention_blocks`, with a note.

    Earlier entries of the same mode, head dim, tiling, access path and q_tiles are replaced.
    """
    import datetime

    from attnsim.kernels.calibrate.microbench_bwd import replace_entries

    def key(e: dict[str, Any]) -> tuple[Any, ...]:
        names = ("mode", "head_dim", "block_m", "block_n", "num_warps", "num_stages", "tiles")
        return (*(e.get(n) for n in names), e.get("waves", 1), e.get("q_tiles", 1))

    source = "python -m attnsim.kernels.calibrate.microbench_shared"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    note = (
        f"attention_blocks with q_tiles: `{source}` on {device}, merged {stamp} (later-wave "
        f"fixed time with {Q_TILES} query tiles per head sharing its K/V)"
    )
    replace_entries(path, "attention_blocks", found.get("attention_blocks", []), key, note, source)


def main(argv: list[str] | None = None) -> int:
    """Measure and write the entries (--out), or merge earlier ones (--merge, --entries)."""
    from attnsim.kernels.calibrate.microbench_bwd import entries_main

    description = (__doc__ or "").splitlines()[0]
    return entries_main(argv, description, "microbench_shared", measure, merge)


if __name__ == "__main__":
    raise SystemExit(main())
