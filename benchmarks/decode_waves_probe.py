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

    PYTHONPATH=. python benchmarks/decode_waves_probe.py --out DIR --paged 64

reads every launch's K/V through a block table instead (suite `paged-waves`, pages of
max(64, block_n) keys shuffled over the cache as `decode_probe.py`'s paged suites lay them
out, every sequence of the full length): the paged suites' many-split calls run long
launches through a block table, which the contiguous launches above do not measure.

    PYTHONPATH=. python benchmarks/decode_waves_probe.py --merge CAL FILE [FILE]

turns such files (contiguous, paged or both) into the decode calibration CAL's `waves`
entries (no GPU; `archs/calibration/decode_waves.py`, replacing all earlier ones; a paged
file's entries carry their `page_size`): per configuration, page size and
tiles per program, the slope of the launch's time over its programs between its two largest
launches (`STEADY_PROGRAMS_PER_SM` programs per SM or more: past the first waves), times the
SMs, the steady time one more program holds an SM; and the transient, what the smaller of
those launches took beyond its largest launch of at most one program per SM and its further
programs at that steady time.
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
STEADY_PROGRAMS_PER_SM = 8  # launches from which a slope counts as the steady one


def tilings(head_dim: int) -> list[tuple[int, int, int]]:
    """The default tiling and the tuned tilings calibrated for 16-row programs of `head_dim`."""
    from attnsim.kernels.calibrate.microbench_decode_builds import TUNED_CONFIGS

    tuned = [(bn, w, st) for e, f, g, bn, w, st in TUNED_CONFIGS if e == head_dim and g <= 4]
    return [DEFAULT_TILING, *tuned]


def page_size(paged: int, block_n: int) -> int:
    """The pages of a `--paged PAGED` launch at `block_n` (a multiple of it; 0: contiguous)."""
    return 0 if not paged else -(-max(paged, block_n) // block_n) * block_n


def sweep(paged: int = 0) -> list[tuple[Any, Any]]:
    """(decode_probe.Shape, decode_probe.Config) of every timed launch.

    `paged`: pages of `page_size(paged, block_n)` keys through a block table, suite
    `paged-waves`.
    """
    from decode_probe import Config, Shape

    out = []
    suite = "paged-waves" if paged else "waves"
    for d, heads, kv_heads in DIMS:
        for bn, w, st in tilings(d):
            for tiles in TILES_PER_PROGRAM:
                for b in BATCHES:
                    m = SPLITS * tiles * bn
                    page = page_size(paged, bn)
                    if page and m % page:  # a launch whose sequences end inside a page
                        continue
                    shape = Shape(suite, b, heads, kv_heads, m, d, d,
                                  lens=(m,) * b if page else (), page_size=page)  # fmt: skip
                    cfg = Config("splitk", splits=SPLITS, block_n=bn, num_warps=w, num_stages=st)
                    out.append((shape, cfg))
    return out


def wave_entries(path: Path) -> list[dict[str, Any]]:
    """`waves` calibration entries from a probe file (see the module docstring; no GPU)."""
    from attnsim.kernels.spec import decode_rows

    times: dict[tuple[int, ...], dict[int, float]] = {}
    sms: dict[tuple[int, ...], int] = {}
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            if r["suite"] not in ("waves", "paged-waves") or r["strategy"] != "splitk":
                continue
            b, h, g, m = (int(r[k]) for k in ("batch", "heads", "kv_heads", "seq_k"))
            cfg = ("head_dim", "value_dim", "block_n", "num_warps", "num_stages", "splits")
            d, f, bn, w, st, s = (int(r[k]) for k in cfg)
            page = int(r.get("page_size") or 0)
            key = (d, f, decode_rows(h // g), bn, w, st, s, m // (s * bn), page)
            times.setdefault(key, {})[b * g * s] = float(r["kernel_ms"]) * 1e3
            sms[key] = int(r["sms"])
    names = ("head_dim", "value_dim", "rows", "block_n", "num_warps", "num_stages", "splits",
             "tiles", "page_size")  # fmt: skip
    out = []
    for key, t in times.items():
        steady = sorted(n for n in t if n >= STEADY_PROGRAMS_PER_SM * sms[key])
        alone = [n for n in t if n <= sms[key]]  # at most one program per SM
        if len(steady) < 2 or not alone:
            continue
        one, (lo, hi) = max(alone), steady[-2:]
        x = (t[hi] - t[lo]) / (hi - lo) * sms[key]
        transient = t[lo] - t[one] - (lo - one) / sms[key] * x
        entry = dict(zip(names, key, strict=True))
        if not entry["page_size"]:  # contiguous entries as before: no page_size field
            del entry["page_size"]
        out.append({**entry, "programs": [one, lo, hi], "sm_program_us": round(x, 4),
                    "transient_us": round(transient, 3)})  # fmt: skip
    return out


def merge(cal: Path, *probes: Path) -> int:
    """Put the probe files' `waves` entries in decode calibration `cal` (replacing all)."""
    from attnsim.kernels.calibrate.microbench_bwd import replace_entries

    found = [e for probe in probes for e in wave_entries(probe)]
    names = " and ".join(probe.name for probe in probes)
    note = (f"waves: `benchmarks/decode_waves_probe.py --merge` from {names} "
            f"({len(found)} entries; slopes over launches of >= {STEADY_PROGRAMS_PER_SM} "
            "programs per SM)")  # fmt: skip
    replace_entries(cal, "waves", found, lambda e: 0, note, "decode_waves_probe.py --merge")
    print(f"{len(found)} waves entries -> {cal}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Time every launch of `sweep()` and write DIR/decode-waves-<gpu>-<date>.csv."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, help="folder for the CSV")
    p.add_argument("--dry-run", action="store_true", help="list the launches; no GPU needed")
    p.add_argument("--paged", type=int, default=0, metavar="PAGE",
                   help="read K/V through a shuffled block table of max(PAGE, block_n)-key "
                   "pages (suite paged-waves)")  # fmt: skip
    p.add_argument("--merge", type=Path, nargs="+", metavar="CAL FILE",
                   help="put the probe FILEs' steady program costs in decode calibration "
                   "CAL's `waves` (no GPU; contiguous and paged files together)")  # fmt: skip
    args = p.parse_args(argv)
    if args.merge:
        if len(args.merge) < 2:
            p.error("--merge: expected CAL and at least one probe FILE")
        missing = [str(f) for f in args.merge if not f.is_file()]
        if missing:
            p.error(f"--merge: no such file: {', '.join(missing)}")
        return merge(*args.merge)
    if args.out is None:
        p.error("--out is required unless --merge")
    if args.paged < 0:
        p.error(f"--paged: expected a page size in keys (> 0), got {args.paged}")
    runs = sweep(args.paged)
    if args.dry_run:
        for shape, cfg in runs:
            print(shape.batch, shape.heads, shape.kv_heads, shape.seq_k, shape.head_dim, cfg)
        print(f"{len(runs)} launches")
        return 0
    import torch
    import triton
    from decode_probe import FIELDS, _ms, _paged, make_row

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
    kind = "decode-waves-paged" if args.paged else "decode-waves"
    path = args.out / f"{kind}-{device_slug(name)}-{stamp:%Y-%m-%d}.csv"
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
            lens = table = None
            if shape.page_size:  # the paged suites' layout: shuffled pages, lengths given
                k, v, table = _paged(k, v, shape.page_size, seed=shape.seq_k)
                lens = torch.tensor(shape.lens, dtype=torch.int32, device="cuda")

            def call(cfg: Any = cfg, q: Any = q, k: Any = k, v: Any = v, lens: Any = lens,
                     table: Any = table) -> Any:  # fmt: skip
                return attention_decode(q, k, v, strategy="splitk", splits=cfg.splits,
                                        block_n=cfg.block_n, num_warps=cfg.num_warps,
                                        num_stages=cfg.num_stages, seq_lens=lens,
                                        block_table=table)  # fmt: skip

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
            del q, k, v, lens, table
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
