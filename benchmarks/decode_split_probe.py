"""GPU only: split-K decode over how many segments merge at once and how long each chunk is.

    python benchmarks/decode_split_probe.py --out decode-split-probe.csv

A diagnostic of `gpu-decode`'s split-K pricing at many splits (the suites' 64-way splits are
priced 15-25% fast). The calibration's merge curve is measured on 128 programs of 8 tiles
over 128 / s segments; this probe varies what that holds fixed: the segments that merge at
once (2, 16, 64) and the tiles per program (2 or 8 at 64 splits), for split counts 1-64.
`attention_decode` (16 packed rows: 4 query heads per K/V head, head dim 128, the default
tiling) is timed with do_bench (median, L2 flushed); the shapes (4 query heads per K/V
head) are in no suite. One CSV row per (segments, cache length, splits).
"""

from __future__ import annotations

import argparse
import csv
import functools
import sys
from pathlib import Path

SEGMENTS = (2, 16, 64)
LENGTHS = (8192, 32768)  # 2 and 8 key tiles per program at 64 splits
SPLITS = (1, 8, 16, 32, 64)


def main(argv: list[str] | None = None) -> int:
    """Time every (segments, length, splits); write the CSV."""
    import torch
    import triton

    from attnsim.kernels.triton.attn_decode import attention_decode

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("decode_split_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    rows = []
    for segments in SEGMENTS:
        for seq in LENGTHS:
            q = torch.randn(segments, 4, 1, 128, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(segments, 1, seq, 128, device="cuda", dtype=torch.bfloat16)
            v = torch.randn_like(k)
            for splits in SPLITS:
                kw = dict(strategy="splitk", splits=splits)
                attention_decode(q, k, v, **kw)
                ms = triton.testing.do_bench(
                    functools.partial(attention_decode, q, k, v, **kw), warmup=10, rep=100,
                    return_mode="median",
                )  # fmt: skip
                rows.append(dict(batch=segments, heads=4, kv_heads=1, seq_k=seq, head_dim=128,
                                 splits=splits, kernel_us=round(float(ms) * 1e3, 3)))  # fmt: skip
                print(rows[-1], file=sys.stderr, flush=True)
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
