"""Pure analyses of cascades: pass counting, operation counts, tensor sizes."""

from __future__ import annotations

from einsum_ir.analysis.buffers import tensor_sizes
from einsum_ir.analysis.ops import OpCounts, count_ops
from einsum_ir.analysis.passes import Boundary, PassReport, count_passes

__all__ = ["Boundary", "OpCounts", "PassReport", "count_ops", "count_passes", "tensor_sizes"]
