"""Mapper registry: `@register_mapper(name)` adds a class; lookups suggest the closest name.

A mapper class declares the kind of architecture it maps onto as `arch_kind` (a `kind:` of
`archs.load.KINDS`: `spatial` or `gpu`), so that `check` refuses a mismatch before `run`, and
whether it binds the workload's sizes to the cascade's ranks (`binds_cascade_ranks`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Callable
from typing import Any, Protocol

from attnsim.archs.model import SpatialArch
from attnsim.einsum_ir.analysis.passes import count_passes
from attnsim.einsum_ir.ir import Cascade
from attnsim.mappers.result import Result


class Mapper(Protocol):
    """A configured mapping strategy; `map` is a pure function of its inputs."""

    name: str

    def map(self, cascade: Cascade, arch: SpatialArch, sizes: dict[str, int]) -> Result:
        """Map `cascade` at `sizes` onto `arch` and return its costs."""
        ...


_REGISTRY: dict[str, type[Any]] = {}


def register_mapper(name: str) -> Callable[[type[Any]], type[Any]]:
    """Class decorator registering a mapper under `name` (duplicates are an error)."""

    def wrap(cls: type[Any]) -> type[Any]:
        if name in _REGISTRY:
            raise ValueError(f"mapper {name!r} registered twice")
        _REGISTRY[name] = cls
        cls.name = name
        cls.map = _stating_assumptions(cls.map)
        return cls

    return wrap


def _stating_assumptions(map_fn: Callable[..., Result]) -> Callable[..., Result]:
    """`map_fn` whose Result also warns of each of the cascade's `assumptions`.

    A cascade that models part of itself by assumption (a data-dependent selection given
    as a size) says so in every mapper's Result, whichever mapper priced it.
    """

    @functools.wraps(map_fn)
    def map_stating(self: Any, cascade: Cascade | None, *args: Any, **kwargs: Any) -> Result:
        result = map_fn(self, cascade, *args, **kwargs)
        stated = getattr(cascade, "assumptions", ())
        new = tuple(f"cascade assumption: {a}" for a in stated)
        if isinstance(cascade, Cascade):
            new += _gathered_passes(cascade, result.passes)
        if not new or set(new) <= set(result.warnings):
            return result
        return dataclasses.replace(result, warnings=(*result.warnings, *new))

    return map_stating


def _gathered_passes(cascade: Cascade, passes: int) -> tuple[str, ...]:
    """What the Result's pass count leaves out when inputs are picks of the memory."""
    notes = []
    ranks = cascade.tensor_ranks
    memory = {
        r: [g for g in cascade.gathers if r in ranks[g.source] and r not in ranks[g.tensor]]
        for g in cascade.gathers
        for r in ranks[g.source]
        if r not in ranks[g.tensor]
    }
    for rank, picks in memory.items():
        total = count_passes(cascade, rank).passes
        if total > passes:
            names = ", ".join(f"{g.tensor} (from {g.source})" for g in picks)
            notes.append(
                f"passes: {passes} over the attention's own keys; over {rank}, which the "
                f"picked inputs {names} come from, the cascade takes {total} (the selector's "
                "sweep, then the picks; `attnsim cascade passes`)"
            )
    return tuple(notes)


def arch_kind(arch: object) -> str:
    """The `kind:` of an architecture object: `gpu` or `spatial`."""
    return "spatial" if isinstance(arch, SpatialArch) else "gpu"


def arch_problem(name: str, kind: str) -> str | None:
    """Why mapper `name` cannot map onto an architecture of `kind`, or None."""
    wanted = getattr(get_mapper(name), "arch_kind", kind)
    if wanted == kind:
        return None
    what = {"spatial": "spatial accelerators", "gpu": "GPUs"}
    others = [n for n in mapper_names() if getattr(_REGISTRY[n], "arch_kind", kind) == kind]
    return (
        f"mapper {name!r} maps onto {what.get(wanted, wanted)}, not {what.get(kind, kind)} "
        f"(mappers for {what.get(kind, kind)}: {', '.join(others)})"
    )


def mapper_names() -> tuple[str, ...]:
    """Registered mapper names, sorted."""
    return tuple(sorted(_REGISTRY))


def get_mapper(name: str) -> type[Any]:
    """The mapper class registered as `name`; KeyError names the known ones."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"unknown mapper {name!r}{hint}; known: {', '.join(mapper_names())}")
    return _REGISTRY[name]
