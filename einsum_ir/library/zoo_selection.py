"""Dynamic, content-based selection variants of the zoo (variants.md Sec. 2.5).

HiP, Routing Transformer, HCAM and DCAL.
"""

from __future__ import annotations

from attnsim.einsum_ir.library.zoo_base import Builder, ZooCascade

ENTRIES: tuple[ZooCascade, ...] = ()
BUILDERS: dict[str, Builder] = {}
