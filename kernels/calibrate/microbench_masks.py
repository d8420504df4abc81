"""Calibration of the 1-pass kernel's score functions and sliding window (GPU only).

`python -m attnsim.kernels.calibrate.microbench_masks --out FILE` measures, with the real
1-pass Triton kernel (`kernels.triton.attn_fwd`, "plain" schedule), what the GPU model
(`mappers.gpu.model`) reads for the kernel families `triton-score` and `triton-window`;
`--merge CAL --entries FILE` writes them into a calibration file (no GPU needed).

- Modes `score-softmax`, `score-sigmoid`, `score-softcap`, `score-alibi`
  (`attention_steps`): the key-tile step of the kernel with each score function: one head
  of SMs x k query tiles (one wave, k = 1 and 2 where two fit) over n key tiles (seq_k =
  n * BLOCK_N, n = SCORE_STEPS), non-causal, so every program streams the same K/V tiles
  through L2 as one head's programs do in a real call: step = (T(n2) - T(n1)) / (n2 - n1).
  The model prices a score function by the difference of its step and the softmax step
  measured the same way (`score-softmax`), added to the plain kernel's calibrated tile
  chain, so the two measurements share one method.
- Modes `pingpong-score-softmax`, `pingpong-score-sigmoid`: the same steps of the ping-pong
  kernel (`kernels.gluon.attn_pingpong`, PINGPONG_TILINGS, one block per SM), what the
  model prices its sigmoid by (`--pingpong-only`: these alone; a merge then replaces only
  the modes the run measured; `--scores-only`: the plain kernel's score steps alone).
- Mode `window` (`attention_steps` and `attention_blocks`): the kernel with a causal sliding
  window W = BLOCK_M and `sinks` = j * BLOCK_N (j = WINDOW_SINK_TILES) on heads of
  WINDOW_TILES query tiles; one wave. A query tile far enough from the start visits its
  diagonal and the window's leading tiles (2 * BLOCK_M / BLOCK_N masked steps, two key
  loops) and j sink tiles in a third loop (masked). With T(j) the do_bench medians:
  step = (T(5) - T(1)) / 4 (a masked step of the window kernel, the round of k blocks), and
  `loop_us` = T(1) - T(0) - step: what entering one more key loop costs (its first K/V load
  is not prefetched by the loop before it). The shape's seq_q is a multiple of BLOCK_M: the
  kernel reaches its tiles through host-built descriptors (`tiles: host`). Entries: the
  step (mode `window`) and a block entry whose `fixed_us` = T(0) - (2 BLOCK_M / BLOCK_N) *
  step - floor (a two-loop window block's fixed time, the masked steps taken out) with
  `loop_us` beside it.
- Mode `online` block entries for 1-pass tilings the masks probe runs that
  `microbench_blocks.BLOCK_PLAN` did not measure (`EXTRA_BLOCKS`).

None of these shapes (one head of SMs x k query tiles over 8 or 32 key tiles; heads of
WINDOW_TILES query tiles with W = BLOCK_M) is a shape of benchmarks/masks_probe.py.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import triton

SCORE_STEPS = (8, 32)
SCORE_ROUNDS = 3  # score functions timed in turn, this many rounds; the median step kept
SCORES = ("softmax", "sigmoid", "softcap", "alibi")
SOFTCAP = 50.0  # Gemma 2's cap, as benchmarks/masks_probe.py
WINDOW_TILES = 32  # query tiles per head of the window shape
WINDOW_SINK_TILES = (0, 1, 5)
LATER_WAVES = 8  # the window grids' later-wave run: this many waves of the same heads
# (head_dim, (block_m, block_n, num_warps, num_stages)): the masks probe's tilings
TILINGS = (
    (64, (128, 64, 4, 3)),
    (64, (128, 128, 8, 3)),
    (64, (64, 64, 4, 3)),
    (128, (128, 64, 8, 3)),
    (128, (128, 128, 8, 3)),
    (128, (128, 64, 4, 3)),
)
EXTRA_BLOCKS = tuple(("online", 64, (128, 128, 8, 3), tiles) for tiles in ("host", "device"))
# the ping-pong kernel's tilings (one block per SM) and the score functions it runs
PINGPONG_TILINGS = tuple((d, (128, bn, 8, 3)) for d in (64, 128) for bn in (64, 128))
PINGPONG_SCORES = ("softmax", "sigmoid")
MODES = (
    *(f"score-{s}" for s in SCORES),
    *(f"pingpong-score-{s}" for s in PINGPONG_SCORES),
    "window",
)


def _ms(fn: Any) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median"))


def _score(name: str) -> Any:
    from attnsim.kernels.triton.attn_fwd import Score

    return {
        "softmax": Score(),
        "sigmoid": Score(sigmoid=True),
        "softcap": Score(softcap=SOFTCAP),
        "alibi": Score(alibi=True),
    }[name]


def _resident(torch: Any, d: int, tiling: tuple[int, int, int, int], causal: bool) -> int:
    """Programs of this tiling's compiled build (called once before) that fit on one SM.

    0 when the build is not in the JIT cache (`causal`: the window build, else the plain one).
    """
    from attnsim.kernels.calibrate.microbench_blocks import compiled_kernel, occupancy
    from attnsim.kernels.triton.attn_fwd import attn_fwd_kernel

    bm, bn, w, st = tiling
    meta = dict(BLOCK_M=bm, BLOCK_N=bn, HEAD_DIM=d, CAUSAL=causal)
    kernel = compiled_kernel(attn_fwd_kernel, meta, w, st)
    return occupancy(torch, kernel, w) if kernel is not None else 0


def _fits_two(torch: Any, d: int, tiling: tuple[int, int, int, int]) -> bool:
    """Whether two programs of this tiling fit on one SM (shared memory, registers)."""
    return _resident(torch, d, tiling, False) >= 2


def _common(mode: str, d: int, tiling: tuple[int, int, int, int], k: int) -> dict[str, Any]:
    bm, bn, w, st = tiling
    return dict(mode=mode, dtype="bf16", head_dim=d, block_m=bm, block_n=bn, num_warps=w,
                num_stages=st, blocks_per_sm=k)  # fmt: skip


def measure_scores(torch: Any, sms: int, schedule: str = "plain") -> list[dict[str, Any]]:
    """`attention_steps` of modes score-<name>: the kernel's step with each score function.

    The score functions are timed in turn on the same tensors, SCORE_ROUNDS rounds, and
    each step is the median of its rounds: the model prices a score function by its step's
    difference to softmax's, a few percent, which one timing's noise can reverse (the
    2026-12-04 H200 file measured softmax 7% above its own calibrated step at head dim 128
    and 128 x 128 tiles, pricing ALiBi and sigmoid 10-14% fast there). `schedule`
    "pingpong": the ping-pong kernel's softmax and sigmoid (modes pingpong-score-<name>,
    PINGPONG_TILINGS, one block per SM), the same way.
    """
    import statistics

    from attnsim.kernels.triton.attn_fwd import attention_fwd

    pingpong = schedule == "pingpong"
    tilings, names = (PINGPONG_TILINGS, PINGPONG_SCORES) if pingpong else (TILINGS, SCORES)
    prefix = "pingpong-score-" if pingpong else "score-"
    steps = []
    for d, tiling in tilings:
        bm, bn, w, st = tiling
        tile: dict[str, Any] = dict(block_m=bm, block_n=bn, num_warps=w, num_stages=st,
                                    schedule=schedule)  # fmt: skip
        for k in (1, 2):
            if k == 2 and (pingpong or not _fits_two(torch, d, tiling)):
                continue
            # one head: every program streams the same K/V tiles through L2, as the programs
            # of one head do in a real call (a head per program would stream them from HBM
            # and hide the score function's work behind the bandwidth)
            q = torch.randn(1, 1, sms * k * bm, d, device="cuda", dtype=torch.bfloat16)
            o = torch.empty_like(q)
            kvs = [
                [torch.randn(1, 1, n * bn, d, device="cuda", dtype=torch.bfloat16) for _ in "kv"]
                for n in SCORE_STEPS
            ]
            rounds: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(SCORE_ROUNDS):
                for name in names:
                    times = []
                    for kk, v in kvs:
                        call = functools.partial(
                            attention_fwd, q, kk, v, out=o, score=_score(name), **tile
                        )
                        call()
                        times.append(_ms(call) * 1e3)
                    step = (times[1] - times[0]) / (SCORE_STEPS[1] - SCORE_STEPS[0])
                    rounds[name].append(step)
                    print(f"  {prefix}{name} d{d} {tiling} k={k}: step {step:.4f} us "
                          f"T={[round(t, 2) for t in times]}", file=sys.stderr)  # fmt: skip
            for name in names:
                step = statistics.median(rounds[name])
                steps.append({**_common(prefix + name, d, tiling, k), "step_us": round(step, 4)})
                print(f"  {prefix}{name} d{d} {tiling} k={k}: median step {step:.4f} us of "
                      f"{[round(x, 4) for x in rounds[name]]}", file=sys.stderr)  # fmt: skip
    return steps


def window_entries(
    common: dict[str, Any],
    times_us: Sequence[float],
    floor_us: float,
    blocks: int,
    later_times_us: Sequence[float] = (),
    later_blocks: int = 0,
    slots: int = 0,
) -> list[dict[str, Any]]:
    """Mode `window` block entries from do_bench medians at WINDOW_SINK_TILES sink tiles.

    `times_us`: one wave of `blocks` window blocks (W = BLOCK_M); `later_times_us`: the
    same with `later_blocks` blocks (LATER_WAVES waves of `slots` = SMs x blocks per SM).
    The first: step = (T(5) - T(1)) / 4, loop = T(1) - T(0) - step, fixed = T(0) - masked
    steps - floor. The later-wave entry takes the same differences of the per-wave time the
    further waves add, (T_later(j) - T(j)) / (later_blocks - blocks) x slots (its fixed time
    with no floor: the call's floor is paid once), with `q_tiles` = WINDOW_TILES.
    """
    bm, bn = common["block_m"], common["block_n"]
    masked = 2 * bm // bn
    (j0, j1, j2) = WINDOW_SINK_TILES

    def parts(t: Sequence[float], floor: float) -> dict[str, float]:
        step = (t[2] - t[1]) / (j2 - j1)
        loop = t[1] - t[0] - (j1 - j0) * step
        return {"fixed_us": round(t[0] - masked * step - floor, 3), "step_us": round(step, 4),
                "loop_us": round(loop, 3)}  # fmt: skip

    out = [{**common, "blocks": blocks, "waves": 1, "tiles": "host", **parts(times_us, floor_us)}]
    if later_times_us and later_blocks > blocks and slots > 0:
        per_wave = [(b - a) * slots / (later_blocks - blocks)
                    for a, b in zip(times_us, later_times_us, strict=True)]  # fmt: skip
        waves = -(-later_blocks // slots)
        out.append({**common, "blocks": later_blocks, "waves": waves, "tiles": "host",
                    "q_tiles": WINDOW_TILES, **parts(per_wave, 0.0)})  # fmt: skip
    return out


def _window_times_us(
    torch: Any, d: int, tiling: tuple[int, int, int, int], heads: int
) -> list[float]:
    """do_bench medians (us) of the window kernel, W = BLOCK_M, at WINDOW_SINK_TILES sinks."""
    from attnsim.kernels.triton.attn_fwd import attention_fwd

    bm, bn, w, st = tiling
    seq = WINDOW_TILES * bm
    q, kk, v = (torch.randn(1, heads, seq, d, device="cuda", dtype=torch.bfloat16)
                for _ in range(3))  # fmt: skip
    o = torch.empty_like(q)
    out = []
    for j in WINDOW_SINK_TILES:
        call = functools.partial(attention_fwd, q, kk, v, causal=True, block_m=bm, block_n=bn,
                                 num_warps=w, num_stages=st, out=o, window=bm,
                                 sinks=j * bn)  # fmt: skip
        call()
        out.append(_ms(call) * 1e3)
    return out


def measure_window(torch: Any, sms: int, floor: float) -> dict[str, list[dict[str, Any]]]:
    """Mode `window`: the masked step, a two-loop block's fixed time, one more loop's cost.

    On one wave and on LATER_WAVES waves of the same heads (`window_entries`).
    """
    steps, blocks = [], []
    for d, tiling in TILINGS:
        one = {1: _window_times_us(torch, d, tiling, sms // WINDOW_TILES)}
        # the window build's residency (compiled by the call above): its later waves are
        # measured at it (a grid of more blocks than SMs runs as many per SM as fit)
        resident = _resident(torch, d, tiling, True)
        if resident >= 2:
            one[2] = _window_times_us(torch, d, tiling, 2 * sms // WINDOW_TILES)
        for k, t1 in one.items():
            common = _common("window", d, tiling, k)
            later: list[float] = []
            b8 = 0
            if k == resident:  # a later grid runs at the build's residency, this k only
                heads = LATER_WAVES * sms * k // WINDOW_TILES
                later, b8 = _window_times_us(torch, d, tiling, heads), heads * WINDOW_TILES
            b1 = (k * sms // WINDOW_TILES) * WINDOW_TILES
            entries = window_entries(common, t1, floor, b1, later, b8, sms * k)
            steps.append({**common, "step_us": entries[0]["step_us"]})
            blocks += entries
            for e in entries:
                print(f"  window d{d} {tiling} k={k} waves={e['waves']}: step {e['step_us']:.3f}"
                      f" us, loop {e['loop_us']:.2f} us, fixed {e['fixed_us']:.2f} us",
                      file=sys.stderr)  # fmt: skip
            print(f"    resident {resident}: T={[round(x, 2) for x in t1]} "
                  f"T_later={[round(x, 2) for x in later]}", file=sys.stderr)  # fmt: skip
    return {"attention_steps": steps, "attention_blocks": blocks}


def measure(
    torch: Any, pingpong_only: bool = False, window_only: bool = False, scores_only: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Every entry of this module (see the module docstring); or one part alone."""
    from attnsim.kernels.calibrate.microbench_blocks import bench_floor_us, measure_blocks
    from attnsim.kernels.triton.common import ensure_allocator

    ensure_allocator()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    floor = bench_floor_us(torch)
    found: dict[str, list[dict[str, Any]]] = {"attention_steps": [], "attention_blocks": []}
    parts = (
        lambda: {"attention_blocks": measure_blocks(torch, floor, EXTRA_BLOCKS)},
        lambda: {"attention_steps": measure_scores(torch, sms)},
        lambda: measure_window(torch, sms, floor),
        lambda: {"attention_steps": measure_scores(torch, sms, "pingpong")},
    )
    chosen = (
        parts[-1:] if pingpong_only else parts[2:3] if window_only
        else parts[1:2] if scores_only else parts
    )  # fmt: skip
    for part in chosen:
        try:
            for key, entries in part().items():
                found[key] += entries
        except Exception as exc:  # noqa: BLE001 - keep what the other parts measured
            print(f"  part failed: {type(exc).__name__}: {exc}"[:400], file=sys.stderr)
    return found


def merge(path: Path, found: dict[str, list[dict[str, Any]]], device: str) -> None:
    """Write the entries into a calibration file.

    This module's modes are replaced, and the `online` block entries of the tilings measured
    here (other `online` entries are kept).
    """
    from attnsim.kernels.calibrate.microbench_bwd import merge_modes, replace_entries

    def key(e: dict[str, Any]) -> tuple[Any, ...]:
        names = ("mode", "head_dim", "block_m", "block_n", "num_warps", "num_stages", "tiles")
        return (*(e.get(n) for n in names), e.get("blocks"))

    ours = {k: [e for e in v if e.get("mode") != "online"] for k, v in found.items()}
    # the modes this run measured (a --pingpong-only run leaves the plain kernel's alone)
    ran = {e.get("mode") for v in ours.values() for e in v}
    modes = tuple(m for m in MODES if m in ran)
    source = "python -m attnsim.kernels.calibrate.microbench_masks"
    merge_modes(path, ours, modes, source, device)
    online = [e for e in found.get("attention_blocks", []) if e.get("mode") == "online"]
    if online:
        replace_entries(path, "attention_blocks", online, key)


def main(argv: list[str] | None = None) -> int:
    """Measure and write the entries (--out), or merge earlier ones (--merge, --entries)."""
    from attnsim.kernels.calibrate.microbench_bwd import entries_main

    description = (__doc__ or "").splitlines()[0]
    only = (
        ("--pingpong-only", "only the ping-pong kernel's softmax and sigmoid steps"),
        ("--window-only", "only the window kernel's entries (first and later waves)"),
        ("--scores-only", "only the plain kernel's score-function steps (score-* modes)"),
    )
    return entries_main(argv, description, "microbench_masks", measure, merge, only)


if __name__ == "__main__":
    raise SystemExit(main())
