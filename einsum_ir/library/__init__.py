"""The built-in attention cascades, built from parts (see `builder` and `catalog`)."""

from __future__ import annotations

from attnsim.einsum_ir.library.builder import (
    Algorithm,
    Heads,
    MaskForm,
    ScoreForm,
    ScoreModifier,
    Variant,
    build,
)
from attnsim.einsum_ir.library.catalog import (
    CATALOG,
    LEGACY,
    all_names,
    all_variants,
    catalog_names,
    variant_named,
)

__all__ = [
    "CATALOG",
    "LEGACY",
    "Algorithm",
    "Heads",
    "MaskForm",
    "ScoreForm",
    "ScoreModifier",
    "Variant",
    "all_names",
    "all_variants",
    "build",
    "catalog_names",
    "variant_named",
]
