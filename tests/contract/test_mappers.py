"""Contract tests: every registered mapper x every built-in cascade x every preset.

A mapper either returns a Result that satisfies the invariants below or refuses with a
`MappingError` that says why; it never raises anything else. New mappers, cascades and
presets are picked up without edits.
"""

from __future__ import annotations

import math

import pytest

from attnsim import mappers
from attnsim.archs.load import load_arch, preset_names
from attnsim.einsum_ir import builtin_names, load_cascade
from attnsim.einsum_ir.analysis.structure import StructureError, attention_problem
from attnsim.einsum_ir.sizes import resolve_sizes
from attnsim.mappers.registry import get_mapper, mapper_names
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

SIZES = {"B": 2, "H": 2, "M": 2048, "P": 1536, "E": 64, "F": 64, "D": 256, "S": 1024}
EPS = 1e-9


def _sizes_for(cascade_name: str) -> dict[str, int]:
    cascade = load_cascade(cascade_name)
    ranks = set(cascade.all_ranks)
    return {k: v for k, v in SIZES.items() if k in ranks}


def _map(mapper: str, cascade_name: str, preset: str) -> Result | None:
    try:
        return get_mapper(mapper)().map(
            load_cascade(cascade_name), load_arch(preset), _sizes_for(cascade_name)
        )
    except MappingError as exc:
        assert str(exc), "a refusal must say why"
        return None


def compulsory_bytes(cascade_name: str, word_bytes: int) -> float:
    """Every input read once and every output written once; keys no query sees need no read.

    A cascade with no (query, key) score problem (linear attention) has no unseen keys.

    (A causal mask aligned top-left with P < M leaves the last M - P keys unseen: a mapper
    that skips empty tiles never loads them.)
    """
    cascade = load_cascade(cascade_name)
    sizes = resolve_sizes(cascade, _sizes_for(cascade_name))
    ranks = cascade.tensor_ranks
    try:
        ap = attention_problem(cascade, _sizes_for(cascade_name))
    except StructureError:  # no (query, key) score problem (linear attention): no key unseen
        key, seen = None, 1.0
    else:
        key = ap.roles.key
        seen = ap.tiles(ap.seq_q, 1).visited / ap.seq_k  # share of keys some query sees
    total = 0.0
    for t in list(cascade.input_names) + list(cascade.outputs):
        words = math.prod(sizes[r] for r in ranks[t])
        keyed = any(cascade.root(r) == key for r in ranks[t])
        total += words * (seen if keyed and t in cascade.input_names else 1.0)
    return total * word_bytes


CASES = [
    (m, c, p)
    for m in mapper_names()
    if m != "layer-matmuls"
    for c in builtin_names()
    for p in preset_names()
]


@pytest.mark.parametrize(("mapper", "cascade", "preset"), CASES)
def test_invariants(mapper: str, cascade: str, preset: str) -> None:
    result = _map(mapper, cascade, preset)
    if result is None:
        return
    arch = load_arch(preset)
    assert result.latency_s > 0 and result.latency_cycles > 0
    assert result.energy_pj > 0
    assert all(item.energy_pj >= 0 and item.count >= 0 for item in result.energy)
    assert result.dram_traffic_bytes >= compulsory_bytes(cascade, arch.word_bytes) * (1 - EPS)
    assert result.latency_cycles >= max(result.compute_cycles, result.memory_cycles) * (1 - EPS)
    for unit in result.units:
        assert 0 <= unit.utilization <= 1 + EPS, unit
    for einsum in result.per_einsum:
        assert 0 <= einsum.utilization <= 1 + EPS, einsum
    for occ in result.occupancy:
        assert occ.peak_bytes <= occ.capacity_bytes or occ.spilled_bytes > 0 or result.warnings
    assert Result.from_json(result.to_json()) == result
    assert result.passes >= 0


@pytest.mark.parametrize("mapper", [m for m in mapper_names() if m != "layer-matmuls"])
@pytest.mark.parametrize("cascade", ["attention-1pass-mh", "attention-3pass-mh"])
def test_more_bandwidth_is_never_slower(mapper: str, cascade: str) -> None:
    base = load_arch("fusemax")
    previous = math.inf
    for gib in (25, 50, 100, 200, 400, 800, 1600):
        arch = base.with_dram_bandwidth(gib * 2**30)
        try:
            result = get_mapper(mapper)().map(load_cascade(cascade), arch, _sizes_for(cascade))
        except MappingError:
            return
        assert result.latency_s <= previous * (1 + EPS)
        previous = result.latency_s


@pytest.mark.parametrize("mapper", [m for m in mapper_names() if m != "layer-matmuls"])
def test_bigger_array_never_lowers_peak_throughput(mapper: str) -> None:
    cascade = "attention-1pass-mh"
    base = load_arch("fusemax")
    previous_cycles = math.inf
    previous_peak = 0.0
    for side in (32, 64, 128, 256, 512):
        arch = base.with_array_shape(base.array_2d.name, side, side)
        arch = arch.with_array_shape(base.array_1d.name, 1, side)
        peak = sum(a.lanes for a in arch.arrays) * arch.clock_hz
        assert peak >= previous_peak
        previous_peak = peak
        try:
            result = get_mapper(mapper)().map(load_cascade(cascade), arch, _sizes_for(cascade))
        except MappingError:
            return
        assert result.compute_cycles <= previous_cycles * (1 + EPS)
        previous_cycles = result.compute_cycles


def test_registry_lists_every_mapper_module() -> None:
    assert {"fusemax"} <= set(mapper_names())
    with pytest.raises(KeyError, match="did you mean 'fusemax'"):
        get_mapper("fusemx")
    assert mappers.Result is Result
