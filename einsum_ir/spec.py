"""Path-aware YAML reader: every value knows its file, line, column and YAML path.

Problems are appended to a shared list and raised together as one `SpecError`, so a user
sees every mistake in a file at once. `archs` and `reports` reuse this reader.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Problem:
    """One user-input problem, printed as `file:line:col: path: message`."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path or '<top>'}: {self.message}"


class SpecError(Exception):
    """Every problem found in one or more input files."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


_KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "number": (int, float),
    "bool": (bool,),
    "list": (list,),
    "map": (dict,),
}
_KIND_WORDS = {
    "str": "a string",
    "int": "an integer",
    "number": "a number",
    "bool": "true or false",
    "list": "a list",
    "map": "a mapping",
}


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e30` and `-1.0e30` as floats.

    YAML 1.2 reads them as numbers; PyYAML follows YAML 1.1, which wants a dot and a signed
    exponent, and would leave them strings.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


_SCALARS = _Loader("")  # one constructor for every scalar (a new one per scalar cost ~10 us)


def _construct(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        try:
            return _SCALARS.construct_object(node, deep=True)
        except yaml.YAMLError:
            return str(node.value)  # a scalar with a tag SafeLoader does not know (`=`)
        finally:  # stateless between scalars: forget what was constructed
            _SCALARS.constructed_objects.clear()
            _SCALARS.recursive_objects.clear()
    if isinstance(node, yaml.SequenceNode):
        return [_construct(n) for n in node.value]
    if isinstance(node, yaml.MappingNode):
        return {_hashable(_construct(k)): _construct(v) for k, v in node.value}
    return None


def _hashable(key: Any) -> Any:
    # YAML allows a list or mapping as a key; Python dicts do not.
    return key if isinstance(key, (str, int, float, bool, type(None))) else str(key)


def _matches(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if isinstance(value, bool) and kind != "bool":
        return False
    if kind == "number" and isinstance(value, str):
        return value.strip().lower() in ("inf", "-inf", "+inf")
    return isinstance(value, _KINDS[kind])


def as_number(value: Any) -> float:
    """A YAML number, accepting the strings `inf` and `-inf` that YAML leaves unparsed."""
    if isinstance(value, str):
        return math.copysign(math.inf, -1.0 if value.strip().startswith("-") else 1.0)
    return float(value)


class Reader:
    """A YAML node with its location; collects problems into a shared list."""

    def __init__(self, node: yaml.Node | None, file: str, path: str, problems: list[Problem]):
        self.node = node
        self.file = file
        self.path = path
        self.problems = problems

    # -- construction
    @classmethod
    def from_text(cls, text: str, file: str) -> Reader:
        """Compose YAML text; a YAML syntax error becomes a problem (raised at `finish`)."""
        problems: list[Problem] = []
        try:
            node = yaml.compose(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            reason = getattr(exc, "problem", None) or str(exc)
            problems.append(Problem(file, line, col, "", f"YAML syntax error: {reason}"))
            node = None
        return cls(node, file, "", problems)

    @classmethod
    def from_file(cls, path: str | Path) -> Reader:
        """Read and compose a YAML file; a missing file is a problem, not a crash."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            reader = cls(None, str(path), "", [])
            reader.problems.append(Problem(str(path), 0, 0, "", f"cannot read: {exc.strerror}"))
            return reader
        return cls.from_text(text, str(path))

    # -- location and problems
    @property
    def line(self) -> int:
        """1-based line of this node (0 when unknown)."""
        return self.node.start_mark.line + 1 if self.node is not None else 0

    @property
    def column(self) -> int:
        """1-based column of this node (0 when unknown)."""
        return self.node.start_mark.column + 1 if self.node is not None else 0

    def error(self, message: str, column_offset: int | None = None) -> None:
        """Record a problem at this node (optionally at a column inside a scalar)."""
        col = self.column
        if column_offset is not None and self.node is not None:
            col += column_offset + (1 if self._is_quoted() else 0)
        self.problems.append(Problem(self.file, self.line, col, self.path, message))

    def _is_quoted(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode) and self.node.style in ("'", '"')

    def finish(self) -> None:
        """Raise one `SpecError` holding every problem recorded so far, if any."""
        if self.problems:
            raise SpecError(self.problems)

    # -- values
    @property
    def value(self) -> Any:
        """The plain Python value of this node."""
        return _construct(self.node) if self.node is not None else None

    @property
    def is_map(self) -> bool:
        """Whether this node is a YAML mapping."""
        return isinstance(self.node, yaml.MappingNode)

    def check(self, kind: str) -> bool:
        """Record a problem unless this node's value is of `kind`; return whether it is."""
        if self.node is None or not _matches(self.value, kind):
            got = "nothing" if self.node is None else repr(self.value)
            self.error(f"expected {_KIND_WORDS.get(kind, kind)}, got {got}")
            return False
        return True

    def _pairs(self) -> list[tuple[str, Reader]]:
        if not isinstance(self.node, yaml.MappingNode):
            return []
        pairs: list[tuple[str, Reader]] = []
        seen: set[str] = set()
        for key_node, value_node in self.node.value:
            key = str(_construct(key_node))
            child = Reader(value_node, self.file, self._child_path(key), self.problems)
            if key in seen:
                child.error(f"key {key!r} given twice")
            seen.add(key)
            pairs.append((key, child))
        return pairs

    def _child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Reader | None:
        """The child at `key`, or None when absent."""
        for k, child in self._pairs():
            if k == key:
                return child
        return None

    def req(self, key: str, kind: str = "any") -> Reader | None:
        """A required child of `kind`; records a problem and returns None when missing/wrong."""
        if not self.is_map:
            return None
        child = self.get(key)
        if child is None:
            self.error(f"missing required key {key!r}")
            return None
        return child if child.check(kind) else None

    def opt(self, key: str, kind: str = "any") -> Reader | None:
        """An optional child of `kind`; None when absent (or wrong, with a problem recorded)."""
        child = self.get(key)
        if child is None:
            return None
        return child if child.check(kind) else None

    def items(self) -> Iterator[tuple[str, Reader]]:
        """Key/child pairs of a mapping node."""
        yield from self._pairs()

    def each(self) -> Iterator[Reader]:
        """Children of a sequence node, with `[i]` paths."""
        if isinstance(self.node, yaml.SequenceNode):
            for i, node in enumerate(self.node.value):
                yield Reader(node, self.file, self._child_path(i), self.problems)

    def done(self, known: tuple[str, ...] | list[str]) -> None:
        """Record a problem for every key not in `known`, suggesting the closest one."""
        for key, child in self._pairs():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                child.error(f"unknown key {key!r}; {hint}known keys: {', '.join(known)}")
