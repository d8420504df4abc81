"""Plain numpy references for the zoo's selection variants, from each paper's definition."""

from __future__ import annotations

from attnsim.einsum_ir.reference_zoo import Compute, Layout

SELECTION_CHECKS: dict[str, tuple[Layout, str, Compute]] = {}
