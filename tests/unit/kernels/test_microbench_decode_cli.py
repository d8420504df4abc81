"""microbench_decode's command line and its update of an existing calibration (no GPU)."""

from __future__ import annotations

import pytest

from attnsim.kernels.calibrate import microbench_decode as md


def test_help_lists_the_updates(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        md.main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert all(f in out for f in ("--extend", "--mla-loads", "--streamk-merges", "--raw"))


def test_an_update_of_a_missing_file_is_a_usage_error(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as done:
        md.main(["--out", str(tmp_path / "none.yaml"), "--streamk-merges"])
    assert done.value.code == 2 and "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:  # the updates exclude each other
        md.main(["--out", str(tmp_path / "x.yaml"), "--extend", "--mla-loads"])
    assert done.value.code == 2


def test_updated_replaces_the_same_measurements_and_keeps_the_rest() -> None:
    split = {"head_dim": 128, "value_dim": 128, "rows": 16, "piece_us": 1.0, "part_us": 0.2}
    stream = dict(split, strategy="streamk", part_us=0.3)
    record = {"device": "X", "merges": [split, stream], "loads": []}
    fresh_split = dict(split, part_us=0.25, strategy="splitk")
    got = md.updated(record, {"merges": [fresh_split]})
    assert got["merges"] == [stream, fresh_split]  # split-K's replaced, stream-K's kept
    assert record["merges"] == [split, stream]  # the input is left alone
    got = md.updated(got, {"merges": [dict(stream, part_us=0.4)]})
    assert [m["part_us"] for m in got["merges"]] == [0.25, 0.4]


def test_merge_fit_and_curve() -> None:
    # t(s) - t(1) = 0.5 us + s x 0.5 us
    splits, times = (1, 2, 4, 8), (10e-6, 11.5e-6, 12.5e-6, 14.5e-6)
    curve = md._merge_curve(splits, times)
    assert curve["piece_us"] == pytest.approx(0.5)
    assert curve["part_us"] == pytest.approx(0.5)
    assert curve["splits"] == [2, 4, 8] and curve["added_us"] == pytest.approx([1.5, 2.5, 4.5])
