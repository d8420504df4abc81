"""Every experiment under examples/ passes `attnsim check` (found by glob)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.cli import main

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_examples_are_found() -> None:
    assert any(p.name == "fusemax-vs-flat.yaml" for p in EXAMPLES)
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_checks(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: ok: ") or out.startswith(f"{path}: skipped: needs mappers")
