"""FLAT cost model backends: one dataflow (Python floats) or a grid of them (numpy).

`flat_cost._tally` is written once against these operations; `Grid` evaluates it over
G loop-nest pairs x S on-chip sets at once, `One` for a single dataflow, bit-identical to
its cell of any grid. The ledgers sum traffic columns in the order they first got words,
as adding to a dict would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from attnsim.einsum_ir.ir import TensorName

if TYPE_CHECKING:
    from attnsim.mappers.spatial.flat_cost import Floats, Nest

NEVER = np.iinfo(np.int64).max  # "no non-zero words yet" in a ledger's order


class Ledger:
    """Words per traffic column over a grid, and the order columns first got words.

    Mirrors adding to a dict in order: sums equal `sum(d.values())` of such a dict bit for bit.
    """

    def __init__(self, grid: tuple[int, int], columns: int) -> None:
        self.words = np.zeros((*grid, columns))
        self.first = np.full((*grid, columns), NEVER, dtype=np.int64)
        self.slot = 0

    def add(self, column: int, words: Any) -> None:
        """Add `words` to `column`."""
        self.words[..., column] += words
        nonzero = np.not_equal(words, 0)
        if np.any(nonzero):
            first = self.first[..., column]
            np.copyto(first, self.slot, where=(first == NEVER) & nonzero)
        self.slot += 1

    def total(self) -> Floats:
        """The columns' sum, in the order they first got words."""
        order = np.argsort(self.first, axis=-1, kind="stable")
        ordered = np.take_along_axis(self.words, order, axis=-1)
        total = np.zeros(self.words.shape[:2])
        for j in range(ordered.shape[-1]):
            total = total + ordered[..., j]
        return total


class OneLedger:
    """`Ledger` for one dataflow: a dict filled in first-non-zero order (same sums)."""

    def __init__(self, columns: int) -> None:
        self.words = [0.0] * columns
        self.order: dict[int, None] = {}

    def add(self, column: int, words: Any) -> None:
        """Add `words` to `column`."""
        self.words[column] += words
        if words != 0:
            self.order.setdefault(column)

    def total(self) -> float:
        """The columns' sum, in the order they first got words."""
        total = 0.0
        for k in self.order:
            total = total + self.words[k]
        return total


class Grid:
    """Element-wise operations over a grid of dataflows (numpy arrays, G x S)."""

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        """Element-wise `a if cond else b`."""
        return np.where(cond, a, b)

    @staticmethod
    def maximum(a: Any, b: Any) -> Any:
        """Element-wise maximum."""
        return np.maximum(a, b)

    @staticmethod
    def minimum(a: Any, b: Any) -> Any:
        """Element-wise minimum."""
        return np.minimum(a, b)

    def __init__(self, nests: Sequence[tuple[Nest, Nest]], onchip: npt.NDArray[np.bool_]):
        self.nests = nests
        self.shape = (len(nests), len(onchip))
        self.onchip = onchip
        self.off: Any = np.zeros((1, len(onchip)), dtype=bool)

    def on(self, operands: Sequence[TensorName]) -> dict[TensorName, Any]:
        """Per operand, whether each dataflow keeps it on chip."""
        return {n: self.onchip[None, :, k] for k, n in enumerate(operands)}

    def zeros(self) -> Floats:
        """A zero of the backend's shape."""
        return np.zeros(self.shape)

    def ledger(self, columns: int) -> Ledger:
        """An empty ledger of `columns` traffic columns."""
        return Ledger(self.shape, columns)

    def counts(self, k: int, j: int, field: str) -> Floats:
        """Field `field` of tensor `j` of contraction `k`'s nest, one row per nest pair."""
        return np.array([getattr(pair[k].tensors[j][1], field) for pair in self.nests])[:, None]

    def none_of(self, flags: list[Any]) -> Any:
        """Whether none of `flags` holds."""
        return ~np.logical_or.reduce([*flags, self.off])


class One:
    """The same operations for one dataflow (Python floats and bools: no array overhead)."""

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        """Element-wise `a if cond else b`."""
        return a if cond else b

    @staticmethod
    def maximum(a: Any, b: Any) -> Any:
        """Element-wise maximum."""
        return a if a >= b else b

    @staticmethod
    def minimum(a: Any, b: Any) -> Any:
        """Element-wise minimum."""
        return a if a <= b else b

    def __init__(self, nests: tuple[Nest, Nest], onchip: Sequence[bool]):
        self.nests = nests
        self.onchip = onchip
        self.off: Any = False

    def on(self, operands: Sequence[TensorName]) -> dict[TensorName, Any]:
        """Per operand, whether each dataflow keeps it on chip."""
        return {n: bool(self.onchip[k]) for k, n in enumerate(operands)}

    def zeros(self) -> float:
        """A zero of the backend's shape."""
        return 0.0

    def ledger(self, columns: int) -> OneLedger:
        """An empty ledger of `columns` traffic columns."""
        return OneLedger(columns)

    def counts(self, k: int, j: int, field: str) -> float:
        """Field `field` of tensor `j` of contraction `k`'s nest (one row per nest pair)."""
        return cast(float, getattr(self.nests[k].tensors[j][1], field))

    def none_of(self, flags: list[Any]) -> Any:
        """Whether none of `flags` holds."""
        return not any(flags)
