"""Cascade YAML files and the built-in library: `load_cascade`, `builtin_names`.

The loader builds a `Cascade` from the spec reader, collects parse problems and the
whole-cascade checks of `check.py`, and raises them together as one `SpecError`.
Built-in names resolve through `einsum_ir.library` (cascades built from parts);
`format_cascade` writes any cascade back as YAML that loads to an equal cascade.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from attnsim.einsum_ir.check import check_cascade
from attnsim.einsum_ir.ir import Cascade, Einsum, Gather, Partition, RankName, TensorName
from attnsim.einsum_ir.library import (
    build,
    catalog_names,
    serving_cascade,
    serving_entry,
    serving_names,
    training_cascade,
    training_entry,
    training_names,
    training_notes,
    variant_named,
    zoo_cascade,
    zoo_entry,
    zoo_names,
)
from attnsim.einsum_ir.parse import ParseError, format_einsum, parse_einsum
from attnsim.einsum_ir.spec import Problem, Reader, SpecError, as_number, path_exists

CASCADE_KEYS = (
    "cascade",
    "description",
    "assumptions",
    "inputs",
    "partitions",
    "params",
    "init",
    "einsums",
    "outputs",
    "gathers",
)
_RANK = re.compile(r"^[A-Z][A-Z0-9]*$")
_TENSOR = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*$")


def builtin_names() -> tuple[str, ...]:
    """Names of the built-in catalog, the serving, training and zoo cascades, sorted.

    See `einsum_ir.library.catalog`, `.serving`, `.training` and `.zoo`. Any other
    combination of the library's parts also resolves by name in `load_cascade`.
    """
    return tuple(sorted((*catalog_names(), *serving_names(), *training_names(), *zoo_names())))


def builtin_cascade(name: str) -> Cascade | None:
    """The built-in cascade of that name (catalog or composed from parts), or None."""
    variant = variant_named(name)
    if variant is not None:
        return build(variant)
    return serving_cascade(name) or training_cascade(name) or zoo_cascade(name)


def builtin_text(name: str) -> str:
    """A built-in cascade as YAML text (a starting point for a variant of one's own).

    Raises:
        KeyError: When `name` is no built-in.
    """
    variant = variant_named(name)
    if variant is not None:
        return format_cascade(build(variant), comment=variant.notes)
    backward = training_entry(name)
    if backward is not None:
        return format_cascade(training_cascade(name), comment=training_notes(backward))  # type: ignore[arg-type]
    entry = serving_entry(name) or zoo_entry(name)
    cascade = serving_cascade(name) or zoo_cascade(name)
    if entry is None or cascade is None:
        raise KeyError(f"no built-in cascade {name!r}")
    return format_cascade(cascade, comment=entry.notes)


def load_cascade(path_or_name: str | Path) -> Cascade:
    """Load a cascade from a YAML file or a built-in name.

    Raises `SpecError` listing every problem (file:line:col: path: message).
    """
    text = str(path_or_name)
    if not text.endswith((".yaml", ".yml")):
        builtin = builtin_cascade(text)
        if builtin is not None:
            return builtin
    path = Path(path_or_name)
    if not path_exists(path) and not text.endswith((".yaml", ".yml")):
        import difflib

        close = difflib.get_close_matches(text, builtin_names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SpecError(
            [
                Problem(
                    text,
                    0,
                    0,
                    "",
                    f"no such file or built-in cascade{hint} "
                    f"(built-ins: {', '.join(builtin_names())})",
                )
            ]
        )
    return _load_file(path, display=str(path))


def _load_file(path: Path, display: str) -> Cascade:
    return _load_root(Reader.from_file(path, display))


def load_cascade_text(text: str, file: str = "<string>") -> Cascade:
    """Load a cascade from YAML text; `file` names it in problems."""
    return _load_root(Reader.from_text(text, file))


def _load_root(root: Reader) -> Cascade:
    if root.node is not None and not root.is_map:
        root.error("expected a mapping with keys " + ", ".join(CASCADE_KEYS))
    root.finish()
    opaque: set[str] = set()
    cascade = _build(root, opaque)
    # Structural problems first: checks on a half-built cascade only add noise. Einsums with
    # syntax errors are the exception: the others are still checked, with the outputs of the
    # unparseable ones taken as defined (their names are read from the text before '[').
    if any(not p.path.startswith("einsums[") for p in root.problems):
        root.finish()
    root.problems.extend(check_cascade(cascade, frozenset(opaque)))
    root.finish()
    return cascade


def _build(root: Reader, opaque: set[str]) -> Cascade:
    locations: list[tuple[str, int, int]] = []

    def note(r: Reader) -> None:
        locations.append((r.path, r.line, r.column))

    name_r = root.req("cascade", "str")
    name = str(name_r.value) if name_r else "<unnamed>"
    desc_r = root.opt("description", "str")
    assumptions: list[str] = []
    assume_r = root.opt("assumptions", "list")
    if assume_r is not None:
        for item in assume_r.each():
            if item.check("str"):
                assumptions.append(str(item.value))
    inputs = _inputs(root.req("inputs", "map"), note)
    partitions = _partitions(root.opt("partitions", "map"), note)
    params = _params(root.opt("params", "map"), note)
    init = _init(root.opt("init", "map"), note)
    einsums = _einsums(root.req("einsums", "list"), note, opaque)
    outputs: list[TensorName] = []
    out_r = root.req("outputs", "list")
    if out_r is not None:
        for item in out_r.each():
            note(item)
            if item.check("str") and _name_ok(item, str(item.value), _TENSOR, "tensor"):
                outputs.append(TensorName(str(item.value)))
        if not outputs and not root.problems:
            out_r.error("expected at least one output tensor")
    gathers = _gathers(root.opt("gathers", "map"), inputs, einsums)
    root.done(CASCADE_KEYS)
    return Cascade(
        name=name,
        inputs=tuple(inputs),
        einsums=tuple(einsums),
        outputs=tuple(outputs),
        partitions=tuple(partitions),
        params=tuple(params),
        init=tuple(init),
        description=str(desc_r.value) if desc_r else "",
        source=root.file,
        locations=tuple(locations),
        assumptions=tuple(assumptions),
        gathers=gathers,
    )


def _gathers(
    r: Reader | None,
    inputs: list[tuple[TensorName, tuple[RankName, ...]]],
    einsums: list[Einsum],
) -> tuple[Gather, ...]:
    """`gathers: {KG: {from: K, by: [CS]}}`: input KG holds elements of input K picked by CS."""
    if r is None:
        return ()
    names = [n for n, _ in inputs]
    known = set(names) | {e.output for e in einsums}
    found: list[Gather] = []
    for key, item in r.items():
        ok = key in names
        if not ok:
            item.error(f"{key!r} is not an input; a gather names an input: {', '.join(names)}")
        if not item.check("map"):
            continue
        source_r = item.req("from", "str")
        by_r = item.req("by", "list")
        rank_r = item.opt("rank", "str")
        item.done(("from", "by", "rank"))
        if source_r is not None and str(source_r.value) not in names:
            source_r.error(f"{source_r.value!r} is not an input; expected the one {key} picks from")
            ok = False
        by: list[TensorName] = []
        for b in by_r.each() if by_r is not None else ():
            if b.check("str") and str(b.value) in known:
                by.append(TensorName(str(b.value)))
                continue
            if isinstance(b.value, str):
                b.error(f"{b.value!r} is neither an input nor an Einsum's output")
            ok = False
        if by_r is not None and not by and ok:
            by_r.error("expected the tensors whose values pick the elements (a selector's output)")
            ok = False
        rank = _picked_rank(item, rank_r, dict(inputs), key, source_r)
        if ok and by and (loop := _picks_itself(key, by, einsums, found)):
            by_r.error(  # type: ignore[union-attr]
                f"{key}'s picks depend on {key} itself ({' -> '.join(loop)}): a selection "
                "cannot read the elements it selects"
            )
            ok = False
        if ok and source_r is not None and by and rank:
            found.append(Gather(TensorName(key), TensorName(str(source_r.value)), tuple(by), rank))
    return tuple(found)


def _picks_itself(
    key: str, by: list[TensorName], einsums: list[Einsum], found: list[Gather]
) -> list[str]:
    """A chain from `key` to one of its pick tensors (through Einsums and earlier gathers)."""
    readers: dict[str, list[str]] = {}
    for e in einsums:
        for a in e.inputs:
            readers.setdefault(a.tensor, []).append(e.output)
    for g in found:
        for b in g.by:
            readers.setdefault(b, []).append(g.tensor)
    todo, seen = [[key]], {key}
    while todo:
        path = todo.pop()
        if path[-1] in by:
            return path
        for nxt in readers.get(path[-1], []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append([*path, nxt])
    return []


def _picked_rank(
    item: Reader,
    rank_r: Reader | None,
    ranks: dict[TensorName, tuple[RankName, ...]],
    key: str,
    source_r: Reader | None,
) -> RankName | None:
    """The gathered input's rank that holds the picks: `rank`, or its one rank the source lacks."""
    if key not in ranks or source_r is None or str(source_r.value) not in ranks:
        return None
    new = [r for r in ranks[TensorName(key)] if r not in ranks[TensorName(str(source_r.value))]]
    if rank_r is not None:
        if rank_r.value in new:
            return RankName(str(rank_r.value))
        rank_r.error(f"expected a rank of {key} that {source_r.value} lacks: {', '.join(new)}")
        return None
    if len(new) == 1:
        return new[0]
    item.error(
        f"{key} has {len(new)} ranks {source_r.value} lacks ({', '.join(new) or 'none'}): "
        "name the one holding the picked elements with `rank`"
    )
    return None


def _name_ok(r: Reader, name: str, pattern: re.Pattern[str], what: str) -> bool:
    if pattern.match(name):
        return True
    rule = "uppercase letters and digits" if what == "rank" else "letters, digits and '_'"
    r.error(f"invalid {what} name {name!r}; expected {rule}")
    return False


def _rank_list(r: Reader) -> list[RankName]:
    ranks: list[RankName] = []
    if not r.check("list"):
        return ranks
    for item in r.each():
        if item.check("str") and _name_ok(item, str(item.value), _RANK, "rank"):
            ranks.append(RankName(str(item.value)))
    return ranks


Note = Callable[[Reader], None]
Declaration = tuple[TensorName, tuple[RankName, ...]]


def _inputs(r: Reader | None, note: Note) -> list[Declaration]:
    result: list[Declaration] = []
    if r is None:
        return result
    for key, child in r.items():
        note(child)
        if _name_ok(child, key, _TENSOR, "tensor"):
            result.append((TensorName(key), tuple(_rank_list(child))))
    return result


def _partitions(r: Reader | None, note: Note) -> list[Partition]:
    result: list[Partition] = []
    if r is None:
        return result
    for key, child in r.items():
        note(child)
        parts = _rank_list(child)
        if not _name_ok(child, key, _RANK, "rank"):
            continue
        if len(parts) < 2:
            child.error(f"a partition splits {key} into at least two parts, e.g. [{key}1, {key}0]")
            continue
        if len(set(parts)) != len(parts):
            child.error(f"a partition names each part once, got {', '.join(parts)}")
            continue
        result.append(Partition(RankName(key), tuple(parts)))
    return _acyclic(result, {key: child for key, child in r.items()})


MAX_PARTITION_DEPTH = 16


def _acyclic(partitions: list[Partition], where: dict[str, Reader]) -> list[Partition]:
    """The partitions that split no rank into itself and nest at most `MAX_PARTITION_DEPTH`.

    A part that is (or splits into) the rank being split would expand forever; the others are
    kept. Walked with an explicit stack, so a long chain cannot exhaust the recursion limit.
    """
    parts_of = {p.rank: p.parts for p in partitions}
    kept: list[Partition] = []
    for part in partitions:
        stack: list[tuple[RankName, tuple[RankName, ...]]] = [(part.rank, ())]
        problem = ""
        seen: set[RankName] = set()
        while stack and not problem:
            rank, trail = stack.pop()
            for sub in parts_of.get(rank, ()):
                chain = (*trail, sub)
                if sub == part.rank:
                    via = " -> ".join((part.rank, *chain))
                    problem = f"partition of {part.rank} contains {part.rank} itself ({via})"
                elif len(chain) > MAX_PARTITION_DEPTH:
                    problem = f"partitions nest deeper than {MAX_PARTITION_DEPTH} levels"
                elif sub in parts_of and sub not in seen:
                    seen.add(sub)
                    stack.append((sub, chain))
        if problem:
            where[part.rank].error(problem)
        else:
            kept.append(part)
    return kept


# Largest size of one rank: far beyond any model or sequence, small enough that products of
# a few sizes and offsets stay exact in the int64 and float64 arithmetic downstream.
MAX_SIZE = 2**40


def _params(r: Reader | None, note: Note) -> list[tuple[RankName, int]]:
    result: list[tuple[RankName, int]] = []
    if r is None:
        return result
    for key, child in r.items():
        note(child)
        if not _name_ok(child, key, _RANK, "rank"):
            continue
        if child.check("int"):
            if int(child.value) <= 0:
                child.error(f"expected a positive size, got {child.value}")
            elif int(child.value) > MAX_SIZE:
                child.error(f"expected a size of at most 2^40 ({MAX_SIZE:,}), got {child.value}")
            else:
                result.append((RankName(key), int(child.value)))
    return result


def _init(r: Reader | None, note: Note) -> list[tuple[TensorName, float]]:
    result: list[tuple[TensorName, float]] = []
    if r is None:
        return result
    for key, child in r.items():
        note(child)
        if child.check("number"):
            result.append((TensorName(key), as_number(child.value)))
    return result


_OUTPUT_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z_0-9]*)\s*\[")


def _einsums(r: Reader | None, note: Note, opaque: set[str]) -> list[Einsum]:
    result: list[Einsum] = []
    if r is None:
        return result
    for item in r.each():
        note(item)
        if not item.check("str"):
            continue
        text = str(item.value)
        try:
            parsed = parse_einsum(text)
        except ParseError as exc:
            item.error(f"syntax error: {exc.message}\n{exc.caret()}", column_offset=exc.column)
            name = _OUTPUT_NAME.match(text)
            if name:
                opaque.add(name.group(1))
            continue
        result.append(
            Einsum(parsed.out, parsed.expr, parsed.where, line=item.line, column=item.column)
        )
    if not result and not r.problems:
        r.error("expected at least one Einsum")
    return result


# ----------------------------------------------------------------------------- writing


def format_cascade(cascade: Cascade, comment: str = "") -> str:
    """The cascade as YAML text that `load_cascade_text` loads to an equal cascade.

    `comment` (several lines) becomes the file's leading `#` comment.
    """
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    lines.append(f"cascade: {json.dumps(cascade.name)}")
    if cascade.description:
        lines.append(f"description: {json.dumps(cascade.description)}")
    if cascade.assumptions:
        stated = tuple(json.dumps(a) for a in cascade.assumptions)
        lines.append("assumptions: " + _flow_list(stated))
    lines.append("inputs: " + _flow_map((n, _flow_list(r)) for n, r in cascade.inputs))
    if cascade.partitions:
        parts = ((p.rank, _flow_list(p.parts)) for p in cascade.partitions)
        lines.append("partitions: " + _flow_map(parts))
    if cascade.params:
        lines.append("params: " + _flow_map((n, str(v)) for n, v in cascade.params))
    if cascade.init:
        lines.append("init: " + _flow_map((n, _yaml_number(v)) for n, v in cascade.init))
    lines.append("einsums:")
    lines += [f"  - {json.dumps(format_einsum(e))}" for e in cascade.einsums]
    lines.append(f"outputs: {_flow_list(cascade.outputs)}")
    if cascade.gathers:
        picks = (
            (g.tensor, "{" + f"from: {g.source}, by: {_flow_list(g.by)}, rank: {g.rank}" + "}")
            for g in cascade.gathers
        )
        lines.append("gathers: " + _flow_map(picks))
    return "\n".join(lines) + "\n"


def _flow_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(items) + "]"


def _flow_map(items: Iterable[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"


def _yaml_number(value: float) -> str:
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
