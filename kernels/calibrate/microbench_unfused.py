"""Microbenchmarks of the unfused baseline's three kernels, each timed alone (GPU only).

Used by `python -m attnsim.kernels.calibrate.microbench`. The unfused family
(`kernels.triton.attn_unfused`) is three
kernels whose speed is set less by arithmetic than by how they touch memory: the QK^T kernel
streams score tiles to HBM, the row softmax reads and rewrites rows, the P.V kernel streams P.
With causal masks the softmax and P.V accesses are masked per element (row i keeps columns
j <= i), which changes the load/store width the compiler can use and whether the P loads can
be software-pipelined. Those rates are device+compiler properties that the datasheet does not
give, so each kernel is timed alone on *calibration shapes that are not in the validation
grid* (B*H = 24 at S = 4096, B*H = 6 at S = 16384), causal and not, head dim 64/128, a few
tilings; `mappers.gpu.kernels` turns each entry into a rate per unit of the kernel's work
(score tiles, P.V tile steps, softmax row steps) and applies it to other shapes.

A sequence length that is no multiple of 16 changes the code itself: Triton specializes
integer arguments on divisibility by 16, and score rows of such a length (the row stride)
lose the alignment that vector loads and stores need, so all three kernels move 2-byte
elements (on the H200, 1x16x2500 causal ran 2-4x slower than the aligned rate predicts).
Those rates are measured on their own "ragged" calibration shapes, S = 4088 and 16376
(S % 16 == 8, in neither the validation nor the holdout grid), and the model takes them for
shapes whose seq_k % 16 != 0 (`RAGGED_SEQS`; `python -m attnsim.kernels.calibrate.microbench_unfused
--ragged`
measures only these and prints their entries).

The ragged shapes' rows start 16-byte aligned (4088 x 2 bytes); rows of 4- and 2-byte
alignment (seq % 8 == 2 or 6, odd seq in bf16) touch more memory sectors per row. On the H200,
unfused calls at head dim 64 with such rows ran 11-23% slower than the 16-byte entries price
(the fresh suite: S = 7787, 2654). `--row-alignment` measures the ragged set at S = 4090
(4-byte) and 4089 (2-byte) rows (`ALIGNMENT_SHAPES`, in no suite); the model takes the
entries of the call's own row alignment where there are some (`mappers.gpu.kernels`).

The softmax compiles one kernel per row block (the next power of two of the row, up to
SOFTMAX_MAX_BLOCK), and the blocks do not share a rate: on the H200 a ragged causal row of
7016 keys (block 8192) ran 1.8x what the 4088-key entry (block 4096) gives per lane, while
aligned rows kept their rate. So each block path of the long rows has its entries: 4096
(S = 4096 / 4088), 8192 (S = 5632 / 5624) and the two-loop path (16384 / 16376); the model
takes the rate of the shape's own block where there is one (`--softmax-blocks` measures
only the 8192-block entries).

Short rows are a regime of their own: at S <= 256 a grid holds thousands of one-tile programs
(one per row for the softmax) whose fixed cost per program, not their work, sets the time.
They are timed on two "short" calibration shapes, B*H = 2048 at S = 96 and B*H = 640 at
S = 192 (in no validation, holdout or regimes grid; `SHORT_SHAPES`, `--short`), and the model
splits each kernel's time into a part per program and a part per unit of work from the long
and short entries together (`mappers.gpu.kernels`).

Entry format (`unfused_kernels` in the calibration file)::

    {kernel: qk|softmax|pv, causal: 0|1, head_dim: 64, block_m: 128, block_n: 64,
     num_warps: 4, num_stages: 3, batch_heads: 24, seq: 4096, time_us: 123.4}

(softmax entries have head_dim and the tiling fields 0: it picks its own block from seq).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import triton

UNFUSED_BUDGET_S = 30.0
RAGGED_BUDGET_S = 75.0
# (batch*heads, seq): one softmax row fits one block (<= SOFTMAX_MAX_BLOCK) / needs two loops
MATMUL_SHAPE = (24, 4096)
# (12, 5632): the one-block path at the widest block (8192 lanes: a kernel compiled of its own)
SOFTMAX_SHAPES = ((24, 4096), (12, 5632), (6, 16384))
# the same with seq % 16 == 8: score rows without 16-element alignment (see the docstring)
RAGGED_MATMUL_SHAPE = (24, 4088)
RAGGED_SOFTMAX_SHAPES = ((24, 4088), (12, 5624), (6, 16376))
# `--row-alignment`: the ragged set with rows 4- and 2-byte aligned in bf16 (see the docstring)
ALIGNMENT_SHAPES = ((24, 4090), (24, 4089))
ALIGNMENT_BUDGET_S = 150.0
# `--softmax-blocks`: only the softmax at the 8192-lane block, aligned and ragged
BLOCK_SOFTMAX_SHAPES = ((12, 5632), (12, 5624))
# many short rows: thousands of one-tile programs (see the docstring)
SHORT_SHAPES = ((2048, 96), (640, 192))
SHORT_BUDGET_S = 120.0
# validation tilings first, then the rest of what the search commonly picks
UNFUSED_TILINGS = ((128, 128, 8, 3), (128, 64, 4, 3), (64, 64, 4, 3))
# P.V with few programs over long rows (`--pv-programs`): programs, two key lengths
PV_PROGRAMS, PV_LENGTHS = 32, (8192, 32768)
HEAD_DIMS = (64, 128)


def _ms(fn: Any) -> float:
    return float(triton.testing.do_bench(fn, warmup=5, rep=25, return_mode="median"))


def _launchers(  # type: ignore[no-untyped-def]
    torch: Any, bh: int, seq: int, d: int, causal: bool, tiling: tuple[int, ...], seq_q: int = 0
):
    """(qk, softmax, pv) zero-argument launchers: the launches `attention_unfused` makes.

    `seq_q`: query positions when they differ from `seq` (the key positions).
    """
    from attnsim.kernels.triton.attn_unfused import attention_unfused, plan_for

    dt = torch.bfloat16
    sq = seq_q or seq
    q = torch.randn(1, bh, sq, d, device="cuda", dtype=dt)
    k, v = (torch.randn(1, bh, seq, d, device="cuda", dtype=dt) for _ in range(2))
    o = torch.empty_like(q)
    s = torch.randn(bh, sq, seq, device="cuda", dtype=dt)
    bm, bn, w, st = tiling
    tile = dict(block_m=bm, block_n=bn, num_warps=w, num_stages=st)
    attention_unfused(q, k, v, causal, out=o, scores=s, **tile)  # compile, arm the launches
    plan = plan_for(q, k, v, causal, out=o, **tile)
    return (lambda: plan.qk(q, k, s)), (lambda: plan.softmax(s)), (lambda: plan.pv(s, v, o))


def _entry(
    kernel: str, causal: bool, d: int, tiling: tuple[int, ...], bh: int, seq: int, ms: float
) -> dict[str, Any]:
    bm, bn, w, st = tiling
    return {
        "kernel": kernel,
        "causal": int(causal),
        "head_dim": d,
        "block_m": bm,
        "block_n": bn,
        "num_warps": w,
        "num_stages": st,
        "batch_heads": bh,
        "seq": seq,
        "time_us": round(ms * 1e3, 3),
    }


def measure_unfused(
    torch: Any, aligned: bool = True, ragged: bool = True, short: bool = True
) -> list[dict[str, Any]]:
    """Each unfused kernel timed alone on the calibration shapes (see the module docstring).

    `aligned` / `ragged` / `short`: measure the shapes with seq % 16 == 0 / the ragged ones /
    the short rows (each set has its own time budget).
    """
    points: list[dict[str, Any]] = []
    Shapes = tuple[tuple[int, int], ...]
    sets: list[tuple[tuple[int, int], Shapes, float]] = []
    if aligned:
        sets.append((MATMUL_SHAPE, SOFTMAX_SHAPES, UNFUSED_BUDGET_S))
    if ragged:
        sets.append((RAGGED_MATMUL_SHAPE, RAGGED_SOFTMAX_SHAPES, RAGGED_BUDGET_S))
    if short:
        for shape in SHORT_SHAPES:
            sets.append((shape, (shape,), SHORT_BUDGET_S / len(SHORT_SHAPES)))
    for matmul_shape, softmax_shapes, budget_s in sets:
        points += _measure_set(torch, matmul_shape, softmax_shapes, budget_s)
    return points


def _measure_set(
    torch: Any,
    matmul_shape: tuple[int, int],
    softmax_shapes: tuple[tuple[int, int], ...],
    budget_s: float,
    matmuls: bool = True,
) -> list[dict[str, Any]]:
    t0 = time.time()
    points: list[dict[str, Any]] = []
    jobs: list[tuple[str, bool, int, tuple[int, int, int, int], int, int]] = []
    for causal in (False, True):  # softmax: no head dim or tiling (its own block and warps)
        for bh, seq in softmax_shapes:
            jobs.append(("softmax", causal, 0, (0, 0, 0, 0), bh, seq))
    for tiling in UNFUSED_TILINGS if matmuls else ():
        for d in HEAD_DIMS:
            for causal in (False, True):
                for kernel in ("qk", "pv"):
                    jobs.append((kernel, causal, d, tiling, *matmul_shape))
    for kernel, causal, d, tiling, bh, seq in jobs:
        if time.time() - t0 > budget_s:
            print(
                f"  unfused budget spent: skip {kernel} c{int(causal)} d{d} {tiling}",
                file=sys.stderr,
            )
            continue
        try:
            launch = _launchers(torch, bh, seq, d or 64, causal, tiling if d else (64, 64, 4, 3))
            ms = _ms({"qk": launch[0], "softmax": launch[1], "pv": launch[2]}[kernel])
        except Exception as exc:  # noqa: BLE001 - keep the other entries
            print(
                f"  skip unfused {kernel} c{int(causal)} d{d} {tiling}: {exc}"[:300],
                file=sys.stderr,
            )
            continue
        finally:
            torch.cuda.empty_cache()
        point = _entry(kernel, causal, d, tiling, bh, seq, ms)
        points.append(point)
        print(f"  {point}", file=sys.stderr)
    return points


def _measure_softmax(torch: Any, shapes: tuple[tuple[int, int], ...]) -> list[dict[str, Any]]:
    """Softmax entries only (causal and not) on these (batch*heads, seq) shapes."""
    return _measure_set(torch, (0, 0), shapes, RAGGED_BUDGET_S, matmuls=False)


def measure_pv_programs(torch: Any) -> list[dict[str, Any]]:
    """`unfused_programs` entries: the P.V kernel's per-step time with few programs.

    PV_PROGRAMS programs of one query tile each (seq_q = BLOCK_M) over PV_LENGTHS keys,
    non-causal: the slope over key tiles is a lone program's step (`step_us`; it streams its
    P and V tiles at what its loads in flight allow, far under the device's bandwidth), the
    intercept less do_bench's floor its fixed time. A short query chunk against a long cache
    runs P.V so (fewer programs than SMs, long rows).
    """
    from attnsim.kernels.calibrate.microbench_blocks import bench_floor_us

    floor_us = bench_floor_us(torch)
    points = []
    for tiling in UNFUSED_TILINGS:
        for d in HEAD_DIMS:
            bm, bn = tiling[0], tiling[1]
            us = []
            for seq in PV_LENGTHS:
                launch = _launchers(torch, PV_PROGRAMS, seq, d, False, tiling, seq_q=bm)
                us.append(_ms(launch[2]) * 1e3)
                torch.cuda.empty_cache()
            step = (us[1] - us[0]) / ((PV_LENGTHS[1] - PV_LENGTHS[0]) / bn)
            fixed = us[0] - PV_LENGTHS[0] / bn * step - floor_us
            point = {
                "kernel": "pv", "head_dim": d, "block_m": bm, "block_n": bn,
                "num_warps": tiling[2], "num_stages": tiling[3], "programs": PV_PROGRAMS,
                "min_keys": PV_LENGTHS[0], "step_us": round(step, 4), "fixed_us": round(fixed, 3),
            }  # fmt: skip
            print(f"  {point} T={[round(t, 2) for t in us]}", file=sys.stderr)
            points.append(point)
    return points


def main(argv: list[str] | None = None) -> int:
    """`--ragged` / `--short`: measure only those calibration shapes; print YAML entries."""
    import argparse

    import torch
    import yaml

    p = argparse.ArgumentParser(prog="python -m attnsim.kernels.calibrate.microbench_unfused")
    p.add_argument(
        "--ragged", action="store_true", help="only the ragged calibration shapes (seq %% 16 != 0)"
    )
    p.add_argument("--short", action="store_true", help="only the short-row calibration shapes")
    p.add_argument(
        "--softmax-blocks",
        action="store_true",
        help="only the softmax at the 8192-lane block, aligned and ragged (S = 5632, 5624)",
    )
    p.add_argument(
        "--row-alignment",
        action="store_true",
        help="only the ragged set with 4- and 2-byte aligned rows (S = 4090, 4089)",
    )
    p.add_argument(
        "--pv-programs",
        action="store_true",
        help="only the P.V kernel with few programs over long rows (`unfused_programs`)",
    )
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("kernels.calibrate.microbench_unfused needs a CUDA GPU", file=sys.stderr)
        return 2
    if args.softmax_blocks:
        found = {"unfused_kernels": _measure_softmax(torch, BLOCK_SOFTMAX_SHAPES)}
        print(yaml.safe_dump(found, sort_keys=False, width=100))
        return 0
    if args.row_alignment:
        points = []
        for shape in ALIGNMENT_SHAPES:
            points += _measure_set(
                torch, shape, (shape,), ALIGNMENT_BUDGET_S / len(ALIGNMENT_SHAPES)
            )
        print(yaml.safe_dump({"unfused_kernels": points}, sort_keys=False, width=100))
        return 0
    if args.pv_programs:
        found = {"unfused_programs": measure_pv_programs(torch)}
        print(yaml.safe_dump(found, sort_keys=False, width=100))
        return 0
    only = args.ragged or args.short
    points = measure_unfused(
        torch, aligned=not only, ragged=args.ragged or not only, short=args.short or not only
    )
    print(yaml.safe_dump({"unfused_kernels": points}, sort_keys=False, width=100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
