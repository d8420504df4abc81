"""Process groups for the sequence-parallel forwards: under torchrun, or spawned locally.

Under `torchrun --nproc-per-node N script.py`: `init_from_env()` joins the group torchrun set
up (NCCL and one GPU per local rank when CUDA is present, else gloo on the CPU). Without
torchrun: `spawn(fn, world, args)` starts `world` processes (torch.multiprocessing), each
joining a group through a file rendezvous in a fresh temporary folder, and calls
fn(rank, world, *args) in each; an exception in any process is raised in the caller.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["init_from_env", "link_info", "spawn"]


def init_from_env(backend: str | None = None, timeout_s: float = 600.0) -> tuple[int, int, Any]:
    """Join torchrun's group: (rank, world size, this process's device).

    Backend default: "nccl" with CUDA (device cuda:LOCAL_RANK), else "gloo" (device cpu).
    """
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    device = torch.device("cuda", local) if cuda and backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    kwargs: dict[str, Any] = {"backend": backend, "timeout": timedelta(seconds=timeout_s)}
    if device.type == "cuda":
        kwargs["device_id"] = device  # eager NCCL init: the first collective is not slowed
    dist.init_process_group(**kwargs)
    return dist.get_rank(), dist.get_world_size(), device


def _worker(rank: int, fn: Callable[..., None], world: int, init: str, backend: str,
            args: tuple[Any, ...]) -> None:  # fmt: skip
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(
        backend, init_method=init, rank=rank, world_size=world, timeout=timedelta(seconds=120)
    )
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def spawn(
    fn: Callable[..., None],
    world: int,
    args: tuple[Any, ...] = (),
    backend: str = "gloo",
    start_method: str = "spawn",
) -> None:
    """Run fn(rank, world, *args) in `world` fresh processes joined in one process group.

    `fn` must be importable by name (a module-level function) under the "spawn" start
    method. "nccl" puts rank r on GPU r.
    """
    with tempfile.TemporaryDirectory() as tmp:
        init = (Path(tmp) / "rendezvous").as_uri()
        mp.start_processes(
            _worker,
            args=(fn, world, init, backend, args),
            nprocs=world,
            join=True,
            start_method=start_method,
        )


def link_info() -> str:
    """How GPU 0 reaches GPU 1: `nvidia-smi topo -m`'s entry (NV18: 18 NVLinks), peer access.

    "topo=NV18;p2p=1;gpus=2"; topo "?" when nvidia-smi is missing or has no GPU1 column.
    """
    cell = "?"
    try:
        run = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True,
                             timeout=20, check=False)  # fmt: skip
        for line in run.stdout.splitlines():
            cols = line.split()
            if cols and cols[0] == "GPU0" and len(cols) > 2:
                cell = cols[2]  # row GPU0: its own entry (X), then GPU1's
                break
    except (OSError, subprocess.SubprocessError):
        pass
    count = torch.cuda.device_count()
    peer = count > 1 and torch.cuda.can_device_access_peer(0, 1)
    return f"topo={cell};p2p={int(peer)};gpus={count}"
