"""The variant zoo: attention algorithms of the literature digest as built-in cascades.

Each built-in is one paper's variant, `attention-<variant>`, with a family, a one-line
description and notes citing its source and saying what is modelled and what is left out
(`zoo_base.ZooCascade`). Families: static masks (`zoo_masks`, variants.md Sec. 2.4),
head and K/V structure (`zoo_heads`, Sec. 2.3) and linear / recurrent attention
(`zoo_linear`, Sec. 2.7). `zoo_cascade(name)` builds one.

KDGQA (#1, `zoo_heads`) runs its allocation on the data with the grammar's `step` and
`round`, so the norm pre-pass feeds the attention (2 passes). PINE (#77, `zoo_masks`)
orders the documents by its importance pass with `step` and applies RoPE at the
re-assigned positions with `cos` and `sin` (2 passes).
"""

from __future__ import annotations

import functools

from attnsim.einsum_ir.ir import Cascade
from attnsim.einsum_ir.library import (
    zoo_compress,
    zoo_heads,
    zoo_linear,
    zoo_masks,
    zoo_scores,
    zoo_selection,
)
from attnsim.einsum_ir.library.zoo_base import (
    HEAD_STRUCTURE,
    LINEAR,
    SCORES,
    SELECTION,
    STATIC_MASKS,
    ZooCascade,
)

FAMILIES = (STATIC_MASKS, HEAD_STRUCTURE, SELECTION, SCORES, LINEAR)
_MODULES = (zoo_masks, zoo_heads, zoo_selection, zoo_compress, zoo_scores, zoo_linear)
ZOO: tuple[ZooCascade, ...] = tuple(
    sorted(
        (entry for module in _MODULES for entry in module.ENTRIES),
        key=lambda e: (FAMILIES.index(e.family), e.name),
    )
)
"""Every zoo built-in, by family (in `FAMILIES` order), then by name."""
_BUILDERS = {name: build for module in _MODULES for name, build in module.BUILDERS.items()}


def zoo_names() -> tuple[str, ...]:
    """Names of the zoo's built-ins, sorted."""
    return tuple(sorted(e.name for e in ZOO))


def zoo_entry(name: str) -> ZooCascade | None:
    """The zoo record of that name, or None."""
    return next((e for e in ZOO if e.name == name), None)


@functools.cache
def zoo_cascade(name: str) -> Cascade | None:
    """The zoo cascade of that name (memoized), or None when there is none."""
    entry = zoo_entry(name)
    return None if entry is None else _BUILDERS[name](entry)
