"""GPU only: the backward's TMA trials: dQ by TMA reductions, streamed tiles by TMA loads.

Run: PYTHONPATH=. python benchmarks/bwd_tma_probe.py --out $OUT/bwd-tma.csv
     [--head-dims 128] [--min-seq 4096] [--modes separate,atomic,tma] [--loads 00]
     [--diag 1,0] [--dp-first 0,1] [--causal-only] [--tilings 64x128x8x3,...]
     [--budget-s 200]

A trial. dq_mode "atomic" adds each tile's dQ with per-element float32 atomics, 8192 of them
per 64 x 128 tile, and on sm_90 compiles (Triton 3.6, 8 warps, head dim 128) to a dK/dV
kernel that spills about 1 KB a thread; "separate" recomputes QK^T and dO V^T in a second
kernel (7 matmuls where atomic runs 5) and has been the faster on every head-dim-128 shape
timed. "tma" keeps atomic's 5 matmuls and sends each tile's dQ as one TMA reduction
(`tensor_descriptor.atomic_add`). Separately, the streamed tiles (the dK/dV kernel's Q and
dO, the dQ kernel's K and V) come through pointers, which Triton 3.6 pipelines with cp.async
(an earlier version of this note said they were synchronous: wrong); `--loads 00,10,01,11`
times each mode with those tiles through tensor descriptors too (`attn_bwd.BWD_TMA_LOADS`,
column `tma_loads`), and `--diag 1,0` with the causal dK/dV kernel's diagonal tiles in a loop
of their own or in one loop that masks every tile (`attn_bwd.BWD_DIAG_LOOP`, column
`diag_loop`), and `--dp-first 0,1` each step's dO V^T product after the dV product or
right after Q K^T (`attn_bwd.BWD_DP_FIRST`, column `dp_first`). For every shape of
`bwd_probe.VALIDATION` and `HOLDOUT` with a head dim in --head-dims and seq >= --min-seq
(causal ones alone with --causal-only), this times the modes at each tiling of `TILINGS`
(or --tilings) and SDPA's cuDNN backward, in one run.
Each result is compared with the tiling's first one on the timed inputs (`max_diff`: the
float adds differ in order, nothing else) and, once per tiling, checked against float64
autograd on a small shape (`bwd_probe.check_ours`).

One CSV row per timing, flushed at once; the summary prints per shape each mode's best time
and cuDNN's time over the best of ours.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from itertools import product
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bwd_probe  # noqa: E402

from attnsim.kernels.triton import attn_bwd  # noqa: E402
from attnsim.kernels.triton.launch import PlanCache  # noqa: E402

MODES = ("separate", "atomic", "tma")
TILINGS = ((64, 128, 8, 3), (64, 128, 8, 2), (32, 128, 8, 3))
FIELDS = (
    "family", "suite", "batch", "heads", "kv_heads", "seq", "head_dim", "causal", "block_m",
    "block_n", "num_warps", "num_stages", "dq_mode", "tma_loads", "diag_loop", "dp_first",
    "median_ms",
    "p10_ms", "p90_ms",
    "tflops", "max_diff", "check", "status", "device", "torch", "triton", "timestamp",
)  # fmt: skip


def set_loads(on: tuple[bool, bool], diag_loop: bool = True, dp_first: bool = False) -> None:
    """Launch with the streamed tiles through descriptors or pointers from now on.

    `on`: (the dK/dV kernel's Q, dO tiles, the dQ kernel's K, V tiles); `diag_loop`:
    `attn_bwd.BWD_DIAG_LOOP` (False: the causal dK/dV kernel masks every tile in one loop);
    `dp_first`: `attn_bwd.BWD_DP_FIRST` (dO V^T issued right after Q K^T).
    """
    attn_bwd.BWD_TMA_LOADS = on
    attn_bwd.BWD_DIAG_LOOP = diag_loop
    attn_bwd.BWD_DP_FIRST = dp_first
    attn_bwd._PLANS = PlanCache()  # the plan cache's key has no such switch


def _time(fn) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    from triton.testing import do_bench

    med, p10, p90 = do_bench(fn, warmup=10, rep=60, quantiles=[0.5, 0.1, 0.9])
    return med, p10, p90


def main(argv: list[str] | None = None) -> int:
    """Time the three dQ modes and cuDNN on the chosen shapes; 2 without a CUDA GPU."""
    begin = time.monotonic()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    p.add_argument("--head-dims", default="128", help="head dims to time (comma-separated)")
    p.add_argument("--min-seq", type=int, default=4096, help="shortest sequence timed")
    p.add_argument("--modes", default=",".join(MODES), help="dq modes to time")
    p.add_argument(
        "--loads", default="00",
        help="BWD_TMA_LOADS settings to time: two digits each, dK/dV kernel then dQ kernel "
        "(00: pointers, 11: descriptors in both; e.g. 00,10,01,11)",
    )  # fmt: skip
    p.add_argument(
        "--diag", default="1",
        help="BWD_DIAG_LOOP settings to time (1: the causal diagonal tiles in a loop of their "
        "own, 0: one loop masking every tile; e.g. 1,0)",
    )  # fmt: skip
    p.add_argument(
        "--dp-first", default="0",
        help="BWD_DP_FIRST settings to time (0: dO V^T after the dV product, 1: right after "
        "Q K^T; e.g. 0,1 or 0,1,0,1 to alternate)",
    )  # fmt: skip
    p.add_argument("--causal-only", action="store_true", help="time the causal shapes alone")
    p.add_argument(
        "--tilings",
        default="",
        help="tilings to time, BMxBNxWARPSxSTAGES comma-separated (default: TILINGS)",
    )
    p.add_argument("--budget-s", type=float, default=200.0, help="stop timing after this long")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    if any(len(x) != 2 or set(x) - {"0", "1"} for x in args.loads.split(",")):
        p.error(f"--loads: expected two digits 0/1 each, got {args.loads!r}")
    loads = [(x[0] == "1", x[1] == "1") for x in args.loads.split(",")]
    if set(args.diag.split(",")) - {"0", "1"}:
        p.error(f"--diag: expected 0 and/or 1, got {args.diag!r}")
    diags = [x == "1" for x in args.diag.split(",")]
    if set(args.dp_first.split(",")) - {"0", "1"}:
        p.error(f"--dp-first: expected 0 and/or 1, got {args.dp_first!r}")
    firsts = [x == "1" for x in args.dp_first.split(",")]
    try:
        tilings = bwd_probe.parse_tilings(args.tilings) or list(TILINGS)
    except ValueError as exc:
        p.error(str(exc))
    if not torch.cuda.is_available():
        print("bwd_tma_probe: needs a CUDA GPU", file=sys.stderr)
        return 2
    dims = {int(d) for d in args.head_dims.split(",")}
    shapes = [
        s for s in bwd_probe.VALIDATION + bwd_probe.HOLDOUT
        if s.head_dim in dims and s.seq >= args.min_seq and (s.causal or not args.causal_only)
    ]  # fmt: skip
    info = bwd_probe.env_info()
    checks: dict[tuple, str] = {}  # type: ignore[type-arg]
    bwd_probe.warm_up_gpu()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    with args.out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for shape in shapes:
            if time.monotonic() - begin > args.budget_s:
                print(f"budget reached: {shape} and later not timed", flush=True)
                break
            case = bwd_probe.make_case(shape)
            base = bwd_probe.side_row(shape, info)
            best: dict[str, float] = {}
            ref_of = None
            for tiling, mode, tma_loads, diag, first in product(tilings, modes, loads, diags,
                                                                 firsts):  # fmt: skip
                if ref_of is not tiling:
                    ref, ref_of = None, tiling
                set_loads(tma_loads, diag, first)
                cfg = bwd_probe.Config("triton-bwd", *tiling, mode)
                row = {**base, "family": "triton-bwd", "dq_mode": mode}
                row |= dict(zip(FIELDS[8:12], tiling, strict=True))
                row["tma_loads"] = "".join(str(int(x)) for x in tma_loads)
                row["diag_loop"] = int(diag)
                row["dp_first"] = int(first)
                tag = f"{mode}+{row['tma_loads']}" + ("" if diag else "+1loop")
                tag += "+dpfirst" if first else ""
                try:
                    key = (shape.head_dim, shape.causal, shape.kv_heads != shape.heads, cfg,
                           tma_loads, diag, first)  # fmt: skip
                    if key not in checks:
                        checks[key] = bwd_probe.check_ours(shape, cfg)["status"]
                    row["check"] = checks[key]
                    fn = bwd_probe._ours(case, shape, cfg)
                    grads = [x.float() for x in fn()]
                    torch.cuda.synchronize()
                    if ref is None:
                        ref = grads
                    pairs = zip(grads, ref, strict=True)
                    row["max_diff"] = max((a - r).abs().max().item() for a, r in pairs)
                    med, p10, p90 = _time(fn)
                    row.update(median_ms=med, p10_ms=p10, p90_ms=p90, status="ok",
                               tflops=shape.flops / med / 1e9)  # fmt: skip
                    best[tag] = min(best.get(tag, float("inf")), med)
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    row["status"] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
                w.writerow(row)
                f.flush()
            med = bwd_probe.time_cudnn_row(case, shape, base, w)
            f.flush()
            del case
            torch.cuda.empty_cache()
            ours = min(best.values()) if best else float("nan")
            times = " ".join(f"{m} {t:.4f}" for m, t in best.items())
            line = (f"{shape.suite[:5]} {shape.batch}x{shape.heads}/{shape.kv_heads}x{shape.seq} "
                    f"d{shape.head_dim} c{int(shape.causal)}: {times} ms; cudnn {med:.4f}; "
                    f"cudnn/best {med / ours:.3f}")  # fmt: skip
            print(line, flush=True)
            lines.append(line)
    print(f"done in {time.monotonic() - begin:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
