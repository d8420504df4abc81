"""The architecture-override table: names, kinds, value checks, messages, and the README copy."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from attnsim.archs import SpatialArch, load_arch, preset_names
from attnsim.archs.load import KINDS
from attnsim.archs.overrides import (
    BY_NAME,
    OVERRIDES,
    apply_overrides,
    array_problem,
    markdown_table,
    name_problem,
    override_names,
    override_problems,
    parse_value,
)
from attnsim.einsum_ir.spec import SpecError

ROOT = Path(__file__).resolve().parents[3]


def test_table_names_are_unique_with_units_and_known_kinds() -> None:
    names = [o.name for o in OVERRIDES]
    assert len(names) == len(set(names)) == len(BY_NAME)
    assert override_names() == tuple(names)
    for o in OVERRIDES:
        assert o.unit and o.meaning and o.expected
        assert set(o.kinds) <= set(KINDS), o.name


@pytest.mark.parametrize("preset", preset_names())
def test_each_preset_takes_the_overrides_of_its_kind(preset: str) -> None:
    arch = load_arch(preset)
    kind = "spatial" if isinstance(arch, SpatialArch) else "gpu"
    for name in override_names():
        taken = name_problem(arch, name) is None
        assert taken == (kind in BY_NAME[name].kinds), (preset, name)


@pytest.mark.parametrize(
    ("name", "value", "canonical"),
    [
        ("clock_ghz", 1, 1.0),
        ("clock_ghz", 0.94, 0.94),
        ("dram_bandwidth_gib_per_s", 400, 400.0),
        ("buffer_bytes", 16777216, 16777216),
        ("buffer_bytes", "16MiB", 16 * 2**20),
        ("buffer_bytes", "512 KiB", 512 * 2**10),
        ("buffer_bytes", "2GiB", 2 * 2**30),
        ("array_shapes", [256, 128], [256, 128]),
        ("register_file_entries", 64, 64),
        ("calibration", "none", "none"),
        ("calibration", "preset", "preset"),
    ],
)
def test_good_values_in_canonical_form(name: str, value: Any, canonical: Any) -> None:
    got = parse_value(name, value)
    assert got == canonical and type(got) is type(canonical)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("clock_ghz", math.nan, "expected a positive finite number, got nan"),
        ("clock_ghz", math.inf, "expected a positive finite number, got inf"),
        ("clock_ghz", 0, "expected a positive finite number, got 0"),
        ("clock_ghz", -1.5, "expected a positive finite number, got -1.5"),
        ("clock_ghz", True, "expected a positive finite number, got True"),
        ("clock_ghz", "fast", "expected a positive finite number, got 'fast'"),
        ("dram_bandwidth_gib_per_s", math.inf, "expected a positive finite number, got inf"),
        ("dram_bandwidth_gib_per_s", -math.inf, "expected a positive finite number, got -inf"),
        ("buffer_bytes", 0, "expected a positive number of bytes, e.g. 16777216 or 16MiB, got 0"),
        ("buffer_bytes", 1.6e7, "expected a positive number of bytes, e.g. 16777216 or 16MiB, "
         "got 16000000.0"),
        ("buffer_bytes", math.nan, "expected a positive number of bytes, e.g. 16777216 or "
         "16MiB, got nan"),
        ("buffer_bytes", "16PB", "expected a positive number of bytes, e.g. 16777216 or 16MiB, "
         "got '16PB'"),
        ("array_shapes", [0, 4], "expected [rows, cols], two positive integers, got [0, 4]"),
        ("array_shapes", [4], "expected [rows, cols], two positive integers, got [4]"),
        ("array_shapes", [4.0, 4], "expected [rows, cols], two positive integers, got [4.0, 4]"),
        ("register_file_entries", 1.5, "expected a positive integer, got 1.5"),
        ("register_file_entries", -2, "expected a positive integer, got -2"),
        ("calibration", "off", "expected 'preset' or 'none', got 'off'"),
        ("calibration", None, "expected 'preset' or 'none', got None"),
    ],
)  # fmt: skip
def test_bad_values_say_what_was_expected(name: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_value(name, value)
    assert str(info.value) == message


def test_messages_name_what_the_preset_takes() -> None:
    h200, fusemax = load_arch("h200"), load_arch("fusemax")
    assert name_problem(h200, "buffer_bytes") == (
        "override 'buffer_bytes' does not apply to h200 (a GPU preset), which takes "
        "calibration; buffer_bytes is for spatial presets"
    )
    assert name_problem(fusemax, "bufer_bytes") == (
        "unknown override 'bufer_bytes'; did you mean 'buffer_bytes'? fusemax (a spatial "
        "preset) takes clock_ghz, dram_bandwidth_gib_per_s, buffer_bytes, array_shapes, "
        "register_file_entries"
    )
    assert name_problem(fusemax, "calibration") == (
        "override 'calibration' does not apply to fusemax (a spatial preset), which takes "
        "clock_ghz, dram_bandwidth_gib_per_s, buffer_bytes, array_shapes, "
        "register_file_entries; calibration is for gpu presets"
    )
    assert name_problem(h200, "clock") == (
        "unknown override 'clock'; h200 (a GPU preset) takes calibration"
    )
    assert array_problem(fusemax, "array_shapes", "array_3d") == (
        "unknown array 'array_3d' of fusemax; did you mean 'array_2d'? arrays: array_2d, array_1d"
    )


def test_override_problems_lists_every_problem() -> None:
    fusemax = load_arch("fusemax")
    overrides = {
        "clock_ghz": math.nan,
        "array_shapes": {"array_3d": [1, 1], "array_2d": [0, 1]},
        "register_file_entries": 5,
        "buffer_bytes": "8MiB",
    }
    assert override_problems(fusemax, overrides) == [
        ("overrides.clock_ghz", "expected a positive finite number, got nan"),
        ("overrides.array_shapes.array_3d", array_problem(fusemax, "array_shapes", "array_3d")),
        ("overrides.array_shapes.array_2d",
         "expected [rows, cols], two positive integers, got [0, 1]"),
        ("overrides.register_file_entries",
         "expected a mapping {array name: value}, got 5"),
    ]  # fmt: skip


def test_apply_overrides_converts_units_as_the_runner_does() -> None:
    from attnsim.reports.dse.runner import (
        _arch,  # the runner's cached arch: same numbers, same units
    )

    overrides = {
        "clock_ghz": 1.5,
        "dram_bandwidth_gib_per_s": 400.0,
        "buffer_bytes": 8 * 2**20,
        "array_shapes": {"array_2d": [128, 128]},
        "register_file_entries": {"array_1d": 32},
    }
    arch = apply_overrides(load_arch("fusemax"), overrides)
    assert isinstance(arch, SpatialArch)
    assert arch.clock_hz == 1.5e9 and arch.dram.bandwidth_bytes_per_s == 400 * 2**30
    assert arch.buffer.capacity_bytes == 8 * 2**20 and arch.array("array_2d").rows == 128
    assert arch == _arch("fusemax", "", json.dumps(overrides, sort_keys=True))
    assert load_arch("fusemax", overrides={"buffer_bytes": "8MiB"}).buffer.capacity_bytes == (
        8 * 2**20
    )


def test_apply_overrides_refuses_what_the_preset_cannot_take() -> None:
    h200 = load_arch("h200")
    assert apply_overrides(h200, {}) is h200
    with pytest.raises(SpecError) as info:
        load_arch("h200", overrides={"buffer_bytes": 1, "clock_ghz": 2.0})
    paths = [p.path for p in info.value.problems]
    assert paths == ["overrides.buffer_bytes", "overrides.clock_ghz"]
    assert str(info.value.problems[0]).endswith(
        "h200.yaml: overrides.buffer_bytes: override 'buffer_bytes' does not apply to h200 "
        "(a GPU preset), which takes calibration; buffer_bytes is for spatial presets"
    )
    with pytest.raises(SpecError, match="got inf"):
        load_arch("fusemax", overrides={"dram_bandwidth_gib_per_s": math.inf})


def test_readme_table_is_the_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    cli = readme.split("\n## CLI reference", 1)[1].split("\n## ", 1)[0]
    assert markdown_table() in cli, "regenerate it: archs.overrides.markdown_table()"
    listed = re.findall(r"^\| `([a-z_0-9]+)(?:\.ARRAY)?` \|", cli, re.M)
    assert tuple(listed) == override_names()


def test_effective_values_name_every_override_as_swept_paths() -> None:
    from attnsim.archs.overrides import apply_overrides, effective_values

    arch = apply_overrides(load_arch("fusemax"), {"buffer_bytes": "8MiB", "clock_ghz": 1.0})
    values = effective_values(arch)
    assert values["buffer_bytes"] == 8 * 2**20 and values["clock_ghz"] == 1.0
    assert values["array_shapes.array_2d"] == "256x256"  # the preset's default
    assert effective_values(load_arch("h200")) == {}


def test_gpu_calibration_override_reaches_the_runner() -> None:
    from attnsim.archs.gpu import GpuArch
    from attnsim.reports.dse.runner import _arch

    arch = _arch("h200", "", json.dumps({"calibration": "none"}))
    assert isinstance(arch, GpuArch) and arch.calibration is not None
    assert arch.calibration.origin == "datasheet"
    assert arch == load_arch("h200", overrides={"calibration": "none"})
    assert _arch("h200", "", json.dumps({"calibration": "preset"})) == load_arch("h200")
