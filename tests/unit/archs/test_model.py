"""Architecture records: composed and absorbed operations, area models, override helpers."""

from __future__ import annotations

import math

import pytest

from attnsim.archs import (
    ComputeArray,
    Operation,
    RegisterFile,
    StorageLevel,
    interpolate_area,
    load_arch,
)

MAC_PJ, ADD_PJ, MAX_PJ = 17.1645, 8.3395, 0.028036
RF_BASE_UM2, RF_PER_BIT_UM2 = 16814.35, 11.622
CACTI = (
    (16384, 256, 54636.6),
    (32768, 512, 117163.5),
    (65536, 1024, 272004.3),
    (131072, 2048, 717071.5),
    (262144, 4096, 2153657.6),
    (1048576, 8192, 28641579.2),
)


def array(*ops: Operation, rows: int = 1, cols: int = 4) -> ComputeArray:
    return ComputeArray("a", rows, cols, ops)


def test_fusemax_exp_is_seven_cycles_of_macs_and_an_add() -> None:
    arch = load_arch("fusemax")
    for arr in (arch.array("array_2d"), arch.array("array_1d")):
        assert arr.cycles("exp") == 7
        assert arr.energy_pj("exp") == pytest.approx(6 * MAC_PJ + ADD_PJ, rel=1e-12)
        assert arr.primitive_actions("exp") == {"mac": 6.0, "add": 1.0}


def test_fusemax_exp_absorbs_the_max_subtraction() -> None:
    arr = load_arch("fusemax").array("array_2d")
    assert arr.absorbs("exp", "sub")
    assert arr.cycles("exp", feeding=["sub"]) == 7
    assert arr.energy_pj("exp", feeding=["sub"]) == pytest.approx(6 * MAC_PJ + ADD_PJ)
    # A feeder exp does not absorb is paid for.
    assert arr.cycles("exp", feeding=["max"]) == 8
    assert arr.primitive_actions("exp", feeding=["max"]) == {"mac": 6.0, "add": 1.0, "max": 1.0}


def test_flat_exp_unit_does_not_absorb() -> None:
    arr = load_arch("flat").array("array_1d")
    assert arr.cycles("exp") == 1
    assert arr.energy_pj("exp") == pytest.approx(94.6475)
    assert not arr.absorbs("exp", "sub")
    assert arr.cycles("exp", feeding=["sub"]) == 2
    assert arr.primitive_actions("exp", feeding=["sub"]) == {"exp": 1.0, "add": 1.0}
    assert not load_arch("flat").array("array_2d").supports("exp")


def test_nested_composition_multiplies_counts() -> None:
    arr = array(
        Operation("mac", 1, 2.0),
        Operation("add", 1, 1.0),
        Operation("mul", composed_of=(("mac", 1),)),
        Operation("poly", composed_of=(("mul", 3), ("add", 2))),
        Operation("big", composed_of=(("poly", 2),), absorbs=("add",)),
    )
    assert arr.primitive_actions("big") == {"mac": 6.0, "add": 4.0}
    assert arr.cycles("big") == 10
    assert arr.energy_pj("big") == 16.0
    assert arr.cycles("big", feeding=["add", "mul"]) == 11  # add absorbed, mul paid


def test_unknown_operation_names_the_array_and_its_ops() -> None:
    arr = array(Operation("mac"), Operation("add"))
    with pytest.raises(KeyError, match="array a cannot perform 'exp' \\(it supports mac, add\\)"):
        arr.cycles("exp")


@pytest.mark.parametrize("entries, bits", [(4, 2), (16, 4), (64, 6), (1024, 10)])
def test_register_file_area_grows_per_address_bit(entries: int, bits: int) -> None:
    rf = RegisterFile(entries, 2.194455, 1.906455, RF_BASE_UM2, RF_PER_BIT_UM2, base_entries=4)
    assert rf.address_bits == bits
    assert rf.area_um2 == pytest.approx(RF_BASE_UM2 + RF_PER_BIT_UM2 * (bits - 2), rel=1e-15)


def test_register_file_without_slope_is_fixed() -> None:
    assert RegisterFile(1000, 0, 0, base_area_um2=5.0).area_um2 == 5.0
    assert RegisterFile(17, 0, 0, base_area_um2=5.0, area_um2_per_address_bit=1.0).area_um2 == 8.0


@pytest.mark.parametrize("capacity, _bits, area", CACTI)
def test_sram_table_points_are_exact(capacity: int, _bits: int, area: float) -> None:
    level = StorageLevel("b", capacity, 512, 0, 0, area_table_um2=CACTI)
    assert level.area_um2 == area


def test_sram_interpolation_is_log_log_and_linear_outside() -> None:
    mid = interpolate_area(CACTI, 524288)  # halfway (in log) between 256K and 1M
    assert mid == pytest.approx(math.sqrt(2153657.6 * 28641579.2))
    assert 2153657.6 < mid < 28641579.2
    assert interpolate_area(CACTI, 8192) == pytest.approx(54636.6 / 2)
    assert interpolate_area(CACTI, 16 * 2**20) == pytest.approx(28641579.2 * 16)
    assert StorageLevel("b", 1, 1, 0, 0, fixed_area_um2=7.0).area_um2 == 7.0


def test_fusemax_array_areas_match_the_artifact_formula() -> None:
    # pareto: array_2d_area = pe^2 (MAC + max + RF(16)); 1D = pe (MAC + divide + RF(64)).
    arch = load_arch("fusemax")
    rf16 = RF_BASE_UM2 + 2 * RF_PER_BIT_UM2
    rf64 = RF_BASE_UM2 + 4 * RF_PER_BIT_UM2
    assert arch.array("array_2d").area_um2 == pytest.approx(256**2 * (1545 + 49.28944 + rf16))
    assert arch.array("array_1d").area_um2 == pytest.approx(256 * (1545 + 23740.9375 + rf64))


def test_area_follows_array_shape_rf_depth_and_buffer_capacity() -> None:
    arch = load_arch("fusemax")
    pe_2d = arch.array("array_2d").pe_area_um2
    smaller = arch.with_array_shape("array_2d", 128, 128)
    assert arch.area_um2 - smaller.area_um2 == pytest.approx((256**2 - 128**2) * pe_2d)
    deeper = arch.with_register_file_entries("array_1d", 128)
    assert deeper.area_um2 - arch.area_um2 == pytest.approx(256 * RF_PER_BIT_UM2)
    small_buffer = arch.with_buffer_bytes(262144)
    assert small_buffer.buffer.area_um2 == 2153657.6
    assert arch.area_um2 - small_buffer.area_um2 == pytest.approx(arch.buffer.area_um2 - 2153657.6)


def test_pareto_point_area_matches_the_artifact() -> None:
    # pareto.csv at pe 64 (E 64): min_tiles 2, RF depths 4 and 16, 64 KiB buffer.
    arch = load_arch("fusemax").with_overrides(
        array_shapes={"array_2d": (64, 64), "array_1d": (1, 64)},
        register_file_entries={"array_2d": 4, "array_1d": 16},
        buffer_bytes=65536,
    )
    array_2d = 64**2 * (1545 + 49.28944 + RF_BASE_UM2)
    array_1d = 64 * (1545 + 23740.9375 + RF_BASE_UM2 + 2 * RF_PER_BIT_UM2)
    assert arch.area_um2 == pytest.approx(array_2d + array_1d + 272004.3)


def test_with_overrides_changes_only_what_is_given() -> None:
    arch = load_arch("fusemax")
    assert arch.with_overrides() == arch
    other = arch.with_overrides(clock_hz=1e9, dram_bandwidth_bytes_per_s=1e12)
    assert (other.clock_hz, other.dram.bandwidth_bytes_per_s) == (1e9, 1e12)
    assert other.levels == arch.levels and other.arrays == arch.arrays
    with pytest.raises(KeyError, match="no array 'array_3d'"):
        arch.with_array_shape("array_3d", 2, 2)
    with pytest.raises(KeyError, match="no level 'l2'"):
        arch.with_level_bytes("l2", 1024)


def test_fusemax_preset_constants() -> None:
    arch = load_arch("fusemax")
    assert arch.clock_hz == 0.94e9 and arch.word_bytes == 2
    assert arch.dram.bandwidth_bytes_per_s == 400 * 2**30
    assert arch.dram.energy_pj_per_byte == pytest.approx(31.2)
    buf = arch.level("global_buffer")
    assert (buf.capacity_bytes, buf.row_bytes, buf.rows) == (16 * 2**20, 512, 32768)
    assert (buf.read_energy_pj_per_row, buf.write_energy_pj_per_row) == (12520, 15748)
    assert arch.array_2d.name == "array_2d" and arch.array_2d.lanes == 65536
    assert arch.array_1d.name == "array_1d" and arch.array_1d.lanes == 256
    assert arch.array_2d.energy_pj("max") == MAX_PJ
    assert arch.array_1d.energy_pj("mul") == MAC_PJ
    assert arch.array_1d.energy_pj("divide") == 36.251153


# pareto.csv of the FuseMax artifact (BERT and TrXL rows agree): PE side -> (buffer bytes,
# array_2d_area, area) in um2. Buffer bytes per FINDINGS ("Pareto": 16K..256K, 1 MiB at 512).
# The RF area constants are rounded (FINDINGS: 0.0001% off), hence rel=2e-6.
PARETO = {
    16: (16384, 4712617.37472, 5441230.48908),
    32: (32768, 18850437.49888, 20315554.014039997),
    64: (65536, 75401685.99552, 78369596.31228),
    128: (131072, 301797241.20064, 307907612.38012),
    256: (262144, 1207951209.6768, 1220894441.8412402),
    512: (1048576, 4834854330.20416, 4885081008.9724),
}


@pytest.mark.parametrize("pe", sorted(PARETO))
def test_fusemax_area_reproduces_the_artifact_pareto(pe: int) -> None:
    buffer_bytes, array_2d_area, area = PARETO[pe]
    min_tiles = 2 * max(1, pe // 64)  # E = 64
    arch = load_arch("fusemax").with_overrides(
        array_shapes={"array_2d": (pe, pe), "array_1d": (1, pe)},
        register_file_entries={"array_2d": 2 * min_tiles, "array_1d": 8 * min_tiles},
        buffer_bytes=buffer_bytes,
    )
    assert arch.array("array_2d").area_um2 == pytest.approx(array_2d_area, rel=2e-6)
    assert arch.area_um2 == pytest.approx(area, rel=2e-6)
