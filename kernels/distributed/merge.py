"""Partial softmax attention states and their merge by log-sum-exp (no communication here).

A partial state over a set of keys J holds, per query row, O_J = softmax over J of the
scores, times V, and lse_J = log sum_{j in J} exp(s_j) (natural log). Two states over
disjoint key sets combine exactly: lse = log(exp(lse_1) + exp(lse_2)) and
O = exp(lse_1 - lse) O_1 + exp(lse_2 - lse) O_2 (FlashAttention's online softmax, one level
up; Ring Attention merges one state per ring step this way). A row that has seen no key
holds lse = -inf and O = 0, the merge's identity.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["empty_state", "merge_into", "merge_states"]


def empty_state(
    rows_shape: tuple[int, ...], value_dim: int, dtype: Any, device: Any
) -> tuple[Any, Any]:
    """The identity state: O = 0 (rows_shape + (value_dim,)), lse = -inf (rows_shape)."""
    out = torch.zeros((*rows_shape, value_dim), dtype=dtype, device=device)
    lse = torch.full(rows_shape, float("-inf"), dtype=dtype, device=device)
    return out, lse


def _weights(lse_a: Any, lse_b: Any) -> tuple[Any, Any, Any]:
    """(lse of the union, weight of side a, weight of side b); empty rows get weights 0."""
    lse_b = lse_b.to(lse_a.dtype)
    lse = torch.logaddexp(lse_a, lse_b)
    ref = torch.where(torch.isneginf(lse), torch.zeros_like(lse), lse)
    return lse, torch.exp(lse_a - ref).unsqueeze(-1), torch.exp(lse_b - ref).unsqueeze(-1)


def merge_states(out_a: Any, lse_a: Any, out_b: Any, lse_b: Any) -> tuple[Any, Any]:
    """The state over the union of two disjoint key sets: (O, lse), in out_a's dtype.

    Rows where both sides are empty (lse -inf) stay empty (O = 0, lse = -inf), not NaN.
    """
    lse, wa, wb = _weights(lse_a, lse_b)
    return out_a * wa + out_b.to(out_a.dtype) * wb, lse


def merge_into(out: Any, lse: Any, out_b: Any, lse_b: Any, rows: slice = slice(None)) -> None:
    """Merge the state (out_b, lse_b) into rows `rows` (dim -2 of out) of (out, lse), in place.

    One temporary of out_b's size (out_b times its weight, in out's dtype): at a million
    tokens per device the running output is gigabytes.
    """
    lse_rows = lse[..., rows]
    merged_lse, wa, wb = _weights(lse_rows, lse_b)
    scaled = out_b.to(out.dtype)  # a copy unless out_b has out's dtype already
    scaled = scaled * wb if scaled is out_b else scaled.mul_(wb)
    out[..., rows, :].mul_(wa).add_(scaled)
    lse_rows.copy_(merged_lse)
