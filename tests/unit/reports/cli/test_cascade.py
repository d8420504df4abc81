"""`attnsim cascade list` by parts and `cascade show`'s attention problem and YAML output."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnsim import einsum_ir
from attnsim.einsum_ir import library as lib
from attnsim.einsum_ir.library.builder import MaskForm
from attnsim.reports.cli.cascade import default_sizes, select_variants
from attnsim.reports.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_list_shows_the_parts(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "cascade", "list")
    assert status == 0, err
    rows = {line.split()[0]: line.split()[1:5] for line in out.splitlines()}
    assert rows["attention-1pass-gqa-window"] == ["1pass", "gqa", "window", "softmax"]
    assert rows["attention-3pass-mh-causal-br"] == ["3pass", "mh", "causal-br", "softmax"]
    assert rows["attention-1pass-mh-sigmoid"] == ["1pass", "mh", "none", "sigmoid"]
    assert rows["attention-2pass-plain-mh-softcap"][3] == "softmax+softcap"


def test_list_filters_by_part(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "cascade", "list", "--mask", "window")
    assert status == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names and all("-window" in n and "sinks" not in n for n in names)
    status, out, _ = run(
        capsys,
        "cascade",
        "list",
        "--all",
        "--algorithm",
        "2pass-tilemax",
        "--heads",
        "mqa",
        "--score",
        "alibi",
    )
    names = [line.split()[0] for line in out.splitlines()]
    assert names == sorted(
        f"attention-2pass-tilemax-mqa{'-' + str(m) if m != MaskForm.NONE else ''}-alibi"
        for m in MaskForm
    )
    status, _, err = run(capsys, "cascade", "list", "--mask", "diagonal")
    assert status == 2 and "invalid choice" in err


def test_select_variants() -> None:
    chosen = select_variants(lib.CATALOG, score="sigmoid")
    assert {v.name for v in chosen} >= {"attention-1pass-sigmoid", "attention-1pass-mh-sigmoid"}
    assert select_variants(lib.CATALOG) == list(lib.CATALOG)


def test_show_describes_the_attention_problem(capsys: pytest.CaptureFixture[str]) -> None:
    argv = (
        "cascade",
        "show",
        "attention-3pass-mh-causal-br",
        "--sizes",
        "B=1,H=2,M=100,P=10,E=4,F=4",
    )
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    lines = [line.strip() for line in out.splitlines()]
    assert "parts:      algorithm 3pass, heads mh, mask causal-br, score softmax" in out
    assert "attention problem:" in lines
    assert "mask: causal (bottom-right)" in lines
    assert f"visible (query, key) pairs per head: {sum(91 + p for p in range(10)):,}" in lines


def test_show_without_sizes_uses_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "cascade", "show", "attention-1pass-gqa-sinks-window")
    assert status == 0, err
    assert "attention problem (at default sizes B=1, E=128, P=4096, M=4096, F=128)" in out
    assert "mask: sinks+window S=4 W=1024" in out
    assert "shared: K across R; V across R" in out
    cascade = einsum_ir.load_cascade("attention-1pass-gqa-sinks-window")
    assert set(default_sizes(cascade)) == {"B", "E", "P", "M", "F"}


def test_show_yaml_writes_a_loadable_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, _ = run(capsys, "cascade", "show", "attention-1pass-mh-window-softcap", "--yaml")
    assert status == 0
    assert out.startswith("# FuseMax 1-pass attention")
    path = tmp_path / "mine.yaml"
    path.write_text(out)
    assert einsum_ir.load_cascade(path) == einsum_ir.load_cascade(
        "attention-1pass-mh-window-softcap"
    )
