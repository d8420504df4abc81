"""The one hardened YAML reader: hostile bytes, tags, aliases, depth and empty documents.

Each input is a located problem (`file:line:col: path: message`) through every loader that
uses the reader (cascades, architectures, experiments, calibrations) and exit 2 in the CLI.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from attnsim.archs.calibration import load_calibration
from attnsim.archs.load import load_arch, preset_path
from attnsim.einsum_ir.load import load_cascade
from attnsim.einsum_ir.spec import MAX_DEPTH, MAX_NODES, Reader, SpecError
from attnsim.reports.cli.main import main

CASCADE = """\
cascade: tiny
inputs: {Q: [E, P], K: [E, M]}
einsums:
  - "QK[m,p] = Q[e,p] * K[e,m]"
outputs: [QK]
"""


def problems(text: str | bytes) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode()
    return [str(p) for p in Reader.from_bytes(data, "f.yaml").problems]


def test_a_clean_file_has_no_problems() -> None:
    assert problems(CASCADE) == []


def test_bytes_that_are_not_utf8_are_located_each() -> None:
    data = CASCADE.encode().replace(b"tiny", b"ti\xffny").replace(b"[QK]", b"[Q\xfeK]")
    assert problems(data) == [
        "f.yaml:1:12: <top>: byte 0xff is not UTF-8 text; save the file as UTF-8",
        "f.yaml:5:12: <top>: byte 0xfe is not UTF-8 text; save the file as UTF-8",
    ]


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!float abc", "!!float"),
        ("!!int ''", "!!int"),
        ("!!bool maybe", "!!bool"),
        ("!!timestamp x", "!!timestamp"),
        ("!!python/object/apply:os.system [ls]", "!!python/object/apply:os.system"),
        ("!custom x", "!custom"),
    ],
)
def test_tags_are_refused_with_their_path(value: str, tag: str) -> None:
    text = CASCADE.replace("cascade: tiny", f"cascade: {value}")
    message = f"YAML tags ({tag}) are not supported; write a plain value"
    assert problems(text) == [f"f.yaml:1:10: cascade: {message}"]


def test_an_impossible_date_is_read_as_text() -> None:
    reader = Reader.from_text("when: 2024-13-45\n", "f.yaml")
    assert reader.problems == []
    when = reader.get("when")
    assert when is not None and when.value == "2024-13-45"


def test_a_recursive_alias_is_located() -> None:
    text = CASCADE.replace("outputs: [QK]", "outputs: &a [QK, *a]")
    assert problems(text) == ["f.yaml:5:18: outputs[1]: alias *a refers to itself"]


def test_a_billion_laughs_file_stops_at_the_expansion_limit_fast() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    start = time.perf_counter()
    found = problems("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 1.0
    assert len(found) == 1
    assert found[0].startswith("f.yaml:6:")
    assert found[0].endswith(f"aliases expand the document past {MAX_NODES:,} values")


def test_nesting_deeper_than_the_limit_is_located() -> None:
    text = "outputs: " + "[" * 5000 + "]" * 5000 + "\n"
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith(f"f.yaml:1:{9 + MAX_DEPTH}: outputs[0][0]")
    assert found[0].endswith(f"nesting deeper than {MAX_DEPTH} levels")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n   \n"])
def test_an_empty_document_is_a_problem(text: str) -> None:
    expected = "f.yaml:1:1: <top>: the file is empty (or only comments); expected a mapping"
    assert problems(text) == [expected]


def test_control_characters_are_located_each() -> None:
    text = CASCADE.replace("tiny", "ti\x01ny").replace("[QK]", "[Q\x1bK]")
    assert problems(text) == [
        "f.yaml:1:12: <top>: control character U+0001 is not allowed; remove it",
        "f.yaml:5:12: <top>: control character U+001B is not allowed; remove it",
    ]


def test_a_syntax_error_is_located() -> None:
    assert problems("a: [1, 2\n") == [
        "f.yaml:2:1: <top>: YAML syntax error: expected ',' or ']', but got '<stream end>'"
    ]


def test_a_missing_file_is_a_problem(tmp_path: Path) -> None:
    reader = Reader.from_file(tmp_path / "nope.yaml")
    assert [p.message for p in reader.problems] == ["cannot read: No such file or directory"]


def bad_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(b"name: \xff\n")
    return path


def test_every_loader_uses_the_reader(tmp_path: Path) -> None:
    expected = "1:7: <top>: byte 0xff is not UTF-8 text; save the file as UTF-8"
    for load in (load_cascade, load_arch, load_calibration):
        path = bad_file(tmp_path, f"{load.__name__}.yaml")
        with pytest.raises(SpecError) as err:
            load(path)
        assert str(err.value) == f"{path}:{expected}"


@pytest.mark.parametrize("command", [["cascade", "check"], ["cascade", "show"], ["check"]])
def test_the_cli_exits_2_with_the_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: !!float abc\n")
    assert main([*command, str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines()[-1] == (
        f"{path}:1:7: name: YAML tags (!!float) are not supported; write a plain value"
    )
    assert "Traceback" not in err


def test_presets_still_read_their_kind() -> None:
    assert preset_path("h200").exists()
    from attnsim.archs.load import preset_kind

    assert preset_kind("h200") == "gpu"


def test_a_control_character_written_as_an_escape_is_located() -> None:
    assert problems('cascade: "ti\\x00ny"\n') == [
        "f.yaml:1:10: cascade: control character U+0000 is not allowed in a value"
    ]


def test_a_name_no_file_system_accepts_is_not_a_crash() -> None:
    with pytest.raises(SpecError) as err:
        load_arch("x" * 3000)
    assert "no such file or preset" in str(err.value)
    with pytest.raises(SpecError) as err:
        load_cascade("x" * 3000)
    assert "no such file or built-in cascade" in str(err.value)
