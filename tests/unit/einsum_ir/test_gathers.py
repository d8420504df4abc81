"""`gathers`: inputs declared as data-dependent picks of other inputs, and their passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnsim.einsum_ir import count_passes, load_cascade_text
from attnsim.einsum_ir.load import format_cascade
from attnsim.einsum_ir.spec import SpecError
from attnsim.reports.cli.main import main

TOP_K = """
cascade: topk
inputs: {Q: [E, P], K: [E, M], C: [E, U], KG: [E, N]}
einsums:
  - CS[m,p] = Q[e,p] * K[e,m]
  - CM[p] = max[m](CS[m,p])
  - QC[u,p] = Q[e,p] * C[e,u]
  - A[n,p] = Q[e,p] * KG[e,n]
outputs: [A, CM, QC]
"""


def with_gathers(block: str) -> str:
    return TOP_K + f"gathers: {block}\n"


@pytest.mark.parametrize(
    ("block", "passes"),
    [
        ("", 1),  # no declaration: the picks are just an input, read in pass 1
        ("{KG: {from: K, by: [CM]}}", 2),  # picks from a statistic over all of M
        ("{KG: {from: K, by: [CS]}}", 2),  # a top-k over per-key scores needs them all
        ("{KG: {from: K, by: [QC]}}", 1),  # picks known before the first pass (no M)
    ],
)
def test_picks_read_after_the_sweep_that_makes_them(block: str, passes: int) -> None:
    cascade = load_cascade_text(with_gathers(block) if block else TOP_K, "t.yaml")
    report = count_passes(cascade, "M")
    assert report.passes == passes
    if block:  # the attention over the picks sweeps the memory in the last pass
        assert report.pass_of("A") == passes
    else:  # A iterates N only: not a sweep over M at all
        assert not next(r for r in report.einsum_passes if r.output == "A").iterates_rank
    assert report.pass_of("CS") == 1


def test_round_trip_keeps_the_gathers() -> None:
    cascade = load_cascade_text(with_gathers("{KG: {from: K, by: [CM], rank: N}}"), "t.yaml")
    (g,) = cascade.gathers
    assert (g.tensor, g.source, g.by, g.rank) == ("KG", "K", ("CM",), "N")
    text = format_cascade(cascade)
    assert "gathers: {KG: {from: K, by: [CM], rank: N}}" in text
    assert load_cascade_text(text, "again.yaml") == cascade
    assert cascade != load_cascade_text(TOP_K, "plain.yaml")  # the gathers count in equality


def test_every_problem_is_reported_with_its_place() -> None:
    bad = with_gathers("{KX: {from: KK, by: [ZZ, 3]}, KG: {frm: K}}")
    with pytest.raises(SpecError) as err:
        load_cascade_text(bad, "bad.yaml")
    text = str(err.value)
    for expected in (
        "gathers.KX: 'KX' is not an input",
        "gathers.KX.from: 'KK' is not an input",
        "gathers.KX.by[0]: 'ZZ' is neither an input nor an Einsum's output",
        "gathers.KX.by[1]: expected a string",
        "gathers.KG: missing required key 'from'",
        "gathers.KG.frm: unknown key 'frm'; did you mean 'from'?",
    ):
        assert expected in text, expected
    assert all(line.startswith("bad.yaml:") for line in text.splitlines())


def test_picked_rank_is_named_when_the_input_has_several_new_ranks() -> None:
    text = TOP_K.replace("KG: [E, N]}", "KG: [E, U, N]}").replace("KG[e,n]", "KG[e,u,n]")
    text = text.replace("A[n,p] =", "A[u,n,p] =")
    with pytest.raises(SpecError, match=r"gathers.KG: KG has 2 ranks K lacks \(U, N\)"):
        load_cascade_text(text + "gathers: {KG: {from: K, by: [CM]}}\n", "t.yaml")
    named = load_cascade_text(text + "gathers: {KG: {from: K, by: [CM], rank: N}}\n", "t.yaml")
    assert named.gathers[0].rank == "N"
    assert count_passes(named, "M").passes == 2


def test_picked_rank_must_be_one_the_source_lacks() -> None:
    with pytest.raises(SpecError, match=r"gathers.KG.rank: expected a rank of KG that K lacks: N"):
        load_cascade_text(with_gathers("{KG: {from: K, by: [CM], rank: E}}"), "t.yaml")


def test_cascade_check_exits_2_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(with_gathers("{KG: {from: V, by: [CM]}}"), encoding="utf-8")
    assert main(["cascade", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "gathers.KG.from: 'V' is not an input" in err
    assert "Traceback" not in err


def test_picks_that_depend_on_the_picked_input_are_an_error() -> None:
    text = TOP_K.replace("outputs: [A, CM, QC]", "outputs: [A, CM, QC, AS]").replace(
        "  - A[n,p] = Q[e,p] * KG[e,n]\n",
        "  - A[n,p] = Q[e,p] * KG[e,n]\n  - AS[p] = A[n,p]\n",
    )
    with pytest.raises(SpecError, match=r"gathers.KG.by: KG's picks depend on KG itself"):
        load_cascade_text(text + "gathers: {KG: {from: K, by: [AS]}}\n", "t.yaml")
