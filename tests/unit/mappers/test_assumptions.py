"""A cascade's stated assumptions reach every mapper's Result, and survive YAML."""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade, load_cascade_text
from attnsim.einsum_ir.load import format_cascade
from attnsim.mappers.registry import get_mapper

SIZES = {"E": 16, "F": 16, "P": 256, "M": 256}
STATED = ("keys selected by top-k are given as a size K", "a second one")


def stated_cascade() -> str:
    text = format_cascade(load_cascade("attention-1pass"))
    items = ", ".join(f'"{a}"' for a in STATED)
    return text.replace("inputs:", f"assumptions: [{items}]\ninputs:", 1)


def test_assumptions_round_trip_through_yaml() -> None:
    cascade = load_cascade_text(stated_cascade())
    assert cascade.assumptions == STATED
    assert load_cascade_text(format_cascade(cascade)).assumptions == STATED


@pytest.mark.parametrize(("mapper", "arch"), [("fusemax", "fusemax"), ("gpu-1pass", "h200")])
def test_every_assumption_is_a_result_warning(mapper: str, arch: str) -> None:
    cascade = load_cascade_text(stated_cascade())
    plain = get_mapper(mapper)().map(load_cascade("attention-1pass"), load_arch(arch), SIZES)
    stated = get_mapper(mapper)().map(cascade, load_arch(arch), SIZES)
    added = [w for w in stated.warnings if w not in plain.warnings]
    assert added == [f"cascade assumption: {a}" for a in STATED]
    assert (stated.flops, stated.latency_s) == (plain.flops, plain.latency_s)


def test_a_bad_assumptions_entry_names_its_line() -> None:
    text = stated_cascade().replace('"a second one"', "{x: 1}")
    with pytest.raises(Exception, match=r"assumptions"):
        load_cascade_text(text)
