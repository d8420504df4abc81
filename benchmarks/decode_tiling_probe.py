"""GPU only: the decode kernel's K/V pipelining depth and tile width at batch 1, long caches.

Run: PYTHONPATH=. python benchmarks/decode_tiling_probe.py --out DIR [--wide]

Per cache length (32K, 128K, 512K; batch 1, 32 query / 8 K/V heads, head dim 128, bf16):
split-K (16, 32, 64 splits) and stream-K (2 and 3 programs per SM) for block_n 64/128,
num_stages 2/3/4, 4 warps, against SDPA's cuDNN and flash backends, all in one run
(triton.testing.do_bench, median, L2 flushed). Writes DIR/decode-tiling-<device>-<date>.csv.
`--wide`: split-K with 8/16/32 splits and stream-K with 1-2 programs per SM, block_n 64/128,
4 or 8 warps, 3-5 stages (DIR/decode-tiling-wide-<device>-<date>.csv).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import itertools
from pathlib import Path

import torch
import torch.nn.functional as F
import triton.testing
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnsim.kernels.spec import device_slug
from attnsim.kernels.triton.attn_decode import attention_decode
from attnsim.kernels.triton.common import num_sms


def _ms(fn) -> float:  # type: ignore[no-untyped-def]
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def _sdpa(backend, q, k, v):  # type: ignore[no-untyped-def]
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)


def main() -> int:
    """Time every configuration; write the CSV."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--wide", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    name = device_slug(torch.cuda.get_device_name())
    kind = "decode-tiling-wide" if args.wide else "decode-tiling"
    path = args.out / f"{kind}-{name}-{dt.datetime.now(dt.UTC):%Y-%m-%d}.csv"
    sms = num_sms(torch.cuda.current_device())
    fields = ("seq_k", "strategy", "splits", "programs", "block_n", "num_warps", "num_stages",
              "kernel_ms", "cudnn_ms", "flash_ms", "kv_bytes", "max_abs_err")  # fmt: skip
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fields)
        w.writeheader()
        for seq in (32768, 131072, 524288):
            q = torch.randn(1, 32, 1, 128, device="cuda", dtype=torch.bfloat16)
            k, v = (torch.randn(1, 8, seq, 128, device="cuda", dtype=torch.bfloat16) for _ in "kv")
            ref = _sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v)
            base = {
                "cudnn_ms": _ms(functools.partial(_sdpa, SDPBackend.CUDNN_ATTENTION, q, k, v)),
                "flash_ms": _ms(functools.partial(_sdpa, SDPBackend.FLASH_ATTENTION, q, k, v)),
                "kv_bytes": 2 * k.numel() * 2,
            }
            if args.wide:
                configs = [("splitk", s, 0) for s in (8, 16, 32)]
                configs += [("streamk", 0, m * sms) for m in (1, 2)]
                tilings = list(itertools.product((64, 128), (4, 8), (3, 4, 5)))
            else:
                configs = [("splitk", s, 0) for s in (16, 32, 64)]
                configs += [("streamk", 0, m * sms) for m in (2, 3)]
                tilings = list(itertools.product((64, 128), (4,), (2, 3, 4)))
            for (strategy, splits, progs), (bn, nw, st) in itertools.product(configs, tilings):
                kw = dict(strategy=strategy, block_n=bn, num_warps=nw, num_stages=st)
                kw.update({"splits": splits} if splits else {"programs": progs})
                try:
                    out = attention_decode(q, k, v, **kw)
                    t = _ms(functools.partial(attention_decode, q, k, v, **kw))
                except Exception as exc:  # noqa: BLE001 - keep the other configurations
                    print(f"{seq} {kw}: {type(exc).__name__}: {exc}")
                    continue
                err = float((out.float() - ref.float()).abs().max())
                row = dict(seq_k=seq, strategy=strategy, splits=splits, programs=progs,
                           block_n=bn, num_warps=nw, num_stages=st, kernel_ms=t,
                           max_abs_err=err, **base)  # fmt: skip
                w.writerow(row)
                fh.flush()
                tbs = base["kv_bytes"] / t / 1e9
                vs = base["cudnn_ms"] / t
                print(f"{seq:>7} {strategy:<7} s={splits:<3} p={progs:<4} bn={bn:<3} w={nw} "
                      f"st={st} {t * 1e3:7.1f} us {tbs:5.2f} TB/s {vs:4.2f}x cuDNN")  # fmt: skip
            del q, k, v
            torch.cuda.empty_cache()
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
