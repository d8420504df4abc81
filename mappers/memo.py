"""Memoizing on an object's identity instead of its (deep, uncached) dataclass hash.

Cascades are deep frozen trees: hashing one walks every node, so `functools.cache` keyed on
a cascade costs more than the analysis it saves in a sweep. `by_identity` keys on `id(obj)`
plus the remaining (cheap, hashable) arguments, and keeps a reference to `obj` so its id
cannot be reused by another object while the entry lives. Entries are evicted oldest-first.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")


def by_identity(maxsize: int = 256) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator: memoize `fn(obj, *args)` on (id(obj), args)."""

    def wrap(fn: Callable[..., R]) -> Callable[..., R]:
        entries: OrderedDict[tuple[Any, ...], tuple[object, R]] = OrderedDict()

        @functools.wraps(fn)
        def cached(obj: object, *args: Any) -> R:
            key = (id(obj), *args)
            hit = entries.get(key)
            if hit is not None and hit[0] is obj:
                entries.move_to_end(key)
                return hit[1]
            value = fn(obj, *args)
            entries[key] = (obj, value)
            if len(entries) > maxsize:
                entries.popitem(last=False)
            return value

        return cached

    return wrap
