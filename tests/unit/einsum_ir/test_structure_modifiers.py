"""Score modifiers read after the key sum: row terms (a sink logit) and split accumulators (ACT)."""

from __future__ import annotations

import pytest

from attnsim.einsum_ir import load_cascade
from attnsim.einsum_ir.analysis.structure import (
    Modifier,
    attention_problem,
    row_terms,
    value_contractions,
)

SIZES = {"B": 1, "H": 2, "E": 8, "F": 8, "P": 64, "M": 64}
ROW, SPLIT = Modifier.ROW_TERM, Modifier.SPLIT_VALUES


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("attention-1pass-mh", set()),
        ("attention-3pass-mh-causal", set()),
        ("attention-sink-logit", {ROW}),  # SD = RD + exp(SB - RM): SB a per-head parameter
        ("attention-act", {ROW, SPLIT}),  # CB[h] after the sum; sink and rest accumulators
        ("attention-mla-absorbed", set()),  # the output projection's weight is no parameter
        ("attention-gla", set()),  # linear: V contracted inside and across chunks, no split
    ],
)
def test_modifiers_after_the_key_sum(name: str, expected: set[Modifier]) -> None:
    cascade = load_cascade(name)
    sizes = {k: v for k, v in SIZES.items() if k in cascade.size_symbols}
    found = set(attention_problem(cascade, sizes).score.modifiers) & {ROW, SPLIT}
    assert found == expected


def test_row_terms_and_value_contractions_name_their_einsums() -> None:
    act = load_cascade("attention-act")
    roles = attention_problem(act, {"B": 1, "H": 2, "E": 8, "F": 8, "P": 64, "M": 64}).roles
    outputs = [act.einsums[i].output for i in value_contractions(act, roles)]
    assert outputs == ["SLNV", "SSNV"]
    assert [act.einsums[i].output for i in row_terms(act, roles)] == ["CR", "AV"]  # read CB[h]
    sink = load_cascade("attention-sink-logit")
    sink_roles = attention_problem(sink, SIZES).roles
    assert [sink.einsums[i].output for i in row_terms(sink, sink_roles)] == ["SD"]
    assert len(value_contractions(sink, sink_roles)) == 1


def test_a_one_query_softmax_row_is_no_linear_attention_state() -> None:
    """DCAL's CLS row keeps a running max and denominator with no query rank: a softmax's
    statistics, not a linear-attention state (its score reads softmax, not linear)."""
    from attnsim.einsum_ir.analysis.recurrent import find_states
    from attnsim.einsum_ir.analysis.structure import ScoreKind

    dcal = load_cascade("attention-dcal")
    assert find_states(dcal, "M") == ()
    sizes = {"B": 1, "H": 2, "E": 8, "F": 8, "P": 64, "M": 64, "R": 4, "L": 2}
    assert attention_problem(dcal, sizes).score.kind == ScoreKind.SOFTMAX
    for name, states in (
        ("attention-linear", {"KV", "KS"}),
        ("attention-lightnet", {"U", "WKV"}),
        ("attention-longvq", {"L", "UV"}),
    ):
        assert {s.tensor for s in find_states(load_cascade(name), "M")} == states, name
