"""Pure analyses of cascades.

Pass counting, operation counts, tensor sizes, the attention problem a cascade states (roles,
mask, score function) and tile classification.
"""

from __future__ import annotations

from attnsim.einsum_ir.analysis.buffers import tensor_sizes
from attnsim.einsum_ir.analysis.ops import OpCounts, count_ops
from attnsim.einsum_ir.analysis.passes import Boundary, PassReport, count_passes
from attnsim.einsum_ir.analysis.structure import AttentionProblem, StructureError, attention_problem
from attnsim.einsum_ir.analysis.tiles import Band, TileCounts, classify_tiles

__all__ = [
    "AttentionProblem",
    "Band",
    "Boundary",
    "OpCounts",
    "PassReport",
    "StructureError",
    "TileCounts",
    "attention_problem",
    "classify_tiles",
    "count_ops",
    "count_passes",
    "tensor_sizes",
]
