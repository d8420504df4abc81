"""GPU only: GQA prefill with the plain 1-pass kernel against MHA and SDPA (enable_gqa).

Run: PYTHONPATH=. python benchmarks/gqa_probe.py --out DIR [--budget-s 200]

Per shape (H = 32 query heads, G K/V heads, head dim 128, bf16): the kernel with G K/V heads,
the same kernel on MHA inputs (K/V repeated to H heads), and SDPA with `enable_gqa=True` on
its cuDNN and flash backends, timed in one run with `triton.testing.do_bench` (median, L2
flushed). Each GQA output is checked against SDPA's. Writes DIR/gqa-<device>-<date>.csv.
With --ncu-row N, instead runs row N's GQA and MHA kernels once each (for `ncu`).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
import triton.testing
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnsim.kernels.spec import device_slug
from attnsim.kernels.triton.attn_fwd import attention_fwd

SHAPES = [  # (batch, heads, kv_heads, seq, causal)
    (1, 32, 8, 4096, True),
    (1, 32, 8, 8192, True),
    (2, 32, 8, 4096, False),
    (1, 32, 4, 8192, True),
    (4, 32, 1, 2048, True),
    (1, 64, 8, 8192, True),
]
TILING = dict(block_m=128, block_n=64, num_warps=8, num_stages=3)
FIELDS = (
    "device", "batch", "heads", "kv_heads", "seq", "head_dim", "causal", "block_m", "block_n",
    "num_warps", "num_stages", "gqa_ms", "mha_ms", "sdpa_cudnn_ms", "sdpa_flash_ms",
    "max_abs_err", "torch", "triton", "timestamp",
)  # fmt: skip


def _ms(fn) -> float:  # type: ignore[no-untyped-def]
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def _sdpa(backend, q, k, v, causal):  # type: ignore[no-untyped-def]
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)


def _inputs(b, h, g, s, d=128):  # type: ignore[no-untyped-def]
    gen = torch.Generator(device="cuda").manual_seed(b * 1000 + h + g + s)
    mk = lambda n: torch.randn(b, n, s, d, device="cuda", generator=gen, dtype=torch.bfloat16)  # noqa: E731
    return mk(h), mk(g), mk(g)


def main() -> int:
    """Check and time every shape; write the CSV (module docstring)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--budget-s", type=float, default=200)
    ap.add_argument("--ncu-row", type=int, default=None)
    args = ap.parse_args()
    if args.ncu_row is not None:
        b, h, g, s, causal = SHAPES[args.ncu_row]
        q, k, v = _inputs(b, h, g, s)
        kr, vr = k.repeat_interleave(h // g, 1), v.repeat_interleave(h // g, 1)
        attention_fwd(q, k, v, causal, **TILING)
        attention_fwd(q, kr, vr, causal, **TILING)
        torch.cuda.synchronize()
        return 0
    start = time.monotonic()
    name = torch.cuda.get_device_name()
    stamp = dt.datetime.now(dt.UTC)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gqa-{device_slug(name)}-{stamp:%Y-%m-%d}.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        for b, h, g, s, causal in SHAPES:
            if time.monotonic() - start > args.budget_s:
                print("budget spent; stopping", file=sys.stderr)
                break
            q, k, v = _inputs(b, h, g, s)
            kr, vr = k.repeat_interleave(h // g, 1), v.repeat_interleave(h // g, 1)
            out = attention_fwd(q, k, v, causal, **TILING)
            ref = _sdpa(SDPBackend.FLASH_ATTENTION, q, k, v, causal)
            err = (out.float() - ref.float()).abs().max().item()
            assert torch.isfinite(out).all() and err < 2e-2, err
            times = {
                "gqa_ms": _ms(functools.partial(attention_fwd, q, k, v, causal, **TILING)),
                "mha_ms": _ms(functools.partial(attention_fwd, q, kr, vr, causal, **TILING)),
            }
            for key, backend in (
                ("sdpa_cudnn_ms", SDPBackend.CUDNN_ATTENTION),
                ("sdpa_flash_ms", SDPBackend.FLASH_ATTENTION),
            ):
                try:
                    times[key] = _ms(functools.partial(_sdpa, backend, q, k, v, causal))
                except RuntimeError as exc:  # backend unavailable for this shape
                    print(f"{key}: {exc}".splitlines()[0], file=sys.stderr)
                    times[key] = float("nan")
            row = dict(
                device=name, batch=b, heads=h, kv_heads=g, seq=s, head_dim=128,
                causal=int(causal), **{k2: TILING[k2] for k2 in TILING}, **times,
                max_abs_err=err, torch=torch.__version__, triton=triton.__version__,
                timestamp=stamp.isoformat(),
            )  # fmt: skip
            writer.writerow(row)
            fh.flush()
            print(
                f"{b}x{h}/{g}x{s} causal={int(causal)}: gqa {times['gqa_ms']:.3f} ms, "
                f"mha {times['mha_ms']:.3f}, cudnn {times['sdpa_cudnn_ms']:.3f}, "
                f"flash {times['sdpa_flash_ms']:.3f}",
                flush=True,
            )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
