"""GPU: time Ring Attention and LASP-2 forward steps across devices (kernels.distributed).

Run (one process per GPU; NVLink pair: device kind nvidia-h200-x2), from the repository root:

    PYTHONPATH=. torchrun --nproc-per-node 2 benchmarks/seqpar_probe.py --out DIR --budget-s 500

(`python -m torch.distributed.run` where `torchrun` is not on the PATH).

For every context S (--contexts, default 32K-1M tokens, K = 1024) and scheme (--schemes, by
label), at batch 1, 32 heads, head dim 128 (E = F), bf16: Ring Attention non-causal
(ring-full-none), causal unbalanced (ring-causal-none), zig-zag (ring-causal-zigzag) and
striped (ring-causal-striped), blocks on the Triton 1-pass kernel with its LSE
(`attn_fwd.attention_fwd_lse`); LASP-2 (lasp2-decay: causal linear attention, per-head decay
lambda_h in 0.9-0.999, scale 1/E), local chunk on Lightning-2 (split schedule,
`blocks.LIGHTNING_LOCAL`). Each rank holds S / W tokens. Three timings per row, each the
median over repeats of the slowest rank's time (CUDA events; the ranks meet at a barrier
before every repeat):

- step_ms: the distributed forward (communication overlapped as the scheme does it);
- compute_ms: the same forward with `communicate=False`: the same kernels and merges on the
  same sizes, no transfer (the single-GPU work of one step);
- comm_ms: the communication alone at the same sizes: the ring's W - 1 transfers of one
  packed K|V block each way (`ring.ring_pass`), or LASP-2's one AllGather of the fp32
  E x F states (`lasp2.state_gather`);
- total_ms = compute_ms + comm_ms: the step with nothing overlapped (step_ms below it by what
  the overlap hid).

Repeats: a scheme's first row starts with one untimed call of each kind at 16K tokens per
rank (compilation); then one timed warm-up call (slowest rank) sets reps =
clamp(round(--target-s / warm-up), --min-reps, 20). Configurations run cheapest first
(LASP-2, then Ring Attention by FLOPs per device). Before each, its time is estimated from
the same scheme's previous row (scaled by the work ratio); one that would end past
--budget-s (counted from the script's start) becomes a row with status "skipped: budget".
Rank 0 writes and flushes each row as it is timed, so an interrupted run keeps them
(--append adds to an existing CSV of the same columns). A row that raises becomes status
"error: ..." on every rank (a rank stuck in a collective is not recoverable: the group's
timeout, 300 s, ends the run).
`--check` (default on): before timing, each scheme runs on a small shape (batch 1, 4 heads,
--check-seq = 2048 tokens per rank) against the single-GPU result of the whole sequence
(fp32 torch references, `kernels.distributed.check`); its rel_err goes in `check_rel_err`
(status "wrong" over CHECK_TOL = 3e-2; still timed).

CSV (default kernels/measurements/seqpar/seqpar-<gpu>x<W>-<date>.csv; --out DIR puts that
name in DIR, --out FILE.csv names the file), one row per (context, scheme):
devices (W), scheme (ring | lasp2), kernel (triton-1pass | triton-lightning), batch, heads,
seq_total (S), seq_per_device (S / W), head_dim_qk (E), head_dim_v (F), causal (0/1),
balance (none | zigzag | striped), decay (0/1), dtype, step_ms, compute_ms, comm_ms, total_ms, reps,
messages (ring: W - 1 sequential transfers; lasp2: 1 AllGather), message_bytes (ring: one
packed K|V block, 2 B H (S/W) E bytes at E = F in bf16; lasp2: one rank's state, B H E F x 4),
check_rel_err, status (ok | wrong | skipped: budget | error: ...), link (NVLink/PCIe topology
between GPU 0 and 1 from `nvidia-smi topo -m`, peer access), gpu, driver, torch, triton,
cuda, nccl, timestamp (UTC, ISO 8601).

`--device cpu` (gloo, fp32, torch reference blocks, wall clock) exercises this script without
a GPU: `torchrun --nproc-per-node 2 benchmarks/seqpar_probe.py --device cpu --contexts 256,512
--heads 2 --head-dim 16 --out /tmp/x.csv`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from attnsim.kernels.distributed import blocks
from attnsim.kernels.distributed.check import Case, run_checks
from attnsim.kernels.distributed.lasp2 import lasp2_fwd, state_gather
from attnsim.kernels.distributed.launch import init_from_env, link_info
from attnsim.kernels.distributed.ring import ring_attention_fwd, ring_pass

STARTED = time.monotonic()  # the budget counts from here (imports, group, checks included)
ROOT = Path(__file__).resolve().parent.parent
CONTEXTS = "32K,64K,128K,256K,512K,1M"
CHECK_TOL = 3e-2  # bf16 kernels vs fp32 references: relative error of the output norm
CHECK_SEQ = 2048  # tokens per rank of the check shape
COMPILE_SEQ = 16384  # tokens per rank of a scheme's untimed first calls
SCHEMES = (
    Case("lasp2", True, decay=True),
    Case("ring", True, "zigzag"),
    Case("ring", True, "striped"),
    Case("ring", True, "none"),
    Case("ring", False),
)
LABELS = ",".join(case.label for case in SCHEMES)
FIELDS = (
    "devices", "scheme", "kernel", "batch", "heads", "seq_total", "seq_per_device",
    "head_dim_qk", "head_dim_v", "causal", "balance", "decay", "dtype", "step_ms", "compute_ms",
    "comm_ms", "total_ms", "reps", "messages", "message_bytes", "check_rel_err", "status",
    "link", "gpu", "driver", "torch", "triton", "cuda", "nccl", "timestamp",
)  # fmt: skip


@dataclass(frozen=True)
class Env:
    """What every timing needs: ranks, device, dtype, blocks, shape constants."""

    rank: int
    world: int
    device: Any
    dtype: Any
    batch: int
    heads: int
    head_dim: int
    softmax_block: Callable[..., Any]
    linear_local: Callable[..., Any]

    @property
    def cuda(self) -> bool:
        """Timings use CUDA events."""
        return bool(self.device.type == "cuda")


def parse_tokens(text: str) -> int:
    """'32K' -> 32768, '1M' -> 1048576, '4096' -> 4096."""
    text = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
    return int(text[:-1] if mult > 1 else text) * mult


def work_per_device(case: Case, seq: int, world: int) -> float:
    """Relative cost of one step on the busiest rank (ring: score-matrix entries; lasp2: S/W)."""
    per = seq / world
    if case.scheme == "lasp2":
        return per * 256.0  # a linear step costs about as much as 256 score columns per row
    if not case.causal:
        return per * seq
    if case.balance in ("zigzag", "striped"):
        return per * seq / 2
    return per * per * (world - 0.5)  # the last rank: W - 1 full blocks and the diagonal


def _sync(env: Env) -> None:
    if env.cuda:
        torch.cuda.synchronize(env.device)


def time_call(env: Env, fn: Callable[[], Any]) -> float:
    """One call's time in ms on this rank, after a barrier (all ranks start together)."""
    _sync(env)
    dist.barrier()
    if env.cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def slowest(env: Env, values: list[float]) -> list[float]:
    """Per repeat, the largest value over ranks (every rank gets the list)."""
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [float(x) for x in t.tolist()]


def measure(env: Env, fn: Callable[[], Any], target_s: float, min_reps: int) -> tuple[float, int]:
    """(median ms of the slowest rank, repeats): a timed warm-up sets the number of repeats."""
    warm = slowest(env, [time_call(env, fn)])[0]
    reps = max(min_reps, min(20, round(target_s * 1e3 / max(warm, 1e-3))))
    times = slowest(env, [time_call(env, fn) for _ in range(reps)])
    return statistics.median(times), reps


def problem(env: Env, case: Case, seq: int) -> dict[str, Any]:
    """This rank's inputs and the step, compute-alone and comm-alone calls of one row."""
    per = seq // env.world
    shape = (env.batch, env.heads, per, env.head_dim)
    gen = torch.Generator(device=env.device).manual_seed(env.rank)
    q, k, v = (torch.randn(shape, generator=gen, device=env.device, dtype=env.dtype) for _ in "qkv")
    if case.scheme == "lasp2":
        lam = torch.linspace(0.9, 0.999, env.heads, device=env.device)
        scale = 1.0 / env.head_dim
        state = torch.zeros(env.batch, env.heads, env.head_dim, env.head_dim, device=env.device)

        def lasp(communicate: bool) -> Any:
            return lasp2_fwd(q, k, v, lam, scale=scale, local=env.linear_local,
                             communicate=communicate)  # fmt: skip

        def gather() -> None:
            work = state_gather(state, async_op=True)[1]
            work.wait()

        msg = state.numel() * state.element_size()
        return dict(step=lambda: lasp(True), compute=lambda: lasp(False), comm=gather,
                    messages=1, message_bytes=msg)  # fmt: skip
    send = torch.cat((k.reshape(-1), v.reshape(-1)))
    recv = torch.empty_like(send)

    def ring(communicate: bool) -> Any:
        return ring_attention_fwd(q, k, v, causal=case.causal, balance=case.balance,
                                  block=env.softmax_block, communicate=communicate)  # fmt: skip

    return dict(step=lambda: ring(True), compute=lambda: ring(False),
                comm=lambda: ring_pass(send, recv), messages=env.world - 1,
                message_bytes=send.numel() * send.element_size())  # fmt: skip


def run_check(env: Env, schemes: tuple[Case, ...], per_rank: int = CHECK_SEQ) -> dict[str, float]:
    """rel_err of each scheme on the small check shape (fp32 references), by case label."""
    shape = (1, 4, per_rank * env.world, env.head_dim)
    rows = run_checks(shape, env.dtype, env.device, env.softmax_block, env.linear_local,
                      ref_dtype=torch.float32, cases=schemes)  # fmt: skip
    return {row["case"]: row["rel_err"] for row in rows}


def versions(env: Env) -> dict[str, str]:
    """gpu, driver, torch, triton, cuda, nccl, link."""
    out = {"gpu": "cpu", "driver": "", "torch": str(torch.__version__), "triton": "",
           "cuda": str(torch.version.cuda), "nccl": "", "link": ""}  # fmt: skip
    try:
        import triton

        out["triton"] = str(triton.__version__)
    except ImportError:
        pass
    if not env.cuda:
        return out
    out["gpu"] = torch.cuda.get_device_name(env.device)
    out["nccl"] = ".".join(str(x) for x in torch.cuda.nccl.version())
    out["driver"] = _smi(["--query-gpu=driver_version", "--format=csv,noheader"]).split("\n")[0]
    out["link"] = link_info()
    return out


def _smi(args: list[str]) -> str:
    try:
        run = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=20)
        return run.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


class Rows:
    """CSV rows written by rank 0 as they come (flushed); the other ranks write nothing."""

    def __init__(self, path: Path | None, constants: dict[str, Any], append: bool = False) -> None:
        self.constants = constants
        self.fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            add = (
                append and path.exists() and path.read_text().split("\n", 1)[0] == ",".join(FIELDS)
            )
            self.fh = path.open("a" if add else "w", newline="")
            self.writer = csv.DictWriter(self.fh, fieldnames=FIELDS)
            if not add:
                self.writer.writeheader()
            self.fh.flush()

    def write(self, row: dict[str, Any]) -> None:
        """Write one row (rank 0) and flush it."""
        if self.fh is not None:
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            self.writer.writerow({**self.constants, **row, "timestamp": stamp})
            self.fh.flush()

    def close(self) -> None:
        """Close the file."""
        if self.fh is not None:
            self.fh.close()


def out_path(arg: str | None, gpu: str, world: int) -> Path:
    """The CSV path: --out FILE.csv as given, --out DIR / default folder plus the dated name."""
    if arg is not None and arg.endswith(".csv"):
        return Path(arg)
    slug = "h200" if "H200" in gpu else gpu.lower().replace("nvidia", "").strip().replace(" ", "-")
    name = f"seqpar-{slug}x{world}-{dt.datetime.now(dt.UTC).date().isoformat()}.csv"
    return Path(arg) / name if arg else ROOT / "kernels" / "measurements" / "seqpar" / name


def base_row(env: Env, case: Case, seq: int) -> dict[str, Any]:
    """The identifying columns of one row."""
    return dict(
        devices=env.world, scheme=case.scheme,
        kernel=("triton-lightning" if case.scheme == "lasp2" else "triton-1pass") if env.cuda
        else "torch",
        batch=env.batch, heads=env.heads, seq_total=seq, seq_per_device=seq // env.world,
        head_dim_qk=env.head_dim, head_dim_v=env.head_dim, causal=int(case.causal),
        balance=case.balance, decay=int(case.decay), dtype=str(env.dtype).removeprefix("torch."),
    )  # fmt: skip


def time_row(
    env: Env, case: Case, seq: int, args: argparse.Namespace, first: bool
) -> dict[str, Any]:
    """The timings of one (context, scheme); frees its tensors afterwards.

    `first` (the scheme's first row): one untimed call of each kind at COMPILE_SEQ tokens (or
    `seq` if fewer; the kernels' tilings and specializations do not change with the length
    past it) compiles the kernels, so that the timed warm-up measures the step alone.
    """
    if first:
        small = problem(env, case, min(seq, COMPILE_SEQ * env.world))
        for key in ("step", "compute", "comm"):
            small[key]()
        _sync(env)
        del small
    calls = problem(env, case, seq)
    step, reps = measure(env, calls["step"], args.target_s, args.min_reps)
    compute = measure(env, calls["compute"], args.target_s, args.min_reps)[0]
    comm = measure(env, calls["comm"], args.target_s, args.min_reps)[0]
    out = dict(step_ms=round(step, 4), compute_ms=round(compute, 4), comm_ms=round(comm, 4),
               total_ms=round(compute + comm, 4), reps=reps, messages=calls["messages"],
               message_bytes=calls["message_bytes"])  # fmt: skip
    del calls
    if env.cuda:
        torch.cuda.empty_cache()
    return out


def estimate_s(last: dict[str, Any], ratio: float, args: argparse.Namespace) -> float:
    """Seconds a row takes whose step is `ratio` times the timed row `last`'s (compile excluded)."""
    total = 0.0
    for key in ("step_ms", "compute_ms", "comm_ms"):
        call_s = float(last[key]) * ratio * 1e-3
        reps = max(args.min_reps, min(20, round(args.target_s / max(call_s, 1e-6))))
        total += (1 + reps) * call_s
    return total


def anyone(env: Env, flag: bool) -> bool:
    """Whether the flag is set on any rank (every rank gets the answer)."""
    t = torch.tensor([float(flag)], dtype=torch.float64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def agree(env: Env, value: float) -> float:
    """Rank 0's value on every rank (so that every rank takes the same branch)."""
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.broadcast(t, 0)
    return float(t.item())


def sweep(
    env: Env, args: argparse.Namespace, rows: Rows, checks: dict[str, float], start: float
) -> int:
    """Time every (context, scheme), cheapest first, within the budget from `start`."""
    plan = sorted(
        ((case, seq) for seq in args.contexts for case in args.schemes),
        key=lambda cs: work_per_device(cs[0], cs[1], env.world),
    )
    seen: dict[str, tuple[float, dict[str, Any]]] = {}  # case label -> (work, its last row)
    timed = 0
    for case, seq in plan:
        row = base_row(env, case, seq)
        if case.label in checks:
            err = checks[case.label]
            row["check_rel_err"] = f"{err:.3g}"
        work = work_per_device(case, seq, env.world)
        last = seen.get(case.label)
        estimate = 0.0 if last is None else estimate_s(last[1], work / last[0], args)
        go = agree(env, float(time.monotonic() - start + estimate <= args.budget_s))
        if not go:
            rows.write({**row, "status": f"skipped: budget (estimate {estimate:.0f} s)"})
            continue
        failed = ""
        try:
            row.update(time_row(env, case, seq, args, first=case.label not in seen))
        except Exception as exc:  # one failing row must not lose the others
            failed = f"error: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}"
            if env.cuda:
                torch.cuda.empty_cache()
        if anyone(env, bool(failed)) and not failed:
            failed = "error: on another rank"
        if not failed:
            seen[case.label] = (work, row)
        status = failed or ("wrong" if float(row.get("check_rel_err", 0)) > CHECK_TOL else "ok")
        rows.write({**row, "status": status})
        timed += not failed
        if env.rank == 0:
            print(f"{case.label:20s} S={seq:>8d} {status:6s} step {row.get('step_ms', '-')} "
                  f"compute {row.get('compute_ms', '-')} comm {row.get('comm_ms', '-')} ms "
                  f"({time.monotonic() - start:.0f} s)", flush=True)  # fmt: skip
    return timed


def make_env(args: argparse.Namespace) -> Env:
    """Join the group and pick dtype and blocks for the device."""
    # a rank stuck in a collective ends the run after 300 s (rows so far are on disk)
    rank, world, device = init_from_env("gloo" if args.device == "cpu" else None, 300.0)
    if args.device == "cuda" and device.type != "cuda":
        raise SystemExit("seqpar_probe: no CUDA device (use --device cpu for a dry run)")
    cuda = device.type == "cuda"
    return Env(
        rank=rank, world=world, device=device, dtype=torch.bfloat16 if cuda else torch.float32,
        batch=args.batch, heads=args.heads, head_dim=args.head_dim,
        softmax_block=blocks.triton_softmax_block if cuda else blocks.torch_softmax_block,
        linear_local=blocks.triton_linear_local if cuda else blocks.torch_linear_local,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    # run as a script the budget counts from the import (torch and the group included);
    # called from other code (tests), from this call
    start = STARTED if __name__ == "__main__" else time.monotonic()
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", help="output folder or .csv file (default kernels/measurements/"
                    "seqpar/)")  # fmt: skip
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop starting rows after")
    ap.add_argument("--contexts", default=CONTEXTS, help=f"total tokens (default {CONTEXTS})")
    ap.add_argument("--schemes", default=LABELS, help=f"default {LABELS}")
    ap.add_argument("--append", action="store_true", help="add rows to an existing CSV")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--target-s", type=float, default=1.0, help="timed seconds per figure")
    ap.add_argument("--min-reps", type=int, default=2)
    ap.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                    help="check each scheme against one GPU on a small shape first")  # fmt: skip
    ap.add_argument("--check-seq", type=int, default=CHECK_SEQ, help="check tokens per rank")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = ap.parse_args(argv)
    args.contexts = [parse_tokens(c) for c in args.contexts.split(",")]
    by_label = {case.label: case for case in SCHEMES}
    unknown = [x for x in args.schemes.split(",") if x not in by_label]
    if unknown:
        raise SystemExit(f"seqpar_probe: unknown schemes {unknown}; known: {LABELS}")
    args.schemes = tuple(by_label[x] for x in args.schemes.split(","))
    env = make_env(args)
    bad = [s for s in args.contexts if s % (2 * env.world)]
    if bad:
        raise SystemExit(f"seqpar_probe: contexts must be multiples of {2 * env.world}: {bad}")
    info = versions(env)
    path = out_path(args.out, info["gpu"], env.world) if env.rank == 0 else None
    rows = Rows(path, info, args.append)
    try:
        checks = run_check(env, args.schemes, args.check_seq) if args.check else {}
        if env.rank == 0:
            print(f"seqpar_probe: {env.world} x {info['gpu']} ({info['link']}), checks "
                  f"{checks or 'off'}, budget {args.budget_s:.0f} s -> {path}",
                  flush=True)  # fmt: skip
        timed = sweep(env, args, rows, checks, start)
    finally:
        rows.close()
        dist.destroy_process_group()
    if env.rank == 0:
        print(f"seqpar_probe: {timed} rows timed -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
