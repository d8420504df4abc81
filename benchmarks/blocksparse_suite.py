"""GPU only: validation and holdout suites of the block-sparse 1-pass kernel (`triton-blocksparse`).

    PYTHONPATH=. python benchmarks/blocksparse_suite.py --out DIR [--budget-s 240]

Shapes x masks x two tilings per head dim (bf16): random block masks of 128 x 128 blocks at
5-50% density (numpy's generator with the row's `seed`, `mappers.gpu.blocksparse.random_blocks`,
so the model re-draws the very layout timed), causal or not, and packed documents (equal or
uneven lengths), causal or not. The layout of each tiling comes from the same element mask
(`block_sparse_from_block_mask` on the blocks expanded to the tiling, or
`block_sparse_from_documents`); the two suites share no shape. Each configuration is checked
against float32 attention with the element mask written plainly (first two heads) and timed
with `triton.testing.do_bench` (median, L2 flushed); the plain 1-pass kernel without a
layout (dense, with the row's causal flag, the same tiling) is timed beside it
(`dense_ms`). FlexAttention is not run here (its compiles would take the budget;
`benchmarks/blocksparse_probe.py` compares with it). Writes DIR/blocksparse-suite-<device>-
<date>.csv, one row per configuration, as each is timed.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnsim.kernels.spec import device_slug

FIELDS = (
    "family", "suite", "batch", "heads", "seq", "head_dim", "mask", "causal", "density", "seed",
    "documents", "block_m", "block_n", "num_warps", "num_stages", "median_ms", "dense_ms",
    "status", "max_err", "tile_density", "full_tiles", "partial_tiles", "device", "torch",
    "triton", "timestamp",
)  # fmt: skip
TILINGS = {  # head dim -> two tilings the kernel commonly runs (microbench_masks measures them)
    64: ((128, 64, 4, 3), (64, 64, 4, 3)),
    128: ((128, 64, 8, 3), (128, 128, 8, 3)),
}


@dataclass(frozen=True)
class Case:
    """One shape and mask: random blocks at `density` (`seed`), or `documents` lengths."""

    suite: str
    batch: int
    heads: int
    seq: int
    head_dim: int
    mask: str
    causal: bool
    density: float = 0.0
    seed: int = 0
    documents: tuple[int, ...] = ()


def _docs(seq: int, n: int, uneven: bool) -> tuple[int, ...]:
    if not uneven:
        lens = [seq // n] * n
        lens[-1] += seq - sum(lens)
        return tuple(lens)
    weights = [1 + (i * 7) % 5 for i in range(n)]  # 1, 3, 5, 2, 4, ...: fixed, uneven
    lens = [seq * w // sum(weights) for w in weights]
    lens[-1] += seq - sum(lens)
    return tuple(lens)


def cases() -> list[Case]:
    """The validation and holdout cases (disjoint shapes)."""
    out = []
    for suite, shapes in (
        ("validation", ((1, 32, 8192, 128), (2, 16, 16384, 64), (1, 16, 32768, 128),
                        (4, 8, 4096, 64))),
        ("holdout", ((1, 24, 12288, 128), (2, 32, 6144, 64), (1, 8, 24576, 128))),
    ):  # fmt: skip
        for i, (b, h, s, d) in enumerate(shapes):
            dens = (0.05, 0.2, 0.5) if suite == "validation" else (0.1, 0.35)
            out += [Case(suite, b, h, s, d, "blocks", False, x, 100 * i + j)
                    for j, x in enumerate(dens)]  # fmt: skip
            out.append(Case(suite, b, h, s, d, "blocks", True, 0.3 if i % 2 else 0.15, 50 + i))
            out.append(
                Case(
                    suite,
                    b,
                    h,
                    s,
                    d,
                    "documents",
                    i % 2 == 0,
                    documents=_docs(s, 8 if suite == "validation" else 4, i % 2 == 1),
                )
            )
            out.append(Case(suite, b, h, s, d, "documents", i % 2 == 1,
                            documents=_docs(s, 6, i % 2 == 0)))  # fmt: skip
    return out


def build(case: Case, tiling: tuple[int, int, int, int], device: Any) -> tuple[Any, Any]:
    """Our layout for this tiling and the element mask (seq, seq) bool, on `device`."""
    import torch

    from attnsim.kernels.triton.blocksparse import (
        block_sparse_from_block_mask,
        block_sparse_from_documents,
    )
    from attnsim.mappers.gpu.blocksparse import RANDOM_BLOCK, expand_blocks, random_blocks

    bm, bn, s = tiling[0], tiling[1], case.seq
    if case.mask == "blocks":
        blocks = random_blocks(s, s, case.density, case.seed)
        allowed = torch.from_numpy(expand_blocks(blocks, RANDOM_BLOCK, s, s, bm, bn)).to(device)
        bs = block_sparse_from_block_mask(allowed, s, s, bm, bn, case.causal)
        b = torch.from_numpy(blocks).to(device)
        keep = b.repeat_interleave(RANDOM_BLOCK, 0).repeat_interleave(RANDOM_BLOCK, 1)[:s, :s]
    else:
        bs = block_sparse_from_documents(case.documents, bm, bn, case.causal, device=device)
        doc = bs.q_segments[0]
        keep = doc[:, None] == doc[None, :]
    if case.causal:
        keep = keep & torch.ones(s, s, dtype=torch.bool, device=device).tril()
    return bs, keep


def _error(out: Any, q: Any, k: Any, v: Any, keep: Any) -> float:
    import torch

    qs, ks, vs = (t[:1, :2].float() for t in (q, k, v))
    sc = qs @ ks.transpose(-1, -2) * q.shape[-1] ** -0.5
    ref = torch.softmax(sc.masked_fill(~keep, float("-inf")), -1).nan_to_num(0.0) @ vs
    return float((out[:1, :2].float() - ref).abs().max().item())


def main(argv: list[str] | None = None) -> int:
    """Check and time every case x tiling; write the CSV."""
    import torch
    import triton
    import triton.testing

    from attnsim.kernels.spec import BLOCKSPARSE_MEASURED
    from attnsim.kernels.triton.attn_fwd import attention_fwd

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=240.0)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("blocksparse_suite needs a CUDA GPU", file=sys.stderr)
        return 2
    start = time.monotonic()
    name = torch.cuda.get_device_name()
    stamp = dt.datetime.now(dt.UTC)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"blocksparse-suite-{device_slug(name)}-{stamp:%Y-%m-%d}.csv"
    bench = functools.partial(triton.testing.do_bench, warmup=25, rep=60, return_mode="median")
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, FIELDS)
        w.writeheader()
        for case in cases():
            if time.monotonic() - start > args.budget_s:
                print(f"budget spent: skip {case}", file=sys.stderr)
                continue
            g = torch.Generator(device="cuda").manual_seed(case.seq + case.heads)
            size = (case.batch, case.heads, case.seq, case.head_dim)
            q, k, v = (torch.randn(*size, device="cuda", generator=g, dtype=torch.bfloat16)
                       for _ in range(3))  # fmt: skip
            for tiling in TILINGS[case.head_dim]:
                bm, bn, nw, ns = tiling
                row: dict[str, Any] = dict(
                    family=BLOCKSPARSE_MEASURED, suite=case.suite, batch=case.batch,
                    heads=case.heads, seq=case.seq, head_dim=case.head_dim, mask=case.mask,
                    causal=int(case.causal), density=case.density, seed=case.seed,
                    documents="/".join(map(str, case.documents)), block_m=bm, block_n=bn,
                    num_warps=nw, num_stages=ns, device=name, torch=torch.__version__,
                    triton=triton.__version__, timestamp=stamp.isoformat(),
                )  # fmt: skip
                try:
                    bs, keep = build(case, tiling, q.device)
                    tiles = bs.full_counts.numel() * bs.key_tiles
                    full, part = int(bs.full_counts.sum()), int(bs.partial_counts.sum())
                    run = functools.partial(attention_fwd, q, k, v, case.causal, block_sparse=bs,
                                            num_warps=nw, num_stages=ns)  # fmt: skip
                    err = _error(run(), q, k, v, keep)
                    status = "ok" if err < 3e-2 else "wrong"
                    dense = functools.partial(attention_fwd, q, k, v, case.causal, block_m=bm,
                                              block_n=bn, num_warps=nw, num_stages=ns)  # fmt: skip
                    row.update(median_ms=bench(run), dense_ms=bench(dense), status=status,
                               max_err=err, tile_density=(full + part) / tiles,
                               full_tiles=full, partial_tiles=part)  # fmt: skip
                except Exception as exc:  # noqa: BLE001 (record the failure, keep measuring)
                    row.update(status=f"failed: {type(exc).__name__}: {str(exc)[:120]}")
                w.writerow(row)
                fh.flush()
                print({k: row.get(k) for k in ("suite", "seq", "mask", "causal", "density",
                                               "block_n", "median_ms", "dense_ms", "status")},
                      file=sys.stderr)  # fmt: skip
            torch.cuda.empty_cache()
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
