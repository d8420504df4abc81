"""GPU only: validation and holdout suites of neighborhood attention (`triton-neighborhood`).

    PYTHONPATH=. python benchmarks/neighborhood_probe.py --out DIR --suite validation
    PYTHONPATH=. python benchmarks/neighborhood_probe.py --out DIR --suite holdout

2-D neighborhoods of 7 x 7 to 31 x 31 on 32 x 32 to 128 x 128 images (dilation 1-4) and 1-D
ones (63-511 keys over 4K-16K tokens, one causal per suite), bf16, two tilings per shape at
block sizes the calibration measures (`TILINGS`): 2-D tiles (8 x 16 queries, 8 x 8 keys at 128
x 64) and, where the image's width allows it, whole rows as tiles (nothing permuted), else the
second block pair. The suites share no shape. In the same run: compiled FlexAttention on the
tokens in row-major order with the same mask (mask_mod from the window rule, block mask of 128
x 128; family `flex`) and SDPA without a mask (`sdpa-dense`). Rows of family
`triton-neighborhood` time the whole call (the copies into and out of tile order included);
where tokens are permuted, a `triton-neighborhood-kernel` row times the kernel alone on tokens
already in tile order. Every output of ours is first checked against float32 attention with
the mask written plainly (`neighborhood_mask`) on two heads; a configuration that fails its
check is written with status "error: ..." and not timed. Times: `triton.testing.do_bench`
median (L2 flushed). Writes DIR/neighborhood-<suite>-<device>-<date>.csv, one row per timed
configuration as it is timed (an interrupted run keeps its rows); cases are skipped once
--budget-s is spent. `attnsim validate gpu --measurements FILE` reads the files
(`reports.validation_neighborhood`).
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

from attnsim.kernels.spec import device_slug
from attnsim.kernels.triton.neighborhood import (
    attention_neighborhood,
    neighborhood_mask,
    neighborhood_of,
)
from attnsim.kernels.triton.neighborhood_layout import neighborhood_sparse, tile_shape

FAMILY, KERNEL_FAMILY = "triton-neighborhood", "triton-neighborhood-kernel"
FIELDS = (
    "family", "suite", "batch", "heads", "head_dim", "image_h", "image_w", "kernel_h",
    "kernel_w", "dilation_h", "dilation_w", "causal_h", "causal_w", "q_tile", "kv_tile",
    "block_m", "block_n", "num_warps", "num_stages", "permuted", "positions", "full_tiles",
    "partial_tiles", "median_ms", "p10_ms", "p90_ms", "status", "max_err", "device", "torch",
    "triton", "timestamp",
)  # fmt: skip
TILINGS = {  # head dim -> two block pairs (block_m, block_n, warps, stages), as blocksparse_suite
    64: ((128, 64, 4, 3), (64, 64, 4, 3)),
    128: ((128, 64, 8, 3), (128, 128, 8, 3)),
}
FLEX_BLOCK = 128


@dataclass(frozen=True)
class Case:
    """One problem: batch, heads, head dim, image (1 x L in 1-D) and the per-axis window."""

    suite: str
    batch: int
    heads: int
    head_dim: int
    image: tuple[int, int]
    kernel: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    causal: tuple[bool, bool] = (False, False)

    @property
    def one_d(self) -> bool:
        """A 1-D problem (an image of one row)."""
        return self.image[0] == 1

    @property
    def tokens(self) -> int:
        """Tokens of the image."""
        return self.image[0] * self.image[1]

    @property
    def image_arg(self) -> Any:
        """The image as `attention_neighborhood` takes it: a 1-D length or (height, width)."""
        return self.image[1] if self.one_d else self.image

    def columns(self) -> dict[str, Any]:
        """The row's problem columns."""
        return dict(
            suite=self.suite, batch=self.batch, heads=self.heads, head_dim=self.head_dim,
            image_h=self.image[0], image_w=self.image[1], kernel_h=self.kernel[0],
            kernel_w=self.kernel[1], dilation_h=self.dilation[0], dilation_w=self.dilation[1],
            causal_h=int(self.causal[0]), causal_w=int(self.causal[1]),
        )  # fmt: skip

    @property
    def label(self) -> str:
        """How the case is printed."""
        c = " causal" if any(self.causal) else ""
        return (f"{self.suite} {self.batch}x{self.heads} E={self.head_dim} {self.image[0]}x"
                f"{self.image[1]} k={self.kernel[0]}x{self.kernel[1]} d={self.dilation[0]}x"
                f"{self.dilation[1]}{c}")  # fmt: skip


def _2d(suite: str, b: int, h: int, d: int, side: Any, k: Any, dil: int = 1) -> Case:
    image = (side, side) if isinstance(side, int) else side
    kernel = (k, k) if isinstance(k, int) else k
    return Case(suite, b, h, d, image, kernel, (dil, dil))


def _1d(suite: str, b: int, h: int, d: int, n: int, k: int, dil: int = 1, causal: bool = False
        ) -> Case:  # fmt: skip
    return Case(suite, b, h, d, (1, n), (1, k), (1, dil), (False, causal))


CASES = (
    _2d("validation", 16, 8, 64, 32, 7),
    _2d("validation", 4, 16, 128, 64, 7),
    _2d("validation", 4, 16, 64, 64, 15, 2),
    _2d("validation", 4, 8, 128, 64, 31),
    _2d("validation", 1, 16, 128, 128, 13),
    _2d("validation", 1, 16, 64, 128, 31),
    _2d("validation", 1, 16, 128, 128, 7, 4),
    _1d("validation", 1, 16, 128, 8192, 255),
    _1d("validation", 1, 16, 128, 16384, 511, causal=True),
    _2d("holdout", 8, 8, 128, 48, 9),
    _2d("holdout", 2, 16, 64, 96, 21),
    _2d("holdout", 2, 8, 128, 96, 11, 3),
    _2d("holdout", 2, 16, 128, (128, 64), (15, 9)),
    _1d("holdout", 2, 8, 64, 12288, 127, 2),
    _1d("holdout", 4, 16, 128, 6144, 63, causal=True),
)  # fmt: skip


def row_tiles(width: int, block_m: int, block_n: int) -> tuple[Any, Any] | None:
    """Whole image rows (or runs that rows divide into) as (q, kv) tiles, or None.

    With such tiles the tile order is row-major and nothing is permuted; None: the width
    allows none.
    """
    out = []
    for block in (block_m, block_n):
        if width >= block and width % block == 0:
            out.append((1, block))
        elif width < block and block % width == 0:
            out.append((block // width, width))
        else:
            return None
    return out[0], out[1]


def configs(case: Case) -> list[tuple[tuple[int, int], tuple[int, int], int, int]]:
    """Two (q tile, kv tile, warps, stages) per case (module docstring)."""
    first, second = TILINGS[case.head_dim]
    if case.one_d:
        return [((1, bm), (1, bn), w, s) for bm, bn, w, s in (first, second)]
    bm, bn, w, s = first
    width = case.image[1] // case.dilation[1]
    out = [(tile_shape(bm, width), tile_shape(bn, width), w, s)]
    rows = row_tiles(case.image[1], bm, bn) if case.dilation == (1, 1) else None
    if rows is not None:
        out.append((rows[0], rows[1], w, s))
    else:
        bm, bn, w, s = second
        out.append((tile_shape(bm, width), tile_shape(bn, width), w, s))
    return out


def _time(fn: Any) -> tuple[float, float, float]:
    p50, p10, p90 = triton.testing.do_bench(fn, warmup=25, rep=60, quantiles=[0.5, 0.1, 0.9])
    return float(p50), float(p10), float(p90)


def check(out: Any, q: Any = None, k: Any = None, v: Any = None, g: Any = None) -> float:
    """Max |O - O_ref| on two heads of the first batch (float32, the mask written plainly)."""
    assert torch.isfinite(out).all(), "NaN or unwritten outputs"
    keep = neighborhood_mask(g, q.device)
    qs, ks, vs = (t[:1, :2].float() for t in (q, k, v))
    err = 0.0
    for r0 in range(0, q.shape[2], 2048):
        rows = slice(r0, r0 + 2048)
        s = qs[:, :, rows] @ ks.transpose(-1, -2) * q.shape[-1] ** -0.5
        ref = torch.softmax(s.masked_fill(~keep[rows], float("-inf")), -1) @ vs
        err = max(err, (out[:1, :2, rows].float() - ref).abs().max().item())
    assert err < 3e-2, f"max error {err}"
    return err


class Flex:
    """Compiled FlexAttention on row-major tokens; gives up after a compile failure.

    The window's sizes are captured tensors: a new window needs no recompile, a new sequence
    length does.
    """

    def __init__(self, device: str) -> None:
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = 64
        self.device = device
        self.sizes = torch.zeros(8, dtype=torch.int32, device=device)
        self.fn: Any = None
        self.failed = False
        self.mod = self.mask_mod()  # one function object: compiled once per sequence length

    def mask_mod(self) -> Any:
        """FlexAttention's mask_mod: NATTEN's window in each group's sub-grid, per axis.

        The sizes come from `self.sizes`: image (h, w), kernel, dilation, causal per axis.
        """
        z = self.sizes

        def axis(i: Any, j: Any, n: Any, k: Any, d: Any, causal: Any) -> Any:
            length = (n - i % d + d - 1) // d  # the query's group's sub-grid
            si, sj = i // d, j // d
            start = torch.minimum(torch.clamp(si - k // 2, min=0), length - k)
            lo = torch.where(causal > 0, torch.clamp(si - k + 1, min=0), start)
            hi = torch.where(causal > 0, si + 1, start + k)
            return (i % d == j % d) & (sj >= lo) & (sj < hi)

        def mask_mod(b: Any, h: Any, q: Any, kv: Any) -> Any:
            w = z[1]
            return axis(q // w, kv // w, z[0], z[2], z[4], z[6]) & axis(
                q % w, kv % w, z[1], z[3], z[5], z[7]
            )

        return mask_mod

    def block_mask(self, case: Case) -> Any:
        """The case's block mask over row-major tokens (blocks of FLEX_BLOCK)."""
        from torch.nn.attention.flex_attention import create_block_mask

        values = (*case.image, *case.kernel, *case.dilation, *(int(c) for c in case.causal))
        self.sizes.copy_(torch.tensor(values, dtype=torch.int32))
        n = case.tokens
        return create_block_mask(self.mod, None, None, n, n, device=self.device,
                                 BLOCK_SIZE=FLEX_BLOCK, _compile=self.device != "cpu")  # fmt: skip

    def run(self, q: Any, k: Any, v: Any, block_mask: Any) -> Any:
        """FlexAttention's output."""
        if self.fn is None:
            from torch.nn.attention.flex_attention import flex_attention

            self.fn = torch.compile(flex_attention) if self.device != "cpu" else flex_attention
        return self.fn(q, k, v, block_mask=block_mask)

    def time(self, case: Case, q: Any, k: Any, v: Any, g: Any) -> dict[str, Any]:
        """The flex row's timing and status columns."""
        if self.failed:
            return dict(status="error: flex failed earlier")
        try:
            mask = self.block_mask(case)
            err = check(self.run(q, k, v, mask), q, k, v, g)
            t = _time(lambda: self.run(q, k, v, mask))
        except AssertionError as exc:  # a wrong output: record it, keep FlexAttention
            return dict(status=f"error: flex: {str(exc)[:100]}")
        except Exception as exc:  # noqa: BLE001 (a compile failure: record it, give up on it)
            print(f"  flex failed: {str(exc).splitlines()[0][:160]}", file=sys.stderr)
            self.failed = True
            return dict(status=f"error: flex: {str(exc).splitlines()[0][:100]}")
        return dict(median_ms=t[0], p10_ms=t[1], p90_ms=t[2], status="ok", max_err=err)


def _ours(run: Any, checked: Any) -> dict[str, Any]:
    """Check, then time one configuration: the row's timing and status columns."""
    try:
        err = checked(run())
    except (triton.runtime.errors.OutOfResources, ValueError, AssertionError) as exc:
        return dict(status=f"error: {str(exc).splitlines()[0][:100]}")
    t = _time(run)
    return dict(median_ms=t[0], p10_ms=t[1], p90_ms=t[2], status="ok", max_err=err)


def _same(out: Any, lay: Any, whole: Any) -> float:
    """Max |O - O_whole| of the kernel alone (tile order) against the whole call."""
    return float((lay.from_tiles(out) - whole).abs().max().item())


def run_case(case: Case, flex: Flex, write: Any, deadline: float, device: str = "cuda") -> None:
    """Every row of one case: SDPA, FlexAttention, then ours at each configuration."""
    g0 = torch.Generator(device=device).manual_seed(case.tokens + case.heads + case.head_dim)
    size = (case.batch, case.heads, case.tokens, case.head_dim)
    dtype = torch.bfloat16 if device != "cpu" else torch.float32
    q, k, v = (torch.randn(*size, generator=g0, device=device).to(dtype) for _ in range(3))
    cols = case.columns()
    sdpa = torch.nn.functional.scaled_dot_product_attention
    t = _time(functools.partial(sdpa, q, k, v))
    write(dict(family="sdpa-dense", median_ms=t[0], p10_ms=t[1], p90_ms=t[2], status="ok", **cols))
    g = neighborhood_of(q, case.kernel, case.dilation, case.image_arg, case.causal)
    write(dict(family="flex", block_m=FLEX_BLOCK, block_n=FLEX_BLOCK, **flex.time(case, q, k, v, g),
               **cols))  # fmt: skip
    for q_tile, kv_tile, warps, stages in configs(case):
        if time.monotonic() > deadline:
            print(f"budget spent: skip {case.label} {q_tile}/{kv_tile}", file=sys.stderr)
            return
        g = neighborhood_of(q, case.kernel, case.dilation, case.image_arg, case.causal, q_tile,
                            kv_tile)  # fmt: skip
        lay = neighborhood_sparse(g, q.device)
        tiling = dict(block_m=g.block_m, block_n=g.block_n, num_warps=warps, num_stages=stages)
        facts = dict(
            q_tile=f"{q_tile[0]}x{q_tile[1]}", kv_tile=f"{kv_tile[0]}x{kv_tile[1]}",
            permuted=int(lay.is_permuted), positions=lay.seq_q,
            full_tiles=int(lay.full_counts.sum()), partial_tiles=int(lay.partial_counts.sum()),
            **tiling, **cols,
        )  # fmt: skip
        call = functools.partial(attention_neighborhood, q, k, v, case.kernel, case.dilation,
                                 case.image_arg, case.causal, block_m=q_tile, block_n=kv_tile,
                                 num_warps=warps, num_stages=stages)  # fmt: skip
        got = _ours(call, functools.partial(check, q=q, k=k, v=v, g=g))
        write(dict(family=FAMILY, **got, **facts))
        print(f"{case.label} {facts['q_tile']}/{facts['kv_tile']} w{warps}: "
              f"{got.get('median_ms', got['status'])}", flush=True)  # fmt: skip
        if lay.is_permuted and got["status"] == "ok":
            tiled = [lay.to_tiles(x) for x in (q, k, v)]
            alone = functools.partial(attention_neighborhood, *tiled, case.kernel, case.dilation,
                                      case.image_arg, case.causal, block_m=q_tile,
                                      block_n=kv_tile, num_warps=warps, num_stages=stages,
                                      in_tile_order=True)  # fmt: skip
            got = _ours(alone, functools.partial(_same, lay=lay, whole=call()))
            write(dict(family=KERNEL_FAMILY, **got, **facts))


def main(argv: list[str] | None = None) -> int:
    """Check and time the chosen suite; write its CSV (module docstring)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--suite", choices=("validation", "holdout", "all"), default="all")
    ap.add_argument("--budget-s", type=float, default=480.0)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("neighborhood_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.budget_s
    name = torch.cuda.get_device_name()
    stamp = dt.datetime.now(dt.UTC)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"neighborhood-{args.suite}-{device_slug(name)}-{stamp:%Y-%m-%d}.csv"
    fixed = dict(device=name, torch=torch.__version__, triton=triton.__version__,
                 timestamp=stamp.isoformat())  # fmt: skip
    flex, n = Flex("cuda"), 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.DictWriter(fh, FIELDS)
        out.writeheader()

        def write(row: dict[str, Any]) -> None:
            nonlocal n
            out.writerow({**fixed, **row})
            fh.flush()
            n += 1

        for case in CASES:
            if args.suite not in ("all", case.suite):
                continue
            if time.monotonic() > deadline:
                print(f"budget spent: skip {case.label}", file=sys.stderr)
                continue
            run_case(case, flex, write, deadline)
            torch.cuda.empty_cache()
    print(f"wrote {n} rows to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
