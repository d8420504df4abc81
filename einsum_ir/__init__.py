"""attnsim's bottom layer: attention algorithms as cascades of extended Einsums.

Public API: `load_cascade`, `builtin_names`, `parse_einsum`, `count_passes`, `count_ops`,
`tensor_sizes`, `evaluate`, and the IR records in `einsum_ir.ir`.
"""

from __future__ import annotations

from attnsim.einsum_ir.analysis import (
    Boundary,
    OpCounts,
    PassReport,
    count_ops,
    count_passes,
    tensor_sizes,
)
from attnsim.einsum_ir.execute import evaluate, random_inputs
from attnsim.einsum_ir.ir import Cascade, Einsum
from attnsim.einsum_ir.load import builtin_names, load_cascade, load_cascade_text
from attnsim.einsum_ir.parse import ParseError, format_einsum, parse_einsum
from attnsim.einsum_ir.sizes import SizeError, parse_sizes, resolve_sizes
from attnsim.einsum_ir.spec import Problem, SpecError

__all__ = [
    "Boundary",
    "Cascade",
    "Einsum",
    "OpCounts",
    "ParseError",
    "PassReport",
    "Problem",
    "SizeError",
    "SpecError",
    "builtin_names",
    "count_ops",
    "count_passes",
    "evaluate",
    "format_einsum",
    "load_cascade",
    "load_cascade_text",
    "parse_einsum",
    "parse_sizes",
    "random_inputs",
    "resolve_sizes",
    "tensor_sizes",
]
