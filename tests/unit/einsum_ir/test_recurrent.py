"""The recurrent state analysis: found from structure, E x F per head, independent of M."""

from __future__ import annotations

import math

import pytest

from attnsim.einsum_ir import builtin_names, load_cascade, load_cascade_text
from attnsim.einsum_ir.analysis.recurrent import (
    CHUNK_SIZES,
    find_states,
    head_ranks,
    query_ranks,
    state_report,
)
from attnsim.einsum_ir.library import ZOO
from attnsim.einsum_ir.library.zoo_base import LINEAR

LINEAR_NAMES = [e.name for e in ZOO if e.family == LINEAR]
# the quadratic forms (the causal forward's and Lightning-2's backward) carry no state
STATEFUL = [e.name for e in ZOO if e.family == LINEAR and e.algorithm != "quadratic"]
CHUNKED = ["attention-linear-causal-chunked", "attention-lightning-2", "attention-gla"]


def sizes(m: int, e: int, f: int) -> dict[str, int]:
    return {"B": 2, "H": 3, "M": m, "P": m, "E": e, "F": f}


@pytest.mark.parametrize("name", STATEFUL)
@pytest.mark.parametrize(("e", "f"), [(16, 32), (64, 64)])
def test_state_is_e_by_f_per_head_at_any_length(name: str, e: int, f: int) -> None:
    cascade = load_cascade(name)
    short, long = state_report(cascade, sizes(512, e, f)), state_report(cascade, sizes(4096, e, f))
    assert short.head_ranks == long.head_ranks == ("B", "H")
    biggest = max(zip(short.words, short.states, strict=True))
    assert biggest[0] == e * f and set(biggest[1].ranks) == {"E", "F"}
    assert short.words == long.words == short.words_doubled
    for state, words in zip(short.states, short.words, strict=True):  # E (normalizer) or E x F
        assert words == math.prod({"E": e, "F": f}[r] for r in state.ranks)
    assert short.passes == 1


def test_the_state_is_what_the_structure_says_whatever_the_names() -> None:
    cascade = load_cascade_text(
        """\
cascade: renamed-linear
inputs: {A: [N, T], Bk: [N, S], C: [W, S]}
einsums:
  - Mem[n,w] = Bk[n,s] * C[w,s]
  - Out[w,t] = A[n,t] * Mem[n,w]
outputs: [Out]
""",
        "renamed.yaml",
    )
    assert query_ranks(cascade, "S") == ("T",)
    assert head_ranks(cascade, "S") == ()
    (state,) = find_states(cascade, "S")
    assert (state.tensor, state.ranks, state.over) == ("Mem", ("N", "W"), None)
    report = state_report(cascade, {"N": 8, "T": 5, "S": 100, "W": 3}, "S")
    assert report.words == report.words_doubled == (24,)


def test_quadratic_form_and_softmax_cascades_have_no_state() -> None:
    # The quadratic form multiplies masked scores by V: nothing summarises the keys. Softmax
    # cascades' running max and sums carry the query rank.
    assert find_states(load_cascade("attention-linear-causal-quadratic")) == ()
    for name in builtin_names():
        if name.startswith(("attention-1pass", "attention-3pass", "attention-2pass")):
            assert find_states(load_cascade(name)) == (), name


def test_per_chunk_scans_are_not_carried_state() -> None:
    # GLA's cumulative gate BC restarts in every chunk (indexed by M1): only KV is carried.
    states = find_states(load_cascade("attention-gla"))
    assert [(s.tensor, s.over) for s in states] == [("KV", "M1")]


@pytest.mark.parametrize("name", CHUNKED)
def test_chunk_size_trades_quadratic_work_against_state_traffic(name: str) -> None:
    report = state_report(load_cascade(name), sizes(4096, 64, 64))
    assert report.chunk_rank == "M0"
    costs = report.chunk_costs
    assert [c.chunk for c in costs] == list(CHUNK_SIZES)
    state_words = sum(report.words)
    for small, big in zip(costs, costs[1:], strict=False):
        assert big.intra_multiplies > small.intra_multiplies  # more quadratic work per chunk
        assert big.inter_multiplies <= small.inter_multiplies
        assert big.spill_words < small.spill_words  # fewer chunk boundaries
        # doubling the chunk roughly doubles the (causal) quadratic work
        assert 1.8 < big.intra_multiplies / small.intra_multiplies < 2.2
    for c in costs:
        assert c.chunks == math.ceil(4096 / c.chunk)
        assert c.spill_words == c.chunks * state_words
        # the state work is about 2 S E F whatever the chunk: K^T V per chunk, Q times state
        assert 2 * 4096 * 64 * 64 <= c.inter_multiplies < 2.2 * 4096 * 64 * 64


def test_unchunked_forms_have_no_chunk_table() -> None:
    for name in ("attention-linear", "attention-linear-causal-recurrent", "attention-lightnet"):
        report = state_report(load_cascade(name), sizes(1024, 32, 32))
        assert report.states and report.chunk_rank is None and report.chunk_costs == ()


def test_chunk_sizes_beyond_the_sequence_are_left_out() -> None:
    report = state_report(load_cascade("attention-lightning-2"), sizes(64, 8, 8))
    assert [c.chunk for c in report.chunk_costs] == [c for c in CHUNK_SIZES if c <= 64]


def test_only_the_key_rank_has_a_state() -> None:
    cascade = load_cascade("attention-lightning-2")
    assert [s.tensor for s in find_states(cascade, "M")] == ["KV"]
    assert find_states(cascade, "M1") == ()  # a part of the key rank: its chunks, no state
