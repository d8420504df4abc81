"""`attnsim validate gpu`: the GPU model's error against kernel measurements.

MAPE per family and overall, worst points, tiling picks and plots.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnsim.reports import validation_seqpar
from attnsim.reports.cli.parsers import Subparsers
from attnsim.reports.errors import UsageError

# a folder of this name under a given one holds an earlier kernel build's measurements
SUPERSEDED = "superseded"


def add_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """Register `validate gpu`."""
    p = subparsers.add_parser("validate", help="check model predictions against measurements")
    sub = p.add_subparsers(dest="target", metavar="TARGET")
    p.set_defaults(group_parser=p)
    g = sub.add_parser("gpu", help="GPU mappers vs Triton kernel measurements (CSV files)")
    g.add_argument(
        "--measurements",
        nargs="+",
        required=True,
        type=Path,
        metavar="FILE",
        help="measurement CSVs (prefill files of the kernels.bench.measure schema, the "
        "benchmarks/ probes' files, decode and sequence-parallel files), or folders: their "
        "CSV files of those kinds, recursively (others skipped, and listed, as are those under a "
        f"`{SUPERSEDED}/` folder: an earlier kernel build's)",
    )
    g.add_argument(
        "--arch",
        default=None,
        help="GPU preset (default: each file's device, from its rows; rows naming none: h200)",
    )
    g.add_argument(
        "--no-calibration",
        action="store_true",
        help="withhold the GPU's measured figures: predict from its datasheet alone "
        "(the arch override calibration: none; archs/datasheet.py states what it assumes)",
    )
    g.add_argument("--json", action="store_true", help="print one JSON object (the summary)")
    g.add_argument("--out", type=Path, default=None, help="directory for report, CSV and plots")
    g.add_argument("--worst", type=int, default=10, help="worst points to list (default 10)")
    g.add_argument("--no-plots", action="store_true", help="skip the PNG figures with --out")
    g.set_defaults(handler=run_gpu)


def run_gpu(args: argparse.Namespace) -> int:
    """Read, predict, summarize, write.

    Files of each kind (sequence-parallel, kernel probes, decode, prefill) get their own
    section; the text report puts them one after another, `--json` one object (the prefill
    summary's keys at the top, the others under "seqpar", "probes", "decode"), and `--out`
    a report file per kind.
    """
    from attnsim.reports import validation, validation_decode, validation_kernels

    # every family's rows: the preset's measured figures, or (--no-calibration) none of them
    calibration = "none" if args.no_calibration else "preset"
    withheld = f"\n{validation.WITHHELD_NOTE}" if args.no_calibration else ""
    missing = [str(p) for p in args.measurements if not p.exists()]
    if missing:
        raise UsageError(f"cannot read measurements: no such file: {', '.join(missing)}")
    paths, skipped = _expand(args.measurements)
    if not paths:
        raise UsageError(
            f"cannot read measurements: no measurement file of a kind validate gpu reads in "
            f"{', '.join(str(p) for p in args.measurements)}"
        )
    seqpar = [p for p in paths if validation_seqpar.is_seqpar_file(p)]
    files = [p for p in paths if p not in seqpar]
    probes = [p for p in files if validation_kernels.probe_of(p) is not None]
    decode = [p for p in files if validation_decode.is_decode_file(p)]
    prefill = [p for p in files if p not in decode and p not in probes]
    if prefill:  # every unreadable file at once, before any prediction
        from attnsim.kernels.bench.measure import MeasurementError, read_measurements

        try:
            read_measurements(prefill)
        except MeasurementError as exc:
            raise UsageError(
                f"cannot read measurements:\n{exc}\n(validate gpu reads prefill measurement "
                "CSVs of kernels.bench.measure, the benchmarks/ probes' files of the later "
                "kernel families, decode files and sequence-parallel files)"
            ) from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise UsageError(f"cannot read measurements: {exc}") from None
    texts: list[str] = []
    summary: dict[str, object] = {}
    if seqpar:
        try:
            points = validation_seqpar.predict_rows(seqpar, args.arch, calibration)
        except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
            raise UsageError(f"cannot read sequence-parallel measurements:\n{exc}") from None
        texts.append(_section(args, "seqpar-report.txt",
                              validation_seqpar.format_report(points, args.worst)))  # fmt: skip
        _points_csv(args, "seqpar-points.csv", points)
        summary["seqpar"] = validation_seqpar.summary(points)
    if probes:
        try:
            kpoints = validation_kernels.predict_rows(probes, args.arch, calibration)
        except (KeyError, ValueError) as exc:
            raise UsageError(f"cannot read kernel probe measurements: {exc}") from None
        text = validation_kernels.format_report(
            kpoints, validation_kernels.baselines(probes), args.worst
        )
        texts.append(_section(args, "probe-report.txt", text + withheld))
        _points_csv(args, "probe-points.csv", kpoints)
        summary["probes"] = validation_kernels.summary(kpoints)
    if decode:
        try:
            dpoints = validation_decode.predict_rows(decode, args.arch, calibration=calibration)
        except (KeyError, ValueError) as exc:
            raise UsageError(f"cannot read decode measurements: {exc}") from None
        text = validation_decode.format_report(dpoints, args.worst)
        texts.append(_section(args, "decode-report.txt", text + withheld))
        _points_csv(args, "decode-points.csv", dpoints)
        summary["decode"] = validation_decode.summary(dpoints)
    extra: dict[str, object] = {}
    if prefill:
        text, found, picked = _prefill(args, prefill, calibration)
        texts.append(text)
        summary = {**found, **summary}
        extra["tiling_pick_within_10pct"] = picked
    if skipped:
        note = (
            f"skipped {len(skipped)} CSV file(s) of the given folder(s) that are of no kind "
            f"validate gpu reads, or under a `{SUPERSEDED}/` folder (an earlier kernel build's "
            f"measurements; name such a file to read it): {', '.join(str(p) for p in skipped)}"
        )
        texts.append(note)
        summary["skipped_files"] = [str(p) for p in skipped]
    if args.out is not None:  # what --json prints, and the prefill tiling pick
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(
            json.dumps({**summary, **extra}, indent=1) + "\n", encoding="utf-8"
        )
    print(json.dumps(summary) if args.json else "\n\n".join(texts))
    return 0


def _expand(given: list[Path]) -> tuple[list[Path], list[Path]]:
    """Named files as given; a folder: its CSV files (recursively), those of a known kind.

    Returns (files to read, files of a folder skipped as of no kind validate gpu reads).
    """
    from attnsim.kernels.bench.measure import FIELDS, LEGACY_FIELDS, SCHEDULE_FIELDS
    from attnsim.reports import validation_decode, validation_kernels

    def known(p: Path) -> bool:
        if validation_seqpar.is_seqpar_file(p) or validation_kernels.probe_of(p) is not None:
            return True
        if validation_decode.is_decode_file(p):
            return True
        try:
            with p.open(newline="", encoding="utf-8") as fh:
                header = tuple(next(csv.reader(fh), []))
        except (OSError, UnicodeDecodeError, csv.Error):
            return False
        return header in (FIELDS, SCHEDULE_FIELDS, LEGACY_FIELDS)

    paths: list[Path] = []
    skipped: list[Path] = []
    for p in given:
        if not p.is_dir():
            paths.append(p)
            continue
        for f in sorted(p.rglob("*.csv")):
            # an earlier kernel build's measurements, kept for the record: read when named
            old = SUPERSEDED in f.relative_to(p).parts[:-1]
            (paths if known(f) and not old else skipped).append(f)
    return list(dict.fromkeys(paths)), skipped


def _section(args: argparse.Namespace, name: str, text: str) -> str:
    """`text`, also written to `name` in the --out folder when one is given."""
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / name).write_text(text + "\n", encoding="utf-8")
    return text


def _points_csv(args: argparse.Namespace, name: str, points: Sequence[Any]) -> None:
    """With --out: one CSV row per point (its fields, tuples joined by `;`, and error_pct)."""
    if args.out is None or not points:
        return
    names = [f.name for f in dataclasses.fields(points[0])]
    with (args.out / name).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*names, "error_pct"])
        for p in points:
            values = [getattr(p, n) for n in names]
            cells = [";".join(map(str, v)) if isinstance(v, tuple) else v for v in values]
            w.writerow([*cells, round(100 * (p.predicted_ms / p.measured_ms - 1), 4)])


def _prefill(
    args: argparse.Namespace, paths: list[Path], calibration: str
) -> tuple[str, dict[str, object], float]:
    """The prefill files' report, summary and tiling-pick fraction.

    With --out it also writes the report, the points and the plots.
    """
    from attnsim.kernels.bench.measure import MeasurementError
    from attnsim.reports import validation

    try:
        measurements, points, notes = validation.join_files(paths, args.arch, calibration)
    except (OSError, UnicodeDecodeError, csv.Error, MeasurementError) as exc:
        raise UsageError(f"cannot read measurements: {exc}") from None
    except validation.ValidationError as exc:
        raise UsageError(str(exc)) from None
    if not points:
        families = ", ".join(validation.FAMILY_MAPPERS)
        raise UsageError(f"no rows of a modelled family ({families}) in the measurements")
    picks = validation.tiling_picks(points)
    summary = validation.summary(points)
    report = validation.format_report(points, picks, args.worst) + "\n\n" + "\n".join(notes)
    if args.out is not None:
        out: Path = args.out
        _section(args, "report.txt", report)
        validation.write_points(out / "points.csv", points)
        if not args.no_plots:
            validation.save_plots(out, points, measurements, picks)
    return report, summary, validation.pick_fraction(picks)
