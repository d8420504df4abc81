"""Result.to_json: the same text as json.dumps(dataclasses.asdict(result)), and it round-trips."""

from __future__ import annotations

import dataclasses
import json

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result

CASES = [
    ("fusemax", "attention-1pass-mh", "fusemax", {}),
    ("flat", "attention-3pass-mh-window", "fusemax", {"W": 128}),
    ("unfused", "attention-3pass-mh", "fusemax", {}),
    ("gpu-1pass", "attention-1pass-mh-window", "h200", {"W": 128}),
]


@pytest.mark.parametrize("mapper, cascade, arch, extra", CASES, ids=[c[0] for c in CASES])
def test_to_json_is_asdict_and_round_trips(mapper, cascade, arch, extra):
    sizes = dict(B=1, H=2, M=1024, P=1024, E=64, F=64, **extra)
    r = get_mapper(mapper)().map(load_cascade(cascade), load_arch(arch), sizes)
    assert r.warnings or r.extras  # a populated result, not an empty shell
    text = r.to_json()
    assert text == json.dumps(dataclasses.asdict(r), sort_keys=True)
    assert Result.from_json(text) == r
