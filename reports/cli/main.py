"""The `attnsim` command line: argument parsing, dispatch, and user-error reporting.

Each subcommand group lives in its own module exposing `add_parser(subparsers)`, which
registers its parsers and sets `handler` (a function `args -> exit status`) on each.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from einsum_ir import SizeError, SpecError
from mappers import MappingError
from reports.cli import cascade as cascade_cli
from reports.cli import map as map_cli
from reports.cli import report as report_cli
from reports.cli import reproduce as reproduce_cli
from reports.cli import run as run_cli
from reports.cli import validate as validate_cli
from reports.cli.cascade import Subparsers
from reports.errors import UsageError

# Subcommand groups, in `--help` order. Add a group by writing `reports/<group>_cli.py` with
# `add_parser(subparsers)` and listing it here. Planned: map, reproduce, run, check, report,
# validate.
COMMAND_GROUPS: tuple[Callable[[Subparsers[argparse.ArgumentParser]], None], ...] = (
    cascade_cli.add_parser,
    map_cli.add_parser,
    reproduce_cli.add_parser,
    run_cli.add_parser,
    report_cli.add_parser,
    validate_cli.add_parser,
)

EXIT_OK = 0
EXIT_INPUT_ERROR = 2


def version() -> str:
    """The installed attnsim version, or 'unknown' when run from an uninstalled tree."""
    try:
        return metadata.version("attnsim")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand group registered."""
    parser = argparse.ArgumentParser(
        prog="attnsim",
        description="Design-space simulator for attention hardware: passes, buffers, "
        "traffic, energy and latency of attention cascades.",
    )
    parser.add_argument("--version", action="version", version=f"attnsim {version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMAND_GROUPS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the chosen subcommand, and return the exit status.

    Input errors (`SpecError` for bad or missing spec files, `SizeError` for bad sizes) print
    every problem to stderr, without a traceback, and give status 2; so do usage errors.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: keep main() returning
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT_ERROR
    handler = getattr(args, "handler", None)
    if handler is None:
        # A group given without its subcommand prints that group's help.
        (getattr(args, "group_parser", None) or parser).print_help(sys.stderr)
        return EXIT_INPUT_ERROR
    try:
        status: int = handler(args)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INPUT_ERROR
    except (SizeError, MappingError, UsageError) as exc:
        print(f"attnsim: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    return status


def entry() -> None:
    """Console-script entry point (`attnsim`)."""
    try:
        sys.exit(main())
    except BrokenPipeError:  # `attnsim ... | head`: stop quietly
        sys.stderr.close()
        sys.exit(0)


if __name__ == "__main__":
    entry()
