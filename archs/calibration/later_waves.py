"""The calibration's `later_waves`: what one later wave of blocks takes, by row length.

`benchmarks/short_blocks_probe.py` times, per fused kernel and tiling, grids of one wave
and of `waves` waves of blocks of `steps` key tiles (1-32), one or several query tiles per
head sharing its K/V; `--merge-later CAL FILE` writes them here::

    later_waves:
      - {mode: online, head_dim: 64, block_m: 64, block_n: 64, num_warps: 4, num_stages: 3,
         blocks_per_sm: 3, tiles: host, q_tiles: 1, waves: 8, steps: [1, 2, 4, 8, 16, 32],
         wave_us: [4.589, 5.426, 8.135, 13.87, 25.27, 47.39]}

`wave_us[i]` = (T(waves) - T(1 wave)) / (waves - 1) for blocks of `steps[i]` key tiles
(increasing): one later wave of k = `blocks_per_sm` blocks per SM, started as slots free,
holding 1 / (waves - 1) of the call's wave transient (`wave_transients`). The GPU model
prices later-wave blocks with a fixed time plus steps (`attention_blocks`, fitted at 2 and 8
key tiles); on the H200 blocks of one or two tiles, and blocks of one query tile a head at
any length (each streams its own K/V from HBM), take longer than that line
(`short_blocks_probe.py --compare`). A later-wave block of a measured kernel, tiling and k
is priced no faster than these waves (`LaterWaves.floor_s`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attnsim.archs.calibration.points import KERNEL_KEYS, KernelBuild
from attnsim.einsum_ir.spec import Reader

LATER_KEYS = (
    *KERNEL_KEYS,
    "blocks_per_sm",
    "tiles",
    "q_tiles",
    "waves",
    "steps",
    "wave_us",
)
LATER_MODES = ("online", "pingpong", "stats", "output")


@dataclass(frozen=True, slots=True)
class LaterWavePoint(KernelBuild):
    """One kernel's measured later waves by steps (`later_waves`; seconds)."""

    blocks_per_sm: int
    tiles: str
    q_tiles: int
    waves: int
    steps: tuple[int, ...]
    wave_s: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class LaterWaves:
    """One kernel's measured later waves by steps (`points`: (steps, seconds), ascending).

    The seconds are net of the wave transient's share (the model adds the transient once a
    call). Measured at `q_tiles` query tiles a head.
    """

    q_tiles: int
    points: tuple[tuple[int, float], ...]

    def floor_s(self, steps: int) -> float | None:
        """The wave's seconds at `steps` key tiles a block, linear between measured lengths.

        None outside the measured lengths: beyond them a block's own L2 reuse and the
        pipeline's steady state, which the probe's grids did not reach, decide.
        """
        pts = self.points
        if not pts or not pts[0][0] <= steps <= pts[-1][0]:
            return None
        for (a, ta), (b, tb) in itertools.pairwise(pts):
            if a <= steps <= b:
                return ta + (tb - ta) * (steps - a) / (b - a)
        return pts[-1][1]  # a single measured length


def later_curve(
    points: Sequence[LaterWavePoint],
    mode: str,
    head_dim: int,
    tiling: Sequence[int],
    tiles: str,
    q_tiles: int,
    per_sm: int,
) -> tuple[int, int, tuple[tuple[int, float], ...]] | None:
    """(query tiles, waves, (steps, wave seconds)...) measured for exactly this kernel.

    The same mode, head dim, tiling (block_m, block_n, warps, stages), descriptor path and
    blocks per SM only. Of the measured query-tile counts the smallest at least `q_tiles`
    (more query tiles a head share its K/V through L2, so a block of fewer runs no faster:
    a floor, never a price a block undercuts); None when `q_tiles` is beyond all of them.
    """
    own = _by_kernel(points).get((mode, head_dim, tiles, per_sm, *tiling), ())
    above = sorted({p.q_tiles for p in own if p.q_tiles >= q_tiles})
    if not above:
        return None
    got = next(p for p in own if p.q_tiles == above[0])
    return got.q_tiles, got.waves, tuple(zip(got.steps, got.wave_s, strict=True))


_INDEX: dict[int, tuple[Sequence[LaterWavePoint], dict[tuple[Any, ...], list[LaterWavePoint]]]] = {}


def _by_kernel(points: Sequence[LaterWavePoint]) -> dict[tuple[Any, ...], list[LaterWavePoint]]:
    """`points` by (mode, head dim, tiles, blocks per SM, tiling), built once per sequence."""
    got = _INDEX.get(id(points))
    if got is None or got[0] is not points:
        index: dict[tuple[Any, ...], list[LaterWavePoint]] = {}
        for p in points:
            key = (p.mode, p.head_dim, p.tiles, p.blocks_per_sm)
            index.setdefault((*key, p.block_m, p.block_n, p.num_warps, p.num_stages), []).append(p)
        got = _INDEX[id(points)] = (points, index)
    return got[1]


def later_wave_point(r: Reader) -> LaterWavePoint | None:
    """One `later_waves` entry (problems go to the reader)."""
    if not r.check("map"):
        return None
    mode, tiles = r.req("mode", "str"), r.req("tiles", "str")
    if mode is not None and mode.value not in LATER_MODES:
        mode.error(f"expected one of {', '.join(LATER_MODES)}, got {mode.value!r}")
        mode = None
    if tiles is not None and tiles.value not in ("host", "device"):
        tiles.error(f"expected 'host' or 'device', got {tiles.value!r}")
        tiles = None
    ints = {}
    for key in LATER_KEYS[1:7] + LATER_KEYS[8:10]:
        c = r.req(key, "int")
        ints[key] = int(c.value) if c is not None and c.value > 0 else 0
        if c is not None and c.value <= 0:
            c.error(f"expected a positive integer, got {c.value}")
        elif key == "waves" and c is not None and c.value == 1:
            c.error("expected at least 2 (a later wave is timed against the first), got 1")
            ints[key] = 0
    steps_r, waves_r = r.req("steps", "list"), r.req("wave_us", "list")
    steps, waves_s = _numbers(steps_r, "int"), _numbers(waves_r, "number")
    if steps_r is not None and steps and any(b <= a for a, b in itertools.pairwise(steps)):
        steps_r.error(f"expected increasing key-tile counts, got {[int(n) for n in steps]}")
        steps = None
    if waves_r is not None and steps and waves_s and len(steps) != len(waves_s):
        waves_r.error(f"expected {len(steps)} times (one per entry of steps), got {len(waves_s)}")
        waves_s = None
    r.done(LATER_KEYS)
    if mode is None or tiles is None or not steps or not waves_s or 0 in ints.values():
        return None
    return LaterWavePoint(
        str(mode.value),
        tiles=str(tiles.value),
        steps=tuple(int(n) for n in steps),
        wave_s=tuple(t * 1e-6 for t in waves_s),
        **ints,
    )


def _numbers(r: Reader | None, kind: str) -> tuple[float, ...] | None:
    """A list of positive numbers (`kind` "int" or "number"); None after an error."""
    if r is None:
        return None
    out = []
    for item in r.each():
        if not item.check(kind):
            return None
        if not float(item.value) > 0:
            item.error(f"expected a positive number, got {item.value}")
            return None
        out.append(float(item.value))
    if not out:
        r.error("expected at least one entry")
        return None
    return tuple(out)
