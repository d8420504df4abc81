"""Engineering units: one place that says how each quantity is shown (report and CLI alike).

A column's quantity follows from its unit suffix (`_s`, `_pj`, `_um2`, `_bytes`, `_js`,
`_bytes_per_s`, `_cycles`; `flops`); `pick_unit` chooses one unit for a set of values (a table
column, a plot axis) so that they read as 1-999, and `format_quantity` writes one value.
Times are s/ms/µs/ns, energy J/mJ/µJ/nJ/pJ, area mm² (µm² below 0.001 mm²), memory sizes
B/KiB/MiB/GiB/TiB (binary, as buffers are sized), bandwidth GB/s or TB/s, counts k/M/G/T/P.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Unit:
    """A display unit: a shown value is `stored value * scale`, followed by `symbol`."""

    symbol: str
    scale: float

    def format(self, value: float, digits: int = 3) -> str:
        """`value` (in the stored unit) in this unit with `digits` significant digits."""
        shown = value * self.scale
        text = _digits(shown, digits)
        return f"{text} {self.symbol}".rstrip()


@dataclass(frozen=True, slots=True)
class Quantity:
    """A kind of value (time, energy, ...): its name and its units, smallest first."""

    name: str
    units: tuple[Unit, ...]


def _ladder(base: str, stored_scale: float, prefixes: str, step: float) -> tuple[Unit, ...]:
    """Units `prefix + base`; the first prefix is `stored_scale` times the stored unit."""
    units = []
    for i, prefix in enumerate(prefixes):
        units.append(Unit(prefix.strip() + base, stored_scale / step**i))
    return tuple(units)


TIME = Quantity("time", _ladder("s", 1e12, "pnµm ", 1e3))  # stored in s
ENERGY = Quantity("energy", _ladder("J", 1.0, "pnµm kM", 1e3))  # stored in pJ
EDP = Quantity(
    "energy-delay product",
    (Unit("pJ·s", 1e12), Unit("nJ·s", 1e9), Unit("µJ·s", 1e6), Unit("mJ·s", 1e3), Unit("J·s", 1.0)),
)
AREA = Quantity("area", (Unit("µm²", 1.0), Unit("mm²", 1e-6)))  # stored in µm²
MEMORY = Quantity(  # stored in bytes; binary prefixes, as buffers are sized
    "memory", tuple(Unit(s, 1024.0**-i) for i, s in enumerate(("B", "KiB", "MiB", "GiB", "TiB")))
)
BANDWIDTH = Quantity("bandwidth", (Unit("MB/s", 1e-6), Unit("GB/s", 1e-9), Unit("TB/s", 1e-12)))
COUNT = Quantity("count", _ladder("", 1.0, " kMGTPE", 1e3))
CYCLES = Quantity("cycles", tuple(Unit(f"{u.symbol} cycles".strip(), u.scale) for u in COUNT.units))

_SUFFIXES: tuple[tuple[str, Quantity], ...] = (
    ("_bytes_per_s", BANDWIDTH),
    ("_js", EDP),
    ("_s", TIME),
    ("_pj", ENERGY),
    ("_um2", AREA),
    ("_bytes", MEMORY),
    ("_cycles", CYCLES),
)


def quantity_of(column: str) -> Quantity | None:
    """The quantity a column holds, from its unit suffix (`None`: a plain number or text)."""
    name = column.rsplit(".", 1)[-1].lower()
    if name in ("flops", "ops"):
        return COUNT
    for suffix, quantity in _SUFFIXES:
        if name.endswith(suffix):
            return quantity
    return None


def pick_unit(quantity: Quantity, values: Iterable[float | None]) -> Unit:
    """The unit in which the median of `values` (their magnitudes) reads 1 or more, largest.

    Area is always mm² unless the values are below 0.001 mm² (a GPU's area is 0: mm²).
    """
    finite = sorted(abs(v) for v in values if v is not None and math.isfinite(v) and v != 0)
    if not finite:
        return quantity.units[-1] if quantity is AREA else _neutral(quantity)
    middle = finite[len(finite) // 2]
    if quantity is AREA:
        return AREA.units[1] if middle * 1e-6 >= 1e-3 else AREA.units[0]
    chosen = quantity.units[0]
    for unit in quantity.units:
        if middle * unit.scale >= 1.0 - 1e-9:
            chosen = unit
    return chosen


def _neutral(quantity: Quantity) -> Unit:
    """The unit whose scale is closest to 1 (the plain unit: s, J, B, ...)."""
    return min(quantity.units, key=lambda u: abs(math.log10(u.scale)) if u.scale > 0 else 99)


def format_quantity(value: float, quantity: Quantity, digits: int = 3) -> str:
    """One value in the unit that suits it best."""
    if value == 0:
        return _neutral(quantity).format(0.0) if quantity is not AREA else "0 mm²"
    return pick_unit(quantity, [value]).format(value, digits)


def format_column(column: str, value: object, digits: int = 3) -> str:
    """A cell of `column` with its unit when the column has a quantity, else as text."""
    quantity = quantity_of(column)
    if quantity is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    return format_quantity(float(value), quantity, digits)


def _digits(value: float, digits: int) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if float(value).is_integer() and abs(value) < 10**digits:
        return str(int(value))
    exponent = math.floor(math.log10(abs(value)))
    decimals = max(digits - 1 - exponent, 0)
    return f"{value:.{decimals}f}"
