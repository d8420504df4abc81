"""`attnsim map`: one design point (cascade x architecture x mapper) printed as a Result."""

from __future__ import annotations

import argparse

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.einsum_ir.sizes import parse_sizes
from attnsim.mappers.options import mapper_options, parse_text
from attnsim.mappers.registry import get_mapper, mapper_names
from attnsim.reports.cli import limits
from attnsim.reports.cli.parsers import Subparsers
from attnsim.reports.cli.result_text import format_result
from attnsim.reports.errors import UsageError


def add_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """Register `map`."""
    p = subparsers.add_parser("map", help="map one design point and print its costs")
    p.add_argument("--arch", required=True, help="preset name or architecture YAML file")
    p.add_argument("--cascade", required=True, help="built-in cascade name or YAML file")
    p.add_argument("--mapper", required=True, help=f"one of: {', '.join(mapper_names())}")
    p.add_argument(
        "--sizes",
        required=True,
        help="rank sizes, e.g. B=64,H=12,M=4K,P=4K,E=64,F=64 (K = 1024, M = 1048576)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="mapper option (repeatable), e.g. --option step=arch or --option onchip=QK,A; "
        "values are checked against the mapper's options",
    )
    p.add_argument("--json", action="store_true", help="print the Result as one JSON object")
    p.set_defaults(handler=run)


def parse_options(cls: type, pairs: list[str]) -> dict[str, object]:
    """`KEY=VALUE` strings -> keyword arguments for the mapper's Options, checked by value.

    Values are checked against the mapper's option schema (`mappers.options`); a list option
    takes comma-separated names (`onchip=QK,A`). Every problem is reported at once.
    """
    fields = mapper_options(cls)
    kwargs: dict[str, object] = {}
    problems = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            known = ", ".join(fields) or "none"
            problems.append(f"--option {pair!r}: expected KEY=VALUE with KEY one of {known}")
            continue
        try:
            kwargs[key] = parse_text(fields[key], text)
        except ValueError as exc:
            problems.append(f"--option {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return kwargs


def run(args: argparse.Namespace) -> int:
    """Map and print."""
    try:
        cls = get_mapper(args.mapper)
        sizes = parse_sizes(args.sizes)
        options = parse_options(cls, args.option)
    except KeyError as exc:  # str() of a KeyError quotes its message
        raise UsageError(str(exc.args[0])) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    limits.checked_sizes(sizes)
    cascade = load_cascade(args.cascade)
    arch = load_arch(args.arch)
    result = cls(**options).map(cascade, arch, sizes)
    print(result.to_json() if args.json else format_result(result))
    return 0
