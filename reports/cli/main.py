"""The `attnsim` command line: argument parsing, dispatch, and user-error reporting.

Each subcommand group lives in its own module exposing `add_parser(subparsers)`, which
registers its parsers and sets `handler` (a function `args -> exit status`) on each.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from reports.errors import UsageError

# Subcommand groups, in `--help` order: `reports/cli/<group>.py` modules with
# `add_parser(subparsers)`. They are imported when the parser is built, not when this module
# is, so that a Ctrl-C while attnsim starts (imports take a while) is caught by `entry`.
COMMAND_GROUPS = ("cascade", "map", "reproduce", "run", "report", "validate")

EXIT_OK = 0
EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


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
    for group in COMMAND_GROUPS:
        add: Callable[[Any], None] = _group_module(group).add_parser
        add(subparsers)
    return parser


def _group_module(group: str) -> Any:
    import importlib

    return importlib.import_module(f"reports.cli.{group}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the chosen subcommand, and return the exit status.

    Input errors (`SpecError` for bad or missing spec files, `SizeError` for bad sizes) print
    every problem to stderr, without a traceback, and give status 2; so do usage errors and
    file-system or store errors (a folder that cannot be written, a damaged store). Ctrl-C
    gives status 130, also without a traceback.
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("attnsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    from einsum_ir import SizeError, SpecError
    from mappers import MappingError

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
    except OSError as exc:  # a file or folder that cannot be read or written
        if isinstance(exc, BrokenPipeError):
            raise
        print(f"attnsim: error: {_os_message(exc)}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except sqlite3.DatabaseError as exc:  # raised outside the store's own checks
        print(f"attnsim: error: result store: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    return status


def _os_message(exc: OSError) -> str:
    """`path: reason` for a file-system error (no errno numbers, no exception class)."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def entry() -> None:
    """Console-script entry point (`attnsim`)."""
    try:
        sys.exit(main())
    except BrokenPipeError:  # `attnsim ... | head`: stop quietly
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:  # between main's own handler and exit
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    entry()
