"""GPU only: whether the 1-pass kernel's key-tile step grows with the row length (a probe).

    PYTHONPATH=. python benchmarks/step_rows_probe.py --out FILE

Times the plain 1-pass Triton kernel (`kernels.triton.attn_fwd`, non-causal) on one head of
SMs x k query tiles (one wave; k = the compiled kernel's blocks per SM) over n key tiles for n
in ROW_STEPS, and writes entries of mode `online-rows`: the slope between consecutive lengths
per round of k blocks, tagged `steps: n_i` (the calibration entry format; nothing reads them).

Why: on the H200 the suites' long rows (128-512 key tiles a program) ran 3-10% a step slower
than the model prices them (implied from whole calls: `validate gpu`'s >32K band). The
hypothesis was a step that grows with the row (its K/V footprint in L2). Measured
2026-12-04 (`kernels/measurements/regimes/step-rows-h200-2026-12-04.*`): no such growth in
this regime: from 32 to 512 key tiles the slope stays within -12% / +17% of the first, with
no trend across the 8 tilings. The long-row gap is elsewhere (many heads streaming from HBM,
or the clock under sustained load); the model was left as it was.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import triton

ROW_STEPS = (16, 32, 64, 128, 256, 512)
MODE = "online-rows"
# (head_dim, (block_m, block_n, num_warps, num_stages)): the suites' plain 1-pass tilings
TILINGS = (
    (64, (128, 128, 4, 3)),
    (64, (128, 64, 4, 3)),
    (64, (128, 64, 8, 3)),
    (64, (64, 64, 4, 3)),
    (128, (128, 128, 8, 3)),
    (128, (128, 64, 4, 3)),
    (128, (128, 64, 8, 3)),
    (128, (64, 64, 4, 3)),
)


def _ms(fn: Any) -> float:
    return float(triton.testing.do_bench(fn, warmup=25, rep=60, return_mode="median"))


def _per_sm(torch: Any, d: int, tiling: tuple[int, int, int, int]) -> int:
    """Blocks per SM of the compiled kernel (1 when it cannot be read)."""
    from attnsim.kernels.calibrate.microbench_blocks import compiled_kernel, occupancy
    from attnsim.kernels.triton.attn_fwd import attn_fwd_kernel

    bm, bn, w, st = tiling
    meta = dict(BLOCK_M=bm, BLOCK_N=bn, HEAD_DIM=d, CAUSAL=False)
    kernel = compiled_kernel(attn_fwd_kernel, meta, w, st)
    return occupancy(torch, kernel, w) if kernel is not None else 1


def measure(torch: Any) -> dict[str, list[dict[str, Any]]]:
    """`online-rows` entries for every tiling (see the module docstring)."""
    from attnsim.kernels.calibrate.microbench_masks import _common
    from attnsim.kernels.triton.attn_fwd import attention_fwd
    from attnsim.kernels.triton.common import ensure_allocator

    ensure_allocator()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    steps = []
    for d, tiling in TILINGS:
        bm, bn, w, st = tiling
        # compile once on a small call, then read the compiled kernel's occupancy
        small = torch.randn(1, 1, bm, d, device="cuda", dtype=torch.bfloat16)
        attention_fwd(small, small, small, block_m=bm, block_n=bn, num_warps=w, num_stages=st)
        k = min(_per_sm(torch, d, tiling), 4)
        q = torch.randn(1, 1, sms * k * bm, d, device="cuda", dtype=torch.bfloat16)
        times = []
        for n in ROW_STEPS:
            kk, v = (torch.randn(1, 1, n * bn, d, device="cuda", dtype=torch.bfloat16)
                     for _ in range(2))  # fmt: skip
            call = functools.partial(attention_fwd, q, kk, v, block_m=bm, block_n=bn,
                                     num_warps=w, num_stages=st)  # fmt: skip
            call()
            times.append(_ms(call) * 1e3)
            del kk, v
        for i in range(1, len(ROW_STEPS)):
            slope = (times[i] - times[i - 1]) / (ROW_STEPS[i] - ROW_STEPS[i - 1])
            steps.append({**_common(MODE, d, tiling, k), "step_us": round(slope, 4),
                          "steps": ROW_STEPS[i]})  # fmt: skip
        print(f"  {MODE} d{d} {tiling} k={k}: T={[round(t, 2) for t in times]}", file=sys.stderr)
        torch.cuda.empty_cache()
    return {"attention_steps": steps}


def merge(path: Path, found: dict[str, list[dict[str, Any]]], device: str) -> None:
    """Write the entries into a calibration file (this module's mode is replaced)."""
    from attnsim.kernels.calibrate.microbench_bwd import merge_modes

    merge_modes(path, found, (MODE,), "benchmarks/step_rows_probe.py", device)


def main(argv: list[str] | None = None) -> int:
    """Measure and write the entries (--out), or merge earlier ones (--merge, --entries)."""
    from attnsim.kernels.calibrate.microbench_bwd import entries_main

    description = (__doc__ or "").splitlines()[0]
    return entries_main(argv, description, "step_rows_probe", measure, merge)


if __name__ == "__main__":
    raise SystemExit(main())
