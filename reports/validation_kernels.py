"""GPU validation of the kernel families timed by their own probes (backward, Lightning-2).

A probe file is a CSV, one row per timed configuration, with a `family` column naming our
kernel (`triton-bwd`, `triton-lightning`) or a baseline timed in the same run, a `suite`
(validation, holdout, or a sweep), a `status` ("ok" when the configuration passed its
correctness check and was timed) and `median_ms`. Each family registers a `Probe`: how to
recognise its files, which rows the model predicts, how a row's problem and configuration
read, and the prediction. Errors are percentages of the measured median; the pick: per
shape, the configuration the model ranks fastest among those measured, against the best
measured (within `PICK_TOLERANCE`); the baselines: our best measured time against each
baseline's on the same shape; the ratios (families that declare them): per configuration,
the predicted speed ratio of a variant to its reference (a window to causal attention,
sigmoid to softmax) against the measured one (within `RATIO_TOLERANCE`).
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PICK_TOLERANCE = 0.10
RATIO_TOLERANCE = 0.10  # issue 13: window/causal and sigmoid/softmax ratios within 10%
# a measurement whose own repeats spread (p10 to p90) over this share of its median is
# reported apart: no model predicts it within less than that
UNSTABLE_SPREAD_PCT = 20.0
Row = dict[str, str]


def row_int(row: Row, key: str, default: int = 0) -> int:
    """An integer column ("" or nan: `default`)."""
    v = (row.get(key) or "").strip()
    return int(float(v)) if v and v.lower() != "nan" else default


def row_float(row: Row, key: str) -> float:
    """A float column (nan when blank or unreadable)."""
    v = (row.get(key) or "").strip()
    try:
        return float(v) if v else math.nan
    except ValueError:
        return math.nan


@dataclass(frozen=True, slots=True)
class Probe:
    """How one kernel family's probe files are read and predicted.

    Attributes:
        family: Our kernel's `family` value (the modelled rows).
        mapper: The GPU mapper that prices the family.
        marker: A header column only this probe's files have.
        shape: The row's problem (what configurations of one shape share), as text.
        config: The row's kernel configuration (tiling and mode), as text.
        predict: (row, arch) -> (predicted ms, bound); None for a family no GPU mapper
            prices yet (its files give the baseline comparison only).
        modelled: Which of our rows the model prices (others give the baselines only).
        ratio: (group, variant, reference) of a row for the speed ratios a user reads off the
            model (a window against causal attention, sigmoid against softmax): rows of one
            group differ only in the variant; `reference` names the variant the others are
            compared with. None: the family reports no ratios.
        host: (file, arch) -> (the arch to predict the file's rows on, a note naming whose
            host launcher-call figures it carries), for families whose files come with a host
            probe (`<stem>-host.yaml`). None: every file on the arch as loaded.
        needs: Other header columns its files have (a side probe's files that share the
            marker but not these are of another kind, skipped in a folder).
    """

    family: str
    mapper: str
    marker: str
    shape: Callable[[Row], str]
    config: Callable[[Row], str]
    predict: Callable[[Row, object], tuple[float, str]] | None
    modelled: Callable[[Row], bool] = lambda row: True
    ratio: Callable[[Row], tuple[str, str, str]] | None = None
    host: Callable[[Path, object], tuple[object, str]] | None = None
    needs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KernelPoint:
    """One measured configuration with its prediction (times in ms)."""

    file: str
    suite: str
    family: str
    shape: str
    config: str
    measured_ms: float
    predicted_ms: float
    bound: str
    ratio: tuple[str, str, str] = ("", "", "")  # (group, variant, reference); see Probe
    host: str = ""  # whose host launcher-call figures predicted it (Probe.host), "" if none
    spread_pct: float = math.nan  # (p90 - p10) / median of the row's repeats, if recorded

    @property
    def unstable(self) -> bool:
        """Whether the measurement's own repeats spread over `UNSTABLE_SPREAD_PCT`."""
        return self.spread_pct > UNSTABLE_SPREAD_PCT

    @property
    def error_pct(self) -> float:
        """100 * (predicted - measured) / measured."""
        return 100.0 * (self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def key(self) -> tuple[str, str, str]:
        """The problem that configurations of one shape share."""
        return (self.file, self.suite, self.shape)


@dataclass(frozen=True, slots=True)
class Baseline:
    """A baseline family's best measured time on one shape, and ours."""

    suite: str
    family: str
    shape: str
    ours_ms: float
    theirs_ms: float

    @property
    def speedup(self) -> float:
        """Baseline time over ours (> 1: ours is faster)."""
        return self.theirs_ms / self.ours_ms


PROBES: list[Probe] = []


def register(probe: Probe) -> Probe:
    """Add a family's probe (done by the modules that define them, on import)."""
    PROBES.append(probe)
    return probe


def _probes() -> list[Probe]:
    from attnsim.reports import validation_probes  # noqa: F401  (registers the families)

    return PROBES


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError):
        return []


def probe_of(path: Path) -> Probe | None:
    """The probe whose files `path` looks like (by its header), or None."""
    header = _header(path)
    return next(
        (
            p
            for p in _probes()
            if p.marker in header and "family" in header and all(c in header for c in p.needs)
        ),
        None,
    )


def _rows(path: Path) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _spread_pct(row: Row) -> float:
    """100 (p90 - p10) / median of a row's repeats; NaN when the file has no p10/p90."""
    lo, hi, mid = (row_float(row, k) for k in ("p10_ms", "p90_ms", "median_ms"))
    return 100.0 * (hi - lo) / mid if mid > 0 else math.nan


def _timed(row: Row) -> bool:
    return (row.get("status") or "ok") == "ok" and math.isfinite(row_float(row, "median_ms"))


def predict_rows(
    paths: Sequence[Path], arch_name: str | None = None, calibration: str = "preset"
) -> list[KernelPoint]:
    """Predict every timed row of our families in the files.

    `arch_name`: the GPU preset of every file (None: each file's own device,
    `validation.file_arch`). `calibration`: "preset", or "none" to withhold the GPU's
    measured figures (the arch override; `archs.datasheet`).
    """
    from attnsim.archs.load import load_arch
    from attnsim.reports import validation

    points = []
    problems: list[str] = []
    for path in paths:
        probe = probe_of(path)
        if probe is None:
            raise ValueError(
                f"{path}: not a probe file of {', '.join(p.family for p in _probes())}"
            )
        try:
            name = validation.file_arch(path, _rows(path), arch_name)
        except validation.ValidationError as exc:
            problems.append(str(exc))
            continue
        arch = load_arch(name, overrides={"calibration": calibration})
        file_arch: object = arch
        host = ""
        if probe.host is not None and probe.predict is not None:
            try:
                file_arch, host = probe.host(path, arch)
            except ValueError as exc:  # a malformed host file names itself
                problems.append(str(exc))
                continue
        for line, row in enumerate(_rows(path), start=2):  # line 1 is the header
            if probe.predict is None or row.get("family") != probe.family or not _timed(row):
                continue
            if not probe.modelled(row):
                continue
            try:
                ms, bound = probe.predict(row, file_arch)
            except ValueError as exc:  # a field the model cannot read: name the row
                problems.append(f"{path}:{line}: {exc}")
                continue
            points.append(
                KernelPoint(
                    file=path.name,
                    suite=row.get("suite", ""),
                    family=probe.family,
                    shape=probe.shape(row),
                    config=probe.config(row),
                    measured_ms=row_float(row, "median_ms"),
                    predicted_ms=ms,
                    bound=bound,
                    ratio=probe.ratio(row) if probe.ratio is not None else ("", "", ""),
                    host=host,
                    spread_pct=_spread_pct(row),
                )
            )
    if problems:
        raise ValueError("\n".join(problems))
    return points


def ratio_errors(points: Sequence[KernelPoint]) -> dict[str, list[float]]:
    """Per "family variant/reference": |predicted ratio / measured ratio - 1| per pair.

    A pair: a row and the reference row of its group (same file, suite and configuration);
    the ratio is the reference's time over the row's (the variant's speedup).
    """
    refs: dict[tuple[str, str, str], KernelPoint] = {}
    for p in points:
        group, variant, reference = p.ratio
        if group and variant == reference:
            refs[(p.file, p.suite, group)] = p
    out: dict[str, list[float]] = defaultdict(list)
    for p in points:
        group, variant, reference = p.ratio
        ref = refs.get((p.file, p.suite, group)) if group and variant != reference else None
        if ref is not None:
            measured = ref.measured_ms / p.measured_ms
            predicted = ref.predicted_ms / p.predicted_ms
            out[f"{p.family} {variant}/{reference}"].append(abs(predicted / measured - 1.0))
    return dict(sorted(out.items()))


def baselines(paths: Sequence[Path]) -> list[Baseline]:
    """Per shape and baseline family: its best measured time against our best."""
    out = []
    for path in paths:
        probe = probe_of(path)
        if probe is None:
            continue
        best: dict[tuple[str, str, str], float] = {}
        for row in _rows(path):
            if not _timed(row):
                continue
            k = (row.get("suite", ""), row.get("family", ""), probe.shape(row))
            best[k] = min(best.get(k, math.inf), row_float(row, "median_ms"))
        for (suite, fam, shape), ms in sorted(best.items()):
            ours = best.get((suite, probe.family, shape))
            if fam != probe.family and ours is not None:
                out.append(Baseline(suite, fam, shape, ours, ms))
    return out


class Timed(Protocol):
    """A measured point with its prediction (KernelPoint, validation_decode.DecodePoint)."""

    @property
    def key(self) -> Hashable:
        """The shape configurations share."""
        ...

    @property
    def family(self) -> str:
        """Our kernel family."""
        ...

    @property
    def suite(self) -> str:
        """The suite."""
        ...

    @property
    def measured_ms(self) -> float:
        """Measured median."""
        ...

    @property
    def predicted_ms(self) -> float:
        """The model's time."""
        ...

    @property
    def error_pct(self) -> float:
        """100 * (predicted - measured) / measured."""
        ...


def picks(points: Sequence[Timed]) -> list[tuple[Hashable, float]]:
    """Per shape (`key`): measured time of the model's pick over the best measured, minus 1."""
    by: dict[Hashable, list[Timed]] = defaultdict(list)
    for p in points:
        by[p.key].append(p)
    out = []
    for key, pts in by.items():
        if len(pts) >= 2:
            chosen = min(pts, key=lambda p: p.predicted_ms)
            out.append((key, chosen.measured_ms / min(p.measured_ms for p in pts) - 1.0))
    return out


def suite_errors(points: Sequence[Timed]) -> dict[str, dict[str, float]]:
    """MAPE, worst |error| and count per "family suite" and "family all"."""
    out: dict[str, dict[str, float]] = {}
    groups: dict[str, list[Timed]] = defaultdict(list)
    for p in points:
        groups[f"{p.family} {p.suite}"].append(p)
        groups[f"{p.family} all"].append(p)
    for name, pts in sorted(groups.items()):
        errs = [abs(p.error_pct) for p in pts]
        out[name] = {"mape_pct": statistics.fmean(errs), "worst_pct": max(errs),
                     "points": float(len(pts))}  # fmt: skip
    return out


def summary(points: Sequence[KernelPoint]) -> dict[str, dict[str, float]]:
    """MAPE, worst |error| and count per family x suite, and the pick fraction per family."""
    out = suite_errors(points)
    for fam in sorted({p.family for p in points}):
        pk = picks([p for p in points if p.family == fam])
        if pk:
            within = sum(1 for _, r in pk if r <= PICK_TOLERANCE) / len(pk)
            out[f"{fam} pick"] = {"within_10pct": within, "shapes": float(len(pk))}
    for fam in sorted({p.family for p in points}):
        mine = [p for p in points if p.family == fam]
        shaky = [abs(p.error_pct) for p in mine if p.unstable]
        steady = [abs(p.error_pct) for p in mine if not p.unstable]
        if shaky:
            entry = {"points": float(len(shaky)), "unstable_mape_pct": statistics.fmean(shaky)}
            if steady:
                entry |= {"stable_mape_pct": statistics.fmean(steady),
                          "stable_worst_pct": max(steady)}  # fmt: skip
            out[f"{fam} unstable"] = entry
    for name, errs in ratio_errors(points).items():
        within = sum(1 for e in errs if e <= RATIO_TOLERANCE) / len(errs)
        out[f"{name} ratio"] = {"ratio_within_10pct": within, "pairs": float(len(errs)),
                                "worst_pct": 100.0 * max(errs)}  # fmt: skip
    return out


def format_report(
    points: Sequence[KernelPoint], base: Sequence[Baseline] = (), worst: int = 10
) -> str:
    """A text report: per family and suite, the pick, the baselines, the worst points."""
    lines = ["kernel probes (model vs measured):"]
    ours = sorted({p.family for p in _probes() if p.predict is None})
    if ours and not points:
        lines.append(f"  no GPU model prices {', '.join(ours)} yet: measured comparisons only")
    for name, s in summary(points).items():
        if "ratio_within_10pct" in s:
            lines.append(
                f"  {name:<34} speed ratio within 10% of the measured for "
                f"{s['ratio_within_10pct']:.0%} of {int(s['pairs'])} pairs "
                f"(worst {s['worst_pct']:.1f}%)"
            )
        elif "mape_pct" in s:
            lines.append(
                f"  {name:<34} MAPE {s['mape_pct']:5.1f}%  worst {s['worst_pct']:5.1f}%  "
                f"({int(s['points'])} points)"
            )
        elif "unstable_mape_pct" in s:
            others = (
                f"; the others MAPE {s['stable_mape_pct']:.1f}%, worst {s['stable_worst_pct']:.1f}%"
                if "stable_mape_pct" in s
                else ""
            )
            lines.append(
                f"  {name:<34} {int(s['points'])} points whose repeats spread (p10-p90) over "
                f"{UNSTABLE_SPREAD_PCT:.0f}% of their median: MAPE {s['unstable_mape_pct']:.1f}%"
                + others
            )
        else:
            lines.append(
                f"  {name:<34} within 10% of the best measured for "
                f"{s['within_10pct']:.0%} of {int(s['shapes'])} shapes"
            )
    by: dict[str, list[float]] = defaultdict(list)
    for b in base:
        by[b.family].append(b.speedup)
    for fam, sp in sorted(by.items()):
        lines.append(
            f"  ours vs {fam:<26} {min(sp):.2f}-{max(sp):.2f}x (geomean "
            f"{statistics.geometric_mean(sp):.2f}x, >= 1 on {sum(x >= 1 for x in sp)}"
            f"/{len(sp)} shapes)"
        )
    lines.append("  worst points:")
    for p in sorted(points, key=lambda p: -abs(p.error_pct))[:worst]:
        shaky = f"  [unstable: p10-p90 {p.spread_pct:.0f}% of the median]" if p.unstable else ""
        lines.append(
            f"    {p.suite:<10} {p.shape:<34} {p.config:<22} measured "
            f"{p.measured_ms * 1e3:9.1f} us  predicted {p.predicted_ms * 1e3:9.1f} us  "
            f"{p.error_pct:+6.1f}%  ({p.bound}){shaky}"
        )
    hosts = dict.fromkeys((p.file, p.host) for p in points if p.host)
    lines += [f"  {f}: host launcher-call figures from {h}" for f, h in hosts]
    return "\n".join(lines)
