"""The decode calibration's `waves` section: what a further program costs in a long launch.

The other decode figures come from launches of about one wave. `benchmarks/
decode_waves_probe.py` times split-K launches of up to ~60 programs per SM of short programs
(1, 2 or 4 key tiles) per tiling, and `--merge CAL FILE` turns its file into these entries::

    waves:
      - {head_dim: 128, value_dim: 128, rows: 16, block_n: 128, num_warps: 8, num_stages: 3,
         splits: 8, tiles: 1, programs: [128, 2048, 8192], sm_program_us: 4.86,
         transient_us: 3.3}

`sm_program_us`: the slope of the launch's time over its programs between the last two
launches of `programs` (both of many programs per SM), times the SMs: how long one more
program of `tiles` key tiles (in `splits`-way split segments: its partial store and a
`splits`th of a merge of `splits` partials) holds an SM once the launch runs steadily.
`transient_us`: what the second launch took beyond the first (at most one program per SM)
and its further programs at that steady cost, once per launch. `page_size` (optional, 0 if
absent): the launches read K/V through a shuffled block table of pages of that many keys
(`decode_waves_probe.py --paged`). `gpu-decode` prices programs after the first wave with
them (`mappers.gpu.decode_waves`), a paged call with the paged entries where the calibration
has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnsim.archs.calibration.decode_paged import CONFIG_KEYS, Config, config_ints, same_tiling
from attnsim.archs.calibration.points import log_distance
from attnsim.einsum_ir.spec import Reader

WAVE_KEYS = (*CONFIG_KEYS, "splits", "tiles", "programs", "sm_program_us", "transient_us",
             "page_size")  # fmt: skip


@dataclass(frozen=True, slots=True)
class WavePoint(Config):
    """One configuration's steady cost of a further program of `tiles` tiles (seconds)."""

    splits: int
    tiles: int
    programs: tuple[int, int, int]  # the launches: one wave, then the slope's two
    sm_program_s: float
    transient_s: float
    page_size: int = 0  # > 0: launches through a block table of pages of this many keys


def wave_points(
    points: tuple[WavePoint, ...],
    head_dim: int,
    value_dim: int,
    rows: int,
    tiling: tuple[int, int, int],
    paged: bool = False,
) -> tuple[WavePoint, ...]:
    """The points, by tiles, of exactly this tiling's configuration nearest these dims.

    `paged`: only the points measured through a block table (any page size: the kernel
    loads one page index per key tile whatever the page holds), else only contiguous ones.

    Only the same (block_n, warps, stages): the steady cost differs from the one-wave figures
    by tiling, not by one rule (the H200: 0.76x the one-wave price of a one-tile program at
    (128, 8, 3) and head dim 128, 1.03x at (256, 8, 3) and 64). Only within a factor 2 of
    the head and value dims. Empty when no configuration qualifies.
    """
    same = [p for p in same_tiling(points, head_dim, value_dim, tiling)
            if (p.page_size > 0) == paged]  # fmt: skip
    if not same:
        return ()
    want = (head_dim, value_dim, rows, *tiling)
    best = min(same, key=lambda p: log_distance(p.config, want)).config
    kept = [p for p in same if p.config == best]
    page = min(p.page_size for p in kept)  # one page size's points, should a file hold two
    return tuple(sorted((p for p in kept if p.page_size == page), key=lambda p: p.tiles))


def read_waves(items: Reader | None) -> tuple[WavePoint, ...]:
    """The `waves` list's points; every problem is reported on the readers."""
    out = []
    for r in items.each() if items is not None else ():
        if not r.check("map"):
            continue
        ints = config_ints(r, (*CONFIG_KEYS, "splits", "tiles"))
        launches = r.req("programs", "list")
        programs = [int(x.value) for x in launches.each() if x.check("int")] if launches else []
        if launches is not None and (len(programs) != 3 or not 0 < programs[0] < programs[1]
                                     or not programs[1] < programs[2]):  # fmt: skip
            launches.error("expected three increasing program counts (one wave, the slope's)")
            programs = []
        c = r.req("sm_program_us", "number")
        cost = float(c.value) * 1e-6 if c is not None else None
        if c is not None and not float(c.value) > 0:
            c.error(f"expected a positive number, got {c.value}")
            cost = None
        c = r.req("transient_us", "number")
        transient = float(c.value) * 1e-6 if c is not None else None
        page, page_ok = 0, True
        c = r.opt("page_size", "int")
        if c is not None and c.value < 0:
            c.error(f"expected a page size in keys (0: contiguous), got {c.value}")
            page_ok = False
        elif c is not None:
            page = int(c.value)
        r.done(WAVE_KEYS)
        ok = len(ints) == len(CONFIG_KEYS) + 2 and len(programs) == 3 and page_ok
        if ok and cost is not None and transient is not None:
            out.append(WavePoint(**ints, programs=(programs[0], programs[1], programs[2]),
                                 sm_program_s=cost, transient_s=transient,
                                 page_size=page))  # fmt: skip
    return tuple(out)
