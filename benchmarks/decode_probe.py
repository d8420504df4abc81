"""GPU only: decode split-K (`attention_decode`) against the unsplit kernel and SDPA.

Run: PYTHONPATH=. python benchmarks/decode_probe.py --out DIR [--budget-s 200]

One query per head against a bf16 KV cache, head dim 128. Per shape, in one run: the copy
bandwidth of the device (a 4 GiB device-to-device copy, bytes read + written over time), the
kernel with its default splits and with one split, and SDPA (`enable_gqa=True`) on its flash,
cuDNN and memory-efficient backends, each timed with `triton.testing.do_bench` (median, L2
flushed). Effective bandwidth = K and V bytes / time. Each output is checked against SDPA.
Writes DIR/decode-<device>-<date>.csv.
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

from attnsim.kernels.triton.attn_decode import attention_decode, default_splits
from attnsim.kernels.triton.common import num_sms

SHAPES = [  # (batch, heads, kv_heads, cache length)
    (1, 32, 8, 8192),
    (1, 32, 8, 32768),
    (1, 32, 8, 131072),
    (1, 32, 8, 524288),
    (4, 32, 8, 32768),
    (16, 32, 8, 8192),
    (64, 32, 8, 4096),
    (1, 32, 32, 32768),
    (8, 64, 8, 16384),
]
BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}
FIELDS = (
    "device", "batch", "heads", "kv_heads", "seq_k", "head_dim", "splits", "kernel_ms",
    "one_split_ms", "flash_ms", "cudnn_ms", "efficient_ms", "kv_bytes", "copy_gbps",
    "max_abs_err", "torch", "triton", "timestamp",
)  # fmt: skip


def _ms(fn) -> float:  # type: ignore[no-untyped-def]
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def _sdpa(backend, q, k, v):  # type: ignore[no-untyped-def]
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)


def main() -> int:
    """Check and time every shape; write the CSV (module docstring)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=200)
    args = ap.parse_args()
    start = time.monotonic()
    name = torch.cuda.get_device_name()
    stamp = dt.datetime.now(dt.UTC)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"decode-{name.split()[-1].lower()}-{stamp:%Y-%m-%d}.csv"
    src = torch.empty(2**31, dtype=torch.int16, device="cuda")
    dst = torch.empty_like(src)
    copy_gbps = 2 * src.numel() * 2 / (_ms(functools.partial(dst.copy_, src)) * 1e-3) / 1e9
    del src, dst
    print(f"copy bandwidth {copy_gbps:,.0f} GB/s (read + write)")
    sms = num_sms(torch.cuda.current_device())
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        for b, h, g, s in SHAPES:
            if time.monotonic() - start > args.budget_s:
                print("budget spent; stopping", file=sys.stderr)
                break
            gen = torch.Generator(device="cuda").manual_seed(b + h + g + s)
            q = torch.randn(b, h, 1, 128, device="cuda", generator=gen, dtype=torch.bfloat16)
            k, v = (
                torch.randn(b, g, s, 128, device="cuda", generator=gen, dtype=torch.bfloat16)
                for _ in range(2)
            )
            ref = _sdpa(SDPBackend.MATH if s <= 32768 else SDPBackend.FLASH_ATTENTION, q, k, v)
            out = attention_decode(q, k, v)
            err = (out.float() - ref.float()).abs().max().item()
            assert torch.isfinite(out).all() and err < 2e-2, err
            row = dict(
                device=name, batch=b, heads=h, kv_heads=g, seq_k=s, head_dim=128,
                splits=default_splits(b, g, s, sms),
                kernel_ms=_ms(functools.partial(attention_decode, q, k, v)),
                one_split_ms=_ms(functools.partial(attention_decode, q, k, v, splits=1)),
                kv_bytes=2 * k.numel() * 2, copy_gbps=copy_gbps, max_abs_err=err,
                torch=torch.__version__, triton=triton.__version__, timestamp=stamp.isoformat(),
            )  # fmt: skip
            for label, backend in BACKENDS.items():
                try:
                    row[f"{label}_ms"] = _ms(functools.partial(_sdpa, backend, q, k, v))
                except RuntimeError as exc:  # backend unavailable for this shape
                    print(f"{label}: {str(exc).splitlines()[0]}", file=sys.stderr)
                    row[f"{label}_ms"] = float("nan")
            writer.writerow(row)
            fh.flush()
            gbps = row["kv_bytes"] / (row["kernel_ms"] * 1e-3) / 1e9
            best = min(row[f"{x}_ms"] for x in BACKENDS if row[f"{x}_ms"] == row[f"{x}_ms"])
            print(
                f"{b}x{h}/{g}x{s}: splits {row['splits']} {row['kernel_ms']:.3f} ms "
                f"({gbps:,.0f} GB/s), one split {row['one_split_ms']:.3f} ms, "
                f"best SDPA {best:.3f} ms",
                flush=True,
            )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
