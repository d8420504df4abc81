"""CPU: why gpu-lightning refuses the split schedule (the figure its refusal quotes).

    PYTHONPATH=. python benchmarks/lightning_split_transfer.py [CSV]

Prices every timed split-schedule row of a Lightning probe file (default
kernels/measurements/lightning/lightning-h200-2026-12-04.csv) the way a model without a split
calibration would have to: the state pass (`lightning_states_kernel`: one program per E block x
F block x batch*head, a chain of n_states - 1 state updates of R x C rows) on the unit model, the
output pass (`lightning_out_kernel`: one program per value block x state x batch*head, R chunks
each, starting from a stored state) on the fused kernel's calibrated chunk step and fixed time,
the two kernels in sequence. Prints each row and the MAPE and mean signed error.

Measured 2026-12-05 on the committed H200 file: MAPE 41.9%, mean signed +32.6% over 266 rows
(+110% to -39% per row): the fused kernel's figures do not carry over to the split schedule's
short output programs, so `mappers.gpu.lightning_mapper.SPLIT_REFUSAL` refuses it until its
kernels have a calibration of their own.
"""

from __future__ import annotations

import csv
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from attnsim.archs.load import load_arch
from attnsim.mappers.gpu.assumptions import BASE_REGISTERS_PER_THREAD
from attnsim.mappers.gpu.lightning import fused_plan
from attnsim.mappers.gpu.model import (
    BlockGroup,
    Dot,
    KernelPlan,
    StepWork,
    call_time,
    time_kernel,
)
from attnsim.mappers.gpu.rates import Tiling, device_rates

DEFAULT = Path("kernels/measurements/lightning/lightning-h200-2026-12-04.csv")


def out_plan(b: int, h: int, s: int, e: int, t: Tiling, r: int) -> KernelPlan:
    """The output pass on the fused plan's work: R chunks per program from a stored state."""
    p = fused_plan(b, h, s, e, e, t)
    chunks = -(-s // t.block_m)
    states = -(-chunks // r)
    last = chunks - (states - 1) * r
    per_head = e // t.block_n
    groups = [
        BlockGroup(per_head * (states - 1) * b * h, r, 0),
        BlockGroup(per_head * b * h, last, 0),
    ]
    return replace(
        p,
        name="out",
        groups=tuple(g for g in groups if g.count > 0),
        fixed=StepWork((), 0.0, e * t.block_n, e * t.block_n * 2.0),
        hbm_read_bytes=p.hbm_read_bytes + b * h * states * e * e * 2.0,
    )


def states_plan(
    b: int, h: int, s: int, e: int, t: Tiling, r: int, tile: tuple[int, int]
) -> KernelPlan:
    """The state pass on the unit model: a chain of state updates K^T V over R x C rows."""
    se, sf = tile
    rows = t.block_m * r
    chunks = -(-s // t.block_m)
    states = -(-chunks // r)
    warps = max(1, min(8, se * sf // 1024))
    dot = Dot(2.0 * se * sf * rows, se, sf, rows)
    step = StepWork((dot,), rows, 2.0 * se * sf + rows * sf, rows * (se + sf) * 2.0)
    programs = (e // se) * (e // sf) * b * h
    return KernelPlan(
        name="states",
        tiling=Tiling(rows, sf, warps, t.num_stages),
        smem_bytes=2 * max(t.num_stages - 1, 1) * rows * (se + sf),
        registers_per_thread=-(-(se * sf + rows * sf) // (32 * warps)) + BASE_REGISTERS_PER_THREAD,
        step=step,
        masked_step=step,
        fixed=StepWork(),
        round_trips=2,
        groups=(BlockGroup(programs, max(states - 1, 0), 0),),
        hbm_read_bytes=b * h * s * 2 * e * 2.0,
        hbm_write_bytes=b * h * states * e * e * 2.0,
        flops=dot.flops * programs * max(states - 1, 0),
        mode="lightning-states",
        head_dim=e,
    )


def main(argv: list[str] | None = None) -> int:
    """Print each split row's estimate and the summary."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT
    rates = device_rates(load_arch("h200"), "bf16")
    errors = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["family"] != "triton-lightning" or row["schedule"] != "split":
                continue
            if row["status"] != "ok" or row["decay"] == "gla":
                continue
            b, h, s, e = (int(row[k]) for k in ("batch", "heads", "seq", "head_dim"))
            t = Tiling(*(int(row[k]) for k in ("block_c", "block_f", "num_warps", "num_stages")))
            r = int(row["state_chunks"])
            tile = tuple(int(x) for x in row["state_tile"].split("x"))
            kernels = (time_kernel(states_plan(b, h, s, e, t, r, tile), rates),  # type: ignore[arg-type]
                       time_kernel(out_plan(b, h, s, e, t, r), rates))  # fmt: skip
            total_s, _ = call_time(kernels, rates, "lightning")
            measured = float(row["median_ms"])
            errors.append(100.0 * (total_s * 1e3 - measured) / measured)
            print(
                f"{row['suite']:10s} B={b} H={h} S={s} E={e} {t} R={r} {tile}: measured "
                f"{measured:.3f} ms, estimated {total_s * 1e3:.3f} ms ({errors[-1]:+.1f}%)"
            )
    if not errors:
        print(f"{path}: no split rows", file=sys.stderr)
        return 2
    print(f"{len(errors)} rows: MAPE {statistics.fmean(abs(x) for x in errors):.1f}%, mean "
          f"signed {statistics.fmean(errors):+.1f}%")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
