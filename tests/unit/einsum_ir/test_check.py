"""Whole-cascade validation: every problem at once, each with file:line and YAML path."""

from __future__ import annotations

import textwrap

import pytest

from attnsim.einsum_ir.load import load_cascade, load_cascade_text
from attnsim.einsum_ir.spec import SpecError

GOOD = """\
cascade: softmax-rows
inputs: {X: [N, P]}
einsums:
  - MX[p] = max[n](X[n,p])
  - EX[n,p] = exp(X[n,p] - MX[p])
  - SX[p] = EX[n,p]
  - Y[n,p] = EX[n,p] / SX[p]
outputs: [Y]
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_cascade_text(textwrap.dedent(text), "bad.yaml")
    return [str(p) for p in info.value.problems]


def test_good_cascade_loads() -> None:
    c = load_cascade_text(GOOD, "good.yaml")
    assert [e.output for e in c.einsums] == ["MX", "EX", "SX", "Y"]
    assert c.tensor_ranks["EX"] == ("N", "P")


def test_every_problem_reported_at_once_with_lines() -> None:
    msgs = problems_of(
        """\
        cascade: broken
        inputs: {Q: [E, P], K: [E, M]}
        einsums:
          - QK[m,p] = Q[e,p] * KK[e,m]
          - QK[m,p] = Q[e,p] * K[m]
          - S[m,p] = exp(QK[m,x])
          - T[m,p] = U[m,p]
          - U[m,p] = S[m,p]
        outputs: [T, Z]
        """
    )
    joined = "\n".join(msgs)
    assert "bad.yaml:4:5: einsums[0]: QK[m,p] = Q[e,p] * KK[e,m]: unknown tensor KK" in joined
    assert "bad.yaml:5:5: einsums[1]: " in joined and "defined twice" in joined
    assert "rank mismatch: K is declared over [E, M] but accessed as K[m]" in joined
    assert "bad.yaml:6:5: einsums[2]" in joined and "unbound index x" in joined
    assert "uses U before its definition at einsums[4] (line 8)" in joined
    assert "bad.yaml:9:14: outputs[1]: unknown output tensor Z" in joined
    assert len(msgs) >= 6


def test_recurrence_needs_init_and_init_needs_recurrence() -> None:
    msgs = problems_of(
        """\
        cascade: prefix
        inputs: {X: [N]}
        partitions: {N: [N1, N0]}
        init: {T: 0}
        einsums:
          - S[n1+1] = S[n1] + X[n1,n0]
          - T[n1] = S[n1+1]
        outputs: [T]
        """
    )
    joined = "\n".join(msgs)
    assert "S is a recurrence over n1 and needs an initial value" in joined
    assert "bad.yaml:4:11: init.T: init given for T, which is not a recurrence" in joined


def test_cycle_is_reported() -> None:
    msgs = problems_of(
        """\
        cascade: cyc
        inputs: {X: [N]}
        einsums:
          - A[n] = X[n] + B[n]
          - B[n] = A[n]
        outputs: [B]
        """
    )
    joined = "\n".join(msgs)
    assert "cycle of dependencies: A -> B -> A" in joined


def test_final_iterate_of_non_recurrence_and_where_binding() -> None:
    msgs = problems_of(
        """\
        cascade: fin
        inputs: {X: [N, P]}
        partitions: {N: [N1, N0]}
        einsums:
          - L[n1,p] = max[n0](X[n1,n0,p])
          - Y[p] = L[N1,p]
          - Z[n1,p] = L[n1,p] where n <= p
          - W[n1,p] = L[n1,p] where q < 3
        outputs: [Y, Z, W]
        """
    )
    joined = "\n".join(msgs)
    assert "reads the final iterate N1, but L is not a recurrence over n1" in joined
    assert "unbound index q in the where clause" in joined
    assert "unbound index n in the where clause" in joined


def test_condition_may_use_unpartitioned_index() -> None:
    c = load_cascade_text(
        """\
cascade: causal-tiles
inputs: {X: [N, P]}
partitions: {N: [N1, N0]}
params: {N0: 4}
einsums:
  - L[n1,p] = max[n0](X[n1,n0,p]) where n <= p
outputs: [L]
""",
        "ok.yaml",
    )
    assert c.einsums[0].where


def test_recurrence_group_members_must_iterate_the_index() -> None:
    msgs = problems_of(
        """\
        cascade: grp
        inputs: {X: [N, P]}
        partitions: {N: [N1, N0]}
        init: {R: 0}
        einsums:
          - A[p] = R[N1,p] + 1
          - R[n1+1,p] = R[n1,p] + X[n1,n0,p]
        outputs: [A]
        """
    )
    assert any("before its definition" in m for m in msgs)


def test_syntax_error_has_caret_and_column() -> None:
    msgs = problems_of(
        """\
        cascade: syn
        inputs: {X: [N]}
        einsums:
          - Y[n] = X[n] ** 2
          - "Z[n] = erf(X[n])"
        outputs: [Y]
        """
    )
    first, second = msgs[0], msgs[1]
    assert first.startswith("bad.yaml:4:18: einsums[0]: syntax error: expected a value")
    assert first.splitlines()[-1].strip() == "^"
    assert second.startswith("bad.yaml:5:13: einsums[1]: syntax error: unknown function 'erf'")


def test_unknown_keys_and_wrong_types() -> None:
    msgs = problems_of(
        """\
        cascade: 3
        inputs: {X: [n]}
        einsum: []
        outputs: Y
        """
    )
    joined = "\n".join(msgs)
    assert "bad.yaml:1:10: cascade: expected a string, got 3" in joined
    assert "invalid rank name 'n'" in joined
    assert "unknown key 'einsum'; did you mean 'einsums'?" in joined
    assert "missing required key 'einsums'" in joined
    assert "outputs: expected a list" in joined


def test_yaml_syntax_error_is_a_problem() -> None:
    msgs = problems_of("cascade: [unclosed\n")
    assert msgs[0].startswith("bad.yaml:2:1: <top>: YAML syntax error")


def test_unknown_builtin_suggests_names() -> None:
    with pytest.raises(SpecError) as info:
        load_cascade("attention-1pas")
    assert "did you mean attention-1pass" in str(info.value)


def test_missing_file_is_a_problem(tmp_path: object) -> None:
    with pytest.raises(SpecError) as info:
        load_cascade("/nonexistent/file.yaml")
    assert "cannot read" in str(info.value)


def test_syntax_errors_do_not_hide_problems_in_other_einsums() -> None:
    msgs = problems_of(
        """\
        cascade: mixed
        inputs: {Q: [E, P]}
        einsums:
          - Y[p] = Q[e,p] ** 2
          - Z[p] = Y[p] + W[p]
          - U[q] = Z[p]
        outputs: [Y, U]
        """
    )
    assert msgs[0].startswith("bad.yaml:4:20: einsums[0]: syntax error")
    joined = "\n".join(msgs)
    # Y failed to parse but is still known to be defined: no noise about it.
    assert "unknown tensor Y" not in joined
    assert "bad.yaml:5:5: einsums[1]: Z[p] = Y[p] + W[p]: unknown tensor W" in joined
    assert "bad.yaml:6:5: einsums[2]: U[q] = Z[p]: unbound index q" in joined


def test_equality_in_the_where_clause_binds_an_output_index() -> None:
    # A gather (QM: the query at each key position) and a scatter (O: back to the query).
    c = load_cascade_text(
        """\
cascade: gather
inputs: {Q: [P], K: [M]}
einsums:
  - QM[m] = Q[p] where m == p
  - KQ[m] = QM[m] * K[m]
  - O[p] = KQ[m] where m == p
outputs: [O]
""",
        "ok.yaml",
    )
    assert len(c.einsums) == 3
    msgs = problems_of(
        """\
        cascade: broadcast
        inputs: {Q: [P]}
        partitions: {}
        einsums:
          - QM[m] = Q[p] where m <= p
        outputs: [QM]
        """
    )
    assert any("unbound index m: it appears on the left but not on the right" in m for m in msgs)
