"""Mapper option schemas: each `Options` field declares the values it takes, as data.

A mapper's frozen `Options` dataclass is its one schema. The field's type says what kind of
value it is (bool, int, float, str, or a tuple of str); `option(default, ...)` adds the
allowed values: a fixed set (`choices`, also the members a tuple may hold), a range
(`minimum`, `maximum`) and powers of two. `attnsim check` (values read from YAML),
`attnsim map --option` (text) and the dataclass's own `__post_init__` all check against it,
so what `check` passes is what the mapper accepts.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field
from typing import Any

INT_LIMIT = 2**62  # no option needs more; larger integers overflow int64 arithmetic downstream
_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True, slots=True)
class Domain:
    """The values one option takes besides its type.

    Attributes:
        choices: Allowed values (of a str option, or of each member of a tuple option).
        minimum: Smallest allowed number (inclusive).
        maximum: Largest allowed number (inclusive).
        power_of_two: Nonzero values must be powers of two (0 keeps its own meaning).
        zero: What 0 (or the empty string) means, for help and messages.
    """

    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    power_of_two: bool = False
    zero: str = ""


@dataclass(frozen=True, slots=True)
class OptionField:
    """One option of a mapper: name, type, default and domain."""

    name: str
    kind: Any  # bool, int, float, str, or tuple (of str or of int)
    default: Any
    domain: Domain
    item: Any = str  # a tuple's member type: str or int

    @property
    def expected(self) -> str:
        """What a valid value looks like, in words."""
        d = self.domain
        if self.kind is tuple and self.item is int:
            low = f" >= {_num(d.minimum)}" if d.minimum is not None else ""
            return f"a list of integers{low}"
        if self.kind is tuple:
            return "a list of " + (", ".join(map(str, d.choices)) if d.choices else "names")
        if d.choices:
            return "one of " + ", ".join(repr(c) for c in d.choices)
        words = _KINDS.get(self.kind, str(self.kind))
        if d.minimum is not None and d.maximum is not None:
            words += f" in [{_num(d.minimum)}, {_num(d.maximum)}]"
        elif d.minimum is not None:
            words += f" >= {_num(d.minimum)}"
        if d.power_of_two:
            words += ", a power of two"
        if d.zero:
            words += f" (0: {d.zero})"
        return words


def option(default: Any, **domain: Any) -> Any:
    """A dataclass field with `default` and the `Domain(**domain)` of its values."""
    return field(default=default, metadata={"domain": Domain(**domain)})


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@functools.cache
def option_fields(options_cls: type) -> dict[str, OptionField]:
    """The schema of an `Options` dataclass: its fields by name."""
    hints = typing.get_type_hints(options_cls)
    out: dict[str, OptionField] = {}
    for f in dataclasses.fields(options_cls):
        hint = hints[f.name]
        kind = tuple if typing.get_origin(hint) is tuple else hint
        item = (typing.get_args(hint) or (str,))[0] if kind is tuple else str
        domain = f.metadata.get("domain", Domain())
        out[f.name] = OptionField(f.name, kind, f.default, domain, item)
    return out


def mapper_options(mapper_cls: type) -> dict[str, OptionField]:
    """The option schema of a mapper class (empty when it takes no options)."""
    options_cls = getattr(mapper_cls, "Options", None)
    return option_fields(options_cls) if options_cls is not None else {}


def coerce(f: OptionField, value: Any) -> Any:
    """`value` (as YAML or JSON gives it) in the option's type; `ValueError` says what's wrong.

    Integers are accepted for floats; a list is accepted for a tuple. The domain is checked.
    """
    good = isinstance(value, f.kind) and (f.kind is bool or not isinstance(value, bool))
    if f.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, good = float(value), True
    if f.kind is tuple and f.item is int and isinstance(value, (list, tuple)):
        try:  # text from the command line gives digits
            value = tuple(v if isinstance(v, int) else int(str(v), 10) for v in value)
        except ValueError:
            pass
        good = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    elif f.kind is tuple:
        good = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if good else value
    if not good:
        raise ValueError(f"{f.name}: expected {f.expected}, got {value!r}")
    problem = domain_problem(f, value)
    if problem:
        raise ValueError(problem)
    return value


def domain_problem(f: OptionField, value: Any) -> str | None:
    """Why `value` (already of the option's type) is outside the option's domain, or None."""
    d = f.domain
    bad = f"{f.name}: expected {f.expected}, got {value!r}"
    if f.kind is tuple and f.item is int:
        low = [v for v in value if d.minimum is not None and v < d.minimum]
        return f"{f.name}: {low[0]} is below {_num(d.minimum)}" if low else None  # type: ignore[arg-type]
    if f.kind is tuple:
        wrong = [v for v in value if d.choices and v not in d.choices]
        if wrong:
            return f"{f.name}: unknown {', '.join(map(repr, wrong))}; expected {f.expected}"
        return None
    if d.choices:
        return None if value in d.choices else bad
    if f.kind in (int, float):
        if not math.isfinite(value) or abs(value) > INT_LIMIT:
            return bad
        if d.minimum is not None and value < d.minimum:
            return bad
        if d.maximum is not None and value > d.maximum:
            return bad
        if d.power_of_two and value and int(value) & (int(value) - 1):
            return bad
    return None


def parse_text(f: OptionField, text: str) -> Any:
    """An option's value from command-line text (`ValueError` says what's wrong).

    A tuple option takes a comma-separated list (`onchip=QK,A`; empty for none).
    """
    value: Any = text
    if f.kind is bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{f.name}: expected {f.expected}, got {text!r}")
        value = lowered in ("true", "1", "yes")
    elif f.kind in (int, float):
        try:
            value = f.kind(text)
        except ValueError:
            raise ValueError(f"{f.name}: expected {f.expected}, got {text!r}") from None
    elif f.kind is tuple:
        value = tuple(p.strip() for p in text.split(",") if p.strip())
    return coerce(f, value)


def problems(options: object) -> list[str]:
    """Every field of an `Options` instance outside its schema (for `__post_init__`)."""
    out = []
    cls: Any = type(options)
    for name, f in option_fields(cls).items():
        try:
            coerce(f, getattr(options, name))
        except ValueError as exc:
            out.append(str(exc))
    return out


def describe(mapper_cls: type) -> list[str]:
    """One line per option: `name: expected (default)`, for help text."""
    return [
        f"{f.name}: {f.expected} (default {f.default!r})"
        for f in mapper_options(mapper_cls).values()
    ]
