"""GPU only: the causal 1-pass forward's launch order, head-major against head groups.

Run: PYTHONPATH=. python benchmarks/fwd_order_probe.py --out $OUT/fwd-order.csv
     [--groups 1,4,8,16] [--budget-s 150]

The forward kernel (`kernels.triton.attn_fwd`, "plain" schedule) issues a causal call's
programs head-major, each head's longest query tiles first, so the last head's longest tile
starts in the final wave. The backward now issues its programs tile-major within groups of
heads (`kernels.triton.launch_order`); this probe times the same order in the forward
(`kernels.spec.FWD_HEAD_GROUP`, 1 by default and in every committed measurement) on the
causal shapes of the validation, holdout and GQA suites at each shape's fastest plain tiling
in the committed H200 files, with each head group of `--groups` in one run. Each group's
output is compared with group 1's (the same programs: identical).

One CSV row per (shape, group), flushed at once; the summary prints each group's time over
group 1's. A trial: no model prices a forward head group.
"""

from __future__ import annotations

import argparse
import csv
import functools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASURED = tuple(
    ROOT / "kernels" / "measurements" / f
    for f in (
        "validation-h200-2026-11-30.csv", "holdout-h200-2026-11-30.csv",
        "gqa-validation-h200-2026-12-03.csv", "gqa-holdout-h200-2026-12-03.csv",
    )
)  # fmt: skip
FIELDS = (
    "batch", "heads", "kv_heads", "seq", "head_dim", "block_m", "block_n", "num_warps",
    "num_stages", "head_group", "median_ms", "p10_ms", "p90_ms", "max_diff", "status", "device",
)  # fmt: skip


def best_plain(paths: tuple[Path, ...] = MEASURED) -> dict[tuple[int, ...], tuple[int, ...]]:
    """(batch, heads, kv_heads, seq, head_dim) -> the fastest plain 1-pass tiling, causal only."""
    best: dict[tuple[int, ...], tuple[float, tuple[int, ...]]] = {}
    for path in paths:
        with path.open() as f:
            for r in csv.DictReader(f):
                plain = r.get("schedule", "plain") in ("", "plain")
                if r["family"] != "triton-1pass" or r["causal"] != "1" or not plain:
                    continue
                if r["seq_q"] != r["seq_k"]:
                    continue
                kv = int(r.get("kv_heads") or r["heads"])
                key = (int(r["batch"]), int(r["heads"]), kv, int(r["seq_q"]), int(r["head_dim"]))
                tiling = tuple(int(r[k]) for k in ("block_m", "block_n", "num_warps", "num_stages"))
                ms = float(r["median_ms"])
                if key not in best or ms < best[key][0]:
                    best[key] = (ms, tiling)
    return {k: t for k, (_, t) in best.items()}


def main(argv: list[str] | None = None) -> int:
    """Time each causal shape per head group; 2 without a CUDA GPU."""
    begin = time.monotonic()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    p.add_argument("--groups", default="1,4,8,16", help="head groups to time (1: head-major)")
    p.add_argument("--budget-s", type=float, default=150.0, help="stop timing after this long")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("fwd_order_probe: needs a CUDA GPU", file=sys.stderr)
        return 2
    from triton.testing import do_bench

    from attnsim.kernels.triton import attn_fwd

    groups = [int(g) for g in args.groups.split(",")]
    device = torch.cuda.get_device_name(0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for (b, h, kv, n, d), (bm, bn, warps, stages) in sorted(best_plain().items()):
            if time.monotonic() - begin > args.budget_s:
                print("budget reached: the remaining shapes are not timed")
                break
            gen = torch.Generator(device="cuda").manual_seed(0)
            q = torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16, generator=gen)
            k, v = (torch.randn(b, kv, n, d, device="cuda", dtype=torch.bfloat16, generator=gen)
                    for _ in range(2))  # fmt: skip
            times, ref = {}, None
            for g in groups:
                attn_fwd.FWD_HEAD_GROUP = g
                attn_fwd._PLANS.clear()  # the plan key has no head group
                row = dict(batch=b, heads=h, kv_heads=kv, seq=n, head_dim=d, block_m=bm,
                           block_n=bn, num_warps=warps, num_stages=stages, head_group=g,
                           device=device)  # fmt: skip
                fn = functools.partial(
                    attn_fwd.attention_fwd, q, k, v, causal=True, block_m=bm, block_n=bn,
                    num_warps=warps, num_stages=stages,
                )  # fmt: skip
                try:
                    out = fn().float()
                    ref = out if ref is None else ref
                    med, p10, p90 = do_bench(fn, warmup=10, rep=50, quantiles=[0.5, 0.1, 0.9])
                    row |= dict(median_ms=med, p10_ms=p10, p90_ms=p90, status="ok",
                                max_diff=(out - ref).abs().max().item())  # fmt: skip
                    times[g] = med
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    row["status"] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
                w.writerow(row)
                f.flush()
            attn_fwd.FWD_HEAD_GROUP = 1
            if 1 in times:
                rel = " ".join(f"G{g} {t / times[1]:.3f}" for g, t in times.items())
                print(f"{b}x{h}/{kv}x{n} d{d} {bm}x{bn}w{warps}s{stages}: G1 {times[1]:.4f} ms; "
                      f"{rel}", flush=True)  # fmt: skip
            del q, k, v
            torch.cuda.empty_cache()
    print(f"done in {time.monotonic() - begin:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
