"""Size guards for the CLI: absurd sizes, seeds, and `cascade eval`'s memory budget.

The numpy reference executor materialises every tensor and, per Einsum, its whole iteration
space (a contraction broadcasts before it sums). `eval_footprint` bounds that from the sizes
alone, so `cascade eval` refuses a run that would exhaust memory before numpy tries.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass

from attnsim import einsum_ir
from attnsim.einsum_ir import Cascade, SizeError
from attnsim.einsum_ir.check import recurrence_vars
from attnsim.einsum_ir.ir import RankName
from attnsim.einsum_ir.load import MAX_SIZE

EVAL_BUDGET_BYTES = 2 * 2**30  # default `cascade eval --max-memory`
_WORD_BYTES = 8  # the executor computes in float64


def checked_sizes(sizes: Mapping[str, int], option: str = "--sizes") -> dict[str, int]:
    """`sizes` unchanged, or a `SizeError` naming every size above `MAX_SIZE`."""
    big = [f"{k}={v}" for k, v in sizes.items() if v > MAX_SIZE]
    if big:
        raise SizeError(
            f"{option}: {', '.join(big)}: sizes are at most 2^{MAX_SIZE.bit_length() - 1} "
            f"({MAX_SIZE:,})"
        )
    return dict(sizes)


def seed(text: str) -> int:
    """Argparse type for `--seed`: a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def memory_bytes(text: str) -> int:
    """Argparse type for a byte count such as `512MiB`, `4GiB` or `1000000`."""
    units = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "B": 1}
    upper = text.strip().upper()
    suffix = next((s for s in units if upper.endswith(s)), "")
    number, scale = upper[: len(upper) - len(suffix)].strip(), units.get(suffix, 1)
    try:
        value = float(number) * scale
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 4GiB, got {text!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class Footprint:
    """Bytes `cascade eval` would hold at its peak, and the largest single array."""

    total_bytes: int
    largest: str  # e.g. "QK's iteration space M×P×E = 65536×65536×64"


def eval_footprint(cascade: Cascade, sizes: Mapping[str, int]) -> Footprint:
    """An upper bound on the executor's memory: all tensors plus the largest iteration space.

    A recurrence's Einsums run one step at a time, so its index is left out of their spaces.
    """
    bound = einsum_ir.resolve_sizes(cascade, sizes)
    stepped = set(recurrence_vars(cascade).values())
    tensors = 0
    for ranks in cascade.tensor_ranks.values():
        tensors += math.prod(bound.get(r, 1) + (1 if r.lower() in stepped else 0) for r in ranks)
    space, largest = 0, ""
    for e in cascade.einsums:
        space_ranks = [RankName(v.upper()) for v in e.iteration_vars if v not in stepped]
        count = math.prod(bound.get(r, 1) for r in space_ranks)
        if count > space:
            extents = "×".join(str(bound.get(r, 1)) for r in space_ranks)
            names = "×".join(space_ranks)
            space, largest = count, f"{e.output}'s iteration space {names} = {extents}"
    return Footprint((tensors + space) * _WORD_BYTES, largest)


def check_eval_budget(cascade: Cascade, sizes: Mapping[str, int], budget_bytes: int) -> None:
    """A `SizeError` when evaluating at `sizes` needs more than `budget_bytes`.

    The message says how much it needs and suggests sizes that fit (the largest sizes given
    halved until they do).
    """
    need = eval_footprint(cascade, sizes)
    if need.total_bytes <= budget_bytes:
        return
    smaller = dict(sizes)
    for _ in range(256):
        if eval_footprint(cascade, smaller).total_bytes <= budget_bytes:
            break
        key = max(smaller, key=lambda k: smaller[k])
        if smaller[key] == 1:
            break
        smaller[key] = max(1, smaller[key] // 2)
    hint = ",".join(f"{k}={v}" for k, v in smaller.items())
    raise SizeError(
        f"--sizes: evaluating {cascade.name} needs about {_bytes(need.total_bytes)} of memory "
        f"(largest: {need.largest}), over the budget of {_bytes(budget_bytes)} "
        f"(--max-memory); try smaller sizes, e.g. --sizes {hint}"
    )


def _bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    return f"{count} B"
