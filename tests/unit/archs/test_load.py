"""Architecture YAML loading: exact messages with file:line:col and YAML path, all at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from attnsim.archs import load_arch, load_arch_text, preset_names
from attnsim.einsum_ir.spec import SpecError

GOOD = """\
architecture: tiny
kind: spatial
clock_ghz: 1.0
word_bytes: 2
dram: {bandwidth_gb_per_s: 100, access_bytes: 8, energy_pj_per_access: 80}
levels:
  - name: global_buffer
    capacity_bytes: 65536
    row_bytes: 64
    read_energy_pj_per_row: 10
    write_energy_pj_per_row: 12
    area_table_um2: [[16384, 256, 100.0], [65536, 1024, 300.0]]
arrays:
  - name: array_2d
    shape: [4, 8]
    operations:
      mac: {cycles: 1, energy_pj: 2.0}
      add: {energy_pj: 1.0}
      sub: {composed_of: {add: 1}}
      exp: {composed_of: {mac: 6, add: 1}, absorbs: [sub]}
    register_file:
      entries: 16
      read_energy_pj: 0.5
      write_energy_pj: 0.25
      base_area_um2: 100
      area_um2_per_address_bit: 10
    unit_area_um2: {mac: 5, add: 0}
  - name: array_1d
    shape: [8]
    operations:
      divide: {cycles: 2, energy_pj: 3.0}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_arch_text(textwrap.dedent(text), "bad.yaml")
    return [str(p) for p in info.value.problems]


def test_good_arch_loads_with_every_field() -> None:
    arch = load_arch_text(GOOD, "good.yaml")
    assert (arch.name, arch.clock_hz, arch.word_bytes, arch.source) == ("tiny", 1e9, 2, "good.yaml")
    assert arch.dram.bandwidth_bytes_per_s == 100e9
    assert arch.buffer.area_um2 == 300.0
    a2 = arch.array("array_2d")
    assert (a2.rows, a2.cols, a2.lanes) == (4, 8, 32)
    assert a2.operation("add").cycles == 1.0  # cycles default to 1
    assert a2.operation("exp").composed_of == (("mac", 6), ("add", 1))
    assert a2.operation("exp").absorbs == ("sub",)
    assert a2.cycles("exp", ["sub"]) == 7 and a2.energy_pj("exp", ["sub"]) == 13.0
    assert a2.register_file is not None and a2.register_file.area_um2 == 120.0
    assert a2.area_um2 == 32 * 125.0
    a1 = arch.array("array_1d")
    assert (a1.rows, a1.cols, a1.is_2d, a1.register_file) == (1, 8, False, None)
    assert a1.cycles("divide") == 2


def test_every_problem_reported_at_once_with_lines() -> None:
    msgs = problems_of(
        """\
        architecture: broken
        clock_ghz: fast
        word_bytes: 2
        dram:
          bandwidth_gib_per_s: 400
          access_bytes: 8
        levels:
          - name: global_buffer
            capacity_bytes: -5
            row_bytes: 512
            read_energy_pj_per_row: 1
            write_energy_pj_per_row: 1
        arrays:
          - name: array_2d
            shape: [4, 4]
            operations:
              mac: {cycles: 1, energy_pj: 1.0}
              exp: {composed_of: {macc: 6}}
              a: {composed_of: {b: 1}}
              b: {composed_of: {a: 2}}
            regsiter_file: {entries: 4}
          - name: array_2d
            shape: [4]
            operations:
              add: {cycles: 1, energy_pj: 1.0}
              exp: {cycles: 1, energy_pj: 1.0, absorbs: [sbu]}
        """
    )
    assert msgs == [
        "bad.yaml:2:12: clock_ghz: expected a number, got 'fast'",
        "bad.yaml:5:3: dram: missing required key 'energy_pj_per_access'",
        "bad.yaml:9:21: levels[0].capacity_bytes: expected a positive integer, got -5",
        "bad.yaml:18:33: arrays[0].operations.exp.composed_of.macc: unknown operation 'macc'; "
        "did you mean 'mac'? operations of this array: mac, exp, a, b",
        "bad.yaml:19:24: arrays[0].operations.a.composed_of: composition cycle: a -> b -> a",
        "bad.yaml:21:20: arrays[0].regsiter_file: unknown key 'regsiter_file'; did you mean "
        "'register_file'? known keys: name, shape, operations, register_file, unit_area_um2",
        "bad.yaml:26:50: arrays[1].operations.exp.absorbs[0]: unknown operation 'sbu'; "
        "operations of this array: add, exp",
        "bad.yaml:22:11: arrays[1].name: duplicate array name 'array_2d' "
        "(first defined at line 14)",
    ]


def replaced(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("architecture: tiny\n", "", "bad.yaml:1:1: <top>: missing required key 'architecture'"),
        (
            "word_bytes: 2",
            "word_bytes: 2.5",
            "bad.yaml:4:13: word_bytes: expected an integer, got 2.5",
        ),
        (
            "kind: spatial",
            "kind: tpu",
            "bad.yaml:2:7: kind: expected kind 'spatial' or 'gpu', got 'tpu'",
        ),
        (
            "bandwidth_gb_per_s: 100,",
            "bandwidth_gb_per_s: 100, bandwidth_gib_per_s: 9,",
            "bad.yaml:5:7: dram: give exactly one of bandwidth_gib_per_s (2^30 B/s) "
            "or bandwidth_gb_per_s (1e9 B/s)",
        ),
        (
            "row_bytes: 64",
            "row_bytes: 48",
            "bad.yaml:9:16: levels[0].row_bytes: capacity_bytes 65536 is not a whole number "
            "of 48-byte rows",
        ),
        (
            "read_energy_pj_per_row: 10",
            "read_energy_pj_per_row: -1",
            "bad.yaml:10:29: levels[0].read_energy_pj_per_row: expected a number >= 0, got -1",
        ),
        (
            "    area_table_um2:",
            "    area_um2: 5\n    area_table_um2:",
            "bad.yaml:7:5: levels[0]: give area_um2 (fixed) or area_table_um2 (by capacity), "
            "not both",
        ),
        (
            "[65536, 1024, 300.0]",
            "[8192, 1024, 300.0]",
            "bad.yaml:12:43: levels[0].area_table_um2[1]: capacities must increase down the "
            "table; 8192 follows 16384",
        ),
        (
            "[65536, 1024, 300.0]",
            "[65536, 300.0]",
            "bad.yaml:12:43: levels[0].area_table_um2[1]: expected [capacity_bytes, row_bits, "
            "area_um2], got [65536, 300.0]",
        ),
        (
            "shape: [4, 8]",
            "shape: [4, 8, 2]",
            "bad.yaml:15:12: arrays[0].shape: expected [rows, cols] or [lanes], got [4, 8, 2]",
        ),
        (
            "shape: [4, 8]",
            "shape: [4, 0]",
            "bad.yaml:15:16: arrays[0].shape[1]: expected a positive integer, got 0",
        ),
        (
            "sub: {composed_of: {add: 1}}",
            "sub: {composed_of: {add: 1}, cycles: 2}",
            "bad.yaml:19:12: arrays[0].operations.sub: a composed operation takes its cycles "
            "and energy from its parts; remove cycles/energy_pj",
        ),
        (
            "sub: {composed_of: {add: 1}}",
            "sub: {composed_of: {sub: 1}}",
            "bad.yaml:19:26: arrays[0].operations.sub.composed_of: composition cycle: sub -> sub",
        ),
        (
            "absorbs: [sub]",
            "absorbs: [exp]",
            "bad.yaml:20:54: arrays[0].operations.exp.absorbs[0]: operation 'exp' cannot absorb "
            "itself",
        ),
        (
            "add: {energy_pj: 1.0}",
            "add: {energy_pj: 1.0, latency: 3}",
            "bad.yaml:18:38: arrays[0].operations.add.latency: unknown key 'latency'; known keys: "
            "cycles, energy_pj, composed_of, absorbs",
        ),
        (
            "unit_area_um2: {mac: 5, add: 0}",
            "unit_area_um2: {mac: 5, exq: 1}",
            "bad.yaml:27:34: arrays[0].unit_area_um2.exq: unknown operation 'exq'; did you mean "
            "'exp'? operations of this array: mac, add, sub, exp",
        ),
        (
            "      base_area_um2: 100",
            "      area_um2: 100",
            "bad.yaml:25:17: arrays[0].register_file.area_um2: unknown key 'area_um2'; did you "
            "mean 'base_area_um2'? known keys: entries, read_energy_pj, write_energy_pj, "
            "base_area_um2, area_um2_per_address_bit, base_entries",
        ),
        (
            "      entries: 16",
            "      entries: many",
            "bad.yaml:22:16: arrays[0].register_file.entries: expected an integer, got 'many'",
        ),
        (
            "  - name: array_1d",
            "  - name: global_buffer\n    name2: x",
            "bad.yaml:29:12: arrays[1].name2: unknown key 'name2'; did you mean 'name'? known "
            "keys: name, shape, operations, register_file, unit_area_um2",
        ),
    ],
)
def test_single_problem_messages(old: str, new: str, expected: str) -> None:
    assert problems_of(replaced(old, new)) == [expected]


def test_misspelled_key_reports_missing_and_unknown() -> None:
    assert problems_of(replaced("clock_ghz: 1.0", "clock_ghzz: 1.0")) == [
        "bad.yaml:1:1: <top>: missing required key 'clock_ghz'",
        "bad.yaml:3:13: clock_ghzz: unknown key 'clock_ghzz'; did you mean 'clock_ghz'? known "
        "keys: architecture, kind, description, clock_ghz, word_bytes, dram, levels, arrays",
    ]


def test_duplicate_level_names() -> None:
    level = GOOD[GOOD.index("  - name: global_buffer") : GOOD.index("arrays:")]
    text = GOOD.replace("arrays:", level + "arrays:", 1)
    assert problems_of(text) == [
        "bad.yaml:13:11: levels[1].name: duplicate level name 'global_buffer' "
        "(first defined at line 7)"
    ]


def test_yaml_syntax_error_has_a_line() -> None:
    assert problems_of("architecture: [unclosed\nclock_ghz: 1\n") == [
        "bad.yaml:2:10: <top>: YAML syntax error: expected ',' or ']', but got ':'"
    ]


def test_top_level_must_be_a_mapping() -> None:
    assert problems_of("- 1\n") == [
        "bad.yaml:1:1: <top>: expected a mapping with keys architecture, kind, description, "
        "clock_ghz, word_bytes, dram, levels, arrays"
    ]


def test_unknown_preset_suggests_the_closest() -> None:
    assert "fusemax" in preset_names()
    with pytest.raises(SpecError) as info:
        load_arch("fusemx")
    (msg,) = [str(p) for p in info.value.problems]
    assert msg.startswith("fusemx: <top>: no such file or preset; did you mean fusemax?")


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_arch(tmp_path / "nope.yaml")


def test_loads_a_file_path(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(GOOD)
    assert load_arch(path).source == str(path)
