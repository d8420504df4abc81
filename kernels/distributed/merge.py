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


def merge_states(out_a: Any, lse_a: Any, out_b: Any, lse_b: Any) -> tuple[Any, Any]:
    """The state over the union of two disjoint key sets: (O, lse), in out_a's dtype.

    Rows where both sides are empty (lse -inf) stay empty (O = 0, lse = -inf), not NaN.
    """
    lse_b = lse_b.to(lse_a.dtype)
    lse = torch.logaddexp(lse_a, lse_b)
    ref = torch.where(torch.isneginf(lse), torch.zeros_like(lse), lse)
    wa = torch.exp(lse_a - ref).unsqueeze(-1)
    wb = torch.exp(lse_b - ref).unsqueeze(-1)
    out = out_a * wa + out_b.to(out_a.dtype) * wb
    return out, lse


def merge_into(out: Any, lse: Any, out_b: Any, lse_b: Any, rows: slice = slice(None)) -> None:
    """Merge the state (out_b, lse_b) into rows `rows` (along dim -2 of out) of (out, lse)."""
    merged, merged_lse = merge_states(out[..., rows, :], lse[..., rows], out_b, lse_b)
    out[..., rows, :] = merged
    lse[..., rows] = merged_lse
