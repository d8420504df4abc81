"""`attnsim cascade ...`: list, show, count passes of, check and evaluate Einsum cascades.

Formatting functions are pure (they return lines); the `_run_*` handlers print them.
Built-ins come from parts (`einsum_ir.library`): `list` shows and filters them by part,
`show` adds the attention problem the cascade states (roles, mask, score, sharing).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnsim import einsum_ir
from attnsim.einsum_ir import Cascade, OpCounts, PassReport, Problem, SizeError, SpecError
from attnsim.einsum_ir import library as lib
from attnsim.einsum_ir.analysis.buffers import BoundaryFootprint, boundary_footprints
from attnsim.einsum_ir.analysis.recurrent import state_report
from attnsim.einsum_ir.analysis.structure import StructureError, attention_problem
from attnsim.einsum_ir.load import builtin_text, format_cascade
from attnsim.reports.cli import limits
from attnsim.reports.cli.training import TRAINING_FAMILY, training_lines, training_rows

if TYPE_CHECKING:
    from attnsim.einsum_ir.analysis.passes import EinsumPass

DEFAULT_RANK = "M"
# Sizes `show` describes the attention problem at when none are given (a long-context
# prefill with Llama-3-8B-like heads); other ranks default to 1, params to their values.
DEFAULT_SIZES = {"M": 4096, "P": 4096, "E": 128, "F": 128, "B": 1, "H": 32, "G": 8, "R": 4}


from attnsim.reports.cli.parsers import Subparsers  # noqa: E402  (re-exported for older callers)


def add_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """Register `cascade` and its subcommands."""
    group = subparsers.add_parser(
        "cascade",
        help="inspect, check and evaluate Einsum cascades",
        description="Inspect, check and evaluate Einsum cascades (built-in names or YAML files).",
    )
    group.set_defaults(group_parser=group)
    sub = group.add_subparsers(dest="cascade_command", metavar="SUBCOMMAND")

    p = sub.add_parser(
        "list",
        help="list the built-in cascades and their parts",
        description="List the built-in cascades: name, algorithm, heads, mask, score, passes "
        "and description, grouped by family under `# FAMILY` lines (filtered lists have no "
        "such lines). Names are attention-ALGORITHM[-HEADS][-MASK][-sigmoid][-MODIFIER]; every "
        "combination of parts resolves, --all lists them; the variant zoo (static masks, head "
        "and K/V structure, linear / recurrent) follows the serving cascades.",
    )
    p.add_argument("--rank", default=DEFAULT_RANK, help="rank to count passes over (default M)")
    p.add_argument("--all", action="store_true", help="every combination of parts, not the catalog")
    p.add_argument("--algorithm", choices=[str(a) for a in lib.Algorithm], help="filter")
    p.add_argument("--heads", choices=[str(h) for h in lib.Heads], help="filter")
    p.add_argument("--mask", choices=[str(m) for m in lib.MaskForm], help="filter")
    scores = [str(s) for s in lib.ScoreForm] + [str(m) for m in lib.ScoreModifier][1:]
    p.add_argument("--score", choices=scores, help="filter: function or modifier")
    p.set_defaults(handler=_run_list)

    p = sub.add_parser("show", help="print a cascade's Einsums with their pass numbers")
    _add_cascade_arg(p)
    p.add_argument(
        "--sizes", help="rank sizes, e.g. M=4096,P=4096,E=64,F=64: adds op counts and tensor sizes"
    )
    _add_rank_arg(p)
    p.add_argument(
        "--yaml", action="store_true", help="print the cascade as a YAML file (to edit a copy)"
    )
    p.set_defaults(handler=_run_show)

    p = sub.add_parser("passes", help="count the passes a cascade makes over a rank")
    _add_cascade_arg(p)
    _add_rank_arg(p)
    p.add_argument(
        "--sizes", help="rank sizes for a backward built-in's training report (words, FLOPs)"
    )
    p.set_defaults(handler=_run_passes)

    p = sub.add_parser("check", help="validate cascade files, reporting every problem")
    p.add_argument("files", nargs="+", metavar="FILE", help="cascade YAML files")
    _add_rank_arg(p)
    p.set_defaults(handler=_run_check)

    p = sub.add_parser("eval", help="evaluate a cascade on random inputs (numpy reference)")
    _add_cascade_arg(p)
    p.add_argument("--sizes", required=True, help="rank sizes, e.g. M=64,P=32,E=16,F=16")
    p.add_argument("--seed", type=limits.seed, default=0, help="random seed (default 0)")
    p.add_argument(
        "--max-memory",
        type=limits.memory_bytes,
        default=limits.EVAL_BUDGET_BYTES,
        metavar="BYTES",
        help="refuse sizes whose arrays need more than this (default 2GiB)",
    )
    p.set_defaults(handler=_run_eval)


def _add_cascade_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("cascade", metavar="NAME|FILE", help="built-in cascade name or YAML file")


def _add_rank_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rank", help="rank to count passes over (default M when present)")


# ----------------------------------------------------------------------------- handlers


PARTS_FAMILY = "composed from parts (algorithm x heads x mask x score)"
SERVING_FAMILY = "serving (MLA, split-K, decode)"


def _run_list(args: argparse.Namespace) -> int:
    names = lib.all_names() if args.all else einsum_ir.builtin_names()
    variants = [v for n in names if (v := lib.variant_named(n)) is not None]
    chosen = select_variants(variants, args.algorithm, args.heads, args.mask, args.score)
    groups: dict[str, list[tuple[str, ...]]] = {PARTS_FAMILY: []}
    for variant in chosen:
        cascade = einsum_ir.load_cascade(variant.name)
        passes = _pass_count_text(cascade, args.rank)
        groups[PARTS_FAMILY].append((*variant_columns(variant), passes, cascade.description))
    filtered = bool(args.all or args.algorithm or args.heads or args.mask or args.score)
    if not (args.algorithm or args.heads or args.mask or args.score):
        groups[SERVING_FAMILY] = []
        for name in lib.serving_names():  # MLA, split-K, decode: outside the parts product
            cascade = einsum_ir.load_cascade(name)
            passes = _pass_count_text(cascade, args.rank)
            groups[SERVING_FAMILY].append((name, "-", "-", "-", "-", passes, cascade.description))
        groups[TRAINING_FAMILY] = training_rows(args.rank)  # backward built-ins
        for entry in lib.ZOO:  # the variant zoo, by family (masks, head structure, linear)
            cascade = einsum_ir.load_cascade(entry.name)
            passes = _pass_count_text(cascade, args.rank)
            row = (entry.name, entry.algorithm, entry.heads, entry.mask, entry.score, passes)
            groups.setdefault(entry.family, []).append((*row, cascade.description))
    print("\n".join(format_groups(groups, headers=not filtered)))
    return 0


def format_groups(groups: Mapping[str, Sequence[tuple[str, ...]]], headers: bool) -> list[str]:
    """Each non-empty group after a `# family` line (with `headers`), as aligned columns.

    The parts and serving groups are aligned as one table (their lines are those of the
    list before the zoo); every other family is aligned on its own.
    """
    joint = (PARTS_FAMILY, SERVING_FAMILY)
    shared = iter(format_table([r for g in joint for r in groups.get(g, ())]))
    lines = dict.fromkeys(joint, shared)
    out: list[str] = []
    for family, group in groups.items():
        if not group:
            continue
        if headers:
            out.append(f"# {family}")
        rows = lines.get(family) or iter(format_table(list(group)))
        out += [next(rows) for _ in group]
    return out


def select_variants(
    variants: Sequence[lib.Variant],
    algorithm: str | None = None,
    heads: str | None = None,
    mask: str | None = None,
    score: str | None = None,
) -> list[lib.Variant]:
    """The variants whose parts match every filter given (`score`: function or modifier)."""
    return [
        v
        for v in variants
        if (algorithm is None or v.algorithm == algorithm)
        and (heads is None or v.heads == heads)
        and (mask is None or v.mask == mask)
        and (score is None or score in (v.score, v.modifier))
    ]


def variant_columns(variant: lib.Variant) -> tuple[str, str, str, str, str]:
    """Name, algorithm, heads, mask and score of a built-in variant."""
    return (
        variant.name,
        str(variant.algorithm),
        str(variant.heads),
        str(variant.mask),
        variant.score_text,
    )


def _run_show(args: argparse.Namespace) -> int:
    sizes = parse_sizes_arg(args.sizes) if args.sizes is not None else None
    cascade = einsum_ir.load_cascade(args.cascade)
    if args.yaml:
        builtin = cascade.source.startswith("<builtin>")
        print(builtin_text(cascade.name) if builtin else format_cascade(cascade), end="")
        return 0
    if sizes is not None:
        einsum_ir.resolve_sizes(cascade, sizes)  # report bad sizes before any work
    report = count_passes(cascade, args.rank)
    lines = format_header(cascade) + [""]
    if sizes is None:
        lines += format_passes(report)
    else:
        counts = einsum_ir.count_ops(cascade, sizes)
        footprints = boundary_footprints(cascade, sizes, report.rank)
        flops = {e.index: e.flops for e in counts.per_einsum}
        lines += format_passes(report, flops, {f.after_pass: f for f in footprints})
        lines += [""] + format_op_counts(counts)
        lines += [""] + format_tensor_sizes(cascade, einsum_ir.tensor_sizes(cascade, sizes))
    lines += [""] + format_attention_problem(cascade, sizes)
    state = format_state(cascade, sizes, str(report.rank))
    lines += [""] + state if state else []
    training = training_lines(cascade, sizes, args.rank)
    lines += [""] + training if training else []
    print("\n".join(lines))
    return 0


def default_sizes(cascade: Cascade) -> dict[str, int]:
    """`DEFAULT_SIZES` for the cascade's ranks (1 for others); params keep their values."""
    derived = {str(p.parts[0]) for p in cascade.partitions}
    params = {str(n) for n, _ in cascade.params}
    skip = derived | params
    return {str(r): DEFAULT_SIZES.get(str(r), 1) for r in cascade.all_ranks if str(r) not in skip}


def format_attention_problem(cascade: Cascade, sizes: Mapping[str, int] | None) -> list[str]:
    """The attention problem the cascade states (`attention_problem(...).describe()`).

    Without `sizes` it is described at `default_sizes(cascade)`, and says so.
    """
    given = dict(sizes) if sizes is not None else default_sizes(cascade)
    at = ", ".join(f"{k}={v}" for k, v in given.items())
    title = "attention problem" + ("" if sizes is not None else f" (at default sizes {at})")
    if sizes is None and cascade.params:
        title += " and params " + ", ".join(f"{n}={v}" for n, v in cascade.params)
    try:
        problem = attention_problem(cascade, given)
    except (StructureError, SizeError) as exc:
        return [f"{title}: not read: {exc}"]
    lines = [f"{title}:"] + ["  " + line for line in problem.describe().splitlines()]
    if problem.mask.kind != "generic":
        lines.append(f"  visible (query, key) pairs per head: {problem.points():,}")
    lines += [f"  note: {note}" for note in problem.notes]
    return lines


def _run_passes(args: argparse.Namespace) -> int:
    cascade = einsum_ir.load_cascade(args.cascade)
    sizes = parse_sizes_arg(args.sizes) if args.sizes is not None else None
    report = count_passes(cascade, args.rank)
    lines = format_pass_summary(cascade, report) + format_input_reads(report)
    lines += format_state(cascade, sizes, str(report.rank))
    print("\n".join(lines + training_lines(cascade, sizes, args.rank)))
    return 0


def format_state(cascade: Cascade, sizes: Mapping[str, int] | None, rank: str) -> list[str]:
    """The recurrent state and the chunk trade-off (`analysis.recurrent`); [] without a state.

    Without `sizes` it is sized at `default_sizes(cascade)`, and says so.
    """
    if rank != pass_rank(cascade, None):  # the state summarises the key rank (M) only
        return []
    given = dict(sizes) if sizes is not None else default_sizes(cascade)
    lines = state_report(cascade, given, rank).describe()
    if lines and sizes is None:
        at = ", ".join(f"{k}={v}" for k, v in given.items())
        lines[0] = lines[0].removesuffix(":") + f" at default sizes {at}:"
    return lines


def format_input_reads(report: PassReport) -> list[str]:
    """A line per input that several Einsums or passes read (MLA's latent as K and V)."""
    lines = []
    for read in report.input_reads:
        if len(read.readers) < 2 and len(read.passes) < 2:
            continue
        times = "once" if len(read.passes) == 1 else f"in {len(read.passes)} passes"
        role = f" (one read serves {', '.join(read.readers)})" if len(read.readers) > 1 else ""
        lines.append(f"  reads {read.tensor} {times}{role}")
    return lines


def _run_check(args: argparse.Namespace) -> int:
    status = 0
    for file in args.files:
        try:
            cascade = einsum_ir.load_cascade(file)
        except SpecError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            status = 2
            continue
        passes = _pass_count_text(cascade, args.rank)
        print(f"{file}: ok: {len(cascade.einsums)} Einsums, {passes}")
    return status


def _run_eval(args: argparse.Namespace) -> int:
    sizes = parse_sizes_arg(args.sizes)
    cascade = einsum_ir.load_cascade(args.cascade)
    einsum_ir.resolve_sizes(cascade, sizes)  # report bad sizes before any work
    limits.check_eval_budget(cascade, sizes, args.max_memory)
    inputs = einsum_ir.random_inputs(cascade, sizes, seed=args.seed)
    values = einsum_ir.evaluate(cascade, inputs, sizes)
    outputs = {str(name): np.asarray(values[name]) for name in cascade.outputs}
    print("\n".join(format_stats(outputs)))
    return 0


# ----------------------------------------------------------------------------- helpers


def parse_sizes_arg(text: str) -> dict[str, int]:
    """`--sizes` text as a dict; a malformed item becomes a `SizeError` naming the option."""
    try:
        sizes = einsum_ir.parse_sizes(text)
    except ValueError as exc:
        raise SizeError(f"--sizes: {exc}") from None
    return limits.checked_sizes(sizes)


def pass_rank(cascade: Cascade, requested: str | None) -> str:
    """The rank to count passes over: `requested`, else M, else the first partitioned rank."""
    ranks = cascade.all_ranks
    if requested is not None:
        if requested not in ranks:
            raise SizeError(
                f"--rank: {cascade.name} has no rank {requested} (ranks: {', '.join(ranks)})"
            )
        return requested
    if DEFAULT_RANK in ranks:
        return DEFAULT_RANK
    if cascade.partitions:
        return cascade.partitions[0].rank
    return ranks[0]


def count_passes(cascade: Cascade, requested: str | None) -> PassReport:
    """`einsum_ir.count_passes` over `pass_rank(...)`; its ValueError becomes a SpecError."""
    rank = pass_rank(cascade, requested)
    try:
        return einsum_ir.count_passes(cascade, rank)
    except ValueError as exc:  # e.g. a recurrence that needs its own final value
        raise SpecError([Problem(cascade.source, 0, 0, "", f"passes over {rank}: {exc}")]) from None


def _pass_count_text(cascade: Cascade, requested: str | None) -> str:
    return _pass_word(count_passes(cascade, requested))


def format_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Rows as left-aligned columns separated by two spaces (last column unpadded)."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)] + [r[-1]]).rstrip()
        for r in rows
    ]


def format_header(cascade: Cascade) -> list[str]:
    """Name, source, description, parts (built-ins), inputs, partitions, params, init, outputs."""
    lines = [f"cascade {cascade.name}" + (f"  ({cascade.source})" if cascade.source else "")]
    if cascade.description:
        lines.append(f"  {cascade.description}")
    builtin = cascade.source.startswith("<builtin>")
    variant = lib.variant_named(cascade.name) if builtin else None
    backward = lib.training_entry(cascade.name) if builtin else None
    if backward is not None:
        saved = ", ".join(backward.saved) or "nothing"
        lines.append(f"backward of: {backward.forward.name} (saved by it: {saved})")
    if variant is not None:
        _, algorithm, heads, mask, score = variant_columns(variant)
        lines.append(
            f"parts:      algorithm {algorithm}, heads {heads}, mask {mask}, score {score}"
        )
    inputs = ", ".join(f"{n}[{','.join(r)}]" for n, r in cascade.inputs)
    lines.append(f"inputs:     {inputs}")
    if cascade.partitions:
        parts = ", ".join(f"{p.rank} -> {' x '.join(p.parts)}" for p in cascade.partitions)
        lines.append(f"partitions: {parts}")
    if cascade.params:
        lines.append("params:     " + ", ".join(f"{r}={v}" for r, v in cascade.params))
    if cascade.init:
        lines.append("init:       " + ", ".join(f"{t}={_number(v)}" for t, v in cascade.init))
    lines.append(f"outputs:    {', '.join(cascade.outputs)}")
    return lines


def _phases(report: PassReport) -> list[tuple[str, list[EinsumPass]]]:
    """Einsums grouped by when they run: "pass k" (iterating the rank) or "after pass k".

    Phases come in execution order: before pass 1, pass 1, after pass 1, pass 2, ...
    """
    phases: dict[tuple[int, int], list[EinsumPass]] = {}
    for rec in report.einsum_passes:
        key = (rec.pass_number, 0 if rec.iterates_rank else 1)
        phases.setdefault(key, []).append(rec)
    result = []
    for (number, after), records in sorted(phases.items()):
        if not after:
            title = f"pass {number}"
        elif number == 0:
            title = "before pass 1" if report.passes else "independent of the rank"
        else:
            title = f"after pass {number}"
            merged = ",".join(report.merge_ranks)
            if merged and any(r.is_merge for r in records):
                title += f" (merge over {merged}: per-split partial states, not the keys)"
        result.append((title, records))
    return result


def _crossing(
    report: PassReport, title: str, footprints: Mapping[int, BoundaryFootprint] | None
) -> str | None:
    """The boundary line to print before phase `title`, when it starts a new pass."""
    for b in report.boundaries:
        if title == f"pass {b.after_pass + 1}":
            buffered = ", ".join(b.buffered) or "-"
            carried = ", ".join(b.carried) or "-"
            line = f"crossing into pass {b.after_pass + 1}: buffered {buffered}; carried {carried}"
            footprint = (footprints or {}).get(b.after_pass)
            if footprint is not None:
                line += (
                    f" ({footprint.buffered_elements:,} + {footprint.carried_elements:,} elements)"
                )
            return line
    return None


def _pass_word(report: PassReport) -> str:
    return f"{report.passes} pass{'' if report.passes == 1 else 'es'} over {report.rank}"


def format_passes(
    report: PassReport,
    flops: Mapping[int, int] | None = None,
    footprints: Mapping[int, BoundaryFootprint] | None = None,
) -> list[str]:
    """Einsums numbered 1.. (cascade order) under the pass they run in or after.

    Before each pass after the first, the tensors crossing that boundary: `buffered` ones
    are indexed by the rank (kept on chip or spilled), `carried` ones are not. With `flops`
    (by Einsum index) each Einsum shows its operation count; with `footprints` (by pass)
    each crossing shows its buffered + carried elements.
    """
    lines = [_pass_word(report) + ("  (with FLOPs per Einsum)" if flops is not None else "")]
    width = len(str(len(report.einsum_passes)))
    ops_width = max((len(f"{n:,}") for n in (flops or {}).values()), default=0)
    for title, records in _phases(report):
        crossing = _crossing(report, title, footprints)
        if crossing:
            lines.append(f"  -- {crossing}")
        lines.append(f"{title}:")
        for rec in records:
            ops = f"{flops.get(rec.index, 0):>{ops_width},}  " if flops is not None else ""
            lines.append(f"  {rec.index + 1:>{width}}  {ops}{rec.text}")
    return lines


def format_pass_summary(cascade: Cascade, report: PassReport) -> list[str]:
    """One line per phase naming the tensors its Einsums define, with each boundary."""
    lines = [f"{cascade.name}: {_pass_word(report)}"]
    for title, records in _phases(report):
        crossing = _crossing(report, title, None)
        if crossing:
            lines.append(f"  -- {crossing}")
        lines.append(f"  {title}: {', '.join(rec.output for rec in records)}")
    return lines


def format_op_counts(counts: OpCounts) -> list[str]:
    """Operation totals by kind (kinds that occur), then all of them as FLOPs."""
    rows = [(str(kind), f"{n:,}") for kind, n in counts.total.items() if n]
    rows.append(("flops", f"{counts.flops:,}"))
    return ["operations:"] + ["  " + line for line in format_table(_right(rows))]


def format_tensor_sizes(cascade: Cascade, sizes: Mapping[str, Any]) -> list[str]:
    """Elements (or whatever `tensor_sizes` reports) of every tensor, in cascade order."""
    ranks = cascade.tensor_ranks
    rows = [
        (str(t), f"[{','.join(ranks.get(einsum_ir.ir.TensorName(t), ()))}]", _size_text(n))
        for t, n in sizes.items()
    ]
    return ["tensor sizes (elements):"] + ["  " + line for line in format_table(_right(rows))]


def _right(rows: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Right-align the last column (numbers) by padding it to a common width."""
    if not rows:
        return []
    width = max(len(r[-1]) for r in rows)
    return [(*r[:-1], r[-1].rjust(width)) for r in rows]


def _size_text(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_stats(outputs: Mapping[str, np.ndarray[Any, Any]]) -> list[str]:
    """Shape, mean, std, min, max and finiteness of each output tensor."""
    rows: list[tuple[str, ...]] = []
    for name, array in outputs.items():
        values = np.asarray(array, dtype=np.float64)
        finite = bool(np.all(np.isfinite(values)))
        stats = [float(f(values)) for f in (np.mean, np.std, np.min, np.max)] if values.size else []
        text = ["-"] * 4 if not stats else [f"{v:.6g}" for v in stats]
        rows.append(
            (
                name,
                f"shape={tuple(values.shape)}",
                f"mean={text[0]}",
                f"std={text[1]}",
                f"min={text[2]}",
                f"max={text[3]}",
                f"finite={'yes' if finite else 'NO'}",
            )
        )
    return format_table(rows)


def _number(value: float) -> str:
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:g}"
