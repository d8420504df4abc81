"""Microbenchmark of the 1-pass kernel's block-sparse steps (GPU only; a diagnostic).

`python -m attnsim.kernels.calibrate.microbench_blocksparse --out FILE` times, with the real
1-pass Triton kernel (`kernels.triton.attn_fwd`, `block_sparse=`), the key-tile step with and
without an index list; `--merge CAL --entries FILE` would write the entries into a
calibration file, which the GPU model does not read today (see below).

Three `attention_steps` modes, each the key-tile step of SMs x k programs (one wave, k = 1
and 2 where two fit) over n key tiles (seq_k = n * BLOCK_N, n = STEPS), non-causal, in heads
of Q_TILES query tiles: each head's K/V streams from HBM once and its query tiles share it
through L2, as in a real call's later waves (the regime of `microbench_shared`):
step = (T(n2) - T(n1)) / (n2 - n1), do_bench medians.

- `blocksparse-dense`: the kernel without a layout (the reference, measured in the same run);
- `blocksparse`: a layout listing all n key tiles of every query tile as full: the unmasked
  step through the index list (one index load per step, the tile's address from it);
- `blocksparse-masked`: every tile partial (segment ids: the last key of each tile belongs to
  another segment), the masked step with the segment compare.

On the H200 (kernels/measurements/blocksparse/microbench-blocksparse-*-2026-12-04.*) the index
list cost +30% a step at 128 x 128 tiles, head dim 128, and +60-90% at head dim 64, in this
regime and on one head with K/V all in L2 alike; whole calls of the suites paid only 7-26% a
tile over the dense kernel at 50% density. Until that gap is understood
`mappers.gpu.blocksparse` prices a listed tile at the plain kernel's step and says so.
(`do_bench` flushes L2 before every call, so the one-head variant's K/V are not in L2
either: every step is a first touch that all of a head's query tiles wait for together, the
regime where a key loop loading K/V one tile ahead, as the block-sparse loop did before
2026-12-06 (these figures time that loop),
pays the most; random layouts' query tiles reach a K/V tile at different times.) None
of these shapes (SMs x k / 4 heads of 4 query tiles over 8 or 32 key tiles, non-causal) is a
shape of benchmarks/blocksparse_suite.py or blocksparse_probe.py.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import triton

STEPS = (8, 32)
Q_TILES = 4  # query tiles per head (microbench_shared's regime)
MODES = ("blocksparse-dense", "blocksparse", "blocksparse-masked")
# (head_dim, (block_m, block_n, num_warps, num_stages)): the suites' tilings
TILINGS = (
    (64, (128, 64, 4, 3)),
    (64, (64, 64, 4, 3)),
    (128, (128, 64, 8, 3)),
    (128, (128, 128, 8, 3)),
)


def _ms(fn: Any) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median"))


def _calls(torch: Any, q: Any, k: Any, v: Any, tiling: tuple[int, int, int, int]) -> list[Any]:
    """The three kernels of MODES on these tensors (non-causal; one layout for every head)."""
    from attnsim.kernels.triton.attn_fwd import attention_fwd
    from attnsim.kernels.triton.blocksparse import (
        block_sparse_from_block_mask,
        block_sparse_from_segments,
    )

    bm, bn, w, st = tiling
    sq, sk = q.shape[2], k.shape[2]
    tq, tk = -(-sq // bm), -(-sk // bn)
    full = block_sparse_from_block_mask(
        torch.ones(tq, tk, dtype=torch.bool, device=q.device), sq, sk, bm, bn
    )
    ks = torch.zeros(sk, dtype=torch.int32, device=q.device)
    ks[bn - 1 :: bn] = 1  # the last key of every tile in another segment: every tile partial
    qs = torch.zeros(sq, dtype=torch.int32, device=q.device)
    part = block_sparse_from_segments(qs, bm, bn, k_segments=ks)
    assert int(part.full_counts.sum()) == 0 and int(part.partial_counts.min()) == tk
    run = functools.partial(attention_fwd, q, k, v, False, num_warps=w, num_stages=st)
    return [
        functools.partial(run, block_m=bm, block_n=bn),
        functools.partial(run, block_sparse=full),
        functools.partial(run, block_sparse=part),
    ]


def measure(torch: Any) -> dict[str, list[dict[str, Any]]]:
    """`attention_steps` of MODES for every tiling and k (see the module docstring)."""
    from attnsim.kernels.calibrate.microbench_masks import _common, _fits_two
    from attnsim.kernels.triton.common import ensure_allocator

    ensure_allocator()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    steps = []
    for d, tiling in TILINGS:
        bm, bn = tiling[0], tiling[1]
        for k in (1, 2):
            if k == 2 and not _fits_two(torch, d, tiling):
                continue
            times: list[list[float]] = [[], [], []]
            for n in STEPS:
                heads = sms * k // Q_TILES
                q = torch.randn(1, heads, Q_TILES * bm, d, device="cuda", dtype=torch.bfloat16)
                kk, v = (torch.randn(1, heads, n * bn, d, device="cuda", dtype=torch.bfloat16)
                         for _ in range(2))  # fmt: skip
                for i, call in enumerate(_calls(torch, q, kk, v, tiling)):
                    call()
                    times[i].append(_ms(call) * 1e3)
            for mode, t in zip(MODES, times, strict=True):
                step = (t[1] - t[0]) / (STEPS[1] - STEPS[0])
                steps.append({**_common(mode, d, tiling, k), "step_us": round(step, 4)})
                print(f"  {mode} d{d} {tiling} k={k}: step {step:.4f} us "
                      f"T={[round(x, 2) for x in t]}", file=sys.stderr)  # fmt: skip
    return {"attention_steps": steps}


def merge(path: Path, found: dict[str, list[dict[str, Any]]], device: str) -> None:
    """Write the entries into a calibration file (this module's modes are replaced)."""
    from attnsim.kernels.calibrate.microbench_bwd import merge_modes

    source = "python -m attnsim.kernels.calibrate.microbench_blocksparse"
    merge_modes(path, found, MODES, source, device)


def main(argv: list[str] | None = None) -> int:
    """Measure and write the entries (--out), or merge earlier ones (--merge, --entries)."""
    from attnsim.kernels.calibrate.microbench_bwd import entries_main

    description = (__doc__ or "").splitlines()[0]
    return entries_main(argv, description, "microbench_blocksparse", measure, merge)


if __name__ == "__main__":
    raise SystemExit(main())
