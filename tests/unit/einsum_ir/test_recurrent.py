"""The recurrent state analysis: found from structure, E x F per head, independent of M."""

from __future__ import annotations

from attnsim.einsum_ir import builtin_names, load_cascade, load_cascade_text
from attnsim.einsum_ir.analysis.recurrent import (
    find_states,
    head_ranks,
    query_ranks,
    state_report,
)


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


def test_softmax_cascades_have_no_state() -> None:
    # Softmax cascades' running max and sums carry the query rank.
    for name in builtin_names():
        if name.startswith(("attention-1pass", "attention-3pass", "attention-2pass")):
            assert find_states(load_cascade(name)) == (), name
