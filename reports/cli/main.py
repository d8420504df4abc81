"""The `attnsim` command line: argument parsing, dispatch, and user-error reporting.

Each subcommand group lives in its own module exposing `add_parser(subparsers)`, which
registers its parsers and sets `handler` (a function `args -> exit status`) on each.
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys
from collections.abc import Sequence

# Each command: the module that registers it (with `add_parser(subparsers)`, which may register
# several commands) and its one-line help. Only the module of the command given is imported,
# so `attnsim --help` and `--version` load none of the models (under 0.3 s; see
# benchmarks/bench_cli.py). Add a command by writing `reports/cli/<group>.py` and listing it.
COMMANDS: dict[str, tuple[str, str]] = {
    "cascade": ("attnsim.reports.cli.cascade", "inspect, check and evaluate Einsum cascades"),
    "map": ("attnsim.reports.cli.map", "map one design point and print its costs"),
    "reproduce": ("attnsim.reports.cli.reproduce", "reproduce a paper's tables and figures"),
    "run": ("attnsim.reports.cli.run", "run an experiment's design-space sweep"),
    "check": ("attnsim.reports.cli.run", "validate experiment files and count their points"),
    "export": ("attnsim.reports.cli.run", "export a result store to CSV or JSON lines"),
    "report": (
        "attnsim.reports.cli.report",
        "write the HTML report (versus the baseline, Pareto fronts, ...) of a run",
    ),
    "validate": ("attnsim.reports.cli.validate", "check model predictions against measurements"),
}

EXIT_OK = 0
EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


def version() -> str:
    """The installed attnsim version, or 'unknown' when run from an uninstalled tree."""
    from importlib import metadata

    try:
        return metadata.version("attnsim")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Version(argparse.Action):
    """`--version`: looks the version up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"attnsim {version()}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser.

    `command`'s module registers its commands in full; the others are listed with their help
    only (`command` None: every module registers in full).
    """
    parser = argparse.ArgumentParser(
        prog="attnsim",
        description="Design-space simulator for attention hardware: passes, buffers, "
        "traffic, energy and latency of attention cascades.",
    )
    parser.add_argument("--version", action=_Version)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    loaded: set[str] = set()
    for name, (module, help_text) in COMMANDS.items():
        if module in loaded:
            continue
        if command is None or COMMANDS.get(command, ("",))[0] == module:
            importlib.import_module(module).add_parser(subparsers)
            loaded.add(module)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command named in `argv` (its first word that is no option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the chosen subcommand, and return the exit status.

    Input errors (`SpecError` for bad or missing spec files, `SizeError` for bad sizes) print
    every problem to stderr, without a traceback, and give status 2; so do usage errors and
    file-system or store errors (a folder that cannot be written, a damaged store). Ctrl-C
    gives status 130, also without a traceback (the command's module is imported inside, so
    a Ctrl-C while attnsim starts is caught too).
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("attnsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command(argv)
    parser = build_parser(command if command in COMMANDS else "")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: keep main() returning
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT_ERROR
    handler = getattr(args, "handler", None)
    if handler is None:
        # A group given without its subcommand prints that group's help.
        (getattr(args, "group_parser", None) or parser).print_help(sys.stderr)
        return EXIT_INPUT_ERROR
    from attnsim.einsum_ir import SizeError, SpecError
    from attnsim.mappers import MappingError
    from attnsim.reports.errors import UsageError

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


def quiet_interrupts(unraisable: object) -> None:
    """`sys.unraisablehook` that drops a KeyboardInterrupt, and hands anything else on.

    A Ctrl-C that lands inside a callback Python cannot raise from (a weakref callback of the
    import system's module locks, seen once on CI) is printed as "Exception ignored in: ...",
    a traceback, and the run goes on. The user gets no traceback; the interrupt is lost there,
    as Python already lost it, and a second Ctrl-C stops the run as usual.
    """
    if isinstance(getattr(unraisable, "exc_value", None), KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)  # type: ignore[arg-type]


def entry() -> None:
    """Console-script entry point (`attnsim`)."""
    sys.unraisablehook = quiet_interrupts
    try:
        sys.exit(main())
    except BrokenPipeError:  # `attnsim ... | head`: stop quietly
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:  # between main's own handler and exit
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    entry()
