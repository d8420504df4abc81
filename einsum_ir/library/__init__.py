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
from attnsim.einsum_ir.library.serving import (
    SERVING,
    ServingCascade,
    serving_cascade,
    serving_entry,
    serving_names,
)

__all__ = [
    "CATALOG",
    "LEGACY",
    "SERVING",
    "Algorithm",
    "Heads",
    "MaskForm",
    "ScoreForm",
    "ScoreModifier",
    "ServingCascade",
    "Variant",
    "all_names",
    "all_variants",
    "build",
    "catalog_names",
    "serving_cascade",
    "serving_entry",
    "serving_names",
    "variant_named",
]
