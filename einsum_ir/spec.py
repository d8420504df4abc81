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


# Limits on what a spec file may ask of the reader; real files are far inside them.
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64  # nested collections
MAX_NODES = 200_000  # values in the document with every alias expanded
_MAX_REPORTED = 10  # problems of one kind reported per file


def path_exists(path: str | Path) -> bool:
    """Whether `path` exists; False for names no file system accepts (too long, NUL bytes)."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _decode_problems(data: bytes, file: str) -> list[Problem]:
    """One problem per byte run that is not UTF-8 (the first `_MAX_REPORTED`)."""
    problems: list[Problem] = []
    start = 0
    while len(problems) < _MAX_REPORTED:
        try:
            data[start:].decode("utf-8")
            break
        except UnicodeDecodeError as exc:
            bad = start + exc.start
            line = data.count(b"\n", 0, bad) + 1
            col = bad - (data.rfind(b"\n", 0, bad) + 1) + 1
            byte = data[bad : bad + 1].hex()
            message = f"byte 0x{byte} is not UTF-8 text; save the file as UTF-8"
            problems.append(Problem(file, line, col, "", message))
            start += exc.end
    return problems


def _yaml_problem(exc: yaml.YAMLError, text: str, file: str) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    if isinstance(exc, yaml.reader.ReaderError):
        line, col = _line_col(text, exc.position)
    reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return Problem(file, line, col, "", f"YAML syntax error: {reason}")


def _control_characters(text: str, file: str) -> list[Problem]:
    """Characters YAML does not allow (the first `_MAX_REPORTED`), each located."""
    problems: list[Problem] = []
    for match in yaml.reader.Reader.NON_PRINTABLE.finditer(text):
        line, col = _line_col(text, match.start())
        char = f"U+{ord(match.group()[0]):04X}"
        message = f"control character {char} is not allowed; remove it"
        problems.append(Problem(file, line, col, "", message))
        if len(problems) >= _MAX_REPORTED:
            break
    return problems


class _Open:
    """A collection still open in `_screen`'s event walk: its anchor, size and position."""

    def __init__(self, anchor: str | None, is_map: bool) -> None:
        self.anchor = anchor
        self.is_map = is_map
        self.size = 1
        self.count = 0  # children seen (keys and values both, in a mapping)
        self.key = ""

    def take(self, size: int, event: yaml.Event) -> None:
        self.size += size
        if self.is_map and self.count % 2 == 0:
            self.key = str(getattr(event, "value", "?"))
        self.count += 1

    def part(self) -> str:
        """This collection's step in the YAML path of the event being read."""
        if not self.is_map:
            return f"[{self.count}]"
        return f".{self.key}" if self.count % 2 == 1 else ""


def _screen(text: str, file: str) -> list[Problem]:
    """Problems the composer would crash, recurse or hang on, found from the event stream.

    The parser is iterative, so walking its events is safe where composing or constructing
    is not: explicit tags, depth, recursive aliases and alias expansion are checked here.
    """
    problems: list[Problem] = []

    def path() -> str:
        return "".join(entry.part() for entry in stack).lstrip(".")

    def add(event: yaml.Event, message: str) -> None:
        mark = event.start_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        problems.append(Problem(file, line, col, path(), message))

    problems.extend(_control_characters(text, file))
    if problems:
        return problems
    sizes: dict[str, int] = {}  # anchor -> values it expands to
    stack: list[_Open] = []  # open collections, outermost first
    total = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            tag = getattr(event, "tag", None)
            if tag not in (None, "!") and len(problems) < _MAX_REPORTED:
                short = tag.replace("tag:yaml.org,2002:", "!!")
                add(event, f"YAML tags ({short}) are not supported; write a plain value")
            if isinstance(event, yaml.AliasEvent):
                if any(entry.anchor == event.anchor for entry in stack):
                    add(event, f"alias *{event.anchor} refers to itself")
                    return problems
                size = sizes.get(event.anchor or "", 1)
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) >= MAX_DEPTH:
                    add(event, f"nesting deeper than {MAX_DEPTH} levels")
                    return problems
                stack.append(_Open(event.anchor, isinstance(event, yaml.MappingStartEvent)))
                total += 1
                continue
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                done = stack.pop()  # its values were counted in `total` as they arrived
                if done.anchor is not None:
                    sizes[done.anchor] = done.size
                if stack:
                    stack[-1].take(done.size, event)
                continue
            elif isinstance(event, yaml.ScalarEvent):
                size = 1
                bad = yaml.reader.Reader.NON_PRINTABLE.search(event.value)
                if bad and len(problems) < _MAX_REPORTED:  # an escape such as "\x00"
                    char = f"U+{ord(bad.group()[0]):04X}"
                    add(event, f"control character {char} is not allowed in a value")
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            else:
                continue
            total += size
            if stack:
                stack[-1].take(size, event)
            if total > MAX_NODES:
                add(event, f"aliases expand the document past {MAX_NODES:,} values")
                return problems
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(exc, text, file))
    return problems


_SCALARS = _Loader("")  # one constructor for every scalar (a new one per scalar cost ~10 us)


def _construct(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        try:
            return _SCALARS.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, KeyError, IndexError, OverflowError):
            # a scalar SafeLoader cannot build (`=`, a date such as 2024-13-45): its text
            return str(node.value)
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


def read_yaml(path: str | Path, file: str | None = None) -> Any:
    """The plain value of a YAML file read through the hardened `Reader`; `SpecError` if bad.

    For tools that want a plain value (no paths to check): the same limits and located
    problems (encoding, tags, aliases, depth, empty documents) as every spec file.
    """
    root = Reader.from_file(path, file)
    root.finish()
    return root.value


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
        """Compose YAML text; every problem with it is recorded (raised at `finish`).

        Besides syntax errors: control characters, explicit tags (`!!float abc`), nesting
        deeper than `MAX_DEPTH`, recursive aliases, aliases that expand past `MAX_NODES`
        values (a "billion laughs" file) and an empty document, each located.
        """
        problems = _screen(text, file)
        node: yaml.Node | None = None
        if not problems:
            try:
                node = yaml.compose(text, Loader=_Loader)
            except yaml.YAMLError as exc:
                problems.append(_yaml_problem(exc, text, file))
            except RecursionError:  # _screen bounds the depth; kept as a last line of defence
                problems.append(Problem(file, 0, 0, "", f"nesting deeper than {MAX_DEPTH}"))
        if node is None and not problems:
            problems.append(
                Problem(file, 1, 1, "", "the file is empty (or only comments); expected a mapping")
            )
        return cls(node, file, "", problems)

    @classmethod
    def from_bytes(cls, data: bytes, file: str) -> Reader:
        """Decode UTF-8 bytes and compose them; bytes that are not UTF-8 are located problems."""
        if len(data) > MAX_FILE_BYTES:
            message = f"file of {len(data):,} bytes; the limit is {MAX_FILE_BYTES:,}"
            return cls(None, file, "", [Problem(file, 0, 0, "", message)])
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return cls(None, file, "", _decode_problems(data, file))
        return cls.from_text(text, file)

    @classmethod
    def from_file(cls, path: str | Path, file: str | None = None) -> Reader:
        """Read and compose a YAML file (`file` names it in problems; default `path`).

        A file that is missing or unreadable is a problem, not a crash.
        """
        name = str(path) if file is None else file
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return cls(None, name, "", [Problem(name, 0, 0, "", f"cannot read: {reason}")])
        return cls.from_bytes(data, name)

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
