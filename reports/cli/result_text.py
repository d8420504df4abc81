"""Plain-text rendering of one `Result`: headline, per-Einsum, traffic, energy, warnings."""

from __future__ import annotations

from mappers.result import Result

_PREFIXES = (
    (1e15, "P"),
    (1e12, "T"),
    (1e9, "G"),
    (1e6, "M"),
    (1e3, "k"),
    (1.0, ""),
    (1e-3, "m"),
    (1e-6, "u"),
    (1e-9, "n"),
    (1e-12, "p"),
)


def _si(value: float, unit: str) -> str:
    if value == 0:
        return f"0 {unit}"
    for factor, prefix in _PREFIXES:
        if abs(value) >= factor:
            return f"{value / factor:.3f} {prefix}{unit}"
    return f"{value:.3e} {unit}"


def format_result(result: Result) -> str:
    """A multi-section report of one design point."""
    sizes = ", ".join(f"{k}={v}" for k, v in result.sizes)
    options = ", ".join(f"{k}={v}" for k, v in result.options)
    lines = [
        f"{result.cascade} on {result.arch} by {result.mapper} ({options})",
        f"  sizes: {sizes}",
        f"  passes over M: {result.passes}",
        f"  latency: {result.latency_s:.6g} s ({result.latency_cycles:.6g} cycles; "
        f"compute {result.compute_cycles:.6g}, memory {result.memory_cycles:.6g}; "
        f"bound: {result.bound})",
        f"  energy: {_si(result.energy_pj * 1e-12, 'J')}  DRAM traffic: "
        f"{_si(result.dram_traffic_bytes, 'B')}  area: {result.area_um2 / 1e6:.3f} mm^2",
        "",
        "  per Einsum:   unit        pass   ops           cycles        utilization",
    ]
    for e in result.per_einsum:
        lines.append(
            f"    {e.einsum:<12}{e.unit:<12}{e.pass_index:>4}   {e.ops:<14.6g}"
            f"{e.compute_cycles:<14.6g}{e.utilization:.4f}"
        )
    lines.append("  units:")
    for u in result.units:
        lines.append(
            f"    {u.unit:<12} busy {u.busy_cycles:.6g} cycles, utilization {u.utilization:.4f}"
        )
    lines.append("  traffic by tensor (DRAM):")
    for t in result.traffic:
        lines.append(
            f"    {t.tensor:<12} read {_si(t.read_bytes, 'B'):<14} write {_si(t.write_bytes, 'B')}"
        )
    lines.append("  energy by component and action:")
    for item in result.energy:
        if item.count:
            lines.append(
                f"    {item.component:<16}{item.action:<8} x {item.count:<14.6g}"
                f"{_si(item.energy_pj * 1e-12, 'J')}"
            )
    lines.append("  occupancy:")
    for o in result.occupancy:
        spill = f", spilled {_si(o.spilled_bytes, 'B')}" if o.spilled_bytes else ""
        lines.append(
            f"    {o.level}: {_si(o.peak_bytes, 'B')} of {_si(o.capacity_bytes, 'B')}{spill}"
        )
    if result.extras:
        lines.append("  mapping: " + ", ".join(f"{k}={v:g}" for k, v in result.extras))
    if result.warnings:
        lines.append("  assumptions and warnings:")
        lines.extend(f"    - {w}" for w in result.warnings)
    return "\n".join(lines)
