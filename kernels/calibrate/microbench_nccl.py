"""NCCL collectives on one host's GPUs; writes `archs/calibration/<gpu>-nccl.yaml` (GPU only).

Run (one process per GPU; the H200 pair: device kind nvidia-h200-x2):

    PYTHONPATH=. torchrun --nproc-per-node 2 kernels/calibrate/microbench_nccl.py --out FILE

Times AllGather, ReduceScatter, AllReduce, all-to-all and a ring send/recv step over message
sizes 4 KiB to 1 GiB (powers of two; bf16 buffers; element counts rounded down to a multiple
of the device count) on `torch.distributed` with NCCL.

Method (as nccl-tests): per size, warm-up calls, then repeats of n back-to-back calls between
two CUDA events (n chosen so that one repeat lasts about 1 ms, at least 1); a repeat's time per
call is its elapsed time / n; the ranks meet at a barrier before each repeat; `seconds` is the
median over repeats of the slowest rank's time per call. Sizes still to time when --budget-s
runs out are left out; the file is rewritten after each collective, so an interrupted run
keeps the collectives it finished.

Format: what `archs.interconnect.load_nccl_calibration` reads (plain YAML; the α-β fit
`archs.interconnect.fit_link`); date, versions, device count, topology and dtype ride in the
header comments, since that reader takes no other keys::

    # NCCL collectives, median seconds per call (kernels/calibrate/microbench_nccl.py)
    # date: 2026-12-05
    # devices: 2
    # link: topo=NV18;p2p=1;gpus=2      (nvidia-smi topo -m entry GPU0 -> GPU1, peer access)
    # versions: driver ..., cuda ..., torch ..., triton ..., nccl 2.x.y
    # dtype: bf16
    calibration: h200-nccl              # the file's stem
    device: NVIDIA H200 x2 (topo=NV18)  # free text
    link: intra_node                    # the GPUs of one host
    measurements:                       # by collective, then increasing bytes
      - {collective: all_gather, devices: 2, bytes: 4096, seconds: 1.1e-05}
      ...

`collective` is one of all_gather, reduce_scatter, all_reduce, all_to_all, send_recv (NCCL
picks its algorithm; none is recorded, the reader's default is ring).

`bytes` follows nccl-tests' "size": all_gather, the gathered output per rank (W x each rank's
input); reduce_scatter, the input per rank (W x each rank's output); all_reduce, the buffer
per rank; all_to_all, the buffer per rank (W pieces of bytes / W, one to each rank);
send_recv, the message each rank sends to rank + 1 while it receives as much from rank - 1
(one Ring Attention step, `batch_isend_irecv`). `seconds` is one call's median time.

`--device cpu` (gloo, fp32, wall clock; collectives gloo lacks are left out) exercises the
script without a GPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from attnsim.kernels.distributed.launch import init_from_env, link_info

ROOT = Path(__file__).resolve().parent.parent.parent
COLLECTIVES = ("all_gather", "reduce_scatter", "all_reduce", "all_to_all", "send_recv")
MIN_BYTES, MAX_BYTES = 4 << 10, 1 << 30
REPEAT_S = 1e-3  # one repeat of back-to-back calls lasts about this long
REPEATS, WARMUP = 15, 3


def sizes(low: int, high: int) -> list[int]:
    """Powers of two from `low` to `high` bytes."""
    out, size = [], low
    while size <= high:
        out.append(size)
        size *= 2
    return out


def make_call(
    name: str, nbytes: int, world: int, rank: int, dtype: Any, device: Any
) -> tuple[Callable[[], Any], int]:
    """(call, actual bytes): one collective call on fresh buffers of about `nbytes`."""
    elem = torch.tensor([], dtype=dtype).element_size()
    count = max(world, nbytes // elem // world * world)
    actual = count * elem
    full = torch.ones(count, dtype=dtype, device=device)
    part = torch.ones(count // world, dtype=dtype, device=device)
    if name == "all_gather":
        return (lambda: dist.all_gather_into_tensor(full, part)), actual
    if name == "reduce_scatter":
        return (lambda: dist.reduce_scatter_tensor(part, full)), actual
    if name == "all_reduce":
        return (lambda: dist.all_reduce(full)), actual
    if name == "all_to_all":
        out = torch.empty_like(full)
        return (lambda: dist.all_to_all_single(out, full)), actual
    if name == "send_recv":
        recv = torch.empty_like(full)
        nxt, prv = (rank + 1) % world, (rank - 1) % world

        def step() -> None:
            ops = [dist.P2POp(dist.isend, full, nxt), dist.P2POp(dist.irecv, recv, prv)]
            for work in dist.batch_isend_irecv(ops):
                work.wait()

        return step, actual
    raise ValueError(f"collective must be one of {COLLECTIVES}, got {name!r}")


def _sync(device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def elapsed_s(call: Callable[[], Any], n: int, device: Any) -> float:
    """Seconds of n back-to-back calls on this rank, after a barrier."""
    _sync(device)
    dist.barrier()
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            call()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) * 1e-3
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    return time.perf_counter() - t0


def slowest(values: list[float], device: Any) -> list[float]:
    """Per entry, the largest value over ranks."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [float(x) for x in t.tolist()]


def time_collective(call: Callable[[], Any], device: Any) -> float:
    """Median seconds of one call (slowest rank), back-to-back repeats (module docstring)."""
    for _ in range(WARMUP):
        call()
    one = slowest([elapsed_s(call, 1, device)], device)[0]
    n = max(1, min(1000, round(REPEAT_S / max(one, 1e-7))))
    per_call = [elapsed_s(call, n, device) / n for _ in range(REPEATS)]
    return statistics.median(slowest(per_call, device))


def device_info(device: Any) -> dict[str, Any]:
    """device, versions and link of the record."""
    if device.type != "cuda":
        vers = {"torch": str(torch.__version__)}
        return {"device": "cpu", "versions": vers, "link": "gloo"}
    from attnsim.kernels.calibrate.microbench import versions

    vers = versions(torch)
    vers["nccl"] = ".".join(str(x) for x in torch.cuda.nccl.version())
    return {"device": torch.cuda.get_device_name(device), "versions": vers, "link": link_info()}


def write(path: Path, record: dict[str, Any], header: dict[str, Any]) -> None:
    """Write the record as plain YAML under `header` as comments (rewritten whole each time)."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# NCCL collectives, median seconds per call (kernels/calibrate/microbench_nccl.py)"]
    lines += [f"# {key}: {value}" for key, value in header.items()]
    body = yaml.safe_dump(record, sort_keys=False, width=100, default_flow_style=None)
    path.write_text("\n".join(lines) + "\n" + body)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="YAML file (default archs/calibration/<gpu>-nccl.yaml)")  # fmt: skip
    ap.add_argument("--budget-s", type=float, default=240.0, help="stop timing sizes after")
    ap.add_argument("--min-bytes", type=int, default=MIN_BYTES)
    ap.add_argument("--max-bytes", type=int, default=MAX_BYTES)
    ap.add_argument("--collectives", default=",".join(COLLECTIVES))
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = ap.parse_args(argv)
    # torch 2.13 renames all_gather_into_tensor / reduce_scatter_tensor (the device has 2.11)
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.distributed")
    rank, world, device = init_from_env("gloo" if args.device == "cpu" else None)
    if args.device == "cuda" and device.type != "cuda":
        raise SystemExit("microbench_nccl: no CUDA device (use --device cpu for a dry run)")
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    info = device_info(device)
    slug = "h200" if "H200" in info["device"] else info["device"].lower().replace(" ", "-")
    path = args.out or ROOT / "archs" / "calibration" / f"{slug}-nccl.yaml"
    vers = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    today = dt.datetime.now(dt.UTC).date().isoformat()
    header = {"date": today, "devices": world, "link": info["link"], "versions": vers,
              "dtype": "bf16" if cuda else "fp32"}  # fmt: skip
    record: dict[str, Any] = {
        "calibration": path.stem,
        "device": f"{info['device']} x{world} ({info['link'].split(';')[0]})",
        "link": "intra_node",
        "measurements": [],
    }
    start = time.monotonic()
    try:
        for name in args.collectives.split(","):
            done = 0
            for nbytes in sizes(args.min_bytes, args.max_bytes):
                go = float(time.monotonic() - start <= args.budget_s)
                flag = torch.tensor([go], dtype=torch.float64, device=device)
                dist.broadcast(flag, 0)  # every rank stops at the same size
                if not flag.item():
                    break
                try:
                    call, actual = make_call(name, nbytes, world, rank, dtype, device)
                    seconds = time_collective(call, device)
                except (RuntimeError, NotImplementedError, ValueError) as exc:
                    if rank == 0:
                        print(f"  {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    break
                entry = {"collective": name, "devices": world, "bytes": actual,
                         "seconds": float(f"{seconds:.4g}")}  # fmt: skip
                record["measurements"].append(entry)
                done += 1
                if rank == 0:
                    print(f"{name:15s} {actual:>11d} B {seconds * 1e6:10.1f} us "
                          f"{actual / seconds / 1e9:8.1f} GB/s", flush=True)  # fmt: skip
                del call
            if done and rank == 0:
                write(path, record, header)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        print(f"microbench_nccl: {len(record['measurements'])} measurements -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
