"""Hardware as data: spatial accelerators (arrays, buffers, DRAM) as frozen records.

These records know nothing about YAML (see `load.py`). Units live in field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class Operation:
    """How a PE performs one operation: cycles and energy, or a composition of other ops.

    A composed operation (FuseMax's exp = 6 MAC + 1 add) takes the sum of its parts' cycles
    and energies; its energy is charged to the parts' units.
    """

    name: str
    cycles: float = 1.0
    energy_pj: float = 0.0
    composed_of: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class RegisterFile:
    """A per-PE register file."""

    entries: int
    read_energy_pj: float
    write_energy_pj: float
    area_um2: float = 0.0


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

    def supports(self, op: str) -> bool:
        """Whether a PE can perform `op` (directly or composed)."""
        return any(o.name == op for o in self.operations)

    def operation(self, op: str) -> Operation:
        """The PE's implementation of `op`."""
        for o in self.operations:
            if o.name == op:
                return o
        names = ", ".join(o.name for o in self.operations)
        raise KeyError(f"array {self.name} cannot perform {op!r} (it supports {names})")

    def primitive_actions(self, op: str) -> dict[str, float]:
        """`op` expanded into primitive (non-composed) operations, with counts."""
        o = self.operation(op)
        if not o.composed_of:
            return {op: 1.0}
        actions: dict[str, float] = {}
        for part, count in o.composed_of:
            for prim, n in self.primitive_actions(part).items():
                actions[prim] = actions.get(prim, 0.0) + n * count
        return actions

    def cycles(self, op: str) -> float:
        """PE cycles for one `op` (sum over its primitive parts when composed)."""
        return sum(self.operation(p).cycles * n for p, n in self.primitive_actions(op).items())

    def energy_pj(self, op: str) -> float:
        """Energy of one `op` in pJ (sum over its primitive parts when composed)."""
        return sum(self.operation(p).energy_pj * n for p, n in self.primitive_actions(op).items())

    @property
    def pe_area_um2(self) -> float:
        """Area of one PE: its units plus its register file."""
        rf = self.register_file.area_um2 if self.register_file else 0.0
        return sum(a for _, a in self.unit_area_um2) + rf

    @property
    def area_um2(self) -> float:
        """Area of the whole array."""
        return self.pe_area_um2 * self.lanes


@dataclass(frozen=True, slots=True)
class StorageLevel:
    """An on-chip buffer level accessed in rows."""

    name: str
    capacity_bytes: int
    row_bytes: int
    read_energy_pj_per_row: float
    write_energy_pj_per_row: float
    area_um2: float = 0.0


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
        raise KeyError(f"{self.name} has no array {name!r}; arrays: {[a.name for a in self.arrays]}")

    def level(self, name: str) -> StorageLevel:
        """A storage level by name."""
        for lvl in self.levels:
            if lvl.name == name:
                return lvl
        raise KeyError(f"{self.name} has no level {name!r}; levels: {[x.name for x in self.levels]}")

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
        """Compute arrays plus storage levels."""
        return sum(a.area_um2 for a in self.arrays) + sum(lv.area_um2 for lv in self.levels)

    def with_array_shape(self, name: str, rows: int, cols: int) -> SpatialArch:
        """A copy with one array resized."""
        arrays = tuple(replace(a, rows=rows, cols=cols) if a.name == name else a for a in self.arrays)
        return replace(self, arrays=arrays)

    def with_buffer_bytes(self, capacity_bytes: int) -> SpatialArch:
        """A copy with the last-level buffer's capacity changed."""
        levels = self.levels[:-1] + (replace(self.levels[-1], capacity_bytes=capacity_bytes),)
        return replace(self, levels=levels)

    def with_dram_bandwidth(self, bytes_per_s: float) -> SpatialArch:
        """A copy with a different DRAM bandwidth."""
        return replace(self, dram=replace(self.dram, bandwidth_bytes_per_s=bytes_per_s))
