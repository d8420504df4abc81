"""Placing one Einsum on a FuseMax array: lowering, fallback to the other array, mask tiles.

Shared by the forward (`mappers.spatial.fusemax`) and the backward
(`mappers.spatial.fusemax_bwd`); each decides which array an Einsum's shape suits, and
`place_einsum` prices it there.
"""

from __future__ import annotations

from attnsim.archs.model import ComputeArray, SpatialArch
from attnsim.mappers.spatial.chunks import tiled_by_the_mask
from attnsim.mappers.spatial.compute import (
    EinsumWork,
    cascade_work,
    dense_cascade,
    lower_work,
    scale_work,
    unsupported,
)
from attnsim.mappers.spatial.mask_cost import MaskCost, select_actions
from attnsim.mappers.spatial.view import CascadeView, MappingError, pinned_note, score_index


def place_einsum(
    cv: CascadeView,
    index: int,
    unit: ComputeArray,
    arch: SpatialArch,
    mask: MaskCost,
    warnings: list[str],
) -> tuple[ComputeArray, EinsumWork]:
    """Einsum `index` on `unit` (or on the other array), with its work; notes appended.

    Operations `unit` lacks are lowered onto its units (`compute.lower_work`, e.g. sigmoid
    on the MACs); only when no lowering exists does the Einsum move to the other array (a
    warning). Under a mask an Einsum over the keys does the dense work of the visited tiles
    (the score Einsum also the partial tiles' compare-selects), unless its condition pins
    the key (then its own pairs, noted).

    Raises:
        MappingError: Neither array performs the Einsum's operations.
    """
    e = cv.cascade.einsums[index]
    two_d, one_d = arch.array_2d, arch.array_1d
    works = {a.name: cascade_work(cv.cascade, cv.sizes, a) for a in (two_d, one_d)}
    work, notes = lower_work(works[unit.name][index], unit)
    if unsupported(work, unit):
        missing = unsupported(works[unit.name][index], unit)
        other = one_d if unit is two_d else two_d
        work, notes = lower_work(works[other.name][index], other)
        if unsupported(work, other):
            raise MappingError(f"{e}: no array of {arch.name} performs {', '.join(missing)}")
        warnings.append(
            f"{e.output}: {unit.name} lacks {', '.join(missing)}; bound to {other.name} instead"
        )
        unit = other
    warnings.extend(notes)
    if mask.is_masked and mask.skip and cv.iterates_key(e) and cv.pins_key(e):
        warnings.append(pinned_note(e))  # its own pairs (`work`), not per tile
    elif mask.is_masked and tiled_by_the_mask(cv, e):
        dense = cascade_work(dense_cascade(cv.cascade), cv.sizes, unit)[index]
        extra = select_actions(cv, mask, unit) if index == score_index(cv) else None
        work = scale_work(lower_work(dense, unit)[0], mask.visited, extra)
    return unit, work


__all__ = ["place_einsum"]
