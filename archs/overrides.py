"""Architecture overrides: the one table of what an experiment may change in a preset.

Each override has a name (with its unit), a meaning, the architecture kinds that take it and
a value check. The experiment reader, `attnsim check`/`run`, `load_arch(..., overrides=)` and
the README's table all read `OVERRIDES`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attnsim.archs.datasheet import datasheet_calibration
from attnsim.archs.gpu import GpuArch
from attnsim.archs.model import SpatialArch
from attnsim.einsum_ir.spec import Problem, SpecError

SPATIAL = "spatial"
GPU = "gpu"
GIB = 2**30
_BYTES = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*$")
_BYTE_UNITS = {"B": 1, None: 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
CALIBRATIONS = ("preset", "none")  # values of the GPU override `calibration`


@dataclass(frozen=True, slots=True)
class Override:
    """One override: `value` (in `unit`) replaces a preset figure; `scale` converts it to SI.

    A per-array override is a map `{array name: value}` (swept as `...NAME.ARRAY`).
    """

    name: str
    unit: str
    meaning: str
    expected: str  # what a valid value looks like, for messages
    kinds: tuple[str, ...] = (SPATIAL,)
    per_array: bool = False
    scale: float = 1.0


OVERRIDES: tuple[Override, ...] = (
    Override(
        "clock_ghz", "GHz", "accelerator clock frequency",
        "a positive finite number", scale=1e9,
    ),
    Override(
        "dram_bandwidth_gib_per_s", "GiB/s (2^30 B/s)", "DRAM bandwidth",
        "a positive finite number", scale=float(GIB),
    ),
    Override(
        "buffer_bytes", "bytes (or KiB, MiB, GiB)",
        "capacity of the last-level on-chip buffer (its area follows)",
        "a positive number of bytes, e.g. 16777216 or 16MiB",
    ),
    Override(
        "array_shapes", "[rows, cols] per array", "shape of a compute array (its area follows)",
        "[rows, cols], two positive integers", per_array=True,
    ),
    Override(
        "register_file_entries", "entries per array",
        "register-file depth of an array's units (their area follows)",
        "a positive integer", per_array=True,
    ),
    Override(
        "calibration", "preset or none",
        "GPU measured figures: the preset's (its calibration file, else transferred from a "
        "calibrated GPU of its architecture, else datasheet x stated efficiencies); none: "
        "the datasheet alone, measurements withheld",
        "'preset' or 'none'", kinds=(GPU,),
    ),
)  # fmt: skip
BY_NAME = {o.name: o for o in OVERRIDES}


def override_names(kind: str | None = None) -> tuple[str, ...]:
    """Names of the overrides, in table order; only those `kind` takes when given."""
    return tuple(o.name for o in OVERRIDES if kind is None or kind in o.kinds)


def arch_kind(arch: SpatialArch | GpuArch) -> str:
    """`spatial` or `gpu`."""
    return GPU if isinstance(arch, GpuArch) else SPATIAL


def _closest(name: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def name_problem(arch: SpatialArch | GpuArch, name: str) -> str | None:
    """Why `arch` cannot take override `name` (the names it takes, the closest first), or None."""
    kind = arch_kind(arch)
    accepted = override_names(kind)
    if name in accepted:
        return None
    what = f"{arch.name} (a {'GPU' if kind == GPU else 'spatial'} preset)"
    takes = f"takes {', '.join(accepted)}" if accepted else "takes no overrides"
    if name in BY_NAME:
        kinds = " and ".join(BY_NAME[name].kinds)
        return (
            f"override {name!r} does not apply to {what}, which {takes}; "
            f"{name} is for {kinds} presets"
        )
    return f"unknown override {name!r}; {_closest(name, accepted)}{what} {takes}"


def array_problem(arch: SpatialArch | GpuArch, name: str, array: str) -> str | None:
    """Why per-array override `name` cannot target `array` of `arch` (naming those it can)."""
    names = array_names(arch, name)
    if array in names:
        return None
    what = "array with a register file" if name == "register_file_entries" else "array"
    return (
        f"unknown {what} {array!r} of {arch.name}; {_closest(array, names)}"
        f"arrays: {', '.join(names) if names else 'none'}"
    )


def array_names(arch: SpatialArch | GpuArch, name: str) -> tuple[str, ...]:
    """The arrays of `arch` that per-array override `name` can target."""
    if not isinstance(arch, SpatialArch):
        return ()
    if name == "register_file_entries":
        return tuple(a.name for a in arch.arrays if a.register_file is not None)
    return tuple(a.name for a in arch.arrays)


def parse_value(name: str, value: Any) -> Any:
    """`value` of override `name` in canonical form; `ValueError` says what was expected.

    Numbers must be finite and positive (no NaN, no inf); sizes and counts are integers.
    For a per-array override, `value` is one array's value.
    """
    spec = BY_NAME[name]
    canonical = _canonical(name, value)
    if canonical is None:
        raise ValueError(f"expected {spec.expected}, got {value!r}")
    return canonical


def _canonical(name: str, value: Any) -> Any:
    if isinstance(value, bool):
        return None
    if name in ("clock_ghz", "dram_bandwidth_gib_per_s"):
        ok = isinstance(value, (int, float)) and math.isfinite(value) and value > 0
        return float(value) if ok else None
    if name == "buffer_bytes":
        return _bytes(value)
    if name == "register_file_entries":
        return value if isinstance(value, int) and value > 0 else None
    if name == "calibration":
        return value if value in CALIBRATIONS else None
    if name == "array_shapes":
        ok = isinstance(value, (list, tuple)) and len(value) == 2
        dims_ok = ok and all(_pos_int(v) for v in value)
        return list(value) if dims_ok else None
    raise KeyError(name)


def _pos_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _bytes(value: Any) -> int | None:
    if isinstance(value, int):
        return value if value > 0 else None
    m = _BYTES.match(value) if isinstance(value, str) else None
    if not m:
        return None
    n = int(m.group(1)) * _BYTE_UNITS[m.group(2)]
    return n if n > 0 else None


def override_problems(
    arch: SpatialArch | GpuArch, overrides: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """Every problem of `overrides` for `arch` as (path, message) pairs; empty when valid."""
    out: list[tuple[str, str]] = []
    for name, value in overrides.items():
        path = f"overrides.{name}"
        problem = name_problem(arch, name)
        if problem is not None:
            out.append((path, problem))
        elif not BY_NAME[name].per_array:
            out.extend(_value_problem(path, name, value))
        elif not isinstance(value, Mapping):
            out.append((path, f"expected a mapping {{array name: value}}, got {value!r}"))
        else:
            for array, v in value.items():
                bad = array_problem(arch, name, array)
                if bad is not None:
                    out.append((f"{path}.{array}", bad))
                else:
                    out.extend(_value_problem(f"{path}.{array}", name, v))
    return out


def _value_problem(path: str, name: str, value: Any) -> list[tuple[str, str]]:
    try:
        parse_value(name, value)
    except ValueError as exc:
        return [(path, str(exc))]
    return []


def apply_overrides(
    arch: SpatialArch | GpuArch, overrides: Mapping[str, Any]
) -> SpatialArch | GpuArch:
    """A copy of `arch` with `overrides` (names and units of `OVERRIDES`) applied.

    Raises `SpecError` listing every problem (unknown or inapplicable names, bad values).
    No overrides returns `arch` itself, whatever its kind.
    """
    if not overrides:
        return arch
    problems = override_problems(arch, overrides)
    if problems:
        where = arch.source or arch.name
        raise SpecError([Problem(where, 0, 0, path, message) for path, message in problems])
    v = {name: _value(name, value) for name, value in overrides.items()}
    if isinstance(arch, GpuArch):
        if v.get("calibration", "preset") == "preset":
            return arch
        return dataclasses.replace(arch, calibration=datasheet_calibration(arch, withheld=True))
    clock, bandwidth = v.get("clock_ghz"), v.get("dram_bandwidth_gib_per_s")
    return arch.with_overrides(
        clock_hz=clock * BY_NAME["clock_ghz"].scale if clock is not None else None,
        dram_bandwidth_bytes_per_s=(
            bandwidth * BY_NAME["dram_bandwidth_gib_per_s"].scale if bandwidth is not None else None
        ),
        buffer_bytes=v.get("buffer_bytes"),
        array_shapes={k: (s[0], s[1]) for k, s in v.get("array_shapes", {}).items()},
        register_file_entries=v.get("register_file_entries"),
    )


def effective_values(arch: object) -> dict[str, Any]:
    """The value of every override in `arch` as swept paths name them (`array_shapes.NAME`).

    Units as in `OVERRIDES` (a shape as `RxC`); a preset's defaults and overridden values
    alike, so a report can show what a point ran with where a sweep left a value unset.
    Empty for a GPU (its Result's provenance names its calibration).
    """
    if not isinstance(arch, SpatialArch):
        return {}
    values: dict[str, Any] = {
        "clock_ghz": arch.clock_hz / BY_NAME["clock_ghz"].scale,
        "dram_bandwidth_gib_per_s": arch.dram.bandwidth_bytes_per_s
        / BY_NAME["dram_bandwidth_gib_per_s"].scale,
        "buffer_bytes": arch.buffer.capacity_bytes,
    }
    for array in arch.arrays:
        values[f"array_shapes.{array.name}"] = f"{array.rows}x{array.cols}"
        if array.register_file is not None:
            values[f"register_file_entries.{array.name}"] = array.register_file.entries
    return values


def _value(name: str, value: Any) -> Any:
    if BY_NAME[name].per_array:
        return {array: parse_value(name, v) for array, v in value.items()}
    return parse_value(name, value)


def markdown_table() -> str:
    """The README's table of overrides (one row per override, in table order)."""
    lines = ["| override | unit | meaning | presets |", "|---|---|---|---|"]
    for o in OVERRIDES:
        name = f"`{o.name}.ARRAY`" if o.per_array else f"`{o.name}`"
        lines.append(f"| {name} | {o.unit} | {o.meaning} | {', '.join(o.kinds)} |")
    return "\n".join(lines)
