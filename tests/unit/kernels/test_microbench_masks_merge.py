"""`kernels.calibrate.microbench_masks --merge`: what it replaces and what it keeps (no GPU)."""

from __future__ import annotations

import os

import pytest
import yaml

from attnsim.archs.calibration import load_calibration

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton
pytest.importorskip("triton")

from attnsim.kernels.calibrate.microbench_masks import main  # noqa: E402

STEP = {"dtype": "bf16", "head_dim": 64, "block_m": 128, "block_n": 128, "num_warps": 8,
        "num_stages": 3, "blocks_per_sm": 1}  # fmt: skip
BLOCK = {**STEP, "blocks": 132, "waves": 1, "tiles": "host", "step_us": 1.5}
CAL = {
    "device": "NVIDIA H200",
    "date": "2026-12-04",
    "source": "test",
    "attention_steps": [{"mode": "online", **STEP, "step_us": 1.4},
                        {"mode": "score-sigmoid", **STEP, "step_us": 9.9}],
    "attention_blocks": [{"mode": "online", **BLOCK, "fixed_us": 1.0},
                         {"mode": "online", **BLOCK, "tiles": "device", "fixed_us": 2.0},
                         {"mode": "window", **BLOCK, "fixed_us": 9.9}],
}  # fmt: skip
FOUND = {
    "attention_steps": [{"mode": "score-sigmoid", **STEP, "step_us": 1.3},
                        {"mode": "window", **STEP, "step_us": 2.5}],
    "attention_blocks": [{"mode": "online", **BLOCK, "fixed_us": 7.1},
                         {"mode": "window", **BLOCK, "fixed_us": 7.4, "loop_us": 0.7}],
}  # fmt: skip


def test_merge_replaces_its_modes_and_the_online_blocks_it_measured(tmp_path):
    cal, entries = tmp_path / "cal.yaml", tmp_path / "entries.yaml"
    cal.write_text("# Written by hand\n" + yaml.safe_dump(CAL, sort_keys=False))
    entries.write_text(yaml.safe_dump(FOUND, sort_keys=False))
    for _ in range(2):  # merging twice changes nothing more
        assert main(["--merge", str(cal), "--entries", str(entries)]) == 0
        data = yaml.safe_load(cal.read_text())
        steps = {(e["mode"], e["step_us"]) for e in data["attention_steps"]}
        assert steps == {("online", 1.4), ("score-sigmoid", 1.3), ("window", 2.5)}
        blocks = sorted((e["mode"], e["tiles"], e["fixed_us"]) for e in data["attention_blocks"])
        # the host-tiles online entry is replaced, the device one (not measured here) kept
        assert blocks == [("online", "device", 2.0), ("online", "host", 7.1),
                          ("window", "host", 7.4)]  # fmt: skip
        assert sum("microbench_masks" in n for n in data["notes"]) == 1
    assert cal.read_text().startswith("# Written by hand")
    loaded = load_calibration(cal)
    window = [p for p in loaded.attention_blocks if p.mode == "window"]
    assert [p.loop_s for p in window] == [0.7e-6]


def test_bad_merge_input_is_a_clear_error(tmp_path, capsys):
    """A missing calibration or entries file: the command's usage error, exit 2."""
    entries = tmp_path / "entries.yaml"
    entries.write_text(yaml.safe_dump(FOUND))
    for argv in (["--merge", str(tmp_path / "nope.yaml"), "--entries", str(entries)],
                 ["--merge", str(entries), "--entries", str(tmp_path / "nope.yaml")],
                 ["--entries", str(entries)]):  # fmt: skip
        try:
            main(argv)
        except SystemExit as stop:
            assert stop.code == 2
        else:
            raise AssertionError(f"no usage error for {argv}")
        err = capsys.readouterr().err
        assert "error:" in err and "Traceback" not in err


def test_a_pingpong_only_merge_leaves_the_plain_kernels_modes(tmp_path):
    """`--pingpong-only` measures modes pingpong-score-*: merging them keeps every other."""
    cal, entries = tmp_path / "cal.yaml", tmp_path / "entries.yaml"
    cal.write_text(yaml.safe_dump(CAL, sort_keys=False))
    pingpong = [{"mode": f"pingpong-score-{s}", **STEP, "step_us": us}
                for s, us in (("softmax", 1.5), ("sigmoid", 1.2))]  # fmt: skip
    entries.write_text(yaml.safe_dump({"attention_steps": pingpong}, sort_keys=False))
    assert main(["--merge", str(cal), "--entries", str(entries)]) == 0
    data = yaml.safe_load(cal.read_text())
    steps = {(e["mode"], e["step_us"]) for e in data["attention_steps"]}
    assert steps == {("online", 1.4), ("score-sigmoid", 9.9), ("pingpong-score-softmax", 1.5),
                     ("pingpong-score-sigmoid", 1.2)}  # fmt: skip
    assert len(data["attention_blocks"]) == len(CAL["attention_blocks"])
    loaded = load_calibration(cal)
    modes = {p.mode for p in loaded.attention_steps}
    assert {"pingpong-score-softmax", "pingpong-score-sigmoid"} <= modes
