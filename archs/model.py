"""Hardware as data: spatial accelerators (arrays, buffers, DRAM) as frozen records.

These records know nothing about YAML (see `load.py`). Units live in field names.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class Operation:
    """How a PE performs one operation: cycles and energy, or a composition of other ops.

    A composed operation (FuseMax's exp = 6 MAC + 1 add) takes the sum of its parts' cycles
    and energies; its energy is charged to the parts' units. `absorbs` lists operations that
    are free when they feed this operation's argument: FuseMax folds the max subtraction of
    exp(QK - RM) into the first MAC of its exp evaluation, so the pair costs one exp.
    """

    name: str
    cycles: float = 1.0
    energy_pj: float = 0.0
    composed_of: tuple[tuple[str, int], ...] = ()
    absorbs: tuple[str, ...] = ()

    @property
    def is_composed(self) -> bool:
        """Whether this operation is made of other operations."""
        return bool(self.composed_of)


@dataclass(frozen=True, slots=True)
class RegisterFile:
    """A per-PE register file whose area grows with its address width.

    area = base_area_um2 + area_um2_per_address_bit * (ceil(log2 entries) - ceil(log2
    base_entries)). The FuseMax artifact's register file (Accelergy `smartbuffer_RF`) keeps its
    CACTI storage fixed below 64 entries and only widens its two address adders, 1 bit per
    doubling; above 64 entries the real storage grows too, so this model underestimates there.
    """

    entries: int
    read_energy_pj: float
    write_energy_pj: float
    base_area_um2: float = 0.0
    area_um2_per_address_bit: float = 0.0
    base_entries: int = 4

    @property
    def address_bits(self) -> int:
        """Bits needed to address `entries` (0 for a single entry)."""
        return math.ceil(math.log2(self.entries)) if self.entries > 1 else 0

    @property
    def area_um2(self) -> float:
        """Area of one register file."""
        base_bits = math.ceil(math.log2(self.base_entries)) if self.base_entries > 1 else 0
        return self.base_area_um2 + self.area_um2_per_address_bit * (self.address_bits - base_bits)


@dataclass(frozen=True, slots=True)
class ComputeArray:
    """A 2D (rows x cols) or 1D (1 x cols) array of identical PEs."""

    name: str
    rows: int
    cols: int
    operations: tuple[Operation, ...]
    register_file: RegisterFile | None = None
    unit_area_um2: tuple[tuple[str, float], ...] = ()

    @property
    def lanes(self) -> int:
        """Number of PEs."""
        return self.rows * self.cols

    @property
    def is_2d(self) -> bool:
        """Whether the array has more than one row."""
        return self.rows > 1

    @property
    def operation_names(self) -> tuple[str, ...]:
        """Names of the operations a PE can perform, in declaration order."""
        return tuple(o.name for o in self.operations)

    def supports(self, op: str) -> bool:
        """Whether a PE can perform `op` (directly or composed)."""
        return any(o.name == op for o in self.operations)

    def operation(self, op: str) -> Operation:
        """The PE's implementation of `op`."""
        for o in self.operations:
            if o.name == op:
                return o
        names = ", ".join(self.operation_names)
        raise KeyError(f"array {self.name} cannot perform {op!r} (it supports {names})")

    def absorbs(self, op: str, feeder: str) -> bool:
        """Whether `feeder`, applied to `op`'s argument, is free when `op` runs on this array."""
        return feeder in self.operation(op).absorbs

    def primitive_actions(self, op: str, feeding: Iterable[str] = ()) -> dict[str, float]:
        """`op` expanded into primitive (non-composed) operations, with counts.

        `feeding` names operations applied to `op`'s argument first (exp(a - b): op "exp",
        feeding ["sub"]); those `op` absorbs cost nothing, the others are added.
        """
        actions: dict[str, float] = {}
        for name in (op, *(f for f in feeding if not self.absorbs(op, f))):
            for prim, n in self._expand(name).items():
                actions[prim] = actions.get(prim, 0.0) + n
        return actions

    def _expand(self, op: str) -> dict[str, float]:
        o = self.operation(op)
        if not o.composed_of:
            return {op: 1.0}
        actions: dict[str, float] = {}
        for part, count in o.composed_of:
            for prim, n in self._expand(part).items():
                actions[prim] = actions.get(prim, 0.0) + n * count
        return actions

    def cycles(self, op: str, feeding: Iterable[str] = ()) -> float:
        """PE cycles for one `op` (sum over its primitive parts; see `primitive_actions`)."""
        actions = self.primitive_actions(op, feeding)
        return sum(self.operation(p).cycles * n for p, n in actions.items())

    def energy_pj(self, op: str, feeding: Iterable[str] = ()) -> float:
        """Energy of one `op` in pJ (sum over its primitive parts; see `primitive_actions`)."""
        actions = self.primitive_actions(op, feeding)
        return sum(self.operation(p).energy_pj * n for p, n in actions.items())

    @property
    def pe_area_um2(self) -> float:
        """Area of one PE: its units plus its register file."""
        rf = self.register_file.area_um2 if self.register_file else 0.0
        return sum(a for _, a in self.unit_area_um2) + rf

    @property
    def area_um2(self) -> float:
        """Area of the whole array (scales with `lanes`)."""
        return self.pe_area_um2 * self.lanes


@dataclass(frozen=True, slots=True)
class StorageLevel:
    """An on-chip buffer level accessed in rows.

    Area is either `fixed_area_um2` or, when `area_table_um2` is given, interpolated from
    (capacity_bytes, row_bits, area_um2) points (CACTI outputs): log-log between the two
    capacities around `capacity_bytes`, and proportional to capacity beyond the table's ends
    (constant area per byte of the nearest point, rather than extrapolating a steep slope).
    The row width of a point records what CACTI was run with; it does not enter the lookup.
    """

    name: str
    capacity_bytes: int
    row_bytes: int
    read_energy_pj_per_row: float
    write_energy_pj_per_row: float
    fixed_area_um2: float = 0.0
    area_table_um2: tuple[tuple[int, int, float], ...] = ()

    @property
    def rows(self) -> int:
        """Number of rows (capacity / row width)."""
        return self.capacity_bytes // self.row_bytes

    @property
    def area_um2(self) -> float:
        """Area of the level at its capacity."""
        if not self.area_table_um2:
            return self.fixed_area_um2
        return interpolate_area(self.area_table_um2, self.capacity_bytes)


def interpolate_area(table: tuple[tuple[int, int, float], ...], capacity_bytes: int) -> float:
    """Area at `capacity_bytes` from (capacity_bytes, row_bits, area_um2) points sorted by size.

    Exact at table points; log-log interpolation between them; area per byte of the nearest
    end point outside the table.
    """
    caps = [c for c, _, _ in table]
    i = bisect.bisect_left(caps, capacity_bytes)
    if i < len(caps) and caps[i] == capacity_bytes:
        return table[i][2]
    if i == 0:
        return table[0][2] * capacity_bytes / caps[0]
    if i == len(caps):
        return table[-1][2] * capacity_bytes / caps[-1]
    (c0, _, a0), (c1, _, a1) = table[i - 1], table[i]
    t = math.log(capacity_bytes / c0) / math.log(c1 / c0)
    return math.exp(math.log(a0) + t * (math.log(a1) - math.log(a0)))


@dataclass(frozen=True, slots=True)
class Dram:
    """Off-chip memory."""

    bandwidth_bytes_per_s: float
    access_bytes: int
    energy_pj_per_access: float

    @property
    def energy_pj_per_byte(self) -> float:
        """Energy per byte moved."""
        return self.energy_pj_per_access / self.access_bytes


@dataclass(frozen=True, slots=True)
class SpatialArch:
    """A spatial accelerator: clock, word size, DRAM, on-chip levels and compute arrays."""

    name: str
    clock_hz: float
    word_bytes: int
    dram: Dram
    levels: tuple[StorageLevel, ...]
    arrays: tuple[ComputeArray, ...]
    description: str = ""
    source: str = field(default="", compare=False)

    def array(self, name: str) -> ComputeArray:
        """A compute array by name."""
        for a in self.arrays:
            if a.name == name:
                return a
        names = [a.name for a in self.arrays]
        raise KeyError(f"{self.name} has no array {name!r}; arrays: {names}")

    def level(self, name: str) -> StorageLevel:
        """A storage level by name."""
        for lvl in self.levels:
            if lvl.name == name:
                return lvl
        names = [x.name for x in self.levels]
        raise KeyError(f"{self.name} has no level {name!r}; levels: {names}")

    @property
    def buffer(self) -> StorageLevel:
        """The last-level on-chip buffer (the one DRAM fills)."""
        return self.levels[-1]

    @property
    def array_2d(self) -> ComputeArray:
        """The first 2D array."""
        return next(a for a in self.arrays if a.is_2d)

    @property
    def array_1d(self) -> ComputeArray:
        """The first 1D array."""
        return next(a for a in self.arrays if not a.is_2d)

    @property
    def area_um2(self) -> float:
        """Compute arrays plus storage levels; follows array shapes, RF depths and capacities."""
        return sum(a.area_um2 for a in self.arrays) + sum(lv.area_um2 for lv in self.levels)

    def with_array_shape(self, name: str, rows: int, cols: int) -> SpatialArch:
        """A copy with one array resized (its area follows)."""
        self.array(name)
        arrays = tuple(
            replace(a, rows=rows, cols=cols) if a.name == name else a for a in self.arrays
        )
        return replace(self, arrays=arrays)

    def with_register_file_entries(self, name: str, entries: int) -> SpatialArch:
        """A copy whose array `name` has register files of `entries` (their area follows)."""
        rf = self.array(name).register_file
        if rf is None:
            raise KeyError(f"{self.name}: array {name!r} has no register file")
        arrays = tuple(
            replace(a, register_file=replace(rf, entries=entries)) if a.name == name else a
            for a in self.arrays
        )
        return replace(self, arrays=arrays)

    def with_level_bytes(self, name: str, capacity_bytes: int) -> SpatialArch:
        """A copy with level `name` resized (its area follows when it has an area table)."""
        self.level(name)
        levels = tuple(
            replace(lv, capacity_bytes=capacity_bytes) if lv.name == name else lv
            for lv in self.levels
        )
        return replace(self, levels=levels)

    def with_buffer_bytes(self, capacity_bytes: int) -> SpatialArch:
        """A copy with the last-level buffer's capacity changed."""
        return self.with_level_bytes(self.buffer.name, capacity_bytes)

    def with_dram_bandwidth(self, bytes_per_s: float) -> SpatialArch:
        """A copy with a different DRAM bandwidth."""
        return replace(self, dram=replace(self.dram, bandwidth_bytes_per_s=bytes_per_s))

    def with_clock_hz(self, clock_hz: float) -> SpatialArch:
        """A copy with a different clock."""
        return replace(self, clock_hz=clock_hz)

    def with_overrides(
        self,
        *,
        clock_hz: float | None = None,
        dram_bandwidth_bytes_per_s: float | None = None,
        buffer_bytes: int | None = None,
        array_shapes: Mapping[str, tuple[int, int]] | None = None,
        register_file_entries: Mapping[str, int] | None = None,
    ) -> SpatialArch:
        """A copy with any of these changed; None (or absent) keeps a value. Area stays derived."""
        arch = self
        if clock_hz is not None:
            arch = arch.with_clock_hz(clock_hz)
        if dram_bandwidth_bytes_per_s is not None:
            arch = arch.with_dram_bandwidth(dram_bandwidth_bytes_per_s)
        if buffer_bytes is not None:
            arch = arch.with_buffer_bytes(buffer_bytes)
        for name, (rows, cols) in (array_shapes or {}).items():
            arch = arch.with_array_shape(name, rows, cols)
        for name, entries in (register_file_entries or {}).items():
            arch = arch.with_register_file_entries(name, entries)
        return arch
