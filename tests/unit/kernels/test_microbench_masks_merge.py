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


def test_window_entries_recover_the_first_and_later_wave_figures(tmp_path):
    """`window_entries` inverts its own model of the timings: a one-wave grid of B blocks at
    j sink tiles takes floor + fixed + (masked + j) steps + loops; LATER_WAVES waves of
    slots add (later blocks - B) / slots later waves of the later figures (loaded as a
    calibration: the later entry is the shared-K/V one of mode window)."""
    from attnsim.kernels.calibrate.microbench_masks import (
        LATER_WAVES,
        WINDOW_SINK_TILES,
        WINDOW_TILES,
        window_entries,
    )

    common = {"mode": "window", **STEP, "block_n": 64}
    masked, slots, blocks = 4, 132, 128
    later_blocks = LATER_WAVES * slots

    def t(floor, fixed, step, loop, j):
        return floor + fixed + (masked + j) * step + (loop if j else 0.0)

    first = [t(3.0, 9.0, 2.0, 0.5, j) for j in WINDOW_SINK_TILES]
    adds = (later_blocks - blocks) / slots
    later = [
        f + adds * t(0.0, 6.0, 1.5, 0.25, j) for f, j in zip(first, WINDOW_SINK_TILES, strict=True)
    ]
    one, many = window_entries(common, first, 3.0, blocks, later, later_blocks, slots)
    assert (one["fixed_us"], one["step_us"], one["loop_us"], one["waves"]) == (9.0, 2.0, 0.5, 1)
    assert (many["fixed_us"], many["step_us"], many["loop_us"]) == (6.0, 1.5, 0.25)
    assert (many["waves"], many["q_tiles"], many["blocks"]) == (LATER_WAVES, WINDOW_TILES, 1056)
    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump({**CAL, "attention_blocks": [one, many]}), encoding="utf-8")
    cal = load_calibration(path)
    got = cal.later_shared("window", 64, (128, 64, 8, 3), "host", 1)
    assert got is not None and got.fixed_s == pytest.approx(6e-6) and got.waves == LATER_WAVES
    assert cal.block_loop("window", 64, (128, 64, 8, 3), 1) == pytest.approx(0.5e-6)
    assert window_entries(common, first, 3.0, blocks) == [one]  # no later grid, no entry


@pytest.mark.parametrize(
    "flag, parts",
    [({}, ["blocks", "scores", "window", "pingpong"]), ({"scores_only": True}, ["scores"]),
     ({"window_only": True}, ["window"]), ({"pingpong_only": True}, ["pingpong"])],
)  # fmt: skip
def test_each_only_flag_measures_its_part_alone(monkeypatch, flag, parts):
    """`measure` runs the parts its flag names (the GPU work replaced by recorders)."""
    from attnsim.kernels.calibrate import microbench_blocks
    from attnsim.kernels.calibrate import microbench_masks as mm
    from attnsim.kernels.triton import common

    ran: list[str] = []

    def record(name):
        def part(*args, **kw):
            ran.append("pingpong" if name == "scores" and "pingpong" in args else name)
            return {"attention_steps": []} if name == "window" else []

        return part

    class Props:
        multi_processor_count = 132

    class Cuda:
        @staticmethod
        def get_device_properties(i):
            return Props()

    class FakeTorch:
        cuda = Cuda()

    monkeypatch.setattr(common, "ensure_allocator", lambda: None)
    monkeypatch.setattr(microbench_blocks, "bench_floor_us", lambda torch: 1.0)
    monkeypatch.setattr(microbench_blocks, "measure_blocks", record("blocks"))
    monkeypatch.setattr(mm, "measure_scores", record("scores"))
    monkeypatch.setattr(mm, "measure_window", record("window"))
    found = mm.measure(FakeTorch(), **flag)
    assert ran == parts
    assert set(found) == {"attention_steps", "attention_blocks"}
