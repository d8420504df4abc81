"""GPU only: the decode kernel's tiling on the shapes where the suite found it slower than SDPA.

    PYTHONPATH=. python benchmarks/decode_tune_probe.py --out DIR [--budget-s 480]

The committed suite (`decode-splits-h200-2026-12-03.csv`) times every shape at the default
tiling (block_n 64, 4 warps, 2 stages; MLA 32 / 8 / 2) and finds the kernel at 0.69-0.99x the
best SDPA backend at >= 32K keys: MQA with 128 query heads, head dim 64 and batch-1 GQA are the
worst. This probe sweeps the tiling on exactly those shapes: split-K (8-64 splits) and stream-K
(1 or 2 programs per SM) x block_n x warps x stages (x head_block for MQA and MLA), with SDPA's
flash / cuDNN / efficient backends timed in the same run (do_bench, median, L2 flushed; 100 ms
warm-up). Each shape gets an equal share of the budget (its configurations in a fixed
shuffled order, so a cut leaves a uniform sample); rows are written as they are timed, to
DIR/decode-tune-<device>-<date>.csv in `decode_probe`'s columns (suite `tune`).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

from attnsim.kernels.spec import device_slug
from benchmarks.decode_probe import (
    FIELDS,
    Config,
    Shape,
    _baselines,
    bandwidths,
    summary_line,
    time_configs,
)

K1 = 1024
MQA_ONLY = False  # `--mqa`: only the 128-head MQA shape, over `mqa_configs`
DENSE = (
    Shape("tune", 2, 128, 1, 64 * K1),
    Shape("tune", 4, 16, 2, 128 * K1, 64, 64),
    Shape("tune", 1, 16, 1, 512 * K1, 64, 64),
    Shape("tune", 1, 32, 8, 32 * K1),
    Shape("tune", 1, 32, 8, 128 * K1),
    Shape("tune", 2, 32, 8, 64 * K1),
    Shape("tune", 4, 32, 8, 32 * K1),
)
MLA = (Shape("tune", 1, 128, 1, 32 * K1, 576, 512, mla=True),
       Shape("tune", 4, 16, 1, 32 * K1, 576, 512, mla=True))  # fmt: skip


def dense_configs(shape: Shape, sms: int) -> list[Config]:
    """Split-K / stream-K x block_n x warps x stages (x head_block for a large group)."""
    group = shape.heads // shape.kv_heads
    blocks = (64, 128, 256) if shape.head_dim <= 64 else (64, 128)
    head_blocks: tuple[int | None, ...] = (None, 128) if group > 64 else (None,)
    parts = [("splitk", s, None) for s in (8, 16, 32, 64)]
    parts += [("streamk", None, p) for p in (sms, 2 * sms)]
    out = []
    for (strategy, s, p), bn, w, st, hb in itertools.product(
        parts, blocks, (4, 8), (2, 3, 4), head_blocks
    ):
        out.append(Config(strategy, splits=s, programs=p, head_block=hb, num_warps=w,
                          num_stages=st, block_n=bn))  # fmt: skip
    random.Random(len(out)).shuffle(out)  # a budget cut leaves a uniform sample
    return out


def mqa_configs(shape: Shape, sms: int) -> list[Config]:
    """`--mqa`: head block x block_n x warps x stages x split-K splits (a 128-row group)."""
    out = [
        Config("splitk", splits=s, head_block=hb, num_warps=w, num_stages=st, block_n=bn)
        for hb, bn, w, st, s in itertools.product(
            (16, 32, 64), (32, 64, 128), (4, 8), (2, 3, 4), (16, 32, 64)
        )
    ]
    random.Random(len(out)).shuffle(out)
    return out


def mla_configs(shape: Shape, sms: int) -> list[Config]:
    """Head block x block_n x warps x stages, split-K (default splits) and stream-K."""
    out = []
    for strategy, hb, bn, w, st in itertools.product(
        ("splitk", "streamk"), (16, 32, 64), (16, 32, 64), (4, 8), (1, 2, 3)
    ):
        if hb > max(16, shape.heads):
            continue
        out.append(Config(strategy, head_block=hb, num_warps=w, num_stages=st, block_n=bn))
    random.Random(len(out)).shuffle(out)
    return out


def _dense(shape: Shape, sms: int, base: dict[str, Any], emit: Any, deadline: float) -> None:
    from attnsim.kernels.triton.attn_decode import attention_decode

    b, h, g, s = shape.batch, shape.heads, shape.kv_heads, shape.seq_k
    gen = torch.Generator(device="cuda").manual_seed(b * 7 + h * 5 + g * 3 + s)
    q = torch.randn(b, h, 1, shape.head_dim, device="cuda", generator=gen, dtype=torch.bfloat16)
    k = torch.randn(b, g, s, shape.head_dim, device="cuda", generator=gen, dtype=torch.bfloat16)
    v = torch.randn(b, g, s, shape.value_dim, device="cuda", generator=gen, dtype=torch.bfloat16)
    times, ref = _baselines(q, k, v, None)
    base = {**base, **times}

    def call(c: Config) -> Any:
        return attention_decode(
            q, k, v, strategy=c.strategy, splits=c.splits, programs=c.programs,
            head_block=c.head_block, block_n=c.block_n, num_warps=c.num_warps,
            num_stages=c.num_stages,
        )  # fmt: skip

    cfgs = (mqa_configs if MQA_ONLY else dense_configs)(shape, sms)
    time_configs(shape, cfgs, call, lambda out: (out.float() - ref.float()).abs().max().item(),
                 base, emit, deadline)  # fmt: skip


def _mla(shape: Shape, sms: int, base: dict[str, Any], emit: Any, deadline: float) -> None:
    from attnsim.kernels.triton.attn_mla import absorb_query, attention_mla_decode

    b, h, s = shape.batch, shape.heads, shape.seq_k
    c, rr, dn = shape.value_dim, shape.head_dim - shape.value_dim, 128
    gen = torch.Generator(device="cuda").manual_seed(b * 7 + h + s)

    def randn(*size: int, scale: float = 1.0) -> Any:
        return (torch.randn(*size, device="cuda", generator=gen) * scale).to(torch.bfloat16)

    q_nope, q_rope, cache = randn(b, h, dn), randn(b, h, rr), randn(b, s, c + rr)
    w_uk = randn(h, dn, c, scale=c**-0.5)
    scale = (dn + rr) ** -0.5
    q_latent = absorb_query(q_nope, w_uk)
    # reference: softmax(q k^T * scale) over the latent + rope cache, values the latent (fp32)
    qf = torch.cat((q_latent, q_rope), -1).float()
    kf = cache.float()
    p = torch.softmax(torch.einsum("bhe,bse->bhs", qf, kf) * scale, -1)
    ref = torch.einsum("bhs,bsc->bhc", p, kf[..., :c])

    def call(c: Config) -> Any:
        return attention_mla_decode(
            q_latent, q_rope, cache, None, scale, strategy=c.strategy, splits=c.splits,
            programs=c.programs, head_block=c.head_block, block_n=c.block_n,
            num_warps=c.num_warps, num_stages=c.num_stages,
        )  # fmt: skip

    time_configs(
        shape,
        mla_configs(shape, sms),
        call,
        lambda out: (out.float() - ref).abs().max().item(),
        base,
        emit,
        deadline,
    )


def main(argv: list[str] | None = None) -> int:
    """Sweep every shape within its share of the budget; write the CSV."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=480.0)
    ap.add_argument("--mqa", action="store_true", help="the MQA shape only, head blocks swept")
    args = ap.parse_args(argv)
    global MQA_ONLY
    MQA_ONLY = args.mqa
    if not torch.cuda.is_available():
        print("decode_tune_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    from attnsim.kernels.triton.common import num_sms

    start = time.monotonic()
    sms = num_sms(0)
    read_gbps, copy_gbps = bandwidths(sms)
    torch.cuda.empty_cache()
    import triton

    base = dict(read_gbps=read_gbps, copy_gbps=copy_gbps, sms=sms,
                device=torch.cuda.get_device_name(0), torch=torch.__version__,
                triton=triton.__version__,
                timestamp=dt.datetime.now(dt.UTC).isoformat())  # fmt: skip
    print(f"HBM read {read_gbps:.0f} GB/s, copy {copy_gbps:.0f} GB/s", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    date = dt.date.today().isoformat()
    path = args.out / f"decode-tune-{device_slug(base['device'])}-{date}.csv"
    shapes = [(s, _dense) for s in DENSE] + [(s, _mla) for s in MLA]
    if args.mqa:
        shapes = shapes[:1]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        for i, (shape, run) in enumerate(shapes):
            left = args.budget_s - (time.monotonic() - start)
            deadline = time.monotonic() + left / (len(shapes) - i)
            rows: list[dict[str, Any]] = []

            def emit(row: dict[str, Any], rows: list[dict[str, Any]] = rows) -> None:
                rows.append(row)
                w.writerow(row)
                fh.flush()

            run(shape, sms, base, emit, deadline)
            if rows and not shape.mla:
                print(summary_line(shape, rows), f"({len(rows)} configs)", file=sys.stderr)
            torch.cuda.empty_cache()
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
