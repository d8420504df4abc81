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
from attnsim.einsum_ir.library.training import (
    TRAINING,
    Backward,
    forward_name,
    training_cascade,
    training_entry,
    training_names,
    training_notes,
)
from attnsim.einsum_ir.library.zoo import ZOO, zoo_cascade, zoo_entry, zoo_names
from attnsim.einsum_ir.library.zoo_base import ZooCascade

__all__ = [
    "CATALOG",
    "LEGACY",
    "SERVING",
    "TRAINING",
    "ZOO",
    "Algorithm",
    "Backward",
    "Heads",
    "MaskForm",
    "ScoreForm",
    "ScoreModifier",
    "ServingCascade",
    "Variant",
    "ZooCascade",
    "all_names",
    "all_variants",
    "build",
    "catalog_names",
    "serving_cascade",
    "serving_entry",
    "serving_names",
    "training_cascade",
    "training_entry",
    "training_names",
    "training_notes",
    "forward_name",
    "variant_named",
    "zoo_cascade",
    "zoo_entry",
    "zoo_names",
]
