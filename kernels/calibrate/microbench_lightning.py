"""Calibration of the Lightning-2 kernel's fused schedule (kernels.triton.lightning; GPU only).

`python -m attnsim.kernels.calibrate.microbench_lightning --out FILE` measures the chunk step
of the `fused` schedule (one program per value block x batch x head walks the chunks,
carrying the E x F state), as the GPU model (`mappers.gpu.lightning`) reads it: mode
`lightning-fused`, block_m = the chunk (block_c), block_n = the value block (block_f), for
every tiling of `LIGHTNING_TILINGS` and head dims 64 and 128, with 1 and 2 programs per SM,
and on grids of SMALL_GRIDS programs (under one per SM: entries with `programs`; a chain of
matmuls runs faster per step on a partly busy GPU than on a full wave).
`--merge FILE --entries OUT` writes them into a calibration file (no GPU needed).
`--gated` measures the GLA kernel the same way instead (`gates=`, log gates as
benchmarks/lightning_probe.py --gla draws them): mode `lightning-fused-gla`, at the tilings
GLA runs on sm_90 (`lightning_tilings(d, gated=True)` and `GLA_EXTRA_TILINGS`).

Method (as `microbench_bwd`): one wave of SMs x k programs (batch 1, heads = SMs x k x
block_f / F; or SMALL_GRIDS programs), per-head decay on, timed at two lengths of n chunks
(n = STEPS): step = (T(n2) - T(n1)) / (n2 - n1), fixed = T(n1) - n1 * step - floor. These
shapes (batch 1, 4-264 heads, 16 or 64 chunks) are none of benchmarks/lightning_probe.py's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import triton
from triton.runtime.errors import OutOfResources

STEPS = (16, 64)
SMALL_GRIDS = (16, 48)  # grids under one program per SM (the probe's batch-1 shapes run such)
HEAD_DIMS = (64, 128)
MODE = "lightning-fused"
MODE_GLA = "lightning-fused-gla"


def _ms(fn: Any) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median"))


def _tiling(torch: Any, tiling: tuple[int, int, int, int], d: int, gated: bool) -> None:
    """Launch the tiling once on a small problem (raises OutOfResources when it cannot run)."""
    from attnsim.kernels.triton.lightning import lightning_fwd

    q = torch.randn(1, 1, 2 * tiling[0], d, device="cuda", dtype=torch.bfloat16)
    gates = torch.full((1, 1, 2 * tiling[0], d), -0.01, device="cuda") if gated else None
    lightning_fwd(q, q, q, None, *tiling, schedule="fused", gates=gates)
    torch.cuda.synchronize()


def measure(torch: Any, gated: bool = False) -> dict[str, list[dict[str, Any]]]:
    """`attention_steps` and `attention_blocks` entries of mode lightning-fused.

    `gated`: of mode lightning-fused-gla instead (the GLA kernel at its sm_90 tilings).
    """
    from attnsim.einsum_ir.library.zoo_linear import GLA_TAU
    from attnsim.kernels.calibrate.microbench_blocks import bench_floor_us
    from attnsim.kernels.spec_lightning import GLA_EXTRA_TILINGS, lightning_tilings
    from attnsim.kernels.triton.lightning import LIGHTNING_TILINGS, lightning_fwd

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    floor = bench_floor_us(torch)
    steps, blocks = [], []
    mode = MODE_GLA if gated else MODE
    for d in HEAD_DIMS:
        tilings = LIGHTNING_TILINGS
        if gated:
            tilings = (*lightning_tilings(d, gated=True), *GLA_EXTRA_TILINGS)
        for c, bf, w, st in tilings:
            if bf > d:
                continue
            try:
                _tiling(torch, (c, bf, w, st), d, gated)
            except OutOfResources as exc:  # e.g. GLA's (128, 128, 8, 2): shared memory
                print(f"  d{d} c{c} f{bf} w{w} s{st}: skipped ({exc})", file=sys.stderr)
                continue
            for k, grid in ((1, 0), (2, 0), *((1, n) for n in SMALL_GRIDS)):
                heads = (grid or sms * k) * bf // d
                times = []
                for n in STEPS:
                    q, kk, v = (
                        torch.randn(1, heads, n * c, d, device="cuda", dtype=torch.bfloat16)
                        for _ in range(3)
                    )
                    lam = torch.linspace(0.9, 0.999, heads, device="cuda")
                    gates = None
                    if gated:  # GLA's gates as lightning_probe.py --gla draws them; no decay
                        x = torch.randn(1, heads, n * c, d, device="cuda")
                        gates, lam = torch.nn.functional.logsigmoid(x) / GLA_TAU, None

                    def call(q=q, kk=kk, v=v, lam=lam, t=(c, bf, w, st), g=gates) -> None:  # type: ignore[no-untyped-def]
                        lightning_fwd(q, kk, v, lam, *t, schedule="fused", gates=g)

                    times.append(_ms(call) * 1e3)
                step = (times[1] - times[0]) / (STEPS[1] - STEPS[0])
                fixed = times[0] - STEPS[0] * step - floor
                common = dict(mode=mode, dtype="bf16", head_dim=d, block_m=c, block_n=bf,
                              num_warps=w, num_stages=st, blocks_per_sm=k)  # fmt: skip
                small = {"programs": grid} if grid else {}
                steps.append({**common, "step_us": round(step, 4), **small})
                blocks.append({**common, "blocks": grid or sms * k, "waves": 1,
                               "tiles": "device", "fixed_us": round(fixed, 3),
                               "step_us": round(step, 4)})  # fmt: skip
                print(f"  d{d} c{c} f{bf} w{w} s{st} k={k} grid {grid or sms * k}: step "
                      f"{step:.3f} us, fixed {fixed:.2f} us", file=sys.stderr)  # fmt: skip
    return {"attention_steps": steps, "attention_blocks": blocks}


def merge(path: Path, found: dict[str, Any], device: str) -> None:
    """Write the entries into a calibration file, replacing earlier ones of their modes."""
    from attnsim.kernels.calibrate.microbench_bwd import merge_modes

    modes = tuple(dict.fromkeys(e["mode"] for e in found.get("attention_steps", ()))) or (MODE,)
    note = "python -m attnsim.kernels.calibrate.microbench_lightning"
    merge_modes(path, found, modes, note, device)


def main(argv: list[str] | None = None) -> int:
    """Measure and write the entries (--out; --gated: GLA's), or merge earlier ones."""
    from attnsim.kernels.calibrate.microbench_bwd import entries_main

    description = (__doc__ or "").splitlines()[0]
    gated = ("--gated", f"measure the GLA kernel (gates=) instead: mode {MODE_GLA}")
    return entries_main(argv, description, "microbench_lightning", measure, merge, (gated,))


if __name__ == "__main__":
    raise SystemExit(main())
