"""The one result record every mapper returns, with JSON round trip and flat rows.

Combining results (layers, phases) is an explicit function (`combine_sequential`), never `+`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from attnsim.mappers.memo import by_identity

VERSION = "0.1.0"

Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Traffic:
    """Bytes moved between a storage level and the level above it, for one tensor."""

    level: str
    tensor: str
    read_bytes: float
    write_bytes: float

    @property
    def total_bytes(self) -> float:
        """Read plus written bytes."""
        return self.read_bytes + self.write_bytes


@dataclass(frozen=True, slots=True)
class EnergyItem:
    """Energy of one (component, action): count x energy per action."""

    component: str
    action: str
    count: float
    energy_pj: float


@dataclass(frozen=True, slots=True)
class Occupancy:
    """Peak bytes a tensor (or "total") holds at a storage level, against its capacity."""

    level: str
    tensor: str
    peak_bytes: float
    capacity_bytes: float
    spilled_bytes: float = 0.0


@dataclass(frozen=True, slots=True)
class EinsumCost:
    """Per-Einsum compute: the unit it is bound to, cycles on it, and its utilization."""

    einsum: str
    unit: str
    pass_index: int
    ops: float
    compute_cycles: float
    utilization: float


@dataclass(frozen=True, slots=True)
class UnitCost:
    """Per compute unit: busy cycles and utilization over the whole latency."""

    unit: str
    busy_cycles: float
    peak_ops_per_cycle: float
    utilization: float


@dataclass(frozen=True, slots=True)
class Result:
    """One design point: identifiers, headline numbers (units in names), breakdowns, provenance."""

    cascade: str
    arch: str
    mapper: str
    options: tuple[tuple[str, Scalar], ...]
    sizes: tuple[tuple[str, int], ...]
    passes: int
    latency_cycles: float
    latency_s: float
    compute_cycles: float
    memory_cycles: float
    bound: str
    energy_pj: float
    dram_traffic_bytes: float
    area_um2: float = 0.0
    flops: float = 0.0
    traffic: tuple[Traffic, ...] = ()
    energy: tuple[EnergyItem, ...] = ()
    occupancy: tuple[Occupancy, ...] = ()
    per_einsum: tuple[EinsumCost, ...] = ()
    units: tuple[UnitCost, ...] = ()
    ops: tuple[tuple[str, float], ...] = ()
    extras: tuple[tuple[str, float], ...] = ()
    warnings: tuple[str, ...] = ()
    provenance: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    # -- lookups
    def unit(self, name: str) -> UnitCost:
        """The cost record of a compute unit by name."""
        for u in self.units:
            if u.unit == name:
                return u
        raise KeyError(f"no unit {name!r}; units: {[u.unit for u in self.units]}")

    def einsum(self, name: str) -> EinsumCost:
        """The cost record of an Einsum by its output tensor name."""
        for e in self.per_einsum:
            if e.einsum == name:
                return e
        raise KeyError(f"no Einsum {name!r}; Einsums: {[e.einsum for e in self.per_einsum]}")

    def extra(self, name: str) -> float:
        """A mapper-specific named number (units in its name)."""
        return dict(self.extras)[name]

    def energy_by_component(self) -> dict[str, float]:
        """Energy in pJ summed per component."""
        totals: dict[str, float] = {}
        for item in self.energy:
            totals[item.component] = totals.get(item.component, 0.0) + item.energy_pj
        return totals

    # -- serialization
    def to_json(self) -> str:
        """One JSON object (stable key order); the same text as `json.dumps(asdict(self))`."""
        return json.dumps(_plain(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Result:
        """Inverse of `to_json`."""
        data = json.loads(text)
        nested = {
            "traffic": Traffic,
            "energy": EnergyItem,
            "occupancy": Occupancy,
            "per_einsum": EinsumCost,
            "units": UnitCost,
        }
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = data[f.name]
            if f.name in nested:
                value = tuple(nested[f.name](**item) for item in value)
            elif isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            kwargs[f.name] = value
        return cls(**kwargs)

    def to_row(self) -> dict[str, Scalar]:
        """A flat dict for tables: headline numbers, options, sizes, units, Einsums."""
        row: dict[str, Scalar] = {
            "cascade": self.cascade,
            "arch": self.arch,
            "mapper": self.mapper,
            "passes": self.passes,
            "latency_cycles": self.latency_cycles,
            "latency_s": self.latency_s,
            "compute_cycles": self.compute_cycles,
            "memory_cycles": self.memory_cycles,
            "bound": self.bound,
            "energy_pj": self.energy_pj,
            "dram_traffic_bytes": self.dram_traffic_bytes,
            "area_um2": self.area_um2,
            "flops": self.flops,
            "n_warnings": len(self.warnings),
        }
        row.update({f"size.{k}": v for k, v in self.sizes})
        row.update({f"option.{k}": v for k, v in self.options})
        row.update({f"util.{u.unit}": u.utilization for u in self.units})
        row.update({f"einsum_util.{e.einsum}": e.utilization for e in self.per_einsum})
        row.update({k: v for k, v in self.extras})
        return row


def input_hash(*parts: object) -> str:
    """A short stable hash of the inputs that determine a result (objects by `digest`)."""
    text = "|".join(digest(p) if dataclasses.is_dataclass(p) else repr(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def digest(obj: object) -> str:
    """A stable content hash of a frozen record, computed once per object."""
    return _digest(obj)


@by_identity(maxsize=256)
def _digest(obj: object) -> str:
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def combine_sequential(name: str, parts: tuple[Result, ...]) -> Result:
    """Results run one after another: latencies, energies and traffic add; passes take the max.

    Breakdown records are concatenated with each part's cascade name as a prefix.
    """
    if not parts:
        raise ValueError("combine_sequential needs at least one result")
    first = parts[0]

    def total(attr: str) -> float:
        return float(sum(getattr(p, attr) for p in parts))

    def tagged(p: Result, label: str) -> str:
        return f"{p.cascade}:{label}"

    return dataclasses.replace(
        first,
        cascade=name,
        mapper="+".join(dict.fromkeys(p.mapper for p in parts)),
        passes=max(p.passes for p in parts),
        latency_cycles=total("latency_cycles"),
        latency_s=total("latency_s"),
        compute_cycles=total("compute_cycles"),
        memory_cycles=total("memory_cycles"),
        bound="sequential",
        energy_pj=total("energy_pj"),
        dram_traffic_bytes=total("dram_traffic_bytes"),
        area_um2=max(p.area_um2 for p in parts),
        flops=total("flops"),
        traffic=tuple(
            dataclasses.replace(t, tensor=tagged(p, t.tensor)) for p in parts for t in p.traffic
        ),
        energy=tuple(
            dataclasses.replace(e, component=tagged(p, e.component))
            for p in parts
            for e in p.energy
        ),
        occupancy=tuple(o for p in parts for o in p.occupancy),
        per_einsum=tuple(
            dataclasses.replace(e, einsum=tagged(p, e.einsum)) for p in parts for e in p.per_einsum
        ),
        units=(),
        ops=(),
        extras=(),
        warnings=tuple(w for p in parts for w in p.warnings),
        provenance=(("combine", "sequential"), *first.provenance),
    )


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """`dataclasses.asdict` for JSON: records to dicts, without copying the leaves.

    (asdict deep-copies every leaf; a sweep serializes each point's Result, so this is on
    its hot path.)
    """
    kind = type(value)
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {n: _plain(getattr(value, n)) for n in names}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
