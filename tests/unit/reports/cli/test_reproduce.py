"""`attnsim reproduce fusemax`: every produced cell within its target of the published tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnsim.reports.cli.main import main
from attnsim.reports.paper import compare
from attnsim.reports.paper.reproduce import TABLES, reproduce

REFERENCE = Path(__file__).resolve().parents[5] / "shared" / "reference" / "fusemax"
LENGTHS = [2**10, 2**12, 2**14, 2**16, 2**18, 2**20]


@pytest.fixture(scope="module")
def rows() -> dict[str, list[dict[str, object]]]:
    return reproduce(["BERT", "TrXL", "T5", "XLM"], LENGTHS)


def test_every_table_has_every_point(rows: dict[str, list[dict[str, object]]]) -> None:
    assert set(rows) == set(TABLES)
    for name in TABLES:
        assert len(rows[name]) == 4 * (6 if name != "pareto" else 6)


def test_all_reference_cells_within_targets(rows: dict[str, list[dict[str, object]]]) -> None:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference tables not found at {REFERENCE}")
    comparison = compare.compare_tables(rows, REFERENCE)
    assert not comparison.failures, comparison.summary()
    compared = [c for c in comparison.rows if c.status == "ok"]
    assert len(compared) > 600  # BERT and TrXL: every numeric cell of every table


def test_headline_means_match_the_paper(rows: dict[str, list[dict[str, object]]]) -> None:
    # The paper (Sec. VI) reports plain means over 4 models x 6 lengths: 6.7x speedup over
    # FLAT at 79% of its energy for attention, 5.3x at 83% end to end.
    means = compare.headline_means(rows)
    assert means["points"] == 24
    assert means["attention_speedup"] == pytest.approx(6.7, abs=0.05)
    assert means["attention_energy_ratio"] == pytest.approx(0.79, abs=0.01)
    assert means["end_to_end_speedup"] == pytest.approx(5.3, abs=0.05)
    assert means["end_to_end_energy_ratio"] == pytest.approx(0.83, abs=0.01)


def test_fusemax_utilization_range(rows: dict[str, list[dict[str, object]]]) -> None:
    # Paper: FuseMax 2D utilization 0.89-0.996 and 1D utilization 1.0 over all points.
    util_2d = [float(r["util_2d"]) for r in rows["attn-binding"]]  # type: ignore[arg-type]
    util_1d = [float(r["util_1d"]) for r in rows["attn-binding"]]  # type: ignore[arg-type]
    assert min(util_2d) == pytest.approx(0.89, abs=0.005)
    assert max(util_2d) == pytest.approx(0.996, abs=0.003)
    assert all(u == pytest.approx(1.0) for u in util_1d)


def test_cli_writes_tables_figures_and_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "reproduce",
            "fusemax",
            "--out",
            str(tmp_path),
            "--models",
            "BERT",
            "--lengths",
            "1K,4K",
            *(["--reference", str(REFERENCE)] if REFERENCE.is_dir() else ["--no-compare"]),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert (tmp_path / "comparison.csv").exists() == REFERENCE.is_dir()
    for name in TABLES:
        assert (tmp_path / f"{name}.csv").exists()
    assert len(list(tmp_path.glob("fig*.png"))) == 7
    assert "headline means" in out


def test_cli_without_reference_says_so_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from attnsim.reports.cli import reproduce as reproduce_cli

    monkeypatch.setattr(reproduce_cli, "reference_candidates", lambda: [tmp_path / "nowhere"])
    out = tmp_path / "out"
    assert main(["reproduce", "fusemax", "--out", str(out), "--models", "BERT"]) == 2
    captured = capsys.readouterr()
    assert "found none (looked in " + str(tmp_path / "nowhere") in captured.err
    assert "--reference DIR" in captured.err and "--no-compare" in captured.err
    assert "Traceback" not in captured.err and "skipped" not in captured.out
    assert not out.exists()  # nothing computed before the reference is found
    assert main(["reproduce", "fusemax", "--out", str(out), "--reference", str(out)]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_cli_bad_model_and_length_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reproduce", "fusemax", "--out", str(tmp_path), "--models", "GPT9"]) == 2
    assert "unknown GPT9" in capsys.readouterr().err
    assert main(["reproduce", "fusemax", "--out", str(tmp_path), "--lengths", "4Q"]) == 2
    assert "--lengths" in capsys.readouterr().err


def test_map_cli_prints_one_design_point(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "map",
            "--arch",
            "fusemax",
            "--cascade",
            "attention-1pass",
            "--mapper",
            "fusemax",
            "--sizes",
            "M=4096,P=4096,E=64,F=64",
            "--option",
            "step=arch",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    for section in ("per Einsum", "traffic by tensor", "energy by component", "occupancy"):
        assert section in out
    assert "step=arch" in out


def test_map_cli_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    base = [
        "map",
        "--arch",
        "fusemax",
        "--cascade",
        "attention-1pass",
        "--sizes",
        "M=64,P=64,E=16,F=16",
    ]
    assert main([*base, "--mapper", "fusemx"]) == 2
    assert "did you mean 'fusemax'" in capsys.readouterr().err
    assert main([*base, "--mapper", "fusemax", "--option", "step=turbo"]) == 2
    assert "--option step: expected one of 'cascade', 'arch', 'binding', got 'turbo'" in (
        capsys.readouterr().err
    )
    assert main([*base, "--mapper", "fusemax", "--option", "p1=lots"]) == 2
    assert "--option p1: expected an integer >= 0" in capsys.readouterr().err
    # every bad option at once, checked by value before anything is mapped
    argv = [*base, "--mapper", "flat", "--option", "p1=-1", "--option", "spilled_fraction=2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--option p1: expected an integer >= 0" in err
    assert "--option spilled_fraction: expected a number in [0, 1], got 2.0" in err
    assert "Traceback" not in err


def test_map_cli_list_option_is_a_tuple_of_names(capsys: pytest.CaptureFixture[str]) -> None:
    from attnsim.mappers.options import mapper_options, parse_text
    from attnsim.mappers.registry import get_mapper
    from attnsim.reports.cli.map import parse_options

    flat = get_mapper("flat")
    assert parse_options(flat, ["onchip=QK,A"]) == {"onchip": ("QK", "A")}
    assert parse_options(flat, ["onchip="]) == {"onchip": ()}
    assert parse_text(mapper_options(flat)["onchip"], " Q , K ") == ("Q", "K")
    with pytest.raises(ValueError, match="onchip: unknown 'Z'; expected a list of Q, K, QK"):
        parse_options(flat, ["onchip=QK,Z"])
    argv = ["map", "--arch", "flat", "--cascade", "attention-3pass", "--mapper", "flat"]
    argv += ["--sizes", "M=256,P=256,E=64,F=64", "--option", "onchip=QK,A", "--json"]
    assert main(argv) == 0  # a string "QK,A" would have been read as roles Q, K, ",", A
    assert ["onchip", "QK,A"] in json.loads(capsys.readouterr().out)["options"]


def test_the_packaged_tables_are_the_last_candidate_and_match_the_reference() -> None:
    """The wheel's copy of the FuseMax tables is found when no shared/ copy is around."""
    from attnsim.reports.cli import reproduce as reproduce_cli

    packaged = reproduce_cli.reference_candidates()[-1]
    assert packaged.parts[-3:] == ("paper", "data", "fusemax")
    names = sorted(p.name for p in packaged.glob("*.csv"))
    assert "pareto.csv" in names and "attn-binding.csv" in names
    shared = Path(__file__).resolve().parents[5] / "shared" / "reference" / "fusemax"
    if shared.is_dir():  # the copy is the published table, byte for byte
        for name in names:
            assert (packaged / name).read_bytes() == (shared / name).read_bytes(), name
