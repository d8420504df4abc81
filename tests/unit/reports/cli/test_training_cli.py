"""The backward built-ins through the CLI: list, check, show, passes with the training report."""

from __future__ import annotations

import pytest

from attnsim import einsum_ir
from attnsim.einsum_ir.library import training_names
from attnsim.einsum_ir.load import builtin_text, load_cascade_text
from attnsim.reports.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("name", training_names())
def test_check_show_and_yaml_round_trip(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, out, err = run(capsys, "cascade", "check", name)
    assert status == 0, err
    assert out.startswith(f"{name}: ok:")
    assert load_cascade_text(builtin_text(name), f"{name}.yaml") == einsum_ir.load_cascade(name)
    status, out, err = run(capsys, "cascade", "show", name)
    assert status == 0, err
    assert "backward of: attention-" in out
    assert "attention problem (at default sizes" in out and "not read:" in out
    assert "backward (gradient) cascade" in out
    assert "training: forward attention-" in out


def test_passes_reports_what_crosses(capsys: pytest.CaptureFixture[str]) -> None:
    sizes = "B=1,H=2,P=128,M=256,E=64,F=64"
    status, out, err = run(capsys, "cascade", "passes", "attention-1pass-bwd-mh", "--sizes", sizes)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "attention-1pass-bwd-mh: 1 pass over M"
    assert "= 2 passes over M" in lines[4]
    assert any("LSE[B,H,P]" in line and "B*H*P = 256 words" in line for line in lines)
    assert any("pre-pass: D[b,h,p]" in line for line in lines)
    assert "(2.5x), forward + backward 3.5x" in lines[-1]
    status, out, _ = run(capsys, "cascade", "passes", "attention-3pass-bwd-mh", "--sizes", sizes)
    assert "A[B,H,M,P] = A: B*H*M*P = 65,536 words (stored for backward)" in out
    assert "= 5 passes over M" in out


def test_list_has_a_training_family(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "cascade", "list")
    assert status == 0, err
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# training"))
    rows = [line.split()[0] for line in lines[start + 1 : start + 1 + len(training_names())]]
    assert rows == list(training_names())
    status, out, _ = run(capsys, "cascade", "passes", "attention-1pass-mh")
    assert "training" not in out  # forward built-ins are unchanged
