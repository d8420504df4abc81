r"""Issue 12's decode speed bars, read from one `decode_probe.py` file (CPU only).

    python benchmarks/decode_bars.py FILE [--min-keys 32768] [--share 0.85] [--plot PNG]

Per dense, contiguous shape of the `validation` and `holdout` suites with at least
`--min-keys` keys (MLA's suites and ragged or paged caches left out): the fastest measured
configuration of our decode kernels, its time over the best SDPA backend timed on the same
shape in the same run (flash, cuDNN, efficient), and the K/V bytes it must read over its time
as a share of the HBM read rate the run measured (`read_gbps`). Then Lean Attention's regime:
at batch 1 with 8 K/V heads and >= 128K keys, the unsplit kernel's time over the fastest
stream-K launch, measured and as `gpu-decode` predicts it for the same two configurations.

The bars (issue 12): the fastest configuration at least as fast as SDPA's best and at
`--share` of the HBM read rate or more on every such shape; stream-K >= 3x the unsplit
kernel with the model's ratio within 15% of the measured. Exit status 0 whatever holds: this
reports, it does not gate. `--plot PNG` draws the two per-shape bars side by side, each with
its line (speed over SDPA's best at 1, HBM share at `--share`).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SDPA_COLUMNS = ("flash_ms", "cudnn_ms", "efficient_ms")
LEAN_KEYS = 131072  # Lean Attention's regime: batch 1, 8 K/V heads, this many keys or more
SUITES = ("validation", "holdout")
INT_COLUMNS = ("batch", "heads", "kv_heads", "seq_k", "head_dim")


@dataclass(frozen=True, slots=True)
class ShapeBar:
    """One shape's fastest configuration against SDPA and against the HBM read rate."""

    suite: str
    shape: tuple[int, int, int, int, int, int]  # batch, heads, kv_heads, seq_k, E, F
    config: str  # strategy and tiling of the fastest configuration
    kernel_ms: float
    best_sdpa_ms: float
    hbm_share: float  # K/V bytes / kernel time over the run's HBM read rate

    @property
    def over_sdpa(self) -> float:
        """Best SDPA time over ours (>= 1: ours at least as fast)."""
        return self.best_sdpa_ms / self.kernel_ms


def _f(row: dict[str, str], key: str) -> float:
    try:
        return float(row.get(key) or "nan")
    except ValueError:
        return math.nan


def _shape(row: dict[str, str]) -> tuple[int, int, int, int, int, int]:
    e = int(row["head_dim"])
    return (int(row["batch"]), int(row["heads"]), int(row["kv_heads"]), int(row["seq_k"]), e,
            int(row.get("value_dim") or e))  # fmt: skip


def _dense(row: dict[str, str], strict: bool = True) -> bool:
    """A dense, contiguous validation or holdout row (`strict`: with a finite time too)."""
    return (
        row.get("suite") in SUITES
        and not (row.get("seq_lens") or "").strip()
        and (row.get("page_size") or "0").strip() in ("", "0")
        and (not strict or math.isfinite(_f(row, "kernel_ms")))
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    """The file's rows; a file without decode_probe's columns is an error naming them."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"suite", "strategy", "kernel_ms", "kv_bytes", "read_gbps", *SDPA_COLUMNS}
        missing -= set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}:1: missing columns {sorted(missing)} (expected a "
                             "benchmarks/decode_probe.py file)")  # fmt: skip
        rows = list(reader)
    problems = []
    for line, r in enumerate(rows, start=2):  # every bad field of the rows read, at once
        if not _dense(r, strict=False):
            continue
        for key in INT_COLUMNS:
            if not (r.get(key) or "").strip().isdigit():
                problems.append(f"{path}:{line}: {key}: expected a whole number, got "
                                f"{r.get(key)!r}")  # fmt: skip
        for key in ("kernel_ms", "kv_bytes", "read_gbps"):
            if not _f(r, key) > 0:
                problems.append(f"{path}:{line}: {key}: expected a positive number, got "
                                f"{r.get(key)!r}")  # fmt: skip
    if problems:
        raise ValueError("\n".join(problems))
    return rows


def shape_bars(rows: list[dict[str, str]], min_keys: int) -> list[ShapeBar]:
    """The fastest configuration of every dense shape with at least `min_keys` keys."""
    by_shape: dict[tuple[str, tuple[int, ...]], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        if _dense(r) and int(r["seq_k"]) >= min_keys:
            by_shape[(r["suite"], _shape(r))].append(r)
    out = []
    for (suite, shape), group in sorted(by_shape.items()):
        best = min(group, key=lambda r: _f(r, "kernel_ms"))
        sdpa = [t for t in (_f(best, c) for c in SDPA_COLUMNS) if math.isfinite(t)]
        ms = _f(best, "kernel_ms")
        share = _f(best, "kv_bytes") / (ms * 1e-3) / (_f(best, "read_gbps") * 1e9)
        tiling = f"{best['block_n']}/{best['num_warps']}/{best['num_stages']}"
        how = best["splits"] if best["strategy"] == "splitk" else best["programs"]
        config = f"{best['strategy']}({how or '-'}) {tiling}"
        out.append(ShapeBar(suite, shape, config, ms, min(sdpa) if sdpa else math.nan,  # type: ignore[arg-type]
                            share))  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class LeanRatio:
    """Unsplit over the fastest stream-K launch at one shape: measured and predicted."""

    shape: tuple[int, int, int, int, int, int]
    programs: int
    measured: float
    predicted: float


def lean_ratios(path: Path) -> list[LeanRatio]:
    """Batch 1, 8 K/V heads, >= LEAN_KEYS keys: unsplit over stream-K, file and model."""
    from attnsim.reports import validation_decode as vd

    points = vd.predict_rows([path], suites=SUITES)
    shapes = sorted({p.shape for p in points if p.shape[0] == 1 and p.shape[2] == 8
                     and p.shape[3] >= LEAN_KEYS and not p.seq_lens})  # fmt: skip
    out = []
    for shape in shapes:
        mine = [p for p in points if p.shape == shape and not p.seq_lens]
        unsplit = [p for p in mine if p.strategy == "unsplit"]
        streamk = [p for p in mine if p.strategy == "streamk"]
        if not unsplit or not streamk:
            continue
        u = min(unsplit, key=lambda p: p.measured_ms)
        s = min(streamk, key=lambda p: p.measured_ms)
        out.append(LeanRatio(shape, s.programs, u.measured_ms / s.measured_ms,
                             u.predicted_ms / s.predicted_ms))  # fmt: skip
    return out


def plot_bars(bars: list[ShapeBar], share: float, path: Path) -> Any:
    """Draw the per-shape bars to `path` and return the figure.

    Two panels, one bar per shape: time over SDPA's best (line at 1) and HBM share (line at
    `share`); bars under their line are drawn hatched.
    """
    from matplotlib.figure import Figure

    labels = [f"{b.suite[0]}: {b.shape[0]}x{b.shape[1]}/{b.shape[2]}x{b.shape[3] // 1024}K,"
              f"{b.shape[4]}" for b in bars]  # fmt: skip
    fig = Figure(figsize=(max(6.0, 0.55 * len(bars) + 2), 6.5), layout="constrained")
    panels = fig.subplots(2, 1, sharex=True)
    series = (
        ([b.over_sdpa for b in bars], 1.0, "SDPA's best time / ours"),
        ([b.hbm_share for b in bars], share, "K/V bytes / time, share of read rate"),
    )
    for ax, (values, line, title) in zip(panels, series, strict=True):
        for i, v in enumerate(values):
            ax.bar(i, v, color="tab:blue" if v >= line else "tab:orange",
                   hatch="" if v >= line else "//")  # fmt: skip
        ax.axhline(line, color="black", linewidth=1, linestyle="--")
        ax.set_ylabel(title, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    panels[-1].set_xticks(range(len(bars)), labels, rotation=60, ha="right", fontsize=7)
    fig.suptitle("decode: fastest configuration per shape (v = validation, h = holdout)")
    fig.savefig(path, dpi=120)
    return fig


def main(argv: list[str] | None = None) -> int:
    """Print the bars of one file; 2 on a file that cannot be read or holds no such shape."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--min-keys", type=int, default=32768)
    ap.add_argument("--share", type=float, default=0.85, help="the HBM bar (share of read rate)")
    ap.add_argument("--plot", type=Path, help="also draw the bars to this PNG file")
    args = ap.parse_args(argv)
    try:
        rows = read_rows(args.file)
    except (OSError, ValueError) as exc:
        print(f"decode_bars: {exc}", file=sys.stderr)
        return 2
    bars = shape_bars(rows, args.min_keys)
    if not bars:
        print(f"decode_bars: {args.file}: no dense validation or holdout shape with >= "
              f"{args.min_keys} keys", file=sys.stderr)  # fmt: skip
        return 2
    print(f"{'suite':10s} {'B x H/G x M, E/F':28s} {'fastest':24s} {'ms':>9s} "
          f"{'x SDPA':>7s} {'HBM':>5s}")  # fmt: skip
    for b in bars:
        bsz, h, g, m, e, f = b.shape
        print(f"{b.suite:10s} {f'{bsz} x {h}/{g} x {m}, {e}/{f}':28s} {b.config:24s} "
              f"{b.kernel_ms:9.4f} {b.over_sdpa:7.3f} {b.hbm_share:5.2f}")  # fmt: skip
    fast = sum(b.over_sdpa >= 1.0 for b in bars)
    full = sum(b.hbm_share >= args.share for b in bars)
    print(f"at least as fast as SDPA's best on {fast} of {len(bars)} shapes "
          f"({min(b.over_sdpa for b in bars):.3f}-{max(b.over_sdpa for b in bars):.3f}x); "
          f">= {args.share:.0%} of the HBM read rate on {full} of {len(bars)}")  # fmt: skip
    if args.plot:
        try:
            plot_bars(bars, args.share, args.plot)
        except OSError as exc:
            print(f"decode_bars: --plot: cannot write {args.plot}: {exc.strerror or exc}",
                  file=sys.stderr)  # fmt: skip
            return 2
        print(f"wrote {args.plot}")
    for r in lean_ratios(args.file):
        off = r.predicted / r.measured - 1
        print(f"lean regime {r.shape[0]} x {r.shape[1]}/{r.shape[2]} x {r.shape[3]}: unsplit "
              f"over stream-K ({r.programs} programs) {r.measured:.1f}x measured, "
              f"{r.predicted:.1f}x predicted ({off:+.1%})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
