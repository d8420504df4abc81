"""Calibration of the neighborhood kernel's masked step: the window test (GPU only).

The neighborhood call (`kernels.triton.neighborhood.attention_neighborhood`) runs the plain
1-pass kernel on a block-sparse layout whose partial tiles test each score's key coordinates
against the query row's window (`kernels.triton.neighborhood_mask.in_windows`: four
compares, three ands, a select). `mappers.gpu.model` adds to a partial tile of such a layout
the measured difference of modes `neighborhood` and `neighborhood-full` when the calibration
has them (else it counts the test's lane operations on the CUDA cores).

Measured: per head dim and tiling (those the neighborhood calls use), with k = 1 and 2
programs per SM, one wave of `TILES` query tiles per head on a 1-D neighborhood of two
kernel sizes (`KERNELS`: about 9 and 17 visited key tiles per query tile). Each size is timed
twice on the same positions and visited tiles: every tile partial (the neighborhood layout,
its full tiles moved to the partial list: each runs the window test), and every tile full
(a plain block-sparse layout with the same tiles, no element mask). The step of each is the
slope over the two sizes, (T(K2) - T(K1)) / (tiles(K2) - tiles(K1)) for the longest query
tile's visited tiles (the wave's critical block), in the round of k blocks: mode
`neighborhood` the partial one, `neighborhood-full` the full one; what the window test adds to
a step is their difference (both measured on the same layout's key-tile indirection, which
the difference leaves out)::

    attention_steps:
      - {mode: neighborhood, dtype: bf16, head_dim: 64, block_m: 128, block_n: 64,
         num_warps: 4, num_stages: 3, blocks_per_sm: 1, step_us: 1.73}
      - {mode: neighborhood-full, dtype: bf16, head_dim: 64, block_m: 128, block_n: 64,
         num_warps: 4, num_stages: 3, blocks_per_sm: 1, step_us: 1.31}

Run: ``python -m attnsim.kernels.calibrate.microbench_neighborhood --out FILE`` (measure) or
``--merge archs/calibration/h200.yaml --entries FILE`` (no GPU).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

MODE = "neighborhood"
MODES = (MODE, f"{MODE}-full")
TILES = 32  # query tiles per head
KERNELS = (8, 16)  # the kernel size in key tiles (+ 1 key: odd), the two points of the slope
TILINGS = (  # (head_dim, (block_m, block_n, num_warps, num_stages)): the neighborhood calls'
    (64, (128, 64, 4, 3)),
    (64, (128, 64, 8, 3)),
    (64, (64, 64, 4, 3)),
    (64, (128, 128, 4, 3)),
    (64, (128, 128, 8, 3)),
    (128, (128, 64, 4, 3)),
    (128, (128, 64, 8, 3)),
    (128, (64, 64, 4, 3)),
    (128, (128, 128, 8, 3)),
)


def layouts(torch: Any, q: Any, kernel: int, bm: int, bn: int) -> tuple[Any, Any, int]:
    """(every tile partial, every tile full, visited tiles of the longest query tile)."""
    from attnsim.kernels.triton.blocksparse import BlockSparse, _lists
    from attnsim.kernels.triton.neighborhood import neighborhood_of
    from attnsim.kernels.triton.neighborhood_layout import neighborhood_sparse

    g = neighborhood_of(q, kernel, block_m=bm, block_n=bn)
    lay = neighborhood_sparse(g, q.device)
    tq, tk = lay.query_tiles, lay.key_tiles
    union = torch.zeros(tq, tk, dtype=torch.bool)
    for counts, indices in ((lay.full_counts, lay.full_indices),
                            (lay.partial_counts, lay.partial_indices)):  # fmt: skip
        c, i = counts[0, 0].cpu(), indices[0, 0].cpu().long()
        for t in range(tq):
            union[t, i[t, : int(c[t])]] = True
    none = torch.zeros_like(union)
    visited = _lists(union[None, None])
    empty = _lists(none[None, None])
    dev = q.device
    partial = type(lay)(
        lay.seq_q, lay.seq_k, bm, bn, empty[0].to(dev), empty[1].to(dev), visited[0].to(dev),
        visited[1].to(dev), geometry=lay.geometry, windows=lay.windows, coords=lay.coords,
        gather=lay.gather, scatter=lay.scatter,
    )  # fmt: skip
    full = BlockSparse(lay.seq_q, lay.seq_k, bm, bn, visited[0].to(dev), visited[1].to(dev),
                       empty[0].to(dev), empty[1].to(dev))  # fmt: skip
    return partial, full, int(union.sum(-1).max())


def measure(torch: Any) -> dict[str, list[dict[str, Any]]]:
    """The `neighborhood` step entries (see the module docstring)."""
    from attnsim.kernels.calibrate.microbench_masks import _common, _fits_two, _ms
    from attnsim.kernels.triton.attn_fwd import attention_fwd
    from attnsim.kernels.triton.common import ensure_allocator

    ensure_allocator()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    steps = []
    for d, tiling in TILINGS:
        bm, bn, w, st = tiling
        for k in (1, 2):
            if k == 2 and not _fits_two(torch, d, tiling):
                continue
            heads = max(1, sms * k // TILES)
            seq = TILES * bm
            q, kk, v = (torch.randn(1, heads, seq, d, device="cuda", dtype=torch.bfloat16)
                        for _ in range(3))  # fmt: skip
            o = torch.empty_like(q)
            times: dict[str, list[float]] = {"partial": [], "full": []}
            tiles = []
            for n in KERNELS:
                partial, full, longest = layouts(torch, q, n * bn + 1, bm, bn)
                tiles.append(longest)
                for name, lay in (("partial", partial), ("full", full)):
                    call = functools.partial(attention_fwd, q, kk, v, False, num_warps=w,
                                             num_stages=st, out=o, block_sparse=lay)  # fmt: skip
                    call()
                    times[name].append(_ms(call) * 1e3)
            span = tiles[1] - tiles[0]
            step, full_step = ((t[1] - t[0]) / span for t in (times["partial"], times["full"]))
            steps.append({**_common(MODE, d, tiling, k), "step_us": round(step, 4)})
            steps.append({**_common(f"{MODE}-full", d, tiling, k),
                          "step_us": round(full_step, 4)})  # fmt: skip
            print(f"  neighborhood d{d} {tiling} k={k}: masked step {step:.3f} us, full "
                  f"{full_step:.3f} us (tiles {tiles}, T {times})", file=sys.stderr)  # fmt: skip
    return {"attention_steps": steps}


def merge(path: Path, found: dict[str, list[dict[str, Any]]], device: str) -> None:
    """Write the entries into a calibration file (this module's mode replaced)."""
    from attnsim.kernels.calibrate.microbench_bwd import merge_modes

    merge_modes(path, found, MODES, "python -m attnsim.kernels.calibrate.microbench_neighborhood",
                device)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Measure and write the entries (--out), or merge earlier ones (--merge, --entries)."""
    from attnsim.kernels.calibrate.microbench_bwd import entries_main

    description = (__doc__ or "").splitlines()[0]
    return entries_main(argv, description, "microbench_neighborhood", measure, merge)


if __name__ == "__main__":
    raise SystemExit(main())
