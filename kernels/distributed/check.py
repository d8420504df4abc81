"""Distributed forwards vs the single-device result, on every rank (CPU tests, GPU probe).

`run_checks` runs each scheme (Ring Attention non-causal, causal, causal zig-zag, causal
striped; LASP-2 with and without decay) on seeded inputs that every rank draws alike,
computes the single-device reference of the whole sequence on each rank
(`blocks.torch_softmax_block`, `blocks.torch_linear_local` in `ref_dtype`), and returns the
errors of the rank's shard, reduced to the maximum over ranks. `check_worker` is the function
`launch.spawn` runs in the CPU tests (float64, gloo).

Command line, any number of processes: `torchrun --nproc-per-node N -m
attnsim.kernels.distributed.check` (GPUs: bf16, Triton blocks, fp32 references, tolerance
3e-2; CPU: float64, torch blocks, 1e-10); exit status 1 when a case misses its tolerance.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from attnsim.kernels.distributed.blocks import (
    LinearLocal,
    SoftmaxBlock,
    default_scale,
    torch_linear_local,
    torch_softmax_block,
)
from attnsim.kernels.distributed.lasp2 import lasp2_fwd
from attnsim.kernels.distributed.ring import ring_attention_fwd, shard

__all__ = ["CASES", "Case", "check_worker", "main", "run_checks"]


@dataclass(frozen=True)
class Case:
    """One scheme configuration to check."""

    scheme: str  # "ring" or "lasp2"
    causal: bool
    balance: str = "none"
    decay: bool = False

    @property
    def label(self) -> str:
        """How the case is named in results."""
        if self.scheme == "lasp2":
            return "lasp2-decay" if self.decay else "lasp2"
        return f"ring-{'causal' if self.causal else 'full'}-{self.balance}"


CASES = (
    Case("ring", False),
    Case("ring", True),
    Case("ring", True, "zigzag"),
    Case("ring", True, "striped"),
    Case("lasp2", True, decay=True),
    Case("lasp2", True, decay=False),
)


def _inputs(shape: tuple[int, int, int, int], dtype: Any, device: Any, seed: int) -> list[Any]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=torch.float64).to(device, dtype) for _ in "qkv"]


def _decay(heads: int) -> Any:
    """lambda_h spread over (0.5, 0.99): fast and slow heads."""
    return torch.linspace(0.5, 0.99, heads, dtype=torch.float64)


def run_checks(
    shape: tuple[int, int, int, int],
    dtype: Any,
    device: Any,
    softmax_block: SoftmaxBlock = torch_softmax_block,
    linear_local: LinearLocal = torch_linear_local,
    ref_dtype: Any = torch.float64,
    cases: tuple[Case, ...] = CASES,
    seed: int = 0,
    group: Any = None,
) -> list[dict[str, Any]]:
    """Errors of each case on this rank's shard, maximum over ranks (same list on every rank).

    `shape` is the whole sequence's (B, H, S, D); q, k, v are drawn from N(0, 1) in float64,
    then cast to `dtype`. Each row: case label, max_abs_err, rel_err (||o - ref|| / ||ref||).
    """
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    q, k, v = _inputs(shape, dtype, device, seed)
    qr, kr, vr = (t.to(ref_dtype) for t in (q, k, v))
    rows = []
    for case in cases:
        if case.scheme == "ring":
            scale = default_scale(shape[-1])
            ref = torch_softmax_block(qr, kr, vr, case.causal, scale)[0]
            parts = [shard(t, rank, world, case.balance) for t in (q, k, v)]
            out = ring_attention_fwd(
                *parts, causal=case.causal, balance=case.balance, block=softmax_block,
                group=group,
            )  # fmt: skip
        else:
            decay = _decay(shape[1]) if case.decay else None
            scale = 1.0 / shape[-1]  # keeps the sums of S terms of order 1
            ref = torch_linear_local(qr, kr, vr, decay, scale)
            qs, ks, vs = (shard(t, rank, world) for t in (q, k, v))
            out = lasp2_fwd(qs, ks, vs, decay, scale=scale, local=linear_local, group=group)
        mine = shard(ref, rank, world, case.balance)
        diff = (out.to(ref_dtype) - mine).reshape(-1)
        errs = torch.tensor(
            [diff.abs().max().item(), (diff.norm() / mine.norm()).item()], dtype=torch.float64
        )
        errs = errs.to(device)  # NCCL reduces device tensors only
        dist.all_reduce(errs, op=dist.ReduceOp.MAX, group=group)
        rows.append({"case": case.label, "max_abs_err": errs[0].item(), "rel_err": errs[1].item()})
    return rows


def check_worker(rank: int, world: int, out_dir: str, shape: tuple[int, int, int, int]) -> None:
    """Float64 checks on the CPU (gloo); rank r writes its rows to out_dir/rank<r>.json."""
    torch.set_num_threads(1)  # tiny shapes; and a forked child must not reuse the pool
    rows = run_checks(shape, torch.float64, "cpu")
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"world": world, "rows": rows}))


def main(argv: list[str] | None = None) -> int:
    """Run the checks under torchrun (see the module docstring); print one line per case."""
    import argparse

    from attnsim.kernels.distributed import blocks
    from attnsim.kernels.distributed.launch import init_from_env

    ap = argparse.ArgumentParser(description="distributed forwards vs one device")
    ap.add_argument("--seq-per-rank", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=128)
    args = ap.parse_args(argv)
    rank, world, device = init_from_env()
    try:
        shape = (1, args.heads, args.seq_per_rank * world, args.head_dim)
        if device.type == "cuda":
            tol = 3e-2
            rows = run_checks(shape, torch.bfloat16, device, blocks.triton_softmax_block,
                              blocks.triton_linear_local, ref_dtype=torch.float32)  # fmt: skip
        else:
            tol = 1e-10
            rows = run_checks(shape, torch.float64, device)
    finally:
        dist.destroy_process_group()
    bad = [row for row in rows if row["rel_err"] > tol]
    if rank == 0:
        for row in rows:
            flag = "FAIL" if row in bad else "ok"
            print(f"{row['case']:20s} world {world} rel_err {row['rel_err']:.3g} "
                  f"max_abs_err {row['max_abs_err']:.3g} {flag}")  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
