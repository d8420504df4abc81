"""GPU only: whether the SM clock drops under sustained attention work (a probe).

    PYTHONPATH=. python benchmarks/clock_probe.py --out DIR

While `nvidia-smi` logs the SM clock and the board power every 50 ms, times the plain 1-pass
kernel (bf16, head dim 128, 128 x 128 tiles, 8 warps, 3 stages, non-causal) in 30 windows of
100 ms of repeats each (`triton.testing.do_bench`, median, L2 flushed), on a long call
(16 heads x 32K: ~17 ms a call) and then on a short one (64 heads x 1K: ~0.1 ms), after an
idle second each. Writes DIR/clock-<device>-<date>.csv (window, shape, median ms) and
DIR/clock-smi-<device>-<date>.csv (nvidia-smi's log).

Why: the suites' long calls ran 3-10% a step slower than the model, which takes its rates
from short microbenchmarks; a clock that sags under seconds or milliseconds of sustained
tensor-core load would explain it and would be a device figure to measure, not a fit.

Measured 2026-12-04 (`kernels/measurements/regimes/clock-probe-*-h200-2026-12-04.csv`): the
long call drew 687-692 W (the board's cap) and ran at 1902 MHz on average (1740-1965),
against 1980 MHz while the short call drew ~505 W; its windows took 17.0-17.6 ms (the first
ones fastest). The model's rates come from short microbenchmarks at the full clock: that is
about 4% of the long-row gap. `--durations` (same day, `clock-probe-durations-*`): calls of
0.15 and 0.55 ms held 1980 MHz; 2.2 ms averaged 1929 MHz (dips to 1785), 8.7 ms 1893, 17 ms
1902 (1650-1710 at the dips). The clock sags from about 2 ms calls up, as the suites' fused
errors turn negative from about 2 ms up. But the timings themselves scale with the work: 8,
32 and 128 heads took 0.546, 2.179 and 8.656 ms (3.99x and 3.97x per 4x), so no clock factor
shows in kernel time between 0.5 and 9 ms calls, and the model applies none.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import subprocess
import sys
import time
from pathlib import Path

from attnsim.kernels.spec import device_slug
from attnsim.reports.page.tables import write_csv

SHAPES = {"long": (1, 16, 32768), "short": (1, 64, 1024)}
WINDOWS = 30
# `--durations`: calls of ~0.14-17 ms (head dim 128, 8K keys; 32K for the longest), 10 windows
# each after an idle second: the clock against the call's length under do_bench
DURATIONS = {f"h{h}": (1, h, 8192) for h in (2, 8, 32, 128)} | {"h16x32k": (1, 16, 32768)}


def main(argv: list[str] | None = None) -> int:
    """Log clocks, time the windows, write both CSVs."""
    import torch
    import triton.testing

    from attnsim.kernels.triton.attn_fwd import attention_fwd

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--durations",
        action="store_true",
        help="calls of 0.14-17 ms, 10 windows each (clock against call length)",
    )
    args = ap.parse_args(argv)
    shapes, windows = (DURATIONS, 10) if args.durations else (SHAPES, WINDOWS)
    if not torch.cuda.is_available():
        print("clock_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    name = device_slug(torch.cuda.get_device_name())
    stamp = dt.date.today().isoformat() + ("-durations" if args.durations else "")
    smi_path = args.out / f"clock-smi-{name}-{stamp}.csv"
    with smi_path.open("w") as smi_out:
        smi = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu",
             "--format=csv", "-lms", "50"],
            stdout=smi_out, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        rows = []
        t0 = time.monotonic()
        try:
            for label, (b, h, s) in shapes.items():
                q, k, v = (torch.randn(b, h, s, 128, device="cuda", dtype=torch.bfloat16)
                           for _ in range(3))  # fmt: skip
                call = functools.partial(attention_fwd, q, k, v, block_m=128, block_n=128,
                                         num_warps=8, num_stages=3)  # fmt: skip
                call()
                torch.cuda.synchronize()
                time.sleep(1.0)  # idle: let the clock recover before the windows
                for w in range(windows):
                    ms = triton.testing.do_bench(call, warmup=0, rep=100, return_mode="median")
                    rows.append(dict(window=w, shape=label, t_s=round(time.monotonic() - t0, 3),
                                     wall=dt.datetime.now().strftime("%H:%M:%S.%f")[:-3],
                                     median_ms=round(float(ms), 5)))  # fmt: skip
                    print(rows[-1], file=sys.stderr)
                del q, k, v
                torch.cuda.empty_cache()
        finally:
            smi.terminate()
            smi.wait()
    write_csv(args.out / f"clock-{name}-{stamp}.csv", rows, list(rows[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
