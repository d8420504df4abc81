"""The vectorized FLAT search picks what the one-candidate-at-a-time reference picks."""

from __future__ import annotations

import random
from typing import Any

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.result import Result
from attnsim.mappers.spatial import flat_search
from attnsim.mappers.spatial.flat import FlatMapper
from attnsim.mappers.spatial.flat_cost import breakdown, evaluate_one
from attnsim.mappers.spatial.view import MappingError

CASCADES = (
    "attention-3pass",
    "attention-3pass-mh",
    "attention-3pass-causal",
    "attention-3pass-mh-causal",
)
PRESETS = ("flat", "fusemax", "edge-flat")
ROLES = ("Q", "K", "QK", "A", "V", "AV")
STATIONARITIES = ("output", "weight", "input")
# powers of two, multiples of the array sides with odd factors, and neither
LENGTHS = (32, 100, 256, 768, 1000, 1536, 3000, 4096, 12288, 65536, 98304, 2**20)
FEATURES = (16, 48, 64, 80, 128, 256)
SEEDS = 160


def _case(seed: int) -> tuple[str, str, dict[str, int], dict[str, object]]:
    rng = random.Random(seed)
    cascade = rng.choice(CASCADES)
    sizes = {
        "B": rng.choice((1, 2, 3, 8)),
        "H": rng.choice((1, 5, 12, 16)),
        "M": rng.choice(LENGTHS),
        "P": rng.choice(LENGTHS),
        "E": rng.choice(FEATURES),
        "F": rng.choice(FEATURES),
    }
    ranks = set(load_cascade(cascade).all_ranks)
    sizes = {k: v for k, v in sizes.items() if k in ranks}
    fields: dict[str, object] = {}
    if rng.random() < 0.2:
        fields["granularity"] = rng.choice(("head", "row"))
    if rng.random() < 0.2:
        fields["qk_stationarity"] = rng.choice(STATIONARITIES)
    if rng.random() < 0.2:
        fields["av_stationarity"] = rng.choice(STATIONARITIES)
    if rng.random() < 0.15:
        fields["onchip"] = tuple(r for r in ROLES if rng.random() < 0.5)
    if rng.random() < 0.15:
        fields["p1"] = rng.choice((32, 256, 512, 1024))
    if rng.random() < 0.3:
        fields["search_budget"] = rng.choice((1, 20, 100, 400))
    if rng.random() < 0.2:
        fields["artifact_compat"] = True
    return cascade, rng.choice(PRESETS), sizes, fields


def _map(cascade: str, preset: str, sizes: dict[str, int], fields: dict[str, object]) -> object:
    try:
        return FlatMapper(**fields).map(load_cascade(cascade), load_arch(preset), sizes)
    except MappingError as exc:
        return str(exc)


def _assert_same_choice(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    cascade, preset, sizes, fields = _case(seed)
    new = _map(cascade, preset, sizes, fields)
    monkeypatch.setattr(flat_search, "search", flat_search._search_reference)
    old = _map(cascade, preset, sizes, fields)
    if isinstance(old, str):
        assert new == old
        return
    assert isinstance(new, Result) and isinstance(old, Result), new
    assert new.options == old.options
    assert new == old  # one cost model: the same numbers, bit for bit


@pytest.mark.parametrize("seed", range(SEEDS))
def test_search_matches_reference(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    _assert_same_choice(seed, monkeypatch)


def test_cases_cover_searches_budgets_and_refusals() -> None:
    cases = [_case(seed) for seed in range(SEEDS)]
    assert sum("search_budget" in f for *_, f in cases) >= 20
    assert sum(not f for *_, f in cases) >= 25
    assert sum(isinstance(_map(*case), str) for case in cases) >= 10
    assert {c for c, *_ in cases} == set(CASCADES)
    assert {p for _, p, *_ in cases} == set(PRESETS)


@pytest.mark.parametrize("seed", range(0, SEEDS, 16))
def test_grid_cells_equal_single_dataflows_bit_for_bit(seed: int) -> None:
    # the one cost model: a dataflow's numbers do not depend on the grid it is priced in
    cascade, preset, sizes, fields = _case(seed)
    arch = load_arch(preset)
    try:
        FlatMapper(**fields).map(load_cascade(cascade), arch, sizes)
    except MappingError:
        return
    seen: list[Any] = []
    evaluate = flat_search.evaluate

    def spy(*args: Any) -> Any:
        seen.append(args)
        return evaluate(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flat_search, "evaluate", spy)
        FlatMapper(**fields).map(load_cascade(cascade), arch, sizes)
    problem, _, nests, onchip, spill, compat = seen[0]
    grid = evaluate(problem, arch, nests, onchip, spill, compat)
    rng = random.Random(seed)
    for _ in range(40):
        g, s = rng.randrange(len(nests)), rng.randrange(len(onchip))
        one = evaluate(problem, arch, [nests[g]], onchip[s : s + 1], spill, compat)
        assert breakdown(one, 0, 0) == breakdown(grid, g, s)
        assert one.varying_energy_pj[0, 0] == grid.varying_energy_pj[g, s]
        # the fast path for one dataflow (Python floats, no grid) agrees bit for bit
        fast = evaluate_one(problem, arch, nests[g], list(onchip[s]), spill, compat)
        assert fast == breakdown(grid, g, s)
