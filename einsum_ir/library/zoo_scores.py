"""Score-function and normalization variants of the zoo (variants.md Sec. 2.6)."""

from __future__ import annotations

from attnsim.einsum_ir.library.zoo_base import Builder, ZooCascade

ENTRIES: tuple[ZooCascade, ...] = ()
BUILDERS: dict[str, Builder] = {}
