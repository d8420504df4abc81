"""GPU only: the backward's dK/dV and dQ kernels timed apart, per tiling (separate dQ mode).

Run: PYTHONPATH=. python benchmarks/bwd_kernels_probe.py --out $OUT/bwd-kernels.csv
     [--match head_dim=128] [--min-seq 4096] [--tilings 64x128x8x3,...] [--budget-s 240]

A trial (issue 15's cuDNN bar). In dq_mode "separate" one call runs three kernels: the
D = rowsum(dO * O) pre-pass, the dK/dV kernel (programs over key tiles: holds block_n keys,
streams block_m queries) and the dQ kernel (programs over query tiles: holds block_n
queries, streams block_m keys), all at the call's one tiling. Nothing says the two main
kernels are fastest at the same tiling. For every shape of `bwd_probe.VALIDATION` and
`HOLDOUT` that --match and --min-seq keep, this times each kernel alone (`attn_bwd.jit_launch`,
do_bench median) at every tiling of TILINGS (or --tilings), the whole call at each tiling,
and SDPA's cuDNN backward, in one run. Each tiling is first checked against float64 autograd
on a small shape (`bwd_probe.check_ours`); each kernel's outputs on the timed shape are
compared with the first tiling's (`max_diff`).

One CSV row per timing (`kernel`: prepass, dkdv, dq or call), flushed at once. The summary
prints per shape the best joint call, the best dK/dV and dQ kernels (their tilings), what the
best pair would take (pre-pass + dK/dV + dQ, each timed alone) and cuDNN over each.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bwd_probe  # noqa: E402

from attnsim.kernels.calibrate.microbench_bwd import compile_in_workers  # noqa: E402
from attnsim.kernels.triton.attn_bwd import bwd_launches, jit_launch  # noqa: E402
from attnsim.kernels.triton.common import default_scale  # noqa: E402

TILINGS = (
    (64, 128, 8, 3), (64, 128, 8, 2), (64, 128, 8, 4), (32, 128, 8, 3), (32, 128, 4, 3),
    (128, 128, 8, 2), (128, 64, 8, 3), (128, 64, 4, 3), (64, 64, 4, 3), (32, 64, 4, 4),
    (64, 128, 16, 3), (128, 128, 16, 2),
)  # fmt: skip
FIELDS = (
    "kernel", "suite", "batch", "heads", "kv_heads", "seq", "head_dim", "causal", "block_m",
    "block_n", "num_warps", "num_stages", "median_ms", "p10_ms", "p90_ms", "max_diff", "check",
    "status", "device", "torch", "triton", "timestamp",
)  # fmt: skip


def _time(fn) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    from triton.testing import do_bench

    med, p10, p90 = do_bench(fn, warmup=10, rep=60, quantiles=[0.5, 0.1, 0.9])
    return med, p10, p90


def kernels_of(case: dict, shape: bwd_probe.Shape, tiling: tuple[int, int, int, int]) -> dict:  # type: ignore[type-arg]
    """Zero-argument launches of the pre-pass, dK/dV and dQ kernels at `tiling`, and outputs."""
    q, k, v, o, do, lse = (case[n] for n in ("q", "k", "v", "o", "do", "lse"))
    b, h, s, d = q.shape
    specs = bwd_launches(b, h, k.shape[1], s, s, d, q.dtype, shape.causal, default_scale(d),
                         tiling, "separate")  # fmt: skip
    delta = torch.empty((b, h, s), device=q.device, dtype=torch.float32)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    return {
        "prepass": lambda: jit_launch(specs[0], o, do, delta, delta),
        "dkdv": lambda: jit_launch(specs[1], q, k, v, do, dq, dk, dv, lse, delta),
        "dq": lambda: jit_launch(specs[2], q, k, v, do, dq, lse, delta),
        "outputs": {"prepass": (delta,), "dkdv": (dk, dv), "dq": (dq,)},
    }


def main(argv: list[str] | None = None) -> int:
    """Time the kernels apart and together per tiling, and cuDNN; 2 without a CUDA GPU."""
    begin = time.monotonic()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    p.add_argument("--match", default="head_dim=128", help="bwd_probe.matches filter")
    p.add_argument("--min-seq", type=int, default=4096, help="shortest sequence timed")
    p.add_argument("--tilings", default="", help="BMxBNxWARPSxSTAGES, comma-separated")
    p.add_argument("--budget-s", type=float, default=240.0, help="stop timing after this long")
    args = p.parse_args(argv)
    try:
        tilings = bwd_probe.parse_tilings(args.tilings) or list(TILINGS)
    except ValueError as exc:
        p.error(str(exc))
    try:
        shapes = [
            s for s in bwd_probe.VALIDATION + bwd_probe.HOLDOUT
            if bwd_probe.matches(s, args.match) and s.seq >= args.min_seq and s.kv_heads == s.heads
        ]  # fmt: skip
    except ValueError as exc:
        p.error(str(exc))
    if not torch.cuda.is_available():
        print("bwd_kernels_probe: needs a CUDA GPU", file=sys.stderr)
        return 2
    cfgs = [bwd_probe.Config("triton-bwd", *t, "separate") for t in tilings]
    jobs = [
        j
        for j in bwd_probe.compile_jobs(shapes, cfgs)
        if j[1] != bwd_probe.HOST_SHAPE[1] or j[3] != bwd_probe.HOST_SHAPE[2]
    ]  # not the host probe's calls
    print(compile_in_workers(jobs, 14, 240.0, forward=False), flush=True)
    info = bwd_probe.env_info()
    checks: dict[tuple, str] = {}  # type: ignore[type-arg]
    bwd_probe.warm_up_gpu()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")  # cuDNN rows: its family
        w.writeheader()
        for shape in shapes:
            if time.monotonic() - begin > args.budget_s:
                print(f"budget reached: {shape} and later not timed", flush=True)
                break
            case = bwd_probe.make_case(shape)
            base = bwd_probe.side_row(shape, info)
            best: dict[str, tuple[float, tuple]] = {}  # type: ignore[type-arg]
            ref: dict[str, list] = {}  # type: ignore[type-arg]
            for tiling in tilings:
                cfg = bwd_probe.Config("triton-bwd", *tiling, "separate")
                key = (shape.head_dim, shape.causal, cfg)
                try:
                    if key not in checks:
                        checks[key] = bwd_probe.check_ours(shape, cfg)["status"]
                    ks = kernels_of(case, shape, tiling)
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    checks[key] = f"error: {type(exc).__name__}: {str(exc)[:160]}"
                    ks = None
                for name in ("prepass", "dkdv", "dq", "call"):
                    row = {**base, "kernel": name, "check": checks[key]}
                    row |= dict(zip(FIELDS[8:12], tiling, strict=True))
                    try:
                        if ks is None:
                            raise RuntimeError(checks[key])
                        if name == "call":
                            fn = bwd_probe._ours(case, shape, cfg)
                        else:
                            fn = ks[name]
                            fn()
                            torch.cuda.synchronize()
                            outs = [x.float() for x in ks["outputs"][name]]
                            first = ref.setdefault(name, outs)
                            row["max_diff"] = max(
                                (a - r).abs().max().item() for a, r in zip(outs, first, strict=True)
                            )
                        med, p10, p90 = _time(fn)
                        row.update(median_ms=med, p10_ms=p10, p90_ms=p90, status="ok")
                        if not checks[key].startswith("ok"):
                            row["status"] = "timed; check failed"
                        elif best.get(name, (float("inf"),))[0] > med:
                            best[name] = (med, tiling)
                    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                        row["status"] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
                    w.writerow(row)
                    f.flush()
            cudnn = bwd_probe.time_cudnn_row(case, shape, {**base, "kernel": "cudnn"}, w)
            f.flush()
            del case
            torch.cuda.empty_cache()
            if all(n in best for n in ("prepass", "dkdv", "dq", "call")):
                pair = best["prepass"][0] + best["dkdv"][0] + best["dq"][0]
                print(
                    f"{shape.suite[:5]} {shape.batch}x{shape.heads}x{shape.seq} "
                    f"c{int(shape.causal)}: call {best['call'][0]:.3f} {best['call'][1]}; "
                    f"dkdv {best['dkdv'][0]:.3f} {best['dkdv'][1]}; dq {best['dq'][0]:.3f} "
                    f"{best['dq'][1]}; pair {pair:.3f}; cudnn {cudnn:.3f}: "
                    f"x{cudnn / best['call'][0]:.3f} joint, x{cudnn / pair:.3f} pair",
                    flush=True,
                )
    print(f"done in {time.monotonic() - begin:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
