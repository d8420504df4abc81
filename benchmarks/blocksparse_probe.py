"""GPU only: time the 1-pass kernel's block-sparse layouts against FlexAttention and dense.

Run: PYTHONPATH=. python benchmarks/blocksparse_probe.py --out DIR [--budget-s 140]

One shape (batch 1, 32 heads, 16K queries and keys, head dim 128, bf16) under two kinds of
mask: random block masks at 5-50% of the 128x128 tiles (one layout for every head; the
diagonal tile always kept) and packed documents (8 of 2048, and 8 of uneven lengths; causal
and not). For each case the same mask goes to our kernel (`attention_fwd(block_sparse=)`,
tiles 128x128) and to FlexAttention (`create_block_mask` with BLOCK_SIZE 128 on the same
mask_mod, compiled with torch.compile); the probe first checks that both hold the same full
and partial tile lists and that both outputs match float32 attention with the element mask
written plainly (first two heads). Dense references: SDPA and our kernel without a layout,
with the case's causal flag. Times: `triton.testing.do_bench` medians (100 ms of repeats, L2
flushed). Writes DIR/blocksparse-<device>-<date>.csv, one row per case (columns: `FIELDS`).
FlexAttention's compiles (one per mask kind) take most of the wall time; a case is skipped
once --budget-s is spent, and FlexAttention is given up (NaN) if it fails to compile.
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

import torch
import triton
import triton.testing

from attnsim.kernels.spec import BLOCKSPARSE_MEASURED, device_slug
from attnsim.kernels.triton.attn_fwd import attention_fwd
from attnsim.kernels.triton.blocksparse import (
    BlockSparse,
    block_sparse_from_block_mask,
    block_sparse_from_documents,
)

BATCH, HEADS, SEQ, HEAD_DIM = 1, 32, 16384, 128
BLOCK = 128  # FlexAttention's default block size; our tiles match it
TILING = dict(num_warps=8, num_stages=3)  # with 128x128 tiles: the hd128 default tiling
UNEVEN = (512, 4096, 1024, 3072, 2048, 1536, 2560, 1536)  # 8 documents, 16K in all
FIELDS = (
    "device", "family", "batch", "heads", "seq", "head_dim", "mask", "causal", "target_density",
    "documents", "tile_density", "full_tile_share", "pair_density", "block_m", "block_n",
    "num_warps", "num_stages", "median_ms", "p10_ms", "p90_ms", "flex_ms", "sdpa_dense_ms",
    "triton_dense_ms", "tflops", "max_abs_err", "flex_max_abs_err", "torch", "triton",
    "timestamp",
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One mask: random tiles at `density` ("blocks"), or documents of `lengths`."""

    mask: str
    causal: bool
    density: float = 0.0
    lengths: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        """How the case is printed: mask kind, density or documents, causal."""
        what = f"{self.density:.0%} of tiles" if self.mask == "blocks" else self.documents
        return f"{self.mask} {what}{' causal' if self.causal else ''}"

    @property
    def documents(self) -> str:
        """'8x2048' for equal documents, else the lengths joined by '/' ('' for blocks)."""
        if not self.lengths:
            return ""
        if len(set(self.lengths)) == 1:
            return f"{len(self.lengths)}x{self.lengths[0]}"
        return "/".join(str(n) for n in self.lengths)


CASES = (
    *(Case("blocks", False, d) for d in (0.05, 0.1, 0.2, 0.3, 0.5)),
    Case("documents", True, lengths=(SEQ // 8,) * 8),
    Case("documents", False, lengths=(SEQ // 8,) * 8),
    Case("documents", True, lengths=UNEVEN),
    Case("blocks", True, 0.3),
)


def layout(case: Case, seq: int, block: int, device: Any) -> tuple[BlockSparse, Any, Any]:
    """Our layout, FlexAttention's mask_mod for the same mask, and the element mask (Sq, Sk)."""
    tiles, causal = -(-seq // block), case.causal
    if case.mask == "blocks":
        g = torch.Generator(device="cpu").manual_seed(int(case.density * 1000))
        blocks = torch.rand(tiles, tiles, generator=g) < case.density
        blocks |= torch.eye(tiles, dtype=torch.bool)  # every query tile keeps its diagonal tile
        blocks = blocks.to(device)
        bs = block_sparse_from_block_mask(blocks, seq, seq, block, block, causal)

        def mask_mod(b: Any, h: Any, q: Any, kv: Any) -> Any:
            keep = blocks[q // block, kv // block]
            return keep & (q >= kv) if causal else keep

        keep = blocks.repeat_interleave(block, 0).repeat_interleave(block, 1)[:seq, :seq]
    else:
        bs = block_sparse_from_documents(case.lengths, block, block, causal, device=device)
        doc = bs.q_segments[0]

        def mask_mod(b: Any, h: Any, q: Any, kv: Any) -> Any:
            same = doc[q] == doc[kv]
            return same & (q >= kv) if causal else same

        keep = doc[:, None] == doc[None, :]
    if causal:
        keep = keep & torch.ones(seq, seq, dtype=torch.bool, device=device).tril()
    return bs, mask_mod, keep


def listed(counts: Any, indices: Any, tiles: int) -> Any:
    """A (B, H, Tq, Tk) list pair as a bool (B, H, Tq, tiles)."""
    valid = torch.arange(indices.shape[-1], device=counts.device) < counts[..., None]
    hits = torch.zeros((*counts.shape, tiles), dtype=torch.int32, device=counts.device)
    hits.scatter_add_(-1, indices.long(), valid.to(torch.int32))
    return hits > 0


def same_lists(bs: BlockSparse, flex_mask: Any) -> bool:
    """Whether FlexAttention's BlockMask lists the same full and partial tiles as `bs`."""
    tk = bs.key_tiles
    full = listed(flex_mask.full_kv_num_blocks, flex_mask.full_kv_indices, tk)
    part = listed(flex_mask.kv_num_blocks, flex_mask.kv_indices, tk)
    ours_full = listed(bs.full_counts, bs.full_indices, tk)
    ours_part = listed(bs.partial_counts, bs.partial_indices, tk)
    return bool(torch.equal(full, ours_full) and torch.equal(part, ours_part))


def _time(fn: Any) -> tuple[float, float, float]:
    p50, p10, p90 = triton.testing.do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.1, 0.9])
    return float(p50), float(p10), float(p90)


def _error(out: Any, q: Any, k: Any, v: Any, keep: Any) -> float:
    """Max |O - O_ref| on the first 2 heads (float32 attention with the element mask)."""
    qs, ks, vs = (t[:1, :2].float() for t in (q, k, v))
    s = qs @ ks.transpose(-1, -2) * q.shape[-1] ** -0.5
    ref = torch.softmax(s.masked_fill(~keep, float("-inf")), -1).nan_to_num(0.0) @ vs
    return (out[:1, :2].float() - ref).abs().max().item()


class _Flex:
    """Compiled FlexAttention; given up (NaN) after a failure."""

    def __init__(self) -> None:
        self.fn: Any = None
        self.failed = False

    def run(self, q: Any, k: Any, v: Any, block_mask: Any) -> Any:
        if self.fn is None:
            from torch.nn.attention.flex_attention import flex_attention

            self.fn = torch.compile(flex_attention)
        return self.fn(q, k, v, block_mask=block_mask)

    def time(self, q: Any, k: Any, v: Any, block_mask: Any) -> tuple[float, Any]:
        """(median ms, output) or (NaN, None)."""
        if self.failed:
            return float("nan"), None
        try:
            out = self.run(q, k, v, block_mask)
            torch.cuda.synchronize()
            return _time(lambda: self.run(q, k, v, block_mask))[0], out
        except Exception as exc:  # noqa: BLE001 (any compile failure: record NaN, go on)
            print(f"  flex failed: {str(exc).splitlines()[0][:160]}", file=sys.stderr)
            self.failed = True
            return float("nan"), None


def _dense_times(q: Any, k: Any, v: Any, causal: bool) -> tuple[float, float]:
    """(SDPA ms, our kernel without a layout ms) for the dense mask with this causal flag."""
    import torch.nn.functional as F

    sdpa = _time(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))[0]
    ours = _time(functools.partial(attention_fwd, q, k, v, causal, block_m=BLOCK,
                                   block_n=BLOCK, **TILING))[0]  # fmt: skip
    return sdpa, ours


def run_case(
    case: Case, q: Any, k: Any, v: Any, flex: _Flex, dense: dict[bool, Any]
) -> dict[str, Any]:
    """Check and time one case; returns its CSV row (without the identifying columns)."""
    from torch.nn.attention.flex_attention import create_block_mask

    bs, mask_mod, keep = layout(case, SEQ, BLOCK, q.device)
    flex_mask = create_block_mask(mask_mod, None, None, SEQ, SEQ, device=q.device,
                                  BLOCK_SIZE=BLOCK)  # fmt: skip
    assert same_lists(bs, flex_mask), f"{case.label}: FlexAttention lists other tiles"
    run = functools.partial(attention_fwd, q, k, v, case.causal, block_sparse=bs, **TILING)
    out = run()
    assert torch.isfinite(out).all(), f"{case.label}: NaN or unwritten outputs"
    err = _error(out, q, k, v, keep)
    assert err < 2e-2, f"{case.label}: max error {err}"
    t = _time(run)
    flex_ms, flex_out = flex.time(q, k, v, flex_mask)
    flex_err = _error(flex_out, q, k, v, keep) if flex_out is not None else float("nan")
    if case.causal not in dense:
        dense[case.causal] = _dense_times(q, k, v, case.causal)
    pairs = int(keep.sum())
    return dict(
        mask=case.mask, causal=case.causal, target_density=case.density,
        documents=case.documents, tile_density=bs.density,
        full_tile_share=int(bs.full_counts.sum()) / max(1, bs.visited_tiles),
        pair_density=pairs / (SEQ * SEQ), block_m=BLOCK, block_n=BLOCK, median_ms=t[0],
        p10_ms=t[1], p90_ms=t[2], flex_ms=flex_ms, sdpa_dense_ms=dense[case.causal][0],
        triton_dense_ms=dense[case.causal][1],
        tflops=4 * BATCH * HEADS * pairs * HEAD_DIM / (t[0] * 1e9), max_abs_err=err,
        flex_max_abs_err=flex_err, **TILING,
    )  # fmt: skip


def main() -> int:
    """Check and time every case; write the CSV (module docstring)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=140)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("blocksparse_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    start = time.monotonic()
    name = torch.cuda.get_device_name()
    stamp = dt.datetime.now(dt.UTC)
    path = args.out / f"blocksparse-{device_slug(name)}-{stamp:%Y-%m-%d}.csv"
    args.out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator(device="cuda").manual_seed(SEQ + HEAD_DIM)
    q, k, v = (
        torch.randn(BATCH, HEADS, SEQ, HEAD_DIM, device="cuda", generator=g, dtype=torch.bfloat16)
        for _ in range(3)
    )
    flex, dense, n = _Flex(), {}, 0
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        for case in CASES:
            if time.monotonic() - start > args.budget_s:
                print(f"budget spent; skipping {case.label} and after", file=sys.stderr)
                break
            row = run_case(case, q, k, v, flex, dense)
            row.update(device=name, family=BLOCKSPARSE_MEASURED, batch=BATCH, heads=HEADS,
                       seq=SEQ, head_dim=HEAD_DIM, torch=torch.__version__,
                       triton=triton.__version__, timestamp=stamp.isoformat())  # fmt: skip
            writer.writerow(row)
            fh.flush()
            n += 1
            print(
                f"{case.label}: tiles {row['tile_density']:.1%}, ours {row['median_ms']:.3f} ms "
                f"({row['tflops']:.0f} TFLOP/s), flex {row['flex_ms']:.3f} ms, dense SDPA "
                f"{row['sdpa_dense_ms']:.3f} ms, dense ours {row['triton_dense_ms']:.3f} ms, "
                f"err {row['max_abs_err']:.1e} (flex {row['flex_max_abs_err']:.1e}) "
                f"[{time.monotonic() - start:.0f} s]",
                flush=True,
            )
    print(f"wrote {n} rows to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
