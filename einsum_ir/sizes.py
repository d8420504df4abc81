"""Binding rank sizes: user sizes + cascade params -> a size for every rank and part.

The outermost part of a partition is derived: M1 = ceil(M / (M0 * ...)). Points whose
unpartitioned index m = m1 * M0 + m0 falls at or beyond M are outside the iteration space.
Params may also declare size symbols that are not ranks (a window `W`); they are sized,
overridden and swept like ranks and appear in the resolved sizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from attnsim.einsum_ir.ir import Cascade, IndexName, RankName


class SizeError(ValueError):
    """Sizes that do not bind every rank of a cascade (lists every problem)."""


def resolve_sizes(cascade: Cascade, sizes: Mapping[str, int]) -> dict[RankName, int]:
    """Sizes of every rank and param of `cascade`; user `sizes` override the `params`.

    Raises `SizeError` naming every missing, unknown or non-positive size at once.
    """
    known = set(cascade.size_symbols)
    derived = {p.parts[0] for p in cascade.partitions}
    problems: list[str] = []
    bound: dict[RankName, int] = {RankName(k): v for k, v in cascade.params}
    for key, value in sizes.items():
        rank = RankName(key)
        if rank not in known:
            names = ", ".join(sorted(cascade.all_ranks))
            others = [n for n in cascade.size_symbols if n not in cascade.all_ranks]
            extra = f"; params: {', '.join(sorted(others))}" if others else ""
            problems.append(f"unknown rank {key} (ranks of {cascade.name}: {names}{extra})")
        elif rank in derived:
            problems.append(f"{key} is derived from its partition and cannot be set")
        elif not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            problems.append(f"size of {key} must be a positive integer, got {value!r}")
        else:
            bound[rank] = value
    for part in cascade.partitions:
        inner = 1
        for p in part.parts[1:]:
            inner *= bound.get(p, 0) or 1
        if part.rank in bound:
            bound[part.parts[0]] = max(1, math.ceil(bound[part.rank] / inner))
    missing = [r for r in cascade.all_ranks if r not in bound]
    if missing:
        problems.append(f"missing sizes for {', '.join(missing)}")
    if problems:
        raise SizeError("; ".join(problems))
    return bound


def var_sizes(cascade: Cascade, ranks: Mapping[RankName, int]) -> dict[IndexName, int]:
    """Extent of each index variable (the lowercase name of each rank)."""
    return {IndexName(r.lower()): n for r, n in ranks.items()}


def parse_sizes(text: str) -> dict[str, int]:
    """Parse `M=64,P=32,E=16` (CLI form); raises `SizeError` naming every malformed item.

    A size may end in K (x 1024) or M (x 1048576), as lengths do in experiment files (`M=4K`).
    """
    scales = {"K": 2**10, "M": 2**20}
    result: dict[str, int] = {}
    problems: list[str] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        digits = value.strip().upper()
        scale = scales.get(digits[-1:], 1)
        digits = digits[:-1] if scale > 1 else digits
        if not sep or not key.strip() or not digits.isdigit() or int(digits) <= 0:
            problems.append(
                f"expected RANK=SIZE (a positive integer such as 64, 4K or 1M), got {item!r}"
            )
            continue
        result[key.strip()] = int(digits) * scale
    if problems:
        raise SizeError("; ".join(problems))
    return result
