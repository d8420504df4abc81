"""GPU only: the causal backward's launch order, head-major against head groups.

Run: PYTHONPATH=. python benchmarks/bwd_order_probe.py --out $OUT/bwd-order.csv
     [--measured CSV] [--groups 1,4,8,16] [--budget-s 150]

The causal dK/dV and dQ programs differ in length (key tile 0 walks every query tile, the
last one the diagonal only). Issued head-major, the last head's longest program starts in
the final wave and runs alone at the end; `kernels.triton.attn_bwd_kernel._launch_order`
issues them tile-major within groups of `kernels.spec.BWD_HEAD_GROUP` heads instead. This
probe times every causal shape of `bwd_probe.VALIDATION` and `HOLDOUT` at the best
configuration of `--measured` (a committed `bwd_probe` file; the timed-best tiling and dq
mode per shape) with each head group of `--groups` (1: head-major, the order before), and
SDPA's cuDNN backward in the same run. Each group's gradients are compared with group 1's on
the timed inputs (separate dQ: identical; atomic: the order of the float adds differs).

One CSV row per (shape, group) and one per cuDNN timing, flushed at once; the summary prints
each group's time over group 1's and cuDNN's time over ours.
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

from attnsim.kernels.triton import attn_bwd  # noqa: E402
from attnsim.kernels.triton.launch import PlanCache  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "kernels" / "measurements" / "bwd" / "bwd-h200-2026-12-06-groups.csv"
FIELDS = (
    "family", "suite", "batch", "heads", "kv_heads", "seq", "head_dim", "causal", "block_m",
    "block_n", "num_warps", "num_stages", "dq_mode", "head_group", "diag_loop", "median_ms",
    "p10_ms", "p90_ms", "max_diff", "status", "device", "torch", "triton", "timestamp",
)  # fmt: skip


def best_configs(path: Path) -> dict[tuple, bwd_probe.Config]:  # type: ignore[type-arg]
    """Per (suite, batch, heads, kv_heads, seq, head_dim): the fastest measured config of ours."""
    best: dict[tuple, tuple[float, bwd_probe.Config]] = {}  # type: ignore[type-arg]
    with path.open() as f:
        for r in csv.DictReader(f):
            if r["family"] != "triton-bwd" or r["status"] != "ok" or r["causal"] != "1":
                continue
            sizes = (int(r[k]) for k in ("batch", "heads", "kv_heads", "seq_q", "head_dim"))
            key = (r["suite"], *sizes)
            tiling = (int(r[k]) for k in ("block_m", "block_n", "num_warps", "num_stages"))
            cfg = bwd_probe.Config("triton-bwd", *tiling, r["dq_mode"])
            ms = float(r["median_ms"])
            if key not in best or ms < best[key][0]:
                best[key] = (ms, cfg)
    return {k: c for k, (_, c) in best.items()}


def set_group(group: int) -> None:
    """Launch the causal kernels with `group` heads per group from the next call on."""
    attn_bwd.BWD_HEAD_GROUP = group
    attn_bwd._PLANS = PlanCache()  # the plan cache's key has no head group


def main(argv: list[str] | None = None) -> int:
    """Time every causal shape at its best config per head group; 2 without a CUDA GPU."""
    begin = time.monotonic()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    p.add_argument("--measured", type=Path, default=MEASURED, help="bwd_probe CSV (best configs)")
    p.add_argument("--groups", default="1,4,8,16", help="head groups to time (1: head-major)")
    p.add_argument("--budget-s", type=float, default=150.0, help="stop timing after this long")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bwd_order_probe: needs a CUDA GPU", file=sys.stderr)
        return 2
    from triton.testing import do_bench

    groups = [int(g) for g in args.groups.split(",")]
    best = best_configs(args.measured)
    shapes = [s for s in bwd_probe.VALIDATION + bwd_probe.HOLDOUT if s.causal]
    info = bwd_probe.env_info()
    bwd_probe.warm_up_gpu()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = []
    with args.out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for shape in shapes:
            if time.monotonic() - begin > args.budget_s:
                print(f"budget reached: {shape} and later not timed")
                break
            key = (shape.suite, shape.batch, shape.heads, shape.kv_heads, shape.seq,
                   shape.head_dim)  # fmt: skip
            cfg = best.get(key)
            if cfg is None:
                continue
            case = bwd_probe.make_case(shape)
            base = {k: getattr(shape, k) for k in ("suite", "batch", "heads", "kv_heads", "seq")}
            base |= {"head_dim": shape.head_dim, "causal": 1, **info}
            base["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            times, ref = {}, None
            for g in groups:
                set_group(g)
                fn = bwd_probe._ours(case, shape, cfg)
                row = {**base, "family": "triton-bwd", "head_group": g,
                       "diag_loop": int(attn_bwd.BWD_DIAG_LOOP)}  # fmt: skip
                row |= {k: getattr(cfg, k) for k in FIELDS[8:13]}  # block_m .. dq_mode
                try:
                    grads = fn()
                    torch.cuda.synchronize()
                    if ref is None:
                        ref = [x.float() for x in grads]
                    pairs = zip(grads, ref, strict=True)
                    diff = max((a.float() - r).abs().max().item() for a, r in pairs)
                    med, p10, p90 = do_bench(fn, warmup=10, rep=50, quantiles=[0.5, 0.1, 0.9])
                    row.update(median_ms=med, p10_ms=p10, p90_ms=p90, max_diff=diff, status="ok")
                    times[g] = med
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    row["status"] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
                w.writerow(row)
                f.flush()
            set_group(8)
            med = bwd_probe.time_cudnn_row(case, shape, base, w)
            f.flush()
            del case
            torch.cuda.empty_cache()
            if 1 in times:
                rel = " ".join(f"G{g} {t / times[1]:.3f}" for g, t in times.items())
                vs = " ".join(f"G{g} {med / t:.3f}" for g, t in times.items())
                line = (f"{shape.suite[:5]} {shape.batch}x{shape.heads}/{shape.kv_heads}x"
                        f"{shape.seq} d{shape.head_dim} {cfg.block_m}x{cfg.block_n}"
                        f"w{cfg.num_warps}s{cfg.num_stages} {cfg.dq_mode}: G1 "
                        f"{times[1]:.4f} ms; time/G1: {rel}; cudnn/ours: {vs}")  # fmt: skip
                print(line, flush=True)
                summary.append(line)
    print(f"done in {time.monotonic() - begin:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
