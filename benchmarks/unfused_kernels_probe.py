"""GPU only: the unfused baseline's three kernels timed alone on short-query and small shapes.

    python benchmarks/unfused_kernels_probe.py --out unfused-kernels.csv

A diagnostic of the unfused model in regimes the calibration shapes (square, B*H = 24 at 4K
and 6 at 16K) do not cover: a short query chunk against a long cache, where the P.V kernel
runs fewer programs than SMs over long rows, and small calls whose scores stay in L2. Each
kernel (qk, softmax, pv) of `attention_unfused` is timed alone with do_bench (L2 flushed),
on shapes in none of the validation, holdout or regimes suites; the CSV has one row per
(shape, tiling, kernel) with the kernel's median time. `--set long` times long rows (causal
and not) and one length that is no multiple of 16 instead; `--set causal` long causal rows;
`--set align` small dense calls by the byte alignment of their score rows; `--set wide` rows
in the softmax's widest (8192-lane) block by their alignment, causal and not; `--set tiny` many
short sequences (thousands of heads of 64-384 keys).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

# (batch*heads, seq_q, seq_k, head_dim, causal)
SHAPES = (
    (48, 64, 24576, 128, False),
    (96, 128, 12288, 128, False),
    (32, 128, 16384, 64, False),
    (16, 64, 49152, 64, False),
    (8, 768, 768, 128, True),
    (4, 1536, 1536, 64, True),
    (8, 1536, 1536, 128, False),
)
# `--set long`: long rows, causal and not (6000 and 10000 keys: rows in two softmax loops),
# and 3000 (no multiple of 16: unaligned score rows)
LONG_SHAPES = (
    (16, 6000, 6000, 64, True),
    (16, 6000, 6000, 64, False),
    (8, 10000, 10000, 128, True),
    (4, 3000, 3000, 128, True),
)
# `--set causal`: causal rows of 7K-37K keys, aligned and not (7016 % 16 = 8), none in a suite:
# where the unfused model errs most (long causal rows over-priced, 7000-key ragged ones under)
CAUSAL_SHAPES = (
    (16, 7016, 7016, 64, True),
    (16, 7024, 7024, 64, True),
    (12, 12288, 12288, 64, True),
    (12, 24576, 24576, 64, True),
    (6, 36864, 36864, 128, True),
)
# `--set align`: small dense calls whose score rows start 16-, 8-, 4- and 2-byte aligned (bf16
# rows of 2656, 2652, 2650 and 2651 keys), at head dims 64 and 128: the H200 calibration has
# ragged entries of 16-byte rows only, and a fresh-suite call of 2654 keys (4-byte rows, 8
# heads, head dim 64) ran 21-22% slower than priced (kernels/measurements/fresh/)
ALIGN_SHAPES = tuple(
    (bh, n, n, d, False) for bh, d in ((8, 64), (16, 128)) for n in (2656, 2652, 2650, 2651)
)
# `--set wide`: 16 heads of 7792 / 7788 / 7786 / 7787 keys (16-, 8-, 4-, 2-byte aligned bf16
# rows in the row softmax's widest block), head dim 64, causal and not: the fresh suite's
# 2 x 8 x 7787 causal calls ran 11-15% slower than priced on both the H200 and an H100, while
# the calibration's widest-block ragged entries (S = 5624) are 16-byte aligned rows
WIDE_SHAPES = tuple((16, n, n, 64, c) for c in (True, False) for n in (7792, 7788, 7786, 7787))
# `--set tiny`: many short sequences (batch x heads in the hundreds to thousands, 64-384 keys): one
# program holds one to six tiles: the regimes suite's 256 x 12 x 64 x 64 unfused calls were
# priced +13% / +20%, their row softmax by entries of 96- and 192-key rows, and its short
# causal calls at 128 x 64 (32 x 32 x 512, 48 x 16 x 384) +9-10% where 128 x 128 ran +1%
TINY_SHAPES = (
    (3072, 64, 64, 64, False),
    (3072, 64, 64, 128, False),
    (1536, 128, 128, 64, False),
    (768, 256, 256, 64, True),
    (512, 384, 384, 128, True),
)
TILINGS = ((128, 128, 8, 3), (128, 64, 4, 3))


def main(argv: list[str] | None = None) -> int:
    """Time every kernel of every shape and tiling; write the CSV."""
    import torch
    import triton

    from attnsim.kernels.calibrate.microbench_unfused import _launchers

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--set",
        choices=("short", "long", "causal", "align", "wide", "tiny"),
        default="short",
        help="short-query and small shapes (default), long and unaligned rows, long causal, "
        "small dense calls by score-row alignment, widest-block rows by alignment, or many "
        "short sequences",
    )
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("unfused_kernels_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    rows = []
    sets = {"short": SHAPES, "long": LONG_SHAPES, "causal": CAUSAL_SHAPES, "align": ALIGN_SHAPES,
            "wide": WIDE_SHAPES, "tiny": TINY_SHAPES}  # fmt: skip
    shapes = sets[args.set]
    for bh, sq, sk, d, causal in shapes:
        for tiling in TILINGS:
            calls = _launchers(torch, bh, sk, d, causal, tiling, seq_q=sq)
            for name, call in zip(("qk", "softmax", "pv"), calls, strict=True):
                ms = float(triton.testing.do_bench(call, warmup=10, rep=50, return_mode="median"))
                row = dict(kernel=name, batch_heads=bh, seq_q=sq, seq_k=sk, head_dim=d,
                           causal=int(causal), block_m=tiling[0], block_n=tiling[1],
                           num_warps=tiling[2], num_stages=tiling[3], time_us=round(ms * 1e3, 3),
                           device=torch.cuda.get_device_name())  # fmt: skip
                print(row, file=sys.stderr)
                rows.append(row)
            torch.cuda.empty_cache()
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
