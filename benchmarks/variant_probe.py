"""GPU only: quick timing of 1-pass Variant flags or tile-access modes vs SDPA cuDNN/flash.

Run: PYTHONPATH=. python benchmarks/variant_probe.py [--budget-s 150]
     PYTHONPATH=. python benchmarks/variant_probe.py --tiles [--budget-s 150]

Default: Variant flags on long head-dim-128 shapes (the cuDNN metric). `--tiles`: the base
kernel with in-kernel tensor descriptors (tma=True) vs host-built ones (tma="host") on short
and under-filled shapes, where the per-program start-up cost matters, and on two long ones.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial

import torch
import triton.testing
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnsim.kernels.triton.attn_fwd import Variant, attention_fwd

SHAPES = [
    (4, 16, 4096, 128, False),
    (2, 16, 8192, 128, False),
    (1, 16, 16384, 128, False),
    (2, 16, 8192, 128, True),
    (2, 16, 8192, 64, False),
]
TILINGS = [(128, 128, 8, 3), (128, 128, 4, 3), (128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 2)]
TILE_SHAPES = [
    (1, 4, 512, 64, False),
    (1, 4, 1024, 128, False),
    (1, 4, 2048, 64, True),
    (32, 16, 512, 128, False),
    (32, 16, 512, 64, True),
    (16, 16, 1024, 128, True),
    (4, 16, 4096, 128, False),
    (1, 16, 16384, 64, True),
]
TILE_TILINGS = [(128, 128, 8, 3), (64, 64, 4, 3), (128, 64, 8, 3), (128, 64, 4, 3)]
VARIANTS = [
    Variant(),
    Variant(poly_exp=1),
    Variant(poly_exp=2),
    Variant(warp_specialize=True),
    Variant(warp_specialize=True, poly_exp=1),
    Variant(prescale_q=True, poly_exp=1),
]


def _ms(fn) -> float:  # type: ignore[no-untyped-def]
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def main() -> int:
    """Time every variant x tiling per shape; print ratios and the hd128 metric."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-s", type=float, default=150)
    ap.add_argument("--tiles", action="store_true", help="compare tile-access modes")
    args = ap.parse_args()
    shapes, tilings = (TILE_SHAPES, TILE_TILINGS) if args.tiles else (SHAPES, TILINGS)
    runs = [(Variant(), t) for t in (True, "host")] if args.tiles else [(v, None) for v in VARIANTS]
    t0 = time.time()
    metric: dict[str, list[float]] = {}
    for b, h, s, d, causal in shapes:
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        flops = 4 * b * h * s * s * d / (2 if causal else 1)
        ref = {}
        sdpa = torch.nn.functional.scaled_dot_product_attention
        backends = (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION))
        for name, be in backends:
            with sdpa_kernel(be):
                f = partial(sdpa, q, k, v, is_causal=causal)
                out_ref = f()
                ref[name] = _ms(f)
        print(f"shape {b}x{h}x{s} d{d} c{int(causal)}: cudnn {flops / ref['cudnn'] / 1e9:.0f} "
              f"flash {flops / ref['flash'] / 1e9:.0f} TFLOP/s", flush=True)  # fmt: skip
        for var, tma in runs:
            name = f"{var.label()} tma={tma}"
            best = None
            for t in tilings:
                if time.time() - t0 > args.budget_s:
                    print("  budget spent", flush=True)
                    break
                bm, bn, w, st = t
                try:
                    tile = dict(block_m=bm, block_n=bn, num_warps=w, num_stages=st)
                    call = partial(attention_fwd, q, k, v, causal, variant=var, tma=tma, **tile)
                    o = call()
                    err = ((o.float() - out_ref.float()).norm() / out_ref.float().norm()).item()
                    ms = _ms(call)
                except Exception as exc:  # noqa: BLE001
                    why = f"{type(exc).__name__}: {str(exc)[:150]}"
                    print(f"  {name:28s} {t}: FAILED {why}", flush=True)
                    continue
                tf = flops / ms / 1e9
                ok = err < 2e-2
                flag = "" if ok else " BAD"
                print(
                    f"  {name:28s} {t}: {tf:6.1f} TFLOP/s /cudnn {ref['cudnn'] / ms:.3f} "
                    f"/flash {ref['flash'] / ms:.3f} err {err:.1e}{flag}",
                    flush=True,
                )
                if ok and (best is None or ms < best):
                    best = ms
            if best is not None and d == 128 and not causal:
                metric.setdefault(name, []).append(ref["cudnn"] / best)
    for name, r in metric.items():
        print(f"hd128 nc mean cudnn/ours {name}: {sum(r) / len(r):.3f} over {len(r)} shapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
