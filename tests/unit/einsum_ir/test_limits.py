"""Bounded work on hostile cascades: deep and long Einsums, self-referential partitions and
`cascade check` linear in the number of Einsums (issue 19 item 3)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from attnsim.einsum_ir.load import load_cascade_text
from attnsim.einsum_ir.parse import MAX_NESTING, MAX_OPERATORS, ParseError, parse_einsum
from attnsim.einsum_ir.spec import SpecError
from attnsim.reports.cli.main import main

HEAD = "cascade: x\ninputs: {Q: [E, P], K: [E, M]}\n"


def messages(text: str) -> list[str]:
    with pytest.raises(SpecError) as err:
        load_cascade_text(text, "x.yaml")
    return [str(p) for p in err.value.problems]


def test_deep_parentheses_are_a_located_parse_error() -> None:
    text = "QK[m,p] = " + "(" * 3000 + "Q[e,p]" + ")" * 3000 + " * K[e,m]"
    with pytest.raises(ParseError) as err:
        parse_einsum(text)
    assert err.value.message == (
        f"expression nested deeper than {MAX_NESTING} levels; split it into several Einsums, "
        "found '('"
    )
    assert err.value.column == len("QK[m,p] = ") + MAX_NESTING


def test_a_chain_of_unary_minus_is_bounded() -> None:
    with pytest.raises(ParseError, match="nested deeper than"):
        parse_einsum("QK[m,p] = " + "-" * 5000 + "Q[e,p] * K[e,m]")


def test_grouped_conditions_are_bounded() -> None:
    where = "(" * 2000 + "m <= p" + ")" * 2000
    with pytest.raises(ParseError, match="nested deeper than"):
        parse_einsum(f"QK[m,p] = Q[e,p] * K[e,m] where {where}")


def test_a_long_expression_is_a_located_parse_error_fast() -> None:
    text = "QK[m,p] = " + " + ".join(["Q[e,p] * K[e,m]"] * 5000)
    start = time.perf_counter()
    with pytest.raises(ParseError) as err:
        parse_einsum(text)
    assert time.perf_counter() - start < 2.0
    assert err.value.message.startswith(f"more than {MAX_OPERATORS} operators in one Einsum")


def test_the_limits_leave_ordinary_einsums_alone() -> None:
    text = "QK[m,p] = " + " + ".join(["Q[e,p] * K[e,m]"] * 60)
    assert str(parse_einsum(text)).startswith("QK[m,p] = Q[e,p] * K[e,m] + ")


def test_a_long_einsum_in_a_file_names_the_file_line_and_field() -> None:
    rhs = " + ".join(["Q[e,p] * K[e,m]"] * 200)
    found = messages(HEAD + f'einsums:\n  - "QK[m,p] = {rhs}"\noutputs: [QK]\n')
    assert len(found) == 1
    assert found[0].startswith("x.yaml:4:")
    assert f"einsums[0]: syntax error: more than {MAX_OPERATORS} operators" in found[0]


@pytest.mark.parametrize(
    ("partitions", "expected"),
    [
        (
            "{M: [M, M0]}",
            ["x.yaml:3:17: partitions.M: partition of M contains M itself (M -> M)"],
        ),
        (
            "{M: [M1, M0], M1: [M, M2]}",
            [
                "x.yaml:3:17: partitions.M: partition of M contains M itself (M -> M1 -> M)",
                "x.yaml:3:31: partitions.M1: partition of M1 contains M1 itself (M1 -> M -> M1)",
            ],
        ),
        (
            "{M: [M0, M0]}",
            ["x.yaml:3:17: partitions.M: a partition names each part once, got M0, M0"],
        ),
    ],
)
def test_a_self_referential_partition_is_a_located_error(
    partitions: str, expected: list[str]
) -> None:
    text = HEAD + f'partitions: {partitions}\neinsums:\n  - "QK[m,p] = Q[e,p] * K[e,m]"\n'
    found = messages(text + "outputs: [QK]\n")
    assert found[: len(expected)] == expected


def test_cascade_check_is_linear_in_the_number_of_einsums(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def timed(n: int) -> float:
        lines = [HEAD + "einsums:", '  - "T0[m,p] = Q[e,p] * K[e,m]"']
        lines += [f'  - "T{i}[m,p] = T{i - 1}[m,p] * 2"' for i in range(1, n)]
        path = tmp_path / f"chain{n}.yaml"
        path.write_text("\n".join(lines) + f"\noutputs: [T{n - 1}]\n")
        start = time.perf_counter()
        assert main(["cascade", "check", str(path)]) == 0
        return time.perf_counter() - start

    timed(50)  # warm imports
    small, large = timed(250), timed(2000)
    capsys.readouterr()
    # 8x the Einsums: linear is ~8x, the old quadratic check ~64x; allow noise on a busy host.
    assert large < 25 * small + 0.5, (small, large)
