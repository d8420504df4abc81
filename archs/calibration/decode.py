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
      - {head_dim: 128, value_dim: 128, rows: 16, piece_us: 1.2, part_us: 0.05,
         num_warps: 4, strategy: splitk}     # optional: the warps and the kernel build
    empty_program_us: {contiguous: 0.10, ragged: 0.13}   # a program finding no tile, per SM
    paged: [...]         # per-tile time through a block table: archs/calibration/decode_paged.py
    waves: [...]         # a further program's steady cost: archs/calibration/decode_waves.py
    builds:              # per build, one program per SM streaming one whole segment
      - {head_dim: 128, value_dim: 128, rows: 16, block_n: 64, num_warps: 4, num_stages: 2,
         strategy: streamk, programs: 132, tile_us: 1.68, fixed_us: 10.6,
         registers: 168, resident_per_sm: 3}  # optional: as compiled

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

from attnsim.archs.calibration.decode_paged import (
    CONFIG_KEYS,
    Config,
    PagedPoint,
    nearest_paged,
    read_paged,
)
from attnsim.archs.calibration.decode_waves import WavePoint, read_waves, wave_points
from attnsim.archs.calibration.points import log_distance
from attnsim.einsum_ir.spec import Reader, path_exists

TOP_KEYS = (
    "device", "date", "source", "versions", "hbm_read_bandwidth_gb_per_s", "host_call_us",
    "programs", "profiles", "merges", "loads", "builds", "empty_program_us", "paged", "waves",
    "notes",
)  # fmt: skip
PROFILE_KEYS = (*CONFIG_KEYS, "tiles", "time_us")
PROGRAM_KEYS = (*PROFILE_KEYS[:6], "programs_per_sm", "tile_us", "fixed_us")
MERGE_KEYS = (
    "head_dim", "value_dim", "rows", "piece_us", "part_us", "splits", "added_us", "strategy",
    "num_warps",
)  # fmt: skip
MERGE_STRATEGIES = ("splitk", "streamk")
BUILD_STRATEGIES = ("unsplit", *MERGE_STRATEGIES)
BUILD_KEYS = (
    *PROFILE_KEYS[:6], "strategy", "programs", "tile_us", "fixed_us", "registers",
    "resident_per_sm",
)  # fmt: skip
LOAD_KEYS = (*PROFILE_KEYS[:6], "programs", "tile_us", "fixed_us")
# warps of a merge entry that names none: the GQA kernel's default (attention_decode)
MERGE_DEFAULT_WARPS = 4
REFERENCE_PROGRAMS = 32  # programs of the k = 1 and profile figures (microbench_decode.ISOLATED)


@dataclass(frozen=True, slots=True)
class ProgramPoint(Config):
    """Streaming figures of one decode program configuration (see the module docstring)."""

    programs_per_sm: int
    tile_s: float
    fixed_s: float


@dataclass(frozen=True, slots=True)
class Profile(Config):
    """A launch's time (less the do_bench floor) over the key tiles of each of its programs.

    Measured with few programs (no HBM contention): `time_s[i]` for `tiles[i]` tiles each.
    """

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
    """What splitting a segment costs (see the module docstring).

    `splits`/`added_s`: when measured, the launch's added time t(s) - t(1) at each split
    count s (one wave of programs; s - 1 partial states merged by the last of each segment).
    `strategy`: the kernel build it was measured on (split-K's and stream-K's merge the same
    way but compile to different register allocations: MLA's 64-row merge costs 1.4x more
    per partial in the stream-K build). `num_warps`: the program's warps (the merge loop's
    loads spread over them: 8 warps merge 32 partials of 16 rows in half the time of 4).
    """

    head_dim: int
    value_dim: int
    rows: int
    piece_s: float
    part_s: float
    splits: tuple[int, ...] = ()
    added_s: tuple[float, ...] = ()
    strategy: str = "splitk"
    num_warps: int = MERGE_DEFAULT_WARPS

    def merge_s(self, parts: int) -> float:
        """What the merging program adds for `parts` partial states.

        The measured curve less `piece_s` (linear between its points, beyond the last with
        `part_s` per partial), else `parts` x `part_s`.
        """
        if parts <= 0:
            return 0.0
        if not self.splits:
            return parts * self.part_s
        xs, ys = (1, *self.splits), (self.piece_s, *self.added_s)
        if parts >= xs[-1]:
            added = ys[-1] + (parts - xs[-1]) * self.part_s
        else:
            i = next(j for j in range(1, len(xs)) if parts <= xs[j])
            added = ys[i - 1] + (parts - xs[i - 1]) * (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])
        return max(0.0, added - self.piece_s)


@dataclass(frozen=True, slots=True)
class LoadCurve(Config):
    """A program's per-tile time over how many programs stream at once (`loads`).

    The unsplit kernel with n programs, one segment each, all resident: `tile_s[i]` is the
    slope of the launch's time over the key tiles per program at `programs[i]`, `fixed_s[i]`
    its intercept less the do_bench floor.
    """

    programs: tuple[int, ...]
    tile_s: tuple[float, ...]
    fixed_s: tuple[float, ...]

    def _at(self, ys: tuple[float, ...], n: float) -> float:
        xs = self.programs
        if n <= xs[0]:
            return ys[0]
        if n >= xs[-1]:
            return ys[-1]
        i = next(j for j in range(1, len(xs)) if n <= xs[j])
        return ys[i - 1] + (n - xs[i - 1]) * (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])

    def tile_factor(self, n: float) -> float:
        """Per-tile time with `n` programs streaming over that with `REFERENCE_PROGRAMS`.

        1 up to the reference count (fewer programs cannot load the GPU more: what the
        curve shows below it is timing noise) and never below 1; beyond the last measured
        count the time grows in proportion to n (HBM-bound).
        """
        if n <= REFERENCE_PROGRAMS:
            return 1.0
        ref = self._at(self.tile_s, REFERENCE_PROGRAMS)
        return max(1.0, self.tile_at(n) / ref)

    def tile_at(self, n: float) -> float:
        """Seconds per tile of one program with `n` streaming (in proportion past the curve)."""
        return self._at(self.tile_s, n) * max(1.0, n / self.programs[-1])

    def extra_fixed_s(self, n: float) -> float:
        """What a launch of `n` programs adds once over one of `REFERENCE_PROGRAMS` (>= 0)."""
        return max(0.0, self._at(self.fixed_s, n) - self._at(self.fixed_s, REFERENCE_PROGRAMS))


@dataclass(frozen=True, slots=True)
class BuildPoint(Config):
    """One kernel build's per-tile time (`builds`): `programs` programs, one segment each.

    The unsplit, split-K and stream-K builds run the same streaming loop but compile to
    different register allocations; measured in one run, their ratio is what the build
    costs per tile (1.27x for MLA's 64-row stream-K build on the H200, ~1 for most).
    `registers`: per thread, as compiled; `resident_per_sm`: the programs an SM holds with
    them and the kernel's shared memory (0: not recorded). The builds differ: the H200's
    stream-K build of the 16-row GQA kernel takes 168 registers (3 programs per SM), its
    unsplit build 92 (5); MLA's 32-row kernel takes 177 (one program per SM).
    """

    strategy: str
    programs: int
    tile_s: float
    fixed_s: float
    registers: int = 0
    resident_per_sm: int = 0


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
    loads: tuple[LoadCurve, ...] = ()
    builds: tuple[BuildPoint, ...] = ()
    # what a program that finds no key tile costs an SM, without and with per-sequence
    # lengths (it reads its sequence's length first)
    empty_program_s: tuple[tuple[str, float], ...] = ()
    paged: tuple[PagedPoint, ...] = ()  # per-tile time through a block table (decode_paged)
    waves: tuple[WavePoint, ...] = ()  # a further program's steady cost (decode_waves)
    path: str = ""

    def wave_points(
        self,
        head_dim: int,
        value_dim: int,
        rows: int,
        tiling: tuple[int, int, int],
        paged: bool = False,
    ) -> tuple[WavePoint, ...]:
        """This tiling's steady program costs by tiles (`decode_waves.wave_points`)."""
        return wave_points(self.waves, head_dim, value_dim, rows, tiling, paged)

    def paged_point(
        self, head_dim: int, value_dim: int, rows: int, tiling: tuple[int, int, int], page: int
    ) -> PagedPoint | None:
        """The measured paged figure of this tiling (`decode_paged.nearest_paged`)."""
        return nearest_paged(self.paged, head_dim, value_dim, rows, tiling, page)

    def empty_program(self, ragged: bool) -> float | None:
        """Seconds an empty program costs its SM (None if not measured)."""
        return dict(self.empty_program_s).get("ragged" if ragged else "contiguous")

    def build_factor(
        self, head_dim: int, value_dim: int, rows: int, tiling: tuple[int, int, int], strategy: str
    ) -> float:
        """Per-tile time of `strategy`'s build over the unsplit build's (1.0 if unmeasured).

        From the nearest configuration measured in both builds; only within a factor 2 of
        the head and value dims (as `load`).
        """
        if strategy == "unsplit":
            return 1.0
        pairs: dict[tuple[int, ...], dict[str, float]] = {}
        for b in self.builds:
            if b.strategy in (strategy, "unsplit"):
                pairs.setdefault(b.config, {})[b.strategy] = b.tile_s
        want = (head_dim, value_dim, rows, *tiling)
        both = [
            (log_distance(c, want), t[strategy] / t["unsplit"])
            for c, t in pairs.items()
            if len(t) == 2 and abs(math.log2(c[0] / head_dim)) <= 1
            and abs(math.log2(c[1] / value_dim)) <= 1
        ]  # fmt: skip
        return min(both)[1] if both else 1.0

    def resident(
        self, head_dim: int, value_dim: int, rows: int, tiling: tuple[int, int, int], strategy: str
    ) -> int:
        """Programs per SM the compiled `strategy` build holds (0 if not measured).

        Only for exactly this configuration: registers change with every dimension.
        """
        want = (head_dim, value_dim, rows, *tiling)
        return next(
            (b.resident_per_sm for b in self.builds
             if b.config == want and b.strategy == strategy and b.resident_per_sm),
            0,
        )  # fmt: skip

    def load(
        self, head_dim: int, value_dim: int, rows: int, tiling: tuple[int, int, int]
    ) -> LoadCurve | None:
        """The measured load curve nearest this configuration (None if none).

        Only curves within a factor 2 of the head and value dims: what loads a program (HBM
        bandwidth at GQA's dims, the SM's own throughput at MLA's latent width) differs.
        """
        close = [
            c
            for c in self.loads
            if abs(math.log2(c.head_dim / head_dim)) <= 1
            and abs(math.log2(c.value_dim / value_dim)) <= 1
        ]
        if not close:
            return None
        return min(
            close, key=lambda c: log_distance(c.config, (head_dim, value_dim, rows, *tiling))
        )

    def profile(
        self, head_dim: int, value_dim: int, rows: int, tiling: tuple[int, int, int] | None = None
    ) -> Profile | None:
        """The measured profile nearest this head dim, value dim and rows (then `tiling`).

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
        want = (head_dim, value_dim, rows)
        return min(
            usable,
            key=lambda m: (
                log_distance(m.config[:3], want),
                log_distance(m.config[3:], tiling) if tiling else 0.0,
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
            return log_distance(p.config, (head_dim, value_dim, rows, *tiling))

        best = min(dist(p) for p in self.programs)
        near = [p for p in self.programs if dist(p) == best]
        under = [p for p in near if p.programs_per_sm <= per_sm]
        if under:
            return max(under, key=lambda p: p.programs_per_sm), best
        return min(near, key=lambda p: p.programs_per_sm), best

    def merge(
        self,
        head_dim: int,
        value_dim: int,
        rows: int,
        strategy: str = "splitk",
        num_warps: int = MERGE_DEFAULT_WARPS,
    ) -> MergePoint | None:
        """The measured merge figures nearest this head dim, value dim, rows and warps.

        Those measured on `strategy`'s kernel build when there are any, else any.
        """
        own = [m for m in self.merges if m.strategy == strategy] or list(self.merges)
        if not own:
            return None
        want = (head_dim, value_dim, rows, num_warps)
        return min(
            own,
            key=lambda m: log_distance((m.head_dim, m.value_dim, m.rows, m.num_warps), want),
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


def _curve(
    r: Reader, x_key: str, y_keys: tuple[str, ...], required: bool
) -> tuple[tuple[int, ...], tuple[tuple[float, ...], ...]] | None:
    """An increasing integer list `x_key` and, per `y_keys`, one microsecond figure per x.

    None (with the problem reported) when a list is missing or they do not match; None
    silently when none is there and `required` is false.
    """
    if not required and all(r.get(k) is None for k in (x_key, *y_keys)):
        return None
    xs_r = r.req(x_key, "list")
    ys_r = [r.req(k, "list") for k in y_keys]
    if xs_r is None or any(y is None for y in ys_r):
        return None
    xs = [int(x.value) for x in xs_r.each() if x.check("int")]
    ys = [[float(v.value) * 1e-6 for v in y.each() if v.check("number")] for y in ys_r]  # type: ignore[union-attr]
    if len(xs) < 2 or xs != sorted(set(xs)) or any(len(y) != len(xs) for y in ys):
        xs_r.error(f"expected >= 2 increasing {x_key}, one {' and one '.join(y_keys)} each")
        return None
    return tuple(xs), tuple(tuple(y) for y in ys)


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
        curve = _curve(r, "tiles", ("time_us",), required=True)
        r.done(PROFILE_KEYS)
        if ints is not None and curve is not None:
            if curve[0][0] < 1:  # a partial tile is one visit (microbench_decode.profile_points)
                (r.get("tiles") or r).error(
                    f"expected tile counts >= 1 (the key tiles a program visits, a partial one "
                    f"counted whole), got {curve[0][0]}"
                )
            else:
                profiles.append(Profile(**ints, tiles=curve[0], time_s=curve[1][0]))
    loads = []
    loads_r = root.opt("loads", "list")
    for r in loads_r.each() if loads_r is not None else ():
        if not r.check("map"):
            continue
        ints = _ints(r, LOAD_KEYS[:6])
        curve = _curve(r, "programs", ("tile_us", "fixed_us"), required=True)
        r.done(LOAD_KEYS)
        if ints is not None and curve is not None:
            if min(curve[1][0]) <= 0:
                r.error("tile_us: expected positive per-tile times")
            elif curve[0][0] < 1:
                (r.get("programs") or r).error(f"expected program counts >= 1, got {curve[0][0]}")
            else:
                loads.append(
                    LoadCurve(**ints, programs=curve[0], tile_s=curve[1][0], fixed_s=curve[1][1])
                )
    merges = []
    merges_r = root.opt("merges", "list")
    for r in merges_r.each() if merges_r is not None else ():
        if not r.check("map"):
            continue
        ints = _ints(r, MERGE_KEYS[:3])
        piece, part = _us(r, "piece_us"), _us(r, "part_us")
        curve = _curve(r, "splits", ("added_us",), required=False)
        strategy = r.opt("strategy", "str")
        if strategy is not None and strategy.value not in MERGE_STRATEGIES:
            strategy.error(f"expected one of {', '.join(MERGE_STRATEGIES)}, got {strategy.value!r}")
        warps = r.opt("num_warps", "int")
        if warps is not None and warps.value <= 0:
            warps.error(f"expected a positive integer, got {warps.value}")
        r.done(MERGE_KEYS)
        if ints is not None and piece is not None and part is not None:
            xs, ys = curve if curve is not None else ((), ((),))
            if xs and xs[0] < 2:
                r.error("splits: expected split counts >= 2 (added time over one split)")
            else:
                merges.append(
                    MergePoint(
                        **ints, piece_s=piece, part_s=part, splits=xs, added_s=ys[0],
                        strategy=str(strategy.value) if strategy is not None else "splitk",
                        num_warps=int(warps.value) if warps is not None and warps.value > 0
                        else MERGE_DEFAULT_WARPS,
                    )
                )  # fmt: skip
    empty = []
    empty_r = root.opt("empty_program_us", "map")
    for name, value in empty_r.items() if empty_r is not None else ():
        if name not in ("contiguous", "ragged"):
            value.error(f"expected contiguous or ragged, got {name!r}")
        elif value.check("number") and float(value.value) >= 0:
            empty.append((str(name), float(value.value) * 1e-6))
        elif value.check("number"):
            value.error(f"expected a non-negative number, got {value.value}")
    builds = []
    builds_r = root.opt("builds", "list")
    for r in builds_r.each() if builds_r is not None else ():
        if not r.check("map"):
            continue
        ints = _ints(r, (*BUILD_KEYS[:6], "programs"))
        extra = {}
        for key in ("registers", "resident_per_sm"):
            c = r.opt(key, "int")
            if c is not None and c.value <= 0:
                c.error(f"expected a positive integer, got {c.value}")
            elif c is not None:
                extra[key] = int(c.value)
        tile, fixed = _us(r, "tile_us", allow_zero=False), _us(r, "fixed_us")
        strat = r.req("strategy", "str")
        if strat is not None and strat.value not in BUILD_STRATEGIES:
            strat.error(f"expected one of {', '.join(BUILD_STRATEGIES)}, got {strat.value!r}")
            strat = None
        r.done(BUILD_KEYS)
        if ints is not None and tile is not None and fixed is not None and strat is not None:
            n = ints.pop("programs")
            builds.append(BuildPoint(**ints, strategy=str(strat.value), programs=n,
                                     tile_s=tile, fixed_s=fixed, **extra))  # fmt: skip
    paged = read_paged(root.opt("paged", "list"))
    waves = read_waves(root.opt("waves", "list"))
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
        loads=tuple(loads),
        builds=tuple(builds),
        empty_program_s=tuple(empty),
        paged=paged,
        waves=waves,
        path=str(path),
    )
