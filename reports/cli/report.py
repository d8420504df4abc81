"""`attnsim report DIR [--open]`: write DIR/report.html from a run's results."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

from attnsim.reports.cli.parsers import Subparsers
from attnsim.reports.errors import UsageError
from attnsim.reports.page.report import load_report_data, write_paper_figures, write_report


def add_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """Register `report`."""
    p = subparsers.add_parser(
        "report", help="write the HTML report (Pareto fronts, best points, ...) of a run"
    )
    p.add_argument("dir", metavar="DIR", help="output directory of `attnsim run`")
    p.add_argument("--open", action="store_true", help="open the report in a web browser")
    p.add_argument(
        "--figures",
        default="",
        metavar="png,svg",
        help="also write static Pareto figures (one panel per workload) for papers into "
        "DIR/figures/, in these formats (png, svg, pdf)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load DIR's results, write the report, print its path; exit 2 when DIR has no results."""
    try:
        data = load_report_data(args.dir)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from exc
    if not data.rows and not data.failures:
        raise UsageError(f"{args.dir} has no results: no design point has finished or failed")
    formats = [f for f in args.figures.split(",") if f]
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad:
        raise UsageError(f"--figures: expected png, svg or pdf, got {', '.join(bad)}")
    print(f"writing {Path(args.dir) / 'report.html'} ...", file=sys.stderr, flush=True)
    path = write_report(args.dir, data)
    print(path)
    if formats:
        for written in write_paper_figures(args.dir, data, formats):
            print(written)
    if args.open and path is not None:
        webbrowser.open(path.resolve().as_uri())
    return 0
