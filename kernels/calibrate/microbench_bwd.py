"""Calibration of the attention backward's kernels (kernels.triton.attn_bwd; GPU only).

`python -m attnsim.kernels.calibrate.microbench_bwd [--merge archs/calibration/h200.yaml]`
measures the loop step and the per-program fixed time of the backward's two tile kernels, as
the GPU model (`mappers.gpu.backward`) reads them: modes `bwd-dkdv` (the dK/dV kernel),
`bwd-dkdv-atomic` (the same with the dQ atomics) and `bwd-dq` (the separate dQ kernel), for
every tiling of `BWD_TILINGS` and head dims 64 and 128. It prints the entries as YAML;
`--merge FILE` writes them into a calibration file, replacing earlier entries of these modes.

Method (as `microbench_blocks` for the forward kernels): the real kernel launched alone on a
calibration shape of one wave, `k` programs per SM (k = 1 and the compiled kernel's
occupancy): one head with SMs x k tiles along the held rank (the dK/dV kernel holds key
tiles, seq_k = SMs x k x block_n; the dQ kernel query tiles), so every program runs the same
n steps along the streamed rank (n = STEPS) over the same tiles, through L2, as one head's
programs do in a real call (an earlier version gave each program a head of its own: its
tiles and atomics missed L2, and steps came out 1.5-2x the real kernel's), non-causal. With T(n) the
do_bench median and `floor` the time of an empty kernel:

    step = (T(n2) - T(n1)) / (n2 - n1)        fixed = T(n1) - n1 * step - floor

The calibration shapes (one head, 132+ tiles along one rank, 8 or 32 along the other) are
none of the validation or holdout shapes of benchmarks/bwd_probe.py.

`--spread W` measures the dK/dV modes with the programs spread over heads of W key tiles
each (entries `bwd-dkdv-wW`, `bwd-dkdv-atomic-wW`): in a real call only seq_k / block_n
programs share a head's tiles and dQ rows, against the SMs x k of the calibration shape; on
the H200 the atomic mode's fixed time per program at head dim 64 with 64 x 64 and 32 x 64
tiles (2-3 programs per SM) is 14.0-14.9 us with 264-396 programs on one head's dQ rows and
4.8-6.0 us with 16 (`kernels/measurements/bwd/microbench-bwd-spread-w16-*`).
`mappers.gpu.backward.spread_mode` prices a call's dK/dV kernel with the entries whose
programs per head are nearest its own (log ratio; the one-head entries count as one wave of
the SMs). `--merge CAL --entries FILE` adds a spread file's modes beside the one-head ones.

Host side (`--host` prints them): `host_calls` measures the host time of one `attention_bwd`
call per dq mode and mask (`host_call_us` keys `bwd-atomic`, `bwd-separate`,
`bwd-atomic-causal`, `bwd-separate-causal`, which `mappers.gpu.backward` reads);
`benchmarks/bwd_probe.py` writes them beside its CSV in the same run (`write_host_file`) and
compiles its kernels in worker processes first (`compile_in_workers`).
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import triton

from attnsim.einsum_ir.spec import SpecError, read_yaml
from attnsim.kernels.spec import BWD_DP_FIRST_SUFFIX

STEPS = (8, 32)
HEAD_DIMS = (64, 128)
MODES = ("bwd-dkdv", "bwd-dkdv-atomic", "bwd-dq")
DKDV_MODES = MODES[:2]
DP_FIRST_SUFFIX = BWD_DP_FIRST_SUFFIX  # the dP-first build's dK/dV modes (kernels.spec)


def _ms(fn: Any) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median"))


def _caller(
    torch: Any,
    mode: str,
    d: int,
    tiling: tuple[int, int, int, int],
    programs: int,
    n: int,
    writers: int = 0,
):  # type: ignore[no-untyped-def]
    """A zero-argument launch of one backward kernel on the calibration shape.

    One head whose held rank has `programs` tiles, so every program streams the same tiles
    of the other rank through L2 (and, atomic, adds into the same dQ rows), as the programs
    of one head do in a real call. `writers` > 0 (dK/dV modes): the programs spread over
    programs // writers heads of `writers` key tiles each, so that `writers` programs share
    each head's tiles and dQ rows (a real call's seq_k / block_n).
    """
    from attnsim.kernels.triton.attn_bwd import bwd_launches, jit_launch

    bm, bn, w, st = tiling
    dt = torch.bfloat16
    heads = max(1, programs // writers) if writers and mode != "bwd-dq" else 1
    held, streamed = (writers if heads > 1 else programs) * bn, n * bm
    sq, sk = (streamed, held) if mode != "bwd-dq" else (held, streamed)
    q, do = (torch.randn(1, heads, sq, d, device="cuda", dtype=dt) for _ in range(2))
    k, v = (torch.randn(1, heads, sk, d, device="cuda", dtype=dt) for _ in range(2))
    lse = torch.full((1, heads, sq), float(sk) ** 0.5, device="cuda", dtype=torch.float32)
    delta = torch.zeros((1, heads, sq), device="cuda", dtype=torch.float32)
    atomic = mode == "bwd-dkdv-atomic"
    specs = bwd_launches(1, heads, heads, sq, sk, d, dt, False, d**-0.5, tiling,
                         "atomic" if atomic else "separate")  # fmt: skip
    if mode == "bwd-dq":
        dq = torch.empty_like(q)
        return lambda: jit_launch(specs[2], q, k, v, do, dq, lse, delta)
    dq = torch.zeros(q.shape, device="cuda", dtype=torch.float32) if atomic else torch.empty_like(q)
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    return lambda: jit_launch(specs[1], q, k, v, do, dq, dk, dv, lse, delta)


def spread_mode(mode: str, writers: int, dp_first: bool = False) -> str:
    """The entry mode of `mode` measured with `writers` programs per head (`--spread`).

    `dp_first`: the dK/dV kernel of the build whose step issues dP first
    (`kernels.spec.BWD_DP_FIRST`): its modes carry `DP_FIRST_SUFFIX` (the dQ kernel's do not).
    """
    if dp_first and mode != "bwd-dq":
        mode += DP_FIRST_SUFFIX
    return f"{mode}-w{writers}" if writers else mode


def dp_first_build() -> bool:
    """The build `measure` times (`attn_bwd.BWD_DP_FIRST`, which `--earlier-order` clears)."""
    from attnsim.kernels.triton import attn_bwd

    return bool(attn_bwd.BWD_DP_FIRST)


def measure(
    torch: Any, modes: tuple[str, ...] = MODES, writers: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """`attention_steps` and `attention_blocks` entries of the backward's modes.

    `writers` > 0: the dK/dV programs spread over heads (`_caller`), entries under
    `spread_mode` names (`mappers.gpu.backward.spread_mode` picks them for calls of about
    that many key tiles per head).
    """
    from attnsim.kernels.calibrate.microbench_blocks import bench_floor_us, occupancy
    from attnsim.kernels.triton.attn_bwd import BWD_TILINGS

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    floor = bench_floor_us(torch)
    steps, blocks = [], []
    for mode in modes:
        for d in HEAD_DIMS:
            for tiling in BWD_TILINGS:
                bm, bn, w, st = tiling
                compiled = _caller(torch, mode, d, tiling, sms, STEPS[0], writers)()
                per_sm = {1, occupancy(torch, compiled, w)} if compiled is not None else {1}
                for k in sorted(per_sm):
                    progs = sms * k
                    if writers and mode != "bwd-dq":
                        progs = max(1, progs // writers) * writers
                    t = [
                        _ms(_caller(torch, mode, d, tiling, sms * k, n, writers)) * 1e3
                        for n in STEPS
                    ]
                    step = (t[1] - t[0]) / (STEPS[1] - STEPS[0])
                    fixed = t[0] - STEPS[0] * step - floor
                    # in the kernel's own terms: the dQ kernel holds a block_n query tile
                    # (its BLOCK_M) and streams block_m key tiles (mappers.gpu.backward.dq_plan)
                    held_m, held_n = (bn, bm) if mode == "bwd-dq" else (bm, bn)
                    common = dict(
                        mode=spread_mode(mode, writers, dp_first_build()),
                        dtype="bf16",
                        head_dim=d,
                        block_m=held_m,
                        block_n=held_n,
                        num_warps=w,
                        num_stages=st,
                        blocks_per_sm=k,
                    )
                    steps.append({**common, "step_us": round(step, 4)})
                    blocks.append(
                        {
                            **common,
                            "blocks": progs,
                            "waves": 1,
                            "tiles": "device",
                            "fixed_us": round(fixed, 3),
                            "step_us": round(step, 4),
                        }
                    )
                    print(
                        f"  {common['mode']} d{d} {bm}x{bn}/w{w}/s{st} k={k}: step {step:.3f} "
                        f"us, fixed {fixed:.2f} us",
                        file=sys.stderr,
                    )
    return {"attention_steps": steps, "attention_blocks": blocks}


def spread_jobs(sms: int, writers: int) -> list[tuple[Any, ...]]:
    """`attn_bwd.compile_bwd` arguments of `measure(..., writers)`'s launches (1-3 per SM)."""
    from attnsim.kernels.triton.attn_bwd import BWD_TILINGS

    return [
        (1, max(1, sms * k // writers), max(1, sms * k // writers), 1024, d, False, t, mode)
        for mode in ("atomic", "separate")
        for d in HEAD_DIMS
        for t in BWD_TILINGS
        for k in (1, 2, 3)
    ]


# ----------------------------------------------------------------------------- host side
# One `attention_bwd` call costs the host its launcher's Python work: a plan lookup, four
# allocations, one C-level launch per kernel, and in atomic mode the cast of the float32 dQ.
# Calls shorter than that on the GPU are timed at the host's speed (`mappers.gpu.backward`).
HOST_SHAPE = (1, 1, 128, 64)  # (batch, heads, seq, head_dim): the GPU work far below the host's
HOST_CLASSES = (("atomic", False), ("separate", False), ("atomic", True), ("separate", True))


def host_key(dq_mode: str, causal: bool, path: str = "") -> str:
    """The `host_call_us` key of a backward launcher call (`mappers.gpu.backward.host_keys`).

    `path` "jit": the diagnostic figure of the launches through Triton's JIT (`host_calls`).
    """
    return "bwd-" + (f"{path}-" if path else "") + dq_mode + ("-causal" if causal else "")


def host_calls(torch: Any, jit: bool = True) -> dict[str, float]:
    """Host µs of one `attention_bwd` call per dq mode and mask, on a tiny problem.

    Measured as the forward launchers' `host_call_us` (`microbench_steps.host_calls`: 300
    back-to-back calls, the GPU synchronized at the end, median of 5). `jit`: also the same
    calls with every kernel launched through Triton's JIT and the dQ buffer zeroed by torch,
    as the launcher did before its launches were planned (keys `bwd-jit-...`; a diagnostic
    of the files timed with that launcher, which the model does not read).
    """
    from attnsim.kernels.calibrate.microbench_steps import _host_per_call_us
    from attnsim.kernels.triton.attn_bwd import attention_bwd, default_bwd_tiling, softmax_lse

    b, h, s, d = HOST_SHAPE
    q, k, v, o, do = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in "qkvod")
    lse = softmax_lse(q, k)
    tiling = default_bwd_tiling(d)
    out: dict[str, float] = {}
    for mode, causal in HOST_CLASSES:
        calls = {host_key(mode, causal): lambda m=mode, c=causal: attention_bwd(
            q, k, v, o, do, lse, c, None, *tiling, m)}  # fmt: skip
        if jit:
            calls[host_key(mode, causal, "jit")] = _jit_bwd(
                torch, q, k, v, o, do, lse, causal, tiling, mode
            )
        for key, call in calls.items():
            try:
                out[key] = round(_host_per_call_us(torch, call), 2)
            except Exception as exc:  # noqa: BLE001 - keep the other figures
                print(f"  host call {key} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            print(f"  host_call_us {key}: {out.get(key)}", file=sys.stderr)
    return out


def compile_forward_host_calls() -> None:
    """Make the forward host probe's calls once (`microbench_steps.host_calls`), output dropped.

    For a compile worker (`benchmarks/bwd_probe.py`): their kernels land in Triton's on-disk
    cache, so the probe's own host measurement compiles nothing.
    """
    import contextlib
    import io

    import torch

    from attnsim.kernels.calibrate.microbench_steps import host_calls as forward_host_calls

    with contextlib.redirect_stderr(io.StringIO()):
        forward_host_calls(torch)


def compile_in_workers(
    jobs: list[tuple[Any, ...]],
    workers: int,
    timeout_s: float,
    compile_fn: Callable[..., Any] | None = None,
    forward: bool = True,
) -> str:
    """Compile backward calls (`compile_fn` arguments) in worker processes; a summary line.

    `compile_fn`: a module-level function (the workers import it), `attn_bwd.compile_bwd` by
    default; `forward`: also the forward host probe's kernels (`compile_forward_host_calls`).
    The kernels land in Triton's on-disk cache, where this process's first launch of each
    finds them; a failure is left for that launch to meet (and its caller to record).
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    from attnsim.kernels.triton.attn_bwd import compile_bwd

    fn = compile_bwd if compile_fn is None else compile_fn
    t0 = time.monotonic()
    pool = cf.ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn"))
    futures = [pool.submit(fn, *job) for job in jobs]
    if forward:
        futures.append(pool.submit(compile_forward_host_calls))
    done, pending = cf.wait(futures, timeout=timeout_s)
    failed = [e for f in done if (e := f.exception()) is not None]
    if pending:  # stop the workers still compiling: they would slow the host being measured
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    text = (
        f"compiled {len(done) - len(failed)}/{len(futures)} jobs on {workers} workers in "
        f"{time.monotonic() - t0:.0f} s"
    )
    if failed:
        first = " ".join(str(failed[0]).split())[:200]
        text += f"; {len(failed)} failed, first: {type(failed[0]).__name__}: {first}"
    if pending:
        text += f"; {len(pending)} unfinished after {timeout_s:.0f} s (compiled when launched)"
    return text


def write_host_file(csv_path: Path, info: dict[str, str]) -> dict[str, Any] | None:
    """Measure this host's launcher-call figures; write them beside `csv_path` (`-host.yaml`).

    `host_call_us`: this module's `host_calls` and the forward launchers'
    (`microbench_steps.host_calls`, which `reports.validation.host_adjusted` compares with the
    calibration's to scale do_bench's head start); `bench_flush_us`: do_bench's L2 flush on
    the GPU. Returns the figures (None, with a message, when the measurement failed).
    """
    import torch

    from attnsim.kernels.bench.measure import write_host_figures
    from attnsim.kernels.calibrate import microbench_steps

    t0 = time.monotonic()
    try:
        calls = {**microbench_steps.host_calls(torch), **host_calls(torch)}
        figures: dict[str, Any] = {
            "host_call_us": calls,
            "bench_flush_us": round(microbench_steps.flush_us(torch), 2),
        }
    except Exception as exc:  # noqa: BLE001 - the timings are still worth having
        print(f"host probe failed ({type(exc).__name__}: {exc}); no host file", file=sys.stderr)
        return None
    meta = {
        "source": "kernels.calibrate.microbench_bwd.write_host_file (host_calls, "
        "microbench_steps.host_calls and flush_us)",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **info,
    }
    path = write_host_figures(csv_path, figures, meta)
    print(f"host probe ({time.monotonic() - t0:.0f} s): {figures} -> {path}", flush=True)
    return figures


def _jit_bwd(torch: Any, q: Any, k: Any, v: Any, o: Any, do: Any, lse: Any, causal: bool,
             tiling: tuple[int, int, int, int], mode: str) -> Any:  # fmt: skip
    """A call of `attention_bwd` as it ran before its launches were planned (diagnostic).

    Per call: the argument checks, `.contiguous()` of every input, the buffers (the dQ buffer
    zeroed by torch in atomic mode), every kernel through Triton's JIT (the launch arguments
    worked out beforehand, as cheap as the old inline arithmetic), and the cast.
    """
    from attnsim.kernels.triton.attn_bwd import bwd_launches, jit_launch
    from attnsim.kernels.triton.common import check_qkv, default_scale

    b, h, sq, d = q.shape
    args = (b, h, k.shape[1], sq, k.shape[2], d, q.dtype, causal, default_scale(d), tiling)
    specs = bwd_launches(*args, mode)
    pre = bwd_launches(*args, "separate")[0]  # D alone, as before (torch zeroed the dQ buffer)
    atomic = mode == "atomic"

    def call() -> tuple[Any, Any, Any]:
        qq, kk, vv = check_qkv(q, k, v, groups=True)
        qq, kk, vv, oo, dd = (t.contiguous() for t in (qq, kk, vv, o, do))
        ll = lse.float().contiguous()
        delta = torch.empty((b, h, sq), device=qq.device, dtype=torch.float32)
        jit_launch(pre, oo, dd, delta, delta)
        if atomic:
            dq = torch.zeros(qq.shape, device=qq.device, dtype=torch.float32)
        else:
            dq = torch.empty_like(qq)
        dk, dv = torch.empty_like(kk), torch.empty_like(vv)
        jit_launch(specs[1], qq, kk, vv, dd, dq, dk, dv, ll, delta)
        if atomic:
            return dq.to(qq.dtype), dk, dv
        jit_launch(specs[2], qq, kk, vv, dd, dq, ll, delta)
        return dq, dk, dv

    return call


def merge(path: Path, found: dict[str, list[dict[str, Any]]], device: str) -> None:
    """Write the entries into a calibration file, replacing earlier ones of their modes.

    The modes are the entries' own: a `--spread W` file (modes `bwd-dkdv[-atomic]-wW`) adds
    its entries beside the one-head ones instead of replacing them.
    """
    modes = tuple(sorted({e["mode"] for entries in found.values() for e in entries})) or MODES
    spread = sorted({m.rsplit("-w", 1)[1] for m in modes if re.fullmatch(r".*-w\d+", m)})
    source = "python -m attnsim.kernels.calibrate.microbench_bwd"
    if spread:
        source += " --spread " + ",".join(spread)
    merge_modes(path, found, modes, source, device)


def merge_modes(path: Path, found: dict[str, list[dict[str, Any]]], modes: tuple[str, ...],
                source: str, device: str) -> None:  # fmt: skip
    """Replace the entries of `modes` in a calibration file by `found`, with a note."""
    import yaml

    text = path.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("# Written"))
    data = read_yaml(path)  # the hardened reader: a bad file is a located SpecError
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a calibration mapping")
    for key, entries in found.items():
        kept = [e for e in data.get(key, []) if e.get("mode") not in modes]
        data[key] = kept + entries
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    head = f"attention_steps / attention_blocks of modes {', '.join(modes)}: "
    note = (
        f"{head}`{source}` on {device}, merged {stamp} (the real kernel, one wave, two "
        "streamed lengths)"
    )
    # the note of an earlier merge of the same modes gives way; other modes' notes stay
    data["notes"] = [n for n in data.get("notes", []) if not n.startswith(head)] + [note]
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100), encoding="utf-8")


def replace_entries(
    path: Path,
    section: str,
    entries: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], Hashable],
    note: str = "",
    source: str = "",
) -> None:
    """Put `entries` in a calibration file's `section` in place of those with the same `key`.

    `note` joins the file's notes, replacing earlier notes that name `source`.
    """
    import yaml

    text = path.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("# Written"))
    data = read_yaml(path)  # the hardened reader: a bad file is a located SpecError
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a calibration mapping")
    new = {key(e) for e in entries}
    data[section] = [e for e in data.get(section, []) if key(e) not in new] + entries
    if note:
        data["notes"] = [n for n in data.get("notes", []) if not source or source not in n]
        data["notes"].append(note)
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100), encoding="utf-8")


def entries_main(
    argv: list[str] | None,
    description: str,
    name: str,
    measure: Callable[..., dict[str, list[dict[str, Any]]]],
    merge: Callable[[Path, dict[str, Any], str], None],
    flags: tuple[tuple[str, str], ...] = (),
) -> int:
    """The command line of a calibration module that writes entries and merges them.

    `--out FILE` measures (GPU) and writes the entries; `--merge CAL --entries FILE` merges
    entries of an earlier run into a calibration file (no GPU needed). `flags`: the module's
    own on/off options (`--name`, help), passed to `measure` as keywords.
    """
    import yaml

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, default=None, help="write the entries here (YAML)")
    p.add_argument("--merge", type=Path, default=None, help="calibration YAML to update")
    p.add_argument("--entries", type=Path, default=None, help="entries to merge (no GPU)")
    p.add_argument("--device", default="NVIDIA H200", help="device named in the note")
    for flag, text in flags:
        p.add_argument(flag, action="store_true", help=text)
    args = p.parse_args(argv)
    if args.entries is not None:
        if args.merge is None:
            p.error("--entries needs --merge FILE")
        missing = [f"{f}" for f in (args.merge, args.entries) if not f.is_file()]
        if missing:
            p.error(f"no such file: {', '.join(missing)}")
        merge(args.merge, read_yaml(args.entries), args.device)
        return 0
    import torch

    if not torch.cuda.is_available():
        print(f"{name} needs a CUDA GPU", file=sys.stderr)
        return 2
    chosen = {f.lstrip("-").replace("-", "_"): True for f, _ in flags}
    chosen = {k: getattr(args, k) for k in chosen}
    text = yaml.safe_dump(measure(torch, **chosen), sort_keys=False)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Measure, print the entries as YAML, and merge them with --merge FILE."""
    import torch
    import yaml

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--merge", type=Path, default=None, help="calibration YAML to update")
    p.add_argument("--out", type=Path, default=None, help="also write the entries here (YAML)")
    p.add_argument(
        "--entries",
        type=Path,
        default=None,
        help="merge these entries (an --out file of an earlier run) instead of "
        "measuring; with --merge, needs no GPU",
    )
    p.add_argument("--device", default="NVIDIA H200", help="device named in the note (--entries)")
    p.add_argument("--host", action="store_true", help="print host_call_us of attention_bwd only")
    p.add_argument(
        "--merge-host",
        nargs=2,
        type=Path,
        metavar=("CAL", "HOST_YAML"),
        help="merge a bwd_probe host file's backward launcher figures into CAL (no GPU)",
    )
    p.add_argument(
        "--earlier-order",
        action="store_true",
        help="time the earlier build of the dK/dV kernel (dP after dV; entries without the "
        f"{DP_FIRST_SUFFIX} suffix) instead of the kernels' own (kernels.spec.BWD_DP_FIRST)",
    )
    p.add_argument("--dkdv-only", action="store_true", help="the dK/dV modes alone")
    p.add_argument(
        "--scale-build",
        nargs=3,
        type=Path,
        metavar=("CAL", "EARLIER", "NEWER"),
        help="write into CAL the dP-first build's dK/dV entries: CAL's earlier-build entries x "
        "NEWER/EARLIER (two --out files of one device, with and without --earlier-order; "
        "no GPU; --device names that device)",
    )
    p.add_argument(
        "--spread",
        type=int,
        default=0,
        metavar="W",
        help="measure the dK/dV modes with W programs per head (W key tiles share a head's dQ "
        "rows; entries bwd-dkdv[-atomic]-wW), compiled first in worker processes",
    )
    args = p.parse_args(argv)
    if args.scale_build:
        from attnsim.kernels.calibrate.bwd_builds import scale_build_cli

        return scale_build_cli(p, args.scale_build, args.device)
    if args.merge_host:
        from attnsim.kernels.calibrate.bwd_host_merge import merge_host

        try:
            print(merge_host(*args.merge_host))
        except (ValueError, SpecError) as exc:
            print(f"microbench_bwd --merge-host: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.entries is not None:
        if args.merge is None:
            p.error("--entries needs --merge FILE")
        merge(args.merge, read_yaml(args.entries), args.device)
        return 0
    if not torch.cuda.is_available():
        print("microbench_bwd needs a CUDA GPU", file=sys.stderr)
        return 2
    if args.host:
        print(yaml.safe_dump({"host_call_us": host_calls(torch, jit=False)}, sort_keys=False))
        return 0
    if args.earlier_order:
        from attnsim.kernels.triton import attn_bwd

        attn_bwd.BWD_DP_FIRST = False
    modes: tuple[str, ...] = DKDV_MODES if args.dkdv_only else MODES
    if not args.spread:
        import os

        jobs = min(16, os.cpu_count() or 1)
        from attnsim.kernels.calibrate.bwd_builds import build_jobs, compile_build

        print(compile_in_workers(build_jobs(), jobs, 300.0, compile_build, forward=False))
    if args.spread:
        import os

        modes = ("bwd-dkdv", "bwd-dkdv-atomic")
        sms = torch.cuda.get_device_properties(0).multi_processor_count
        jobs = min(16, os.cpu_count() or 1)
        print(compile_in_workers(spread_jobs(sms, args.spread), jobs, 120.0, forward=False))
    found = measure(torch, modes, args.spread)
    text = yaml.safe_dump(found, sort_keys=False)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    if args.merge is not None:
        names = tuple(spread_mode(m, args.spread, dp_first_build()) for m in modes)
        source = "python -m attnsim.kernels.calibrate.microbench_bwd"
        if args.spread:
            source += f" --spread {args.spread}"
        merge_modes(args.merge, found, names, source, torch.cuda.get_device_name(0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
