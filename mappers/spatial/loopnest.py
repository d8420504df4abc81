"""Loop-nest reuse analysis: tile sizes, fills and updates of each tensor at a storage level.

A loop nest lists temporal loops outermost first. Each loop iterates one *piece* of a rank
(e.g. P split into P2 x P1 x P0). A tensor is *relevant* to a loop when it is indexed by the
loop's rank. A tensor's tile at a level is refilled once per iteration of every loop above
that level down to (and including) the innermost relevant loop above it; irrelevant loops
inside that give reuse (the stationarity rule of Timeloop and of FLAT's dataflow names).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


class Loop(NamedTuple):
    """One temporal or spatial loop over a piece of `rank` with `factor` iterations.

    (A named tuple, not a frozen dataclass: mappers build thousands per design point and a
    tuple is about three times cheaper to make.)
    """

    rank: str
    factor: int
    name: str = ""
    spatial: bool = False

    @property
    def label(self) -> str:
        """Display name such as `P2`."""
        return self.name or self.rank


@dataclass(frozen=True, slots=True)
class TensorShape:
    """A tensor's extent along each rank it is indexed by (rank -> elements)."""

    name: str
    extents: tuple[tuple[str, int], ...]
    # ranks the tensor is indexed by (built once: the reuse analysis asks it per loop)
    ranks: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ranks", frozenset(r for r, _ in self.extents))

    @property
    def elements(self) -> int:
        """Total elements."""
        return math.prod(n for _, n in self.extents)


def tile_elements(tensor: TensorShape, inner_loops: Iterable[Loop]) -> int:
    """Elements of `tensor` touched by one execution of `inner_loops` (clipped to its extent)."""
    per_rank: dict[str, int] = {}
    ranks = tensor.ranks
    for loop in inner_loops:
        rank = loop.rank
        if rank in ranks:
            per_rank[rank] = per_rank.get(rank, 1) * loop.factor
    elements = 1
    for rank, n in tensor.extents:
        factor = per_rank.get(rank, 1)
        elements *= factor if factor < n else n
    return elements


def refills(tensor: TensorShape, outer_loops: tuple[Loop, ...]) -> int:
    """How many times a tile of `tensor` is (re)loaded under `outer_loops` (outermost first)."""
    innermost_relevant = -1
    ranks = tensor.ranks
    for k, loop in enumerate(outer_loops):
        if loop.rank in ranks:
            innermost_relevant = k
    return math.prod(loop.factor for loop in outer_loops[: innermost_relevant + 1])


@dataclass(frozen=True, slots=True)
class LevelTraffic:
    """Reads and writes of one tensor across one level boundary, in elements."""

    tensor: str
    read_elements: int
    write_elements: int
    tile_elements: int


def boundary_traffic(
    tensors: Mapping[str, TensorShape],
    outer_loops: tuple[Loop, ...],
    inner_loops: tuple[Loop, ...],
    outputs: Iterable[str] = (),
    reduced_ranks: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, LevelTraffic]:
    """Traffic across the boundary between the loops above a level and those below it.

    Inputs are read `refills x tile` elements. An output is written once per refill; when a
    loop over one of its reduced ranks sits above its innermost relevant loop, partial results
    make round trips: every refill after the first also reads the partial tile back.
    """
    reduced_ranks = reduced_ranks or {}
    outs = set(outputs)
    result: dict[str, LevelTraffic] = {}
    for name, tensor in tensors.items():
        tile = tile_elements(tensor, inner_loops)
        if name not in outs:
            result[name] = LevelTraffic(name, refills(tensor, outer_loops) * tile, 0, tile)
            continue
        reduced = reduced_ranks.get(name, frozenset())
        widened = TensorShape(name, tensor.extents + tuple((r, 1) for r in reduced))
        writes = refills(widened, outer_loops) * tile
        reads = max(0, writes - tensor.elements)
        result[name] = LevelTraffic(name, reads, writes, tile)
    return result


def split_rank(rank: str, size: int, factors: tuple[int, ...]) -> tuple[Loop, ...]:
    """Split `rank` of `size` into loops with the given inner factors; the outermost is derived.

    `split_rank("P", 4096, (4, 256))` gives P2=4, P1=4, P0=256 (outer first).
    """
    inner = math.prod(factors)
    outer = max(1, math.ceil(size / inner))
    pieces = (outer, *factors)
    top = len(pieces) - 1
    return tuple(Loop(rank, f, f"{rank}{top - k}") for k, f in enumerate(pieces))


def deliveries(tensor: TensorShape, spatial: Iterable[Loop], temporal: tuple[Loop, ...]) -> int:
    """Elements moved into depth-one PE registers (or out of them, for an output) by a nest.

    Distinct elements of one spatial step, times every temporal iteration from the innermost
    loop the tensor is relevant to outward (`temporal` outermost first). Loops with one
    iteration are no loops: an irrelevant loop inside the innermost relevant one gives reuse
    (Timeloop's stationarity), whatever single-iteration loops sit between them.
    """
    live = tuple(loop for loop in temporal if loop.factor > 1)
    return tile_elements(tensor, spatial) * refills(tensor, live)
