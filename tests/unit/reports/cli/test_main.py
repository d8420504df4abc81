"""The `attnsim` CLI: each subcommand through `main([...])`, plus the installed script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from attnsim import einsum_ir
from attnsim.einsum_ir.analysis.ops import OpKind
from attnsim.reports.cli.main import main

GOOD = textwrap.dedent(
    """\
    cascade: softmax-3pass
    description: plain softmax attention
    inputs: {Q: [E, P], K: [E, M], V: [F, M]}
    einsums:
      - QK[m,p] = Q[e,p] * K[e,m]
      - GM[p] = max[m](QK[m,p])
      - SN[m,p] = exp(QK[m,p] - GM[p])
      - SD[p] = SN[m,p]
      - A[m,p] = SN[m,p] / SD[p]
      - AV[f,p] = A[m,p] * V[f,m]
    outputs: [AV]
    """
)
# Two independent problems on lines 4 and 6: a syntax error and an unknown key.
BAD = textwrap.dedent(
    """\
    cascade: broken
    inputs: {Q: [E, P], K: [E, M]}
    einsums:
      - QK[m,p] = Q[e,p] * * K[e,m]
    outputs: [QK]
    extra: 1
    """
)


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD, encoding="utf-8")
    return path


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--version")
    assert status == 0
    assert out.startswith("attnsim ")


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys)
    assert status == 2
    assert "cascade" in err


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "cascade", "frobnicate")
    assert status == 2
    assert "invalid choice" in err


def test_list_has_one_line_per_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "cascade", "list")
    assert status == 0, err
    lines = [line for line in out.splitlines() if not line.startswith("# ")]
    names = [line.split()[0] for line in lines]
    assert sorted(names) == list(einsum_ir.builtin_names())
    assert len(names) == len(set(names))
    one_pass = next(line for line in lines if line.startswith("attention-1pass "))
    assert "1 pass over M" in one_pass
    assert einsum_ir.load_cascade("attention-1pass").description in one_pass


def test_show_numbers_einsums_under_their_passes(
    capsys: pytest.CaptureFixture[str], good_file: Path
) -> None:
    status, out, err = run(capsys, "cascade", "show", str(good_file))
    assert status == 0, err
    assert "cascade softmax-3pass" in out
    assert "3 passes over M" in out
    lines = [line.strip() for line in out.splitlines()]
    assert lines.index("pass 1:") < lines.index("1  QK[m,p] = Q[e,p] * K[e,m]")
    assert lines.index("pass 2:") < lines.index("3  SN[m,p] = exp(QK[m,p] - GM[p])")
    assert lines.index("pass 3:") < lines.index("6  AV[f,p] = A[m,p] * V[f,m]")
    assert "-- crossing into pass 2: buffered QK; carried GM" in lines
    assert "-- crossing into pass 3: buffered SN; carried SD" in lines


def test_show_builtin_with_sizes_adds_ops_and_tensor_sizes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ("cascade", "show", "attention-1pass", "--sizes", "M=512,P=128,E=64,F=64")
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    cascade = einsum_ir.load_cascade("attention-1pass")
    counts = einsum_ir.count_ops(cascade, {"M": 512, "P": 128, "E": 64, "F": 64})
    rows = [line.split() for line in out.splitlines()]
    assert "1 pass over M  (with FLOPs per Einsum)" in out.splitlines()
    assert "after pass 1:" in out
    first = counts.per_einsum[0]
    assert ["1", f"{first.flops:,}", "QK[m1,m0,p]"] == rows[rows.index(["pass", "1:"]) + 1][:3]
    assert "operations:" in out
    assert ["flops", f"{counts.flops:,}"] in rows
    assert ["multiply", f"{counts.total[OpKind.MULTIPLY]:,}"] in rows
    assert not any(row[:1] == ["sigmoid"] for row in rows)  # kinds that never occur are left out
    assert "tensor sizes (elements):" in out
    assert ["QK", "[M1,M0,P]", f"{2 * 256 * 128:,}"] in rows


def test_show_with_sizes_gives_boundary_footprints(
    capsys: pytest.CaptureFixture[str], good_file: Path
) -> None:
    status, out, err = run(capsys, "cascade", "show", str(good_file), "--sizes", "M=8,P=4,E=2,F=2")
    assert status == 0, err
    assert "  -- crossing into pass 2: buffered QK; carried GM (32 + 4 elements)" in out


def test_passes_summarizes_each_phase(capsys: pytest.CaptureFixture[str], good_file: Path) -> None:
    status, out, err = run(capsys, "cascade", "passes", str(good_file))
    assert status == 0, err
    assert out.splitlines() == [
        "softmax-3pass: 3 passes over M",
        "  pass 1: QK, GM",
        "  -- crossing into pass 2: buffered QK; carried GM",
        "  pass 2: SN, SD",
        "  -- crossing into pass 3: buffered SN; carried SD",
        "  pass 3: A, AV",
    ]


def test_passes_over_another_rank(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "cascade", "passes", "attention-1pass", "--rank", "M1")
    assert status == 0, err
    assert out.startswith("attention-1pass: 1 pass over M1")


def test_check_good_file(capsys: pytest.CaptureFixture[str], good_file: Path) -> None:
    status, out, err = run(capsys, "cascade", "check", str(good_file))
    assert (status, err) == (0, "")
    assert out == f"{good_file}: ok: 6 Einsums, 3 passes over M\n"


def test_check_reports_every_problem_of_every_file(
    capsys: pytest.CaptureFixture[str], good_file: Path, bad_file: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.yaml"
    status, out, err = run(capsys, "cascade", "check", str(bad_file), str(good_file), str(missing))
    assert status == 2
    assert out == f"{good_file}: ok: 6 Einsums, 3 passes over M\n"
    assert "Traceback" not in err
    assert f"{bad_file}:4:" in err  # the syntax error, with its line
    assert f"{bad_file}:6:" in err and "unknown key 'extra'" in err
    assert f"{missing}: " in err and "cannot read" in err


def test_unknown_cascade_name_suggests_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "cascade", "show", "attention-1pas")
    assert status == 2
    assert out == ""
    assert "attention-1pass" in err and "Traceback" not in err


def test_eval_prints_stats_per_output(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("cascade", "eval", "attention-1pass", "--sizes", "M=64,P=32,E=16,F=16", "--seed", "1")
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    (line,) = out.splitlines()
    fields = line.split()
    assert fields[0] == "AV"
    assert "shape=(16, 32)" in line
    assert "finite=yes" in line
    for stat in ("mean=", "std=", "min=", "max="):
        assert stat in line
    assert main(list(argv)) == 0
    assert capsys.readouterr().out == out  # seeded: the same numbers again


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        (
            "M=64,P",
            "--sizes: expected RANK=SIZE (a positive integer such as 64, 4K or 1M), got 'P'",
        ),
        ("M=64,P=x", "--sizes: expected RANK=SIZE"),
        ("M=64,P=32,E=16", "missing sizes for F"),
        ("M=64,P=32,E=16,F=16,Z=3", "unknown rank Z"),
    ],
)
def test_bad_sizes_exit_2_without_traceback(
    capsys: pytest.CaptureFixture[str], sizes: str, message: str
) -> None:
    for command in ("eval", "show"):
        status, out, err = run(capsys, "cascade", command, "attention-1pass", "--sizes", sizes)
        assert status == 2
        assert out == ""
        assert message in err
        assert "Traceback" not in err


def test_bad_rank_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "cascade", "passes", "attention-1pass", "--rank", "Z")
    assert status == 2
    assert "has no rank Z" in err


def test_installed_console_script(bad_file: Path) -> None:
    script = shutil.which("attnsim")
    if script is None:
        if os.environ.get("CI"):
            pytest.fail("the attnsim console script is not installed (pip install -e .)")
        pytest.skip("the attnsim console script is not installed (pip install -e .)")
    ok = subprocess.run(
        [script, "cascade", "list"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert ok.returncode == 0, ok.stderr
    assert "attention-1pass" in ok.stdout
    bad = subprocess.run(
        [script, "cascade", "check", str(bad_file)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert bad.returncode == 2
    assert f"{bad_file}:4:" in bad.stderr and "Traceback" not in bad.stderr


def test_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "attnsim.reports.cli.main", "--version"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[4],
    )
    assert result.returncode == 0
    assert result.stdout.startswith("attnsim ")


def test_parse_sizes_raises_size_error_and_takes_k_and_m() -> None:
    assert einsum_ir.parse_sizes("M=4K, P=1M,E=64") == {"M": 4096, "P": 2**20, "E": 64}
    assert einsum_ir.parse_sizes("m=2k") == {"m": 2048}
    with pytest.raises(einsum_ir.SizeError, match=r"got 'M=0'; .* got 'P=x'"):
        einsum_ir.parse_sizes("M=0,E=64,P=x")


def test_sizes_with_k_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    sizes = "B=1,H=2,E=64,F=64,P=1K,M=1K"
    base = ("map", "--arch", "fusemax", "--cascade", "attention-1pass-mh", "--mapper", "fusemax")
    status, out, err = run(capsys, *base, "--sizes", sizes)
    assert status == 0, err
    assert run(capsys, *base, "--sizes", sizes.replace("1K", "1024")) == (0, out, "")
