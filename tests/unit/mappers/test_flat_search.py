"""The vectorized FLAT search picks what the one-candidate-at-a-time reference picks."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from archs.load import load_arch
from einsum_ir import load_cascade
from mappers import flat_search
from mappers.flat import FlatMapper
from mappers.result import Result
from mappers.spatial import MappingError

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


def _assert_close(new: object, old: object, path: str = "") -> None:
    if isinstance(old, dict):
        assert isinstance(new, dict) and new.keys() == old.keys(), path
        for key in old:
            _assert_close(new[key], old[key], f"{path}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), path
        for k, (a, b) in enumerate(zip(new, old, strict=True)):
            _assert_close(a, b, f"{path}[{k}]")
    elif isinstance(old, float) and not isinstance(new, bool):
        assert new == pytest.approx(old, rel=1e-9, abs=1e-300), path
    else:
        assert new == old, path


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
    _assert_close(json.loads(new.to_json()), json.loads(old.to_json()))


@pytest.mark.parametrize("seed", range(SEEDS))
def test_search_matches_reference(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    _assert_same_choice(seed, monkeypatch)


@pytest.mark.parametrize("seed", range(0, SEEDS, 3))
def test_rescoring_near_ties_alone_matches_reference(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as if no score were exact (fractional spills, sums past 2**53): every near tie is
    # re-scored one at a time
    counts = flat_search._counts

    def inexact(*args: Any) -> flat_search._Counts:
        c = counts(*args)
        return replace(c, is_exact=np.zeros_like(c.is_exact))

    monkeypatch.setattr(flat_search, "_counts", inexact)
    _assert_same_choice(seed, monkeypatch)


def test_cases_cover_searches_budgets_and_refusals() -> None:
    cases = [_case(seed) for seed in range(SEEDS)]
    assert sum("search_budget" in f for *_, f in cases) >= 20
    assert sum(not f for *_, f in cases) >= 25
    assert sum(isinstance(_map(*case), str) for case in cases) >= 10
    assert {c for c, *_ in cases} == set(CASCADES)
    assert {p for _, p, *_ in cases} == set(PRESETS)


@pytest.mark.parametrize("seed", range(0, SEEDS, 16))
def test_exact_scores_equal_evaluate_bit_for_bit(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Any, ...]] = []
    pick = flat_search._pick

    def spy(*args: Any) -> Any:
        seen.append(args)
        return pick(*args)

    monkeypatch.setattr(flat_search, "_pick", spy)
    if isinstance(_map(*_case(seed)), str):
        return
    pb, counts, fits, _, evaluate = seen[0]
    memory, energy = flat_search._scores(pb, counts)
    latency = np.maximum(memory, counts.compute_cycles)
    checked = np.flatnonzero(fits & counts.is_exact)
    assert len(checked) > 0
    for k in checked[:: max(1, len(checked) // 200)]:
        _, ev = evaluate(int(k))
        assert latency[k] == ev.latency_cycles
        assert energy[k] == flat_search._varying_energy_pj(pb, ev)
        assert counts.footprint_words[k] == ev.footprint_words
