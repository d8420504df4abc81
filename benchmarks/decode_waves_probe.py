"""GPU only: split-K decode launches of 1 to 64 waves of short programs (a probe).

    PYTHONPATH=. python benchmarks/decode_waves_probe.py --out DIR

Why (issue 12): the decode figures (`kernels.calibrate.microbench_decode`) come from launches
of about one wave, and `gpu-decode` prices every program of a launch with them: its start,
its key tiles, its partial store. On the H200 the tuned (128, 8, 3) build at batch 64 x 8
K/V heads x 4K keys in 32 splits (16384 one-tile programs, 124 waves on its 132 slots) ran
608.8 us where the model priced 812.9 (+33.5%; `kernels/measurements/decode/
decode-h200-2026-12-05-tuned.csv`): about 4.9 us a program against the 6.2 priced. Whether
programs of later waves cost less than the first wave's, and by how much per build, is what
this measures.

Method: split-K (`attention_decode(strategy="splitk")`) on GQA shapes of the decode suites'
dims (32 query / 8 K/V heads at head dim 128, 64 / 8 at 64: 16-row programs), 8 splits a
segment, programs of 1, 2 or 4 key tiles (seq_k = 8 x tiles x block_n), batch 2, 8, 32 and
128 (128 to 8192 programs: under one wave to ~60 on one slot per SM), at the default tiling
and each tuned one of those dims (`microbench_decode_builds.TUNED_CONFIGS`). Rows in the
decode probe's schema, suite `waves` (`benchmarks/decode_probe.py`), so `attnsim validate
gpu --measurements DIR/decode-waves-*.csv` prices each with its exact configuration.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

SPLITS = 8
TILES_PER_PROGRAM = (1, 2, 4)
BATCHES = (2, 8, 32, 128)
DIMS = ((128, 32, 8), (64, 64, 8))  # (head dim, query heads, K/V heads): 16-row programs
DEFAULT_TILING = (64, 4, 2)  # attention_decode's block_n, num_warps, num_stages


def tilings(head_dim: int) -> list[tuple[int, int, int]]:
    """The default tiling and the tuned tilings calibrated for 16-row programs of `head_dim`."""
    from attnsim.kernels.calibrate.microbench_decode_builds import TUNED_CONFIGS

    tuned = [(bn, w, st) for e, f, g, bn, w, st in TUNED_CONFIGS if e == head_dim and g <= 4]
    return [DEFAULT_TILING, *tuned]


def sweep() -> list[tuple[Any, Any]]:
    """(decode_probe.Shape, decode_probe.Config) of every timed launch."""
    from decode_probe import Config, Shape

    out = []
    for d, heads, kv_heads in DIMS:
        for bn, w, st in tilings(d):
            for tiles in TILES_PER_PROGRAM:
                for b in BATCHES:
                    shape = Shape("waves", b, heads, kv_heads, SPLITS * tiles * bn, d, d)
                    cfg = Config("splitk", splits=SPLITS, block_n=bn, num_warps=w, num_stages=st)
                    out.append((shape, cfg))
    return out


def main(argv: list[str] | None = None) -> int:
    """Time every launch of `sweep()` and write DIR/decode-waves-<gpu>-<date>.csv."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the CSV")
    p.add_argument("--dry-run", action="store_true", help="list the launches; no GPU needed")
    args = p.parse_args(argv)
    runs = sweep()
    if args.dry_run:
        for shape, cfg in runs:
            print(shape.batch, shape.heads, shape.kv_heads, shape.seq_k, shape.head_dim, cfg)
        print(f"{len(runs)} launches")
        return 0
    import torch
    import triton
    from decode_probe import FIELDS, _ms, make_row

    from attnsim.kernels.spec import device_slug
    from attnsim.kernels.triton.attn_decode import attention_decode
    from attnsim.kernels.triton.common import num_sms

    if not torch.cuda.is_available():
        print("decode_waves_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name()
    stamp = dt.datetime.now(dt.UTC)
    nan = float("nan")
    base = dict(read_gbps=nan, copy_gbps=nan, sms=num_sms(torch.cuda.current_device()),
                device=name, torch=torch.__version__, triton=triton.__version__,
                timestamp=stamp.isoformat(), flash_ms=nan, cudnn_ms=nan, efficient_ms=nan,
                flex_ms=nan, naive_ms=nan, upproj_ms=nan)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"decode-waves-{device_slug(name)}-{stamp:%Y-%m-%d}.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        for shape, cfg in runs:
            g = torch.Generator(device="cuda").manual_seed(shape.batch + shape.seq_k)
            q = torch.randn(shape.batch, shape.heads, 1, shape.head_dim, device="cuda",
                            generator=g, dtype=torch.bfloat16)  # fmt: skip
            k, v = (torch.randn(shape.batch, shape.kv_heads, shape.seq_k, shape.head_dim,
                                device="cuda", generator=g, dtype=torch.bfloat16)
                    for _ in range(2))  # fmt: skip

            def call(cfg: Any = cfg, q: Any = q, k: Any = k, v: Any = v) -> Any:
                return attention_decode(q, k, v, strategy="splitk", splits=cfg.splits,
                                        block_n=cfg.block_n, num_warps=cfg.num_warps,
                                        num_stages=cfg.num_stages)  # fmt: skip

            try:
                call()
                ms = _ms(call)
            except Exception as exc:  # noqa: BLE001 - report the launch, keep measuring
                print(f"  {shape} {cfg}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
                continue
            writer.writerow(make_row(shape, cfg, base, kernel_ms=ms, max_abs_err=nan))
            fh.flush()
            print(
                f"  B={shape.batch} d{shape.head_dim} M={shape.seq_k} {cfg.block_n}/"
                f"{cfg.num_warps}/{cfg.num_stages}: {ms * 1e3:.1f} us",
                file=sys.stderr,
            )
            del q, k, v
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
