"""Every preset under archs/presets/ loads; found by glob, so new presets are picked up."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnsim.archs import SpatialArch, load_arch, preset_names

ALL_PRESETS = sorted((Path(__file__).resolve().parents[2] / "archs" / "presets").glob("*.yaml"))
SPATIAL = [p for p in ALL_PRESETS if p.stem in preset_names("spatial")]


def test_presets_are_found() -> None:
    assert ALL_PRESETS, "no presets found"
    assert tuple(p.stem for p in ALL_PRESETS) == preset_names()
    assert SPATIAL, "no spatial presets found"


@pytest.mark.parametrize("path", ALL_PRESETS, ids=[p.stem for p in ALL_PRESETS])
def test_preset_loads_by_path_and_by_name(path: Path) -> None:
    arch = load_arch(path)
    assert arch == load_arch(path.stem)
    assert arch.name == path.stem, "the `architecture:` name should match the file name"


@pytest.mark.parametrize("path", SPATIAL, ids=[p.stem for p in SPATIAL])
def test_spatial_preset_basics(path: Path) -> None:
    arch = load_arch(path)
    assert arch.clock_hz > 0 and arch.word_bytes > 0 and arch.dram.bandwidth_bytes_per_s > 0
    assert arch.area_um2 > 0


@pytest.mark.parametrize("path", SPATIAL, ids=[p.stem for p in SPATIAL])
def test_preset_has_what_the_mappers_expect(path: Path) -> None:
    # The spatial mappers bind Einsums to `array_2d` / `array_1d` and tile for `global_buffer`.
    arch = load_arch(path)
    assert isinstance(arch, SpatialArch)
    assert arch.array("array_2d").is_2d and not arch.array("array_1d").is_2d
    assert arch.buffer.name == "global_buffer"
    for op in ("mac", "add", "max", "mul"):
        assert arch.array("array_2d").supports(op) and arch.array("array_1d").supports(op)
    for op in ("exp", "divide"):
        assert arch.array("array_1d").supports(op)
