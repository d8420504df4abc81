"""`attnsim validate gpu`: the GPU model's error against kernel measurements.

MAPE per family and overall, worst points, tiling picks and plots.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from attnsim.reports import validation_seqpar
from attnsim.reports.cli.parsers import Subparsers
from attnsim.reports.errors import UsageError


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
        help="measurement CSVs (kernels.bench.measure schema)",
    )
    g.add_argument("--arch", default=None, help="GPU preset (default: from each row's device)")
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
    """Read, predict, summarize, write."""
    from attnsim.kernels.bench.measure import MeasurementError
    from attnsim.reports import validation, validation_decode, validation_kernels

    # every family's rows: the preset's measured figures, or (--no-calibration) none of them
    calibration = "none" if args.no_calibration else "preset"

    missing = [str(p) for p in args.measurements if not p.is_file()]
    if missing:
        raise UsageError(f"cannot read measurements: no such file: {', '.join(missing)}")
    seqpar = [p for p in args.measurements if validation_seqpar.is_seqpar_file(p)]
    files = [p for p in args.measurements if p not in seqpar]
    if seqpar:
        seqpar_report = _seqpar(args, seqpar, not files, calibration)
        if not files:
            return 0
        print(seqpar_report + "\n")
    probes = [p for p in files if validation_kernels.probe_of(p) is not None]
    decode = [p for p in files if validation_decode.is_decode_file(p)]
    prefill = [p for p in files if p not in decode and p not in probes]
    if probes:
        try:
            probe_points = validation_kernels.predict_rows(probes, args.arch or "h200", calibration)
        except (KeyError, ValueError) as exc:
            raise UsageError(f"cannot read kernel probe measurements: {exc}") from None
        probe_report = validation_kernels.format_report(
            probe_points, validation_kernels.baselines(probes), args.worst
        ) + (f"\n{validation.WITHHELD_NOTE}" if args.no_calibration else "")
        if not prefill and not decode:
            if args.out is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / "probe-report.txt").write_text(probe_report + "\n", "utf-8")
            psum = validation_kernels.summary(probe_points)
            print(json.dumps({"probes": psum}) if args.json else probe_report)
            return 0
        print(probe_report + "\n")
    decode_report = ""
    if decode:
        try:
            decode_points = validation_decode.predict_rows(
                decode, args.arch or "h200", calibration=calibration
            )
        except (KeyError, ValueError) as exc:
            raise UsageError(f"cannot read decode measurements: {exc}") from None
        decode_report = validation_decode.format_report(decode_points, args.worst) + (
            f"\n{validation.WITHHELD_NOTE}" if args.no_calibration else ""
        )
        if not prefill:
            if args.out is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / "decode-report.txt").write_text(decode_report + "\n", "utf-8")
            dsum = validation_decode.summary(decode_points)
            print(json.dumps({"decode": dsum}) if args.json else decode_report)
            return 0
    try:
        measurements, points, notes = validation.join_files(prefill, args.arch, calibration)
    except (OSError, UnicodeDecodeError, csv.Error, MeasurementError) as exc:
        raise UsageError(f"cannot read measurements: {exc}") from None
    except validation.ValidationError as exc:
        raise UsageError(str(exc)) from None
    if not points:
        families = ", ".join(validation.FAMILY_MAPPERS)
        raise UsageError(f"no rows of a modelled family ({families}) in the measurements")
    picks = validation.tiling_picks(points)
    summary = validation.summary(points)
    report = validation.format_report(points, picks, args.worst)
    report += "\n\n" + "\n".join(notes)
    if decode_report:
        report += "\n\n" + decode_report
    if args.out is not None:
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.txt").write_text(report + "\n", encoding="utf-8")
        extended = {**summary, "tiling_pick_within_10pct": validation.pick_fraction(picks)}
        (out / "summary.json").write_text(json.dumps(extended, indent=1) + "\n", encoding="utf-8")
        validation.write_points(out / "points.csv", points)
        if not args.no_plots:
            validation.save_plots(out, points, measurements, picks)
    print(json.dumps(summary) if args.json else report)
    return 0


def _seqpar(args: argparse.Namespace, paths: list[Path], alone: bool, calibration: str) -> str:
    """The sequence-parallel files' report; printed (and written with --out) when `alone`."""
    try:
        points = validation_seqpar.predict_rows(paths, args.arch, calibration)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise UsageError(f"cannot read sequence-parallel measurements:\n{exc}") from None
    report = validation_seqpar.format_report(points, args.worst)
    if alone:
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "seqpar-report.txt").write_text(report + "\n", "utf-8")
        summary = validation_seqpar.summary(points)
        print(json.dumps({"seqpar": summary}) if args.json else report)
    return report
