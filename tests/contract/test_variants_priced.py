"""Every mapper prices a variant's structure, refuses it, or says what it approximated.

For every mapper and every built-in variant that differs from a simpler one in exactly one
part (its mask, head structure, score function or score modifier), the two are mapped at
equal sizes. Then one of these holds:

- the mapper refuses either with a `MappingError` that says why;
- the results differ in latency, DRAM traffic or FLOPs (the part was priced);
- the variant's Result has a warning its parent's has not (the approximation is stated).

What may never happen is the failure this guards against: a result equal to another
variant's because the mapper ignored the part that distinguishes them. New variants of the
catalog and new mappers are picked up without edits.
"""

from __future__ import annotations

import dataclasses

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir.library.builder import (
    Heads,
    MaskForm,
    ScoreForm,
    ScoreModifier,
    Variant,
    build,
)
from attnsim.einsum_ir.library.catalog import CATALOG
from attnsim.mappers.registry import get_mapper, mapper_names
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

# equal work for every head structure: 8 query heads, 2 KV heads for GQA, 1 for MQA
HEAD_SIZES = {
    Heads.SINGLE: {},
    Heads.MULTI: {"B": 1, "H": 8},
    Heads.GROUPED: {"B": 1, "G": 2, "R": 4},
    Heads.MULTI_QUERY: {"B": 1, "R": 8},
}
SIZES = {"P": 1024, "M": 1024, "E": 64, "F": 64, "W": 256, "L": 128}
PRESET = {"gpu": "h200", "spatial": "fusemax"}
DEFAULTS = {
    "heads": Heads.MULTI,
    "mask": MaskForm.NONE,
    "score": ScoreForm.SOFTMAX,
    "modifier": ScoreModifier.NONE,
}


def parent_pairs() -> list[tuple[Variant, Variant, str]]:
    """(variant, parent, part): the parent differs in that one part, set to its default."""
    pairs = []
    for v in CATALOG:
        for part, default in DEFAULTS.items():
            if getattr(v, part) == default or (part == "heads" and v.heads == Heads.SINGLE):
                continue
            try:
                parent = dataclasses.replace(v, **{part: default})
            except ValueError:  # e.g. sigmoid -> softmax keeps the 1-pass algorithm: valid
                continue
            pairs.append((v, parent, part))
    return pairs


def sizes_of(v: Variant) -> dict[str, int]:
    cascade = build(v)
    known = set(cascade.size_symbols)
    sizes = {**SIZES, **HEAD_SIZES[v.heads]}
    return {k: n for k, n in sizes.items() if k in known}


def run(mapper: str, v: Variant, options: dict[str, object]) -> Result | None:
    kind = "gpu" if mapper.startswith("gpu-") else "spatial"
    sizes = sizes_of(v)
    if mapper == "gpu-decode":  # one query per sequence
        sizes["P"] = 1
    try:
        return get_mapper(mapper)(**options).map(build(v), load_arch(PRESET[kind]), sizes)
    except MappingError as exc:
        assert str(exc), "a refusal must say why"
        return None


MAPPERS = [m for m in mapper_names() if m != "layer-matmuls"]
CASES = [(m, v, parent, part) for m in MAPPERS for v, parent, part in parent_pairs()]


# GPU mappers: one fixed tiling (the search ranks dozens per point; the model is the same)
GPU_TILING = {"block_m": 64, "block_n": 64, "num_warps": 4, "num_stages": 2}


def option_sets(mapper: str) -> list[dict[str, object]]:
    """The mapper's defaults and, where it has the option, tile skipping on."""
    fields = {f.name for f in dataclasses.fields(get_mapper(mapper).Options)}
    if mapper.startswith("gpu-"):
        fixed = {**GPU_TILING, "rank_candidates": False}
        return [{k: v for k, v in fixed.items() if k in fields}]
    sets: list[dict[str, object]] = [{}]
    if "skip_empty_tiles" in fields:
        sets.append({"skip_empty_tiles": True})
    return sets


@pytest.mark.parametrize(
    ("mapper", "variant", "parent", "part"),
    CASES,
    ids=[f"{m}:{v.name}:{part}" for m, v, _, part in CASES],
)
def test_variant_part_is_priced_refused_or_warned(
    mapper: str, variant: Variant, parent: Variant, part: str
) -> None:
    for options in option_sets(mapper):
        got = run(mapper, variant, options)
        base = run(mapper, parent, options)
        if got is None or base is None:
            continue
        same = (got.latency_s, got.dram_traffic_bytes, got.flops) == (
            base.latency_s,
            base.dram_traffic_bytes,
            base.flops,
        )
        new_warnings = set(got.warnings) - set(base.warnings)
        assert not same or new_warnings, (
            f"{mapper} {options}: {variant.name} costs exactly what {parent.name} costs, "
            f"with no warning: its {part} was ignored"
        )
