"""Compression and pooled-memory variants of the zoo (variants.md Sec. 2.5, 2.7).

CCA, Agent attention, LongVQ and SeqBoat.
"""

from __future__ import annotations

from attnsim.einsum_ir.library.zoo_base import Builder, ZooCascade

ENTRIES: tuple[ZooCascade, ...] = ()
BUILDERS: dict[str, Builder] = {}
