"""GPU validation: join the GPU mappers' predictions with kernel measurements.

Key (the shared schema): family -> mapper (triton-1pass -> gpu-1pass, triton-2pass ->
gpu-2pass, triton-unfused -> gpu-unfused), shape (batch, heads, seq_q, seq_k, head_dim,
causal), dtype, tiling (with the 1-pass schedule), device -> arch preset. Errors are
percentages of the measured median: 100 * (predicted - measured) / measured. The model is
calibrated only from `archs/calibration/` (never from these measurements), except for the
host's side of a timed call. Calls short enough to be host-bound run at the timing host's
speed, which differs between the machines of a pool; a measurement file written with a host
probe (`<stem>-host.yaml`: `kernels.bench.harness` measures, on the timing machine before timing,
one launcher call per family on a tiny problem and the GPU time of do_bench's L2 flush) is
predicted with that host's figures (`join_files`, `host_adjusted`):

- host_call_us per family: the probe's, in place of the calibration's;
- the do_bench head start (how long the flush keeps the GPU busy after the host has moved on
  to the timed call) = flush - do_bench's own host work before the call. The calibration gives
  that host work on the calibration host (its own flush, `bench_flush_us`, less its head
  start; without it, the timing GPU's flush less the head start); on the timing host it is
  scaled by s = median over families of probe / calibration host_call_us. Without a measured
  head start (`calibration="none"`: the GPU's measured figures withheld) that host work is
  taken as nil: the head start is the whole flush, its upper bound.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.einsum_ir.ir import Cascade
from attnsim.kernels.bench.measure import Measurement, read_host_figures, read_measurements
from attnsim.kernels.spec import FAMILIES, kernel_shape, qkvo_bytes
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result
from attnsim.reports.validation_kernels import UNSTABLE_SPREAD_PCT
from attnsim.reports.validation_regimes import format_regimes, regime_table

# measurement family -> the GPU mapper and the built-in cascade that predict it
FAMILY_MAPPERS = {f.measured: f.mapper for f in FAMILIES}
FAMILY_CASCADES = {f.measured: f.cascade for f in FAMILIES}
DEVICE_ARCHS = (("H200", "h200"), ("H100", "h100-sxm"), ("A100", "a100-sxm"))
PICK_TOLERANCE = 0.10
# a point whose median runs this much slower than the model while its fastest decile of
# repeats (p10) is within VARYING_P10_PCT of it: the call's speed varied across the repeats
VARYING_MEDIAN_PCT = 10.0
VARYING_P10_PCT = 5.0


class ValidationError(ValueError):
    """Measurements that cannot be validated (no GPU-model rows, unknown device)."""


@dataclass(frozen=True, slots=True)
class Point:
    """One measurement with its prediction; error_pct = 100 * (predicted - measured) / measured."""

    measurement: Measurement
    arch: str
    predicted_ms: float
    bound: str

    @property
    def measured_ms(self) -> float:
        """The measured median."""
        return self.measurement.median_ms

    @property
    def error_pct(self) -> float:
        """Signed percentage error of the prediction."""
        return 100.0 * (self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def family(self) -> str:
        """The kernel family of the measurement."""
        return self.measurement.family

    @property
    def spread_pct(self) -> float:
        """100 (p90 - p10) / median of the measurement's repeats."""
        m = self.measurement
        return 100.0 * (m.p90_ms - m.p10_ms) / m.median_ms if m.median_ms > 0 else math.nan

    @property
    def p10_error_pct(self) -> float:
        """Signed percentage error against the fastest decile of the repeats (NaN: none)."""
        p10 = self.measurement.p10_ms
        return 100.0 * (self.predicted_ms - p10) / p10 if p10 > 0 else math.nan

    @property
    def varying(self) -> bool:
        """Median over 10% slower than predicted, fastest decile within 5% of the prediction.

        Some repeats ran at the modelled speed and the rest slower: on the H200 the long calls
        of the fastest builds (clock under sustained tensor-core load; README, "Where the GPU
        model is weak").
        """
        return self.error_pct < -VARYING_MEDIAN_PCT and abs(self.p10_error_pct) <= VARYING_P10_PCT

    @property
    def unstable(self) -> bool:
        """Whether its repeats spread over `UNSTABLE_SPREAD_PCT` (reported apart)."""
        return self.spread_pct > UNSTABLE_SPREAD_PCT

    @property
    def shape_key(self) -> tuple[Any, ...]:
        """(family, batch, heads, kv_heads, seq_q, seq_k, head_dim, causal, dtype, device)."""
        m = self.measurement
        return (
            m.family,
            m.batch,
            m.heads,
            m.kv_heads,
            m.seq_q,
            m.seq_k,
            m.head_dim,
            m.causal,
            m.dtype,
            m.device,
        )

    @property
    def tiling(self) -> str:
        """BLOCK_M x BLOCK_N / warps / stages, and the schedule when it is not plain."""
        m = self.measurement
        t = f"{m.block_m}x{m.block_n}/w{m.num_warps}/s{m.num_stages}"
        return t if m.schedule == "plain" else f"{t}/{m.schedule}"


@dataclass(frozen=True, slots=True)
class Pick:
    """For one shape: the model's pick among the measured tilings vs the best measured one."""

    shape_key: tuple[Any, ...]
    picked: str
    best: str
    picked_measured_ms: float
    best_measured_ms: float
    candidates: int

    @property
    def slowdown(self) -> float:
        """Measured time of the pick over the best measured time (1.0 = the best)."""
        return self.picked_measured_ms / self.best_measured_ms

    @property
    def within_tolerance(self) -> bool:
        """Whether the pick runs within 10% of the best measured tiling."""
        return self.slowdown <= 1 + PICK_TOLERANCE


def arch_for_device(device: str) -> str:
    """The preset for a torch device name (e.g. 'NVIDIA H200' -> 'h200')."""
    for marker, preset in DEVICE_ARCHS:
        if marker.lower() in device.lower():
            return preset
    known = ", ".join(m for m, _ in DEVICE_ARCHS)
    raise ValidationError(f"no arch preset for device {device!r} (known: {known}); use --arch")


# the preset of rows whose file names no device (files written before the column existed:
# every one measured on the H200, as their names say)
UNNAMED_DEVICE_ARCH = "h200"


def file_arch(path: Path, rows: Sequence[dict[str, str]], arch: str | None) -> str:
    """The GPU preset a measurement file's rows are priced on.

    `arch` when given, else the one device its rows name (`arch_for_device`; none named:
    UNNAMED_DEVICE_ARCH). A file whose rows name several devices, or one without a preset,
    raises ValidationError naming the file.
    """
    if arch:
        return arch
    named = [(i, d) for i, r in enumerate(rows, start=2) if (d := (r.get("device") or "").strip())]
    devices = sorted({d for _, d in named})
    if len(devices) > 1:
        line, other = next((i, d) for i, d in named if d != named[0][1])
        raise ValidationError(
            f"{path}:{line}: device: {other!r}, but line {named[0][0]} names {named[0][1]!r}; "
            "expected one device per file (validate each device's file apart, or pass --arch)"
        )
    try:
        return arch_for_device(devices[0]) if devices else UNNAMED_DEVICE_ARCH
    except ValidationError as exc:
        raise ValidationError(f"{path}:{named[0][0]}: device: {exc}") from None


@functools.cache
def _cascade(name: str) -> Cascade:
    return load_cascade(name)


HostKey = tuple[tuple[tuple[str, float], ...], float]  # ((family, us), ...), flush us


WITHHELD_NOTE = (
    "GPU figures: the datasheet alone (calibration: none; archs/datasheet.py states "
    "the efficiencies it assumes), no measured figure of the device"
)


@functools.cache
def _arch(name: str, host: HostKey | None = None, calibration: str = "preset") -> GpuArch:
    arch = load_arch(name, overrides={"calibration": calibration})
    if not isinstance(arch, GpuArch):
        raise ValidationError(f"arch {name!r} is not a GPU (kind: gpu)")
    if host is not None:
        arch = host_adjusted(arch, dict(host[0]), host[1])
    return arch


def host_adjusted(arch: GpuArch, host_call_us: dict[str, float], flush_us: float) -> GpuArch:
    """`arch` with its calibration's host figures moved to a timing host (module docstring)."""
    cal = arch.calibration
    if cal is None:
        return arch
    measured = dict(cal.host_call_s)
    ratios = [us * 1e-6 / measured[f] for f, us in host_call_us.items() if measured.get(f)]
    speed = statistics.median(ratios) if ratios else 1.0
    head, flush = cal.bench_head_start_s, flush_us * 1e-6
    own_flush = cal.bench_flush_s or flush  # the calibration GPU's own (a slower HBM: longer)
    head = flush if head is None else max(0.0, flush - max(0.0, own_flush - head) * speed)
    calls = {**measured, **{f: us * 1e-6 for f, us in host_call_us.items()}}
    adjusted = dataclasses.replace(
        cal, host_call_s=tuple(sorted(calls.items())), bench_head_start_s=head
    )
    return dataclasses.replace(arch, calibration=adjusted)


def _host_key(host: dict[str, Any] | None) -> HostKey | None:
    if host is None:
        return None
    calls = tuple(sorted((str(f), float(us)) for f, us in host["host_call_us"].items()))
    return calls, float(host["bench_flush_us"])


def predict(
    m: Measurement, arch_name: str, host: dict[str, Any] | None = None, calibration: str = "preset"
) -> Result:
    """The GPU mapper's prediction for one measured configuration (its tiling, no search).

    `host`: host figures measured with the file (`kernels.bench.measure.read_host_figures`).
    `calibration`: "preset", or "none" to withhold the GPU's measured figures (datasheet only).
    """
    cascade = FAMILY_CASCADES[m.family] + ("-causal" if m.causal else "")
    if m.grouped:  # GQA/MQA (1-pass family): B, G K/V heads, R query heads per K/V head
        cascade = cascade.replace("-mh", "-gqa", 1)
    mapper = get_mapper(FAMILY_MAPPERS[m.family])(
        block_m=m.block_m,
        block_n=m.block_n,
        num_warps=m.num_warps,
        num_stages=m.num_stages,
        schedule=m.schedule,
        dtype=m.dtype,
        rank_candidates=False,
    )
    heads = {"G": m.kv_heads, "R": m.heads // m.kv_heads} if m.grouped else {"H": m.heads}
    sizes = {
        "B": m.batch,
        **heads,
        "P": m.seq_q,
        "M": m.seq_k,
        "E": m.head_dim,
        "F": m.head_dim,
    }
    arch = _arch(arch_name, _host_key(host), calibration)
    result: Result = mapper.map(_cascade(cascade), arch, sizes)
    return result


def join(
    measurements: Iterable[Measurement],
    arch: str | None = None,
    host: dict[str, Any] | None = None,
    calibration: str = "preset",
) -> list[Point]:
    """Predict every triton-* measurement (SDPA rows have no model and are skipped).

    `host`: the host figures measured with these rows (see the module docstring).
    `calibration`: "none" predicts from the datasheet alone (`archs.datasheet`).
    """
    points = []
    for m in measurements:
        if m.family not in FAMILY_MAPPERS:
            continue
        name = arch or arch_for_device(m.device)
        r = predict(m, name, host, calibration)
        points.append(Point(m, name, r.latency_s * 1e3, r.bound))
    return points


def join_files(
    paths: Sequence[str | Path], arch: str | None = None, calibration: str = "preset"
) -> tuple[list[Measurement], list[Point], list[str]]:
    """Read and predict each measurement file with its own host figures when it has them.

    Returns (measurements, points, notes): one note per file saying whose host figures its
    host-bound calls were predicted with. `calibration`: as for `join`.
    """
    measurements: list[Measurement] = []
    points: list[Point] = []
    notes: list[str] = []
    for path in paths:
        rows = read_measurements([path])
        host = read_host_figures(path)
        measurements += rows
        points += join(rows, arch, host, calibration)
        where = (
            f"{host['path']} (measured in the same run)"
            if host
            else "the calibration file"
            if calibration == "preset"
            else "nowhere (measurements withheld: no host-side cost)"
        )
        notes.append(f"{path}: host launcher-call figures from {where}")
    if calibration != "preset":
        notes.append(WITHHELD_NOTE)
    return measurements, points, notes


def summary(points: Sequence[Point]) -> dict[str, Any]:
    """{"n_points", "mape_overall", "mape": {family: pct}, "max_abs_pct_error", "regimes"}.

    Percent; "regimes": `validation_regimes.regime_table` (MAPE by band, per family).
    """
    by_family: dict[str, list[float]] = {}
    for p in points:
        by_family.setdefault(p.family, []).append(abs(p.error_pct))
    errors = [abs(p.error_pct) for p in points]
    steady = [abs(p.error_pct) for p in points if not p.unstable]
    fastest = [abs(p.p10_error_pct) for p in points if math.isfinite(p.p10_error_pct)]
    return {
        "n_points": len(points),
        "mape_overall": statistics.fmean(errors) if errors else 0.0,
        "mape": {f: statistics.fmean(by_family[f]) for f in FAMILY_MAPPERS if f in by_family},
        "max_abs_pct_error": max(errors, default=0.0),
        "regimes": regime_table(points),
        "unstable_points": len(points) - len(steady),
        "stable_mape": statistics.fmean(steady) if steady else 0.0,
        "stable_max_abs_pct_error": max(steady, default=0.0),
        "p10_mape": statistics.fmean(fastest) if fastest else None,
        "varying_points": sum(p.varying for p in points),
    }


def tiling_picks(points: Sequence[Point]) -> list[Pick]:
    """Per shape with two or more measured tilings: the model's fastest vs the measured best."""
    groups: dict[tuple[Any, ...], list[Point]] = {}
    for p in points:
        groups.setdefault(p.shape_key, []).append(p)
    picks = []
    for key, group in groups.items():
        if len({p.tiling for p in group}) < 2:
            continue
        picked = min(group, key=lambda p: p.predicted_ms)
        best = min(group, key=lambda p: p.measured_ms)
        picks.append(
            Pick(key, picked.tiling, best.tiling, picked.measured_ms, best.measured_ms, len(group))
        )
    return picks


def pick_fraction(picks: Sequence[Pick]) -> float:
    """Fraction of shapes whose picked tiling runs within 10% of the best measured one."""
    return sum(p.within_tolerance for p in picks) / len(picks) if picks else 1.0


def worst(points: Sequence[Point], n: int = 10) -> list[Point]:
    """The `n` points with the largest absolute error."""
    return sorted(points, key=lambda p: -abs(p.error_pct))[:n]


def format_report(points: Sequence[Point], picks: Sequence[Pick], n_worst: int = 10) -> str:
    """A plain-text report: MAPE per family, worst points, error by regime, tiling picks."""
    s = summary(points)
    lines = [
        f"GPU model validation: {s['n_points']} points",
        f"  MAPE overall {s['mape_overall']:.2f}%   max |error| {s['max_abs_pct_error']:.2f}%",
    ]
    for family, mape in s["mape"].items():
        n = sum(p.family == family for p in points)
        lines.append(f"  {family:<16} MAPE {mape:6.2f}%  ({n} points)")
    devices = sorted({p.measurement.device for p in points})
    for device in devices if len(devices) > 1 else ():  # each priced on its own preset
        mine = [abs(p.error_pct) for p in points if p.measurement.device == device]
        lines.append(f"  {device}: MAPE {sum(mine) / len(mine):6.2f}%  ({len(mine)} points)")
    lines.append(
        f"  tiling pick within {PICK_TOLERANCE:.0%} of the best measured: "
        f"{pick_fraction(picks):.1%} of {len(picks)} shapes"
    )
    if s["unstable_points"]:
        lines.append(
            f"  {s['unstable_points']} points whose repeats spread (p10-p90) over "
            f"{UNSTABLE_SPREAD_PCT:.0f}% of their median; the others: MAPE "
            f"{s['stable_mape']:.2f}%, max |error| {s['stable_max_abs_pct_error']:.2f}%"
        )
    if s["p10_mape"] is not None:
        lines.append(
            f"  against the fastest decile of each point's repeats (p10): MAPE "
            f"{s['p10_mape']:.2f}%"
            + (
                f"; {s['varying_points']} points ran over {VARYING_MEDIAN_PCT:.0f}% slower than "
                f"predicted at their median but within {VARYING_P10_PCT:.0f}% at their p10 "
                "(their speed varied across the repeats: marked [p10] below)"
                if s["varying_points"]
                else ""
            )
        )
    lines += [
        "",
        "worst points:",
        "  family           B   H   Sq     Sk     D   c dtype tiling"
        "            measured_ms predicted_ms error%  bound",
    ]
    for p in worst(points, n_worst):
        m = p.measurement
        lines.append(
            f"  {m.family:<16}{m.batch:<4}{m.heads:<4}{m.seq_q:<7}{m.seq_k:<7}{m.head_dim:<4}"
            f"{m.causal:<2}{m.dtype:<6}{p.tiling:<18}{p.measured_ms:<12.4f}{p.predicted_ms:<13.4f}"
            f"{p.error_pct:+7.2f}  {p.bound}"
            + (f"  [unstable: p10-p90 {p.spread_pct:.0f}%]" if p.unstable else "")
            + (f"  [p10 {p.p10_error_pct:+.1f}%]" if p.varying else "")
        )
    lines += ["", format_regimes(regime_table(points))]
    missed = [p for p in picks if not p.within_tolerance]
    if missed:
        lines += ["", "tiling picks slower than the best measured by more than 10%:"]
        for k in missed:
            lines.append(f"  {k.shape_key}: picked {k.picked} ({k.slowdown:.2f}x), best {k.best}")
    return "\n".join(lines)


def write_points(path: Path, points: Sequence[Point]) -> None:
    """One CSV row per point: the measurement's key, measured and predicted ms, error, bound."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "family",
                "batch",
                "heads",
                "seq_q",
                "seq_k",
                "head_dim",
                "causal",
                "dtype",
                "tiling",
                "measured_ms",
                "predicted_ms",
                "error_pct",
                "bound",
                "arch",
                "p10_error_pct",
            ]
        )
        for p in points:
            m = p.measurement
            w.writerow(
                [
                    m.family,
                    m.batch,
                    m.heads,
                    m.seq_q,
                    m.seq_k,
                    m.head_dim,
                    m.causal,
                    m.dtype,
                    p.tiling,
                    repr(p.measured_ms),
                    repr(p.predicted_ms),
                    repr(p.error_pct),
                    p.bound,
                    p.arch,
                    repr(p.p10_error_pct),
                ]
            )


# ----------------------------------------------------------------------------- plots


def plot_predicted_vs_measured(points: Sequence[Point], ax: Any = None) -> Any:
    """Scatter of predicted vs measured ms per family (log-log) with the y = x line."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    for family in FAMILY_MAPPERS:
        fam = [p for p in points if p.family == family]
        if fam:
            ax.scatter(
                [p.measured_ms for p in fam], [p.predicted_ms for p in fam], s=12, label=family
            )
    values = [v for p in points for v in (p.measured_ms, p.predicted_ms)]
    if values:
        lo, hi = min(values) / 1.2, max(values) * 1.2
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("measured ms")
    ax.set_ylabel("predicted ms")
    ax.set_title("GPU model: predicted vs measured")
    ax.legend(fontsize=8)
    return ax


def plot_roofline(measurements: Sequence[Measurement], arch: GpuArch, ax: Any = None) -> Any:
    """Roofline (calibrated peak matmul and HBM read bandwidth) with measured points.

    Arithmetic intensity = FLOPs / compulsory bytes (Q, K, V read and O written once).
    """
    import matplotlib.pyplot as plt

    from attnsim.mappers.gpu.model import device_rates

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    rates = device_rates(arch, "bf16")
    peak = rates.peak_matmul_flops_per_s / 1e12
    bw = rates.hbm_read_bytes_per_s / 1e12
    xs = [1.0, 10.0, 100.0, 1e3, 1e4]
    ax.plot(xs, [min(peak, bw * x) for x in xs], "k-", lw=1.5, label="roofline (calibrated)")
    families = sorted({m.family for m in measurements})
    for family in families:
        fam = [m for m in measurements if m.family == family]
        intensity = [m.flops / _compulsory_bytes(m) for m in fam]
        ax.scatter(intensity, [m.tflops for m in fam], s=10, label=family)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FLOP / compulsory HBM byte")
    ax.set_ylabel("TFLOP/s")
    ax.set_title(f"Roofline, {arch.name}")
    ax.legend(fontsize=7)
    return ax


def _compulsory_bytes(m: Measurement) -> float:
    shape = kernel_shape(  # measured dtypes (fp16, bf16) take 2 bytes
        m.batch, m.heads, m.seq_q, m.seq_k, m.head_dim, bool(m.causal), m.dtype
    )
    return float(qkvo_bytes(shape))


def plot_tiling_picks(picks: Sequence[Pick], ax: Any = None) -> Any:
    """Per shape: measured slowdown of the model's pick over the best measured tiling."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    ordered = sorted(picks, key=lambda p: p.slowdown)
    colors = ["tab:green" if p.within_tolerance else "tab:red" for p in ordered]
    ax.bar(range(len(ordered)), [p.slowdown for p in ordered], color=colors)
    ax.axhline(1 + PICK_TOLERANCE, color="k", ls="--", lw=1, label="10% slower than best")
    ax.set_xlabel("shape (sorted)")
    ax.set_ylabel("measured time of pick / best")
    ax.set_title(f"Model's tiling pick: {pick_fraction(picks):.0%} within 10% of best")
    ax.legend(fontsize=8)
    return ax


def save_plots(
    out: Path, points: Sequence[Point], measurements: Sequence[Measurement], picks: Sequence[Pick]
) -> list[Path]:
    """Write the three figures as PNG files into `out`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    arch_name = points[0].arch if points else None
    figures: list[tuple[str, Any]] = [
        ("predicted_vs_measured.png", None),
        ("tiling_pick.png", None),
    ]
    if arch_name:
        figures.append(("roofline.png", _arch(arch_name)))
    for name, arch in figures:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        if name == "predicted_vs_measured.png":
            plot_predicted_vs_measured(points, ax)
        elif name == "tiling_pick.png":
            plot_tiling_picks(picks, ax)
        else:
            plot_roofline(measurements, arch, ax)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        paths.append(out / name)
    return paths
