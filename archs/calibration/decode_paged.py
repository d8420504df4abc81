"""The decode calibration's `paged` section: per-tile time through a block table.

A paged KV cache (vLLM's block table) stores each sequence's keys in fixed-size pages at
scattered places; the decode kernel loads a page index before each tile's K/V loads, so
its software pipeline cannot run ahead of the page index, and how much that costs depends on
the tiling (a 2-stage build hides little anyway; deeper builds lose what their stages
bought). `kernels.calibrate.microbench_decode --paged` times the unsplit kernel on the same
caches contiguous and shuffled into pages, in one run::

    paged:
      - {head_dim: 128, value_dim: 128, rows: 16, block_n: 128, num_warps: 8, num_stages: 3,
         page_size: 256, programs: 32, tile_us: 2.07, contiguous_tile_us: 1.41}

`tile_us` / `contiguous_tile_us` (slopes over the key tiles of `programs` programs, few
enough that HBM bandwidth does not bound them) is what paging multiplies a program's
per-tile time by (`PagedPoint.factor`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

from attnsim.archs.calibration.points import log_distance
from attnsim.einsum_ir.spec import Reader

# a decode configuration's keys in every section of the decode calibration (decode.py too)
CONFIG_KEYS = ("head_dim", "value_dim", "rows", "block_n", "num_warps", "num_stages")
PAGED_KEYS = (*CONFIG_KEYS, "page_size", "programs", "tile_us", "contiguous_tile_us")


@dataclass(frozen=True, slots=True)
class Config:
    """A decode program's configuration: its head and value dims, packed rows and tiling."""

    head_dim: int
    value_dim: int
    rows: int
    block_n: int
    num_warps: int
    num_stages: int

    @property
    def config(self) -> tuple[int, ...]:
        """(head_dim, value_dim, rows, block_n, num_warps, num_stages)."""
        return (self.head_dim, self.value_dim, self.rows, self.block_n, self.num_warps,
                self.num_stages)  # fmt: skip


ConfigT = TypeVar("ConfigT", bound=Config)


def same_tiling(
    points: tuple[ConfigT, ...], head_dim: int, value_dim: int, tiling: tuple[int, int, int]
) -> list[ConfigT]:
    """The points of exactly this (block_n, warps, stages) within a factor 2 of the dims."""
    return [
        p for p in points
        if (p.block_n, p.num_warps, p.num_stages) == tiling
        and abs(math.log2(p.head_dim / head_dim)) <= 1
        and abs(math.log2(p.value_dim / value_dim)) <= 1
    ]  # fmt: skip


def config_ints(r: Reader, keys: tuple[str, ...]) -> dict[str, int]:
    """A section entry's positive integers of `keys` (problems reported on the reader)."""
    ints: dict[str, int] = {}
    for key in keys:
        c = r.req(key, "int")
        if c is not None and c.value <= 0:
            c.error(f"expected a positive integer, got {c.value}")
        elif c is not None:
            ints[key] = int(c.value)
    return ints


@dataclass(frozen=True, slots=True)
class PagedPoint(Config):
    """One configuration's per-tile time through a block table and contiguous (seconds)."""

    page_size: int
    programs: int
    tile_s: float
    contiguous_tile_s: float

    @property
    def config(self) -> tuple[int, ...]:
        """(head_dim, value_dim, rows, block_n, num_warps, num_stages, page_size)."""
        return (self.head_dim, self.value_dim, self.rows, self.block_n, self.num_warps,
                self.num_stages, self.page_size)  # fmt: skip

    @property
    def factor(self) -> float:
        """Per-tile time through the block table over the contiguous cache's."""
        return self.tile_s / self.contiguous_tile_s


def nearest_paged(
    points: tuple[PagedPoint, ...],
    head_dim: int,
    value_dim: int,
    rows: int,
    tiling: tuple[int, int, int],
    page_size: int,
) -> PagedPoint | None:
    """The measured point of exactly this tiling nearest these dims and page size.

    Only the same (block_n, warps, stages): what paging costs is the pipeline the tiling's
    build loses, which another tiling's figure does not tell (on the H200, batch 4 with a
    128K-key longest sequence in 2 splits: 1.07x the contiguous ragged call's time at
    (64, 4, 2), 1.81x at (64, 4, 4)). Only within a factor 2 of the head and value dims.
    None when no point qualifies.
    """
    same = same_tiling(points, head_dim, value_dim, tiling)
    if not same:
        return None
    want = (head_dim, value_dim, rows, *tiling, page_size)
    return min(same, key=lambda p: log_distance(p.config, want))


def read_paged(items: Reader | None) -> tuple[PagedPoint, ...]:
    """The `paged` list's points; every problem is reported on the readers."""
    out = []
    for r in items.each() if items is not None else ():
        if not r.check("map"):
            continue
        ints = config_ints(r, (*CONFIG_KEYS, "page_size", "programs"))
        times: dict[str, float] = {}
        for key in ("tile_us", "contiguous_tile_us"):
            c = r.req(key, "number")
            if c is not None and not float(c.value) > 0:
                c.error(f"expected a positive number, got {c.value}")
            elif c is not None:
                times[key] = float(c.value) * 1e-6
        r.done(PAGED_KEYS)
        if len(ints) == len(CONFIG_KEYS) + 2 and len(times) == 2:
            if ints["page_size"] % ints["block_n"]:
                r.error(f"page_size {ints['page_size']}: expected a multiple of block_n")
                continue
            out.append(
                PagedPoint(**ints, tile_s=times["tile_us"],
                           contiguous_tile_s=times["contiguous_tile_us"])
            )  # fmt: skip
    return tuple(out)
