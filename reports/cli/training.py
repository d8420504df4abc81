"""`attnsim cascade passes/show` for the training built-ins: the forward and backward as a pair.

A backward built-in (`attention-1pass-bwd-mh`, ...) names the forward it differentiates
(`einsum_ir.library.forward_name`); these lines are `einsum_ir.analysis.training`'s report
of the pair: passes of each, what crosses from the forward to the backward (words), the
pre-pass, recompute vs store, and the forward + backward FLOP totals.
"""

from __future__ import annotations

from collections.abc import Mapping

from attnsim import einsum_ir
from attnsim.einsum_ir import Cascade
from attnsim.einsum_ir import library as lib
from attnsim.einsum_ir.analysis.training import training_report

TRAINING_FAMILY = "training (backward of a forward built-in: DQ, DK, DV)"
# Sizes the training lines use when none are given (other ranks: 1; params: their values).
DEFAULT_SIZES = {"M": 4096, "P": 4096, "E": 128, "F": 128, "B": 1, "H": 32}


def training_lines(
    cascade: Cascade, sizes: Mapping[str, int] | None, rank: str | None = None
) -> list[str]:
    """The training report of a backward built-in or zoo backward (empty for any other)."""
    from attnsim.einsum_ir.library.zoo_linear import BACKWARD_OF

    if not cascade.source.startswith("<builtin>"):
        return []
    entry = lib.training_entry(cascade.name)
    if entry is not None:
        forward_name, saved = entry.forward.name, entry.saved_from
    elif cascade.name in BACKWARD_OF:  # a zoo backward: nothing saved beyond the inputs
        forward_name, saved = BACKWARD_OF[cascade.name], ()
    else:
        return []
    forward = einsum_ir.load_cascade(forward_name)
    given = dict(sizes) if sizes is not None else _defaults(cascade)
    report = training_report(forward, cascade, saved, given, rank or "M")
    lines = report.describe()
    if sizes is None:
        at = ", ".join(f"{k}={v}" for k, v in given.items())
        lines[0] += f"  (at default sizes {at})"
    return lines


def _defaults(cascade: Cascade) -> dict[str, int]:
    params = {str(n) for n, _ in cascade.params}
    return {str(r): DEFAULT_SIZES.get(str(r), 1) for r in cascade.all_ranks if str(r) not in params}


def training_rows(rank: str | None) -> list[tuple[str, ...]]:
    """`cascade list` rows of the training family: name, parts of the forward, passes."""
    rows: list[tuple[str, ...]] = []
    for name in lib.training_names():
        entry = lib.training_entry(name)
        assert entry is not None
        cascade = einsum_ir.load_cascade(name)
        f = entry.forward
        passes = einsum_ir.count_passes(cascade, rank or "M").passes
        word = f"{passes} pass{'' if passes == 1 else 'es'} over {rank or 'M'}"
        row = (name, f"{f.algorithm}-bwd", str(f.heads), str(f.mask), f.score_text, word)
        rows.append((*row, cascade.description))
    return rows
