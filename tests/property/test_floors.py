"""Spatial mappers never beat physics: compute floor and compulsory DRAM traffic (issue 19).

For random sizes that are no multiple of the array side (where FLAT once rounded tiles
down and moved 0.853x of Q, K, V and AV), every result of `flat`, `fusemax` and `unfused`
takes at least MACs / 2D PEs / clock, reads every input from DRAM at least once and writes
every output at least once.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

# mapper -> (cascade, presets); each mapper on the cascade form it maps
CASES = {
    "flat": ("attention-3pass-mh", ("flat", "edge-flat", "fusemax")),
    "fusemax": ("attention-1pass-mh", ("fusemax", "flat")),
    "unfused": ("attention-3pass-mh", ("flat", "fusemax")),
}
EPS = 1e-9


@st.composite
def _sizes(draw: st.DrawFn) -> dict[str, int]:
    sizes = {
        "B": draw(st.integers(1, 2)),
        "H": draw(st.integers(1, 3)),
        "M": draw(st.integers(1, 3000)),
        "P": draw(st.integers(1, 3000)),
        "E": draw(st.integers(1, 300)),
        "F": draw(st.integers(1, 300)),
    }
    assume(any(sizes[r] % 256 for r in "MPEF"))
    return sizes


def _check_floors(result: Result, cascade_name: str, preset: str, sizes: dict[str, int]) -> None:
    arch = load_arch(preset)
    cascade = load_cascade(cascade_name)
    b, h, m, p, e, f = (sizes[r] for r in "BHMPEF")
    macs = b * h * m * p * (e + f)  # the score and value contractions
    floor_s = macs / arch.array_2d.lanes / arch.clock_hz
    assert result.latency_s >= floor_s * (1 - EPS), (result.latency_s, floor_s)
    ranks = cascade.tensor_ranks
    reads = {t.tensor: 0.0 for t in result.traffic}
    writes = dict(reads)
    for t in result.traffic:
        if t.level == "dram":
            reads[t.tensor] += t.read_bytes
            writes[t.tensor] += t.write_bytes
    compulsory = 0.0
    for name, moved in [(n, reads) for n in cascade.input_names] + [
        (n, writes) for n in cascade.outputs
    ]:
        size = math.prod(sizes[r] for r in ranks[name]) * arch.word_bytes
        compulsory += size
        assert moved.get(name, 0.0) >= size * (1 - EPS), (name, moved.get(name), size)
    assert result.dram_traffic_bytes >= compulsory * (1 - EPS)


@pytest.mark.parametrize("mapper", sorted(CASES))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=_sizes(), pick=st.integers(0, 10))
def test_floors_at_sizes_off_the_array_side(mapper: str, sizes: dict[str, int], pick: int) -> None:
    cascade_name, presets = CASES[mapper]
    preset = presets[pick % len(presets)]
    try:
        result = get_mapper(mapper)().map(load_cascade(cascade_name), load_arch(preset), sizes)
    except MappingError:
        assume(False)
        return
    _check_floors(result, cascade_name, preset, sizes)


@pytest.mark.parametrize("preset", ["flat", "edge-flat"])
def test_flat_at_300_covers_every_element(preset: str) -> None:
    # issue 19's example: M = P = 300 moved 0.853x of Q, K, V and AV and ran below the floor
    sizes = {"B": 1, "H": 2, "M": 300, "P": 300, "E": 64, "F": 64}
    result = get_mapper("flat")().map(load_cascade("attention-3pass-mh"), load_arch(preset), sizes)
    _check_floors(result, "attention-3pass-mh", preset, sizes)


FLAT_FORMS = ("attention-1pass-mh", "attention-2pass-tilemax-mh", "attention-2pass-deferred-mh")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=_sizes(),
    tiles=st.integers(1, 12),
    pick=st.integers(0, 10),
)
def test_flat_key_tiled_forms_hold_the_floors(sizes: dict[str, int], tiles: int, pick: int) -> None:
    # the 1-pass and 2-pass forms (key tiles of M0 = 256 keys) on FLAT's arrays
    sizes = {**sizes, "M": 256 * tiles}
    name = FLAT_FORMS[pick % len(FLAT_FORMS)]
    preset = CASES["flat"][1][pick % 3]
    try:
        result = get_mapper("flat")().map(load_cascade(name), load_arch(preset), sizes)
    except MappingError:
        assume(False)
        return
    _check_floors(result, name, preset, sizes)
