"""The README starts with exactly two commands, and the main-job command works."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from attnsim.reports.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    first_section = text.split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", first_section, re.S)


def test_readme_starts_with_exactly_two_commands() -> None:
    commands = _commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert main_job.startswith("pip install -e . && attnsim ")
    assert tests.strip() == "bash .ci/run"
    assert (ROOT / ".ci" / "run").exists()


def test_main_job_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main_job = _commands()[0]
    argv = shlex.split(main_job.split("&&", 1)[1])
    assert argv[0] == "attnsim"
    args = [str(ROOT / a) if (ROOT / a).is_file() else a for a in argv[1:]]
    args[args.index("--out") + 1] = str(tmp_path / "out")
    assert main(args) == 0, capsys.readouterr().out
    for name in ("results.csv", "results.sqlite", "report.html"):
        assert (tmp_path / "out" / name).exists(), name


def test_variant_guide_names_files_and_symbols_that_exist() -> None:
    """docs/adding-a-variant.md stays true: every path it names exists, and every symbol it
    names next to a file is defined in that file."""
    text = (ROOT / "docs" / "adding-a-variant.md").read_text()
    paths = set(
        re.findall(r"`((?:einsum_ir|mappers|kernels|reports|archs|tests)/[\w/.<>-]+)`", text)
    )
    assert paths, "the guide names no files"
    for path in paths:
        if "<" in path:
            continue
        assert (ROOT / path.rstrip("/")).exists(), path
    symbols = {
        "einsum_ir/library/builder.py": ["MaskForm", "MASK_TEXT", "_MASK_WHERE", "_MASK_PARAMS"],
        "einsum_ir/reference.py": ["attention_mask"],
        "einsum_ir/analysis/structure.py": ["attention_problem"],
        "einsum_ir/analysis/masks.py": ["MaskKind", "name_mask"],
        "einsum_ir/ir.py": ["UnaryOp", "FUNCTION_UNARY_OPS"],
        "mappers/spatial/compute.py": ["lower_work"],
    }
    for path, names in symbols.items():
        source = (ROOT / path).read_text()
        for name in names:
            assert name in text, f"the guide no longer names {name}"
            assert re.search(rf"^(class |def )?{re.escape(name)}\b", source, re.M), (path, name)
