"""`attnsim report DIR [--open]`: write DIR/report.html from a run's results."""

from __future__ import annotations

import argparse
import webbrowser

from reports.cli.parsers import Subparsers
from reports.errors import UsageError
from reports.page.report import load_report_data, write_report


def add_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """Register `report`."""
    p = subparsers.add_parser(
        "report", help="write the HTML report (Pareto fronts, best points, ...) of a run"
    )
    p.add_argument("dir", metavar="DIR", help="output directory of `attnsim run`")
    p.add_argument("--open", action="store_true", help="open the report in a web browser")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load DIR's results, write the report, print its path; exit 2 when DIR has no results."""
    try:
        data = load_report_data(args.dir)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from exc
    if not data.rows and not data.failures:
        raise UsageError(f"{args.dir} has no results: no design point has finished or failed")
    path = write_report(args.dir, data)
    print(path)
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0
