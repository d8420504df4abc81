"""Measured figures of the decode kernels (kernels.calibrate.microbench_decode) and their loader.

One file per device beside the device's main calibration: `<stem>-decode.yaml` next to
`<stem>.yaml`. Format (units in key names)::

    device: NVIDIA H200
    date: '2026-12-03'
    source: kernels.calibrate.microbench_decode
    hbm_read_bandwidth_gb_per_s: 4000      # read-only stream in the same run
    host_call_us: {unsplit: 20, splitk: 22, streamk: 22}   # one launcher call, tiny problem
    programs:            # unsplit kernel, one segment per program, long caches
      - {head_dim: 128, value_dim: 128, rows: 16, block_n: 64, num_warps: 4, num_stages: 2,
         programs_per_sm: 1, tile_us: 1.40, fixed_us: 3.1}
    profiles:            # unsplit kernel, few programs: time over tiles per program
      - {head_dim: 128, value_dim: 128, rows: 16, block_n: 64, num_warps: 4, num_stages: 2,
         tiles: [1, 4, 16, 512], time_us: [4.1, 9.8, 30.0, 788.0]}
    merges:              # split-K on short chunks: what a split segment adds
      - {head_dim: 128, value_dim: 128, rows: 16, piece_us: 1.2, part_us: 0.05}

`tile_us`: the slope of a program's time over the key tiles it streams with
`programs_per_sm` programs resident on every SM (the time of one tile while the others on the
SM stream theirs); `fixed_us`: the intercept (query load, state setup, output store) less the
do_bench floor. `piece_us`: what a program leaving a partial state adds (its fp32 partial
store and the atomic arrival); `part_us`: what the merging program adds per partial it reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from attnsim.einsum_ir.spec import Reader, path_exists

TOP_KEYS = (
    "device",
    "date",
    "source",
    "versions",
    "hbm_read_bandwidth_gb_per_s",
    "host_call_us",
    "programs",
    "profiles",
    "merges",
    "notes",
)
PROFILE_KEYS = (
    "head_dim",
    "value_dim",
    "rows",
    "block_n",
    "num_warps",
    "num_stages",
    "tiles",
    "time_us",
)
PROGRAM_KEYS = (
    "head_dim",
    "value_dim",
    "rows",
    "block_n",
    "num_warps",
    "num_stages",
    "programs_per_sm",
    "tile_us",
    "fixed_us",
)
MERGE_KEYS = ("head_dim", "value_dim", "rows", "piece_us", "part_us")


@dataclass(frozen=True, slots=True)
class ProgramPoint:
    """Streaming figures of one decode program configuration (see the module docstring)."""

    head_dim: int
    value_dim: int
    rows: int
    block_n: int
    num_warps: int
    num_stages: int
    programs_per_sm: int
    tile_s: float
    fixed_s: float


@dataclass(frozen=True, slots=True)
class Profile:
    """A launch's time (less the do_bench floor) over the key tiles of each of its programs.

    Measured with few programs (no HBM contention): `time_s[i]` for `tiles[i]` tiles each.
    """

    head_dim: int
    value_dim: int
    rows: int
    block_n: int
    num_warps: int
    num_stages: int
    tiles: tuple[int, ...]
    time_s: tuple[float, ...]

    def start_s(self) -> float:
        """The launch's time with programs of no tiles: the first segment's line, at 0."""
        (n0, n1), (t0, t1) = self.tiles[:2], self.time_s[:2]
        return max(0.0, t0 - n0 * (t1 - t0) / (n1 - n0))

    def program_s(self, tiles: float) -> float:
        """A program's time over `tiles` tiles beyond the launch's start.

        The curve, linear between the measured points and beyond the last with the last
        segment's slope.
        """
        xs, ys = (0, *self.tiles), (self.start_s(), *self.time_s)
        i = next((j for j in range(1, len(xs)) if tiles <= xs[j]), len(xs) - 1)
        slope = (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])
        return max(0.0, ys[i - 1] + (tiles - xs[i - 1]) * slope - ys[0])


@dataclass(frozen=True, slots=True)
class MergePoint:
    """What splitting a segment costs (see the module docstring)."""

    head_dim: int
    value_dim: int
    rows: int
    piece_s: float
    part_s: float


@dataclass(frozen=True, slots=True)
class DecodeCalibration:
    """The decode figures of one device."""

    device: str
    date: str
    source: str
    hbm_read_bandwidth_bytes_per_s: float | None = None
    host_call_s: tuple[tuple[str, float], ...] = ()
    programs: tuple[ProgramPoint, ...] = ()
    merges: tuple[MergePoint, ...] = ()
    profiles: tuple[Profile, ...] = ()
    path: str = ""

    def profile(self, head_dim: int, value_dim: int, rows: int) -> Profile | None:
        """The measured profile nearest this head dim, value dim and rows.

        A profile whose time falls as its programs stream more tiles is a timing artefact
        (seen on the H200 for MLA's 16- and 64-row blocks at one tile) and is not used.
        """
        usable = [
            p
            for p in self.profiles
            if all(a <= b for a, b in zip(p.time_s, p.time_s[1:], strict=False))
        ]
        if not usable:
            return None
        return min(
            usable,
            key=lambda m: sum(
                abs(math.log2(a / b))
                for a, b in ((m.head_dim, head_dim), (m.value_dim, value_dim), (m.rows, rows))
            ),
        )

    def program(
        self,
        head_dim: int,
        value_dim: int,
        rows: int,
        tiling: tuple[int, int, int],
        per_sm: int,
    ) -> tuple[ProgramPoint, float] | None:
        """The nearest measured configuration and its distance (None if none).

        Distance: sum of |log2| ratios of head dim, value dim, rows, block_n, warps and
        stages; among the nearest, the point with the most programs per SM up to `per_sm`
        (or the fewest measured when all are above it).
        """
        if not self.programs:
            return None

        def dist(p: ProgramPoint) -> float:
            pairs = zip(
                (p.head_dim, p.value_dim, p.rows, p.block_n, p.num_warps, p.num_stages),
                (head_dim, value_dim, rows, *tiling),
                strict=True,
            )
            return sum(abs(math.log2(a / b)) for a, b in pairs)

        best = min(dist(p) for p in self.programs)
        near = [p for p in self.programs if dist(p) == best]
        under = [p for p in near if p.programs_per_sm <= per_sm]
        if under:
            return max(under, key=lambda p: p.programs_per_sm), best
        return min(near, key=lambda p: p.programs_per_sm), best

    def merge(self, head_dim: int, value_dim: int, rows: int) -> MergePoint | None:
        """The measured merge figures nearest this head dim, value dim and rows."""
        if not self.merges:
            return None
        return min(
            self.merges,
            key=lambda m: sum(
                abs(math.log2(a / b))
                for a, b in ((m.head_dim, head_dim), (m.value_dim, value_dim), (m.rows, rows))
            ),
        )

    def host_call(self, strategy: str) -> float | None:
        """Measured host seconds of one launcher call with `strategy`."""
        return dict(self.host_call_s).get(strategy)


def decode_calibration_path(main: str | Path) -> Path:
    """Where the decode figures of the calibration file `main` live: `<stem>-decode.yaml`."""
    p = Path(main)
    return p.with_name(f"{p.stem}-decode.yaml")


def _ints(r: Reader, keys: tuple[str, ...]) -> dict[str, int] | None:
    out = {}
    for key in keys:
        c = r.req(key, "int")
        if c is None:
            return None
        if c.value <= 0:
            c.error(f"expected a positive integer, got {c.value}")
            return None
        out[key] = int(c.value)
    return out


def _us(r: Reader, key: str, allow_zero: bool = True) -> float | None:
    c = r.req(key, "number")
    if c is None:
        return None
    v = float(c.value)
    if v < 0 or (v == 0 and not allow_zero):
        c.error(f"expected a {'non-negative' if allow_zero else 'positive'} number, got {v}")
        return None
    return v * 1e-6


def load_decode_calibration(path: str | Path) -> DecodeCalibration | None:
    """Read a decode calibration file (None when it does not exist).

    Bad content raises `SpecError` naming the file, line and field of every problem.
    """
    if not path_exists(Path(path)):
        return None
    root = Reader.from_file(path)
    if root.node is None or not root.is_map:
        root.error("expected a mapping with keys " + ", ".join(TOP_KEYS))
        root.finish()
    device, date, source = (root.req(k) for k in ("device", "date", "source"))
    root.opt("versions", "map")
    root.opt("notes", "list")
    bw = root.opt("hbm_read_bandwidth_gb_per_s", "number")
    host = []
    host_r = root.opt("host_call_us", "map")
    for name, value in host_r.items() if host_r is not None else ():
        if value.check("number") and float(value.value) > 0:
            host.append((str(name), float(value.value) * 1e-6))
        elif value.check("number"):
            value.error(f"expected a positive number, got {value.value}")
    programs = []
    progs_r = root.opt("programs", "list")
    for r in progs_r.each() if progs_r is not None else ():
        if not r.check("map"):
            continue
        ints = _ints(r, PROGRAM_KEYS[:7])
        tile, fixed = _us(r, "tile_us", allow_zero=False), _us(r, "fixed_us")
        r.done(PROGRAM_KEYS)
        if ints is not None and tile is not None and fixed is not None:
            programs.append(ProgramPoint(**ints, tile_s=tile, fixed_s=fixed))
    profiles = []
    profiles_r = root.opt("profiles", "list")
    for r in profiles_r.each() if profiles_r is not None else ():
        if not r.check("map"):
            continue
        ints = _ints(r, PROFILE_KEYS[:6])
        tiles_r, times_r = r.req("tiles", "list"), r.req("time_us", "list")
        tiles = [int(x.value) for x in tiles_r.each() if x.check("int")] if tiles_r else []
        times = (
            [float(x.value) * 1e-6 for x in times_r.each() if x.check("number")] if times_r else []
        )
        r.done(PROFILE_KEYS)
        good = len(tiles) == len(times) >= 2 and tiles == sorted(set(tiles))
        if not good and tiles_r is not None:
            tiles_r.error("expected >= 2 increasing tile counts, one time_us each")
        elif ints is not None and tiles[0] > 0:
            profiles.append(Profile(**ints, tiles=tuple(tiles), time_s=tuple(times)))
    merges = []
    merges_r = root.opt("merges", "list")
    for r in merges_r.each() if merges_r is not None else ():
        if not r.check("map"):
            continue
        ints = _ints(r, MERGE_KEYS[:3])
        piece, part = _us(r, "piece_us"), _us(r, "part_us")
        r.done(MERGE_KEYS)
        if ints is not None and piece is not None and part is not None:
            merges.append(MergePoint(**ints, piece_s=piece, part_s=part))
    root.done(TOP_KEYS)
    root.finish()
    return DecodeCalibration(
        device=str(device.value) if device else "",
        date=str(date.value) if date else "",
        source=str(source.value) if source else "",
        hbm_read_bandwidth_bytes_per_s=float(bw.value) * 1e9 if bw and bw.value > 0 else None,
        host_call_s=tuple(host),
        programs=tuple(programs),
        merges=tuple(merges),
        profiles=tuple(profiles),
        path=str(path),
    )
