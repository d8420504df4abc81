"""Experiment files mangled the way a hurried edit mangles them: every problem located, no
crash (issue 19 items 3 and 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnsim.einsum_ir.spec import SpecError
from attnsim.reports.dse.experiment import load_experiment

EXAMPLE = Path(__file__).parents[4] / "examples" / "fusemax-vs-flat.yaml"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        load_experiment(path)
    return [str(p).removeprefix(f"{path}:") for p in err.value.problems]


def test_swapped_mappers_and_designs_sections_are_located_not_a_crash(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    swapped = (
        text.replace("mappers:\n", "@@\n")
        .replace("designs:\n", "mappers:\n")
        .replace("@@\n", "designs:\n")
    )
    found = problems(tmp_path, swapped)
    line = 1 + swapped.splitlines().index("mappers:")
    assert found[0] == (
        f"{line + 1}:19: mappers.fusemax.arch: unknown key 'arch'; known keys: mapper, options"
    )


def test_a_tag_in_an_experiment_is_located(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("name: fusemax-vs-flat", "name: !!float abc")
    assert problems(tmp_path, text) == [
        "4:7: name: YAML tags (!!float) are not supported; write a plain value"
    ]


def test_an_empty_experiment_file_is_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path, "# nothing yet\n") == [
        "1:1: <top>: the file is empty (or only comments); expected a mapping"
    ]
