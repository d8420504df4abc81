"""`attnsim reproduce fusemax`: the FuseMax paper's tables and figures from first principles.

Every row is computed by a mapper from an architecture preset, a workload and a mapping.
The only tabulated input is FLAT's own chosen dataflow per model and length
(`reports/paper/data/flat_dataflows.csv`), which is a mapping, not a result. The reference tables
are read only by the comparison step, after every number has been produced.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnsim.archs.load import load_spatial_arch
from attnsim.archs.model import SpatialArch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.fusemax import FuseMaxMapper, FuseMaxOptions
from attnsim.mappers.workloads import LENGTHS, MODELS, TransformerModel, length_label

DATA_DIR = Path(__file__).parent / "data"
FLAT_DATAFLOWS = DATA_DIR / "flat_dataflows.csv"
ATTENTION_TABLES = ("attn-unfused", "attn-flat", "attn-cascade", "attn-arch", "attn-binding")
TABLES = (*ATTENTION_TABLES, "end2end-flat", "end2end-proposal", "pareto")
PARETO_SIDES = (16, 32, 64, 128, 256, 512)
PARETO_LENGTH = LENGTHS["256K"]
# The FuseMax artifact sized the +Cascade query tiling for FuseMax's own 16 MiB buffer while
# pricing accesses with FLAT's 32 MiB buffer; reproduction keeps that choice (and says so).
CASCADE_BUDGET_FROM = "fusemax"

Row = dict[str, Any]
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Setup:
    """Architectures and cascades used by the reproduction."""

    fusemax: SpatialArch
    flat: SpatialArch
    one_pass: str = "attention-1pass-mh"
    three_pass: str = "attention-3pass-mh"


def default_setup() -> Setup:
    """The paper's configurations: the `fusemax` and `flat` presets."""
    return Setup(fusemax=load_spatial_arch("fusemax"), flat=load_spatial_arch("flat"))


def flat_dataflow_rows(path: Path = FLAT_DATAFLOWS) -> dict[tuple[str, str, str], dict[str, str]]:
    """FLAT's chosen dataflow keyed by (platform, model, length label)."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    return {(r["platform"], r["models"], r["seq_len"]): r for r in csv.DictReader(lines)}


def _units_row(result: Result, einsums: Iterable[str]) -> Row:
    row: Row = {
        "traffic": result.dram_traffic_bytes,
        "latency": result.latency_s,
        "energy": result.energy_pj,
        "util_2d": result.unit("array_2d").utilization,
        "util_1d": result.unit("array_1d").utilization,
    }
    for name in einsums:
        row[name] = result.einsum(name).utilization
    return row


def attention_rows(
    model: TransformerModel, seq_len: int, setup: Setup, dataflows: Mapping[Any, dict[str, str]]
) -> dict[str, tuple[Row, Result]]:
    """One row per attention design point (unfused, FLAT, +Cascade, +Arch, +Binding)."""
    from attnsim.mappers.spatial.flat import flat_dataflow_from_row

    sizes = model.attention_sizes(seq_len)
    three = load_cascade(setup.three_pass)
    one = load_cascade(setup.one_pass)
    key = {"model": model.name, "seq_len": length_label(seq_len)}
    flat_row = dataflows.get(("cloud", model.name, length_label(seq_len)))
    if flat_row is None:
        raise KeyError(f"no FLAT dataflow for {model.name} at {length_label(seq_len)}")
    flat_options = dataclasses.replace(flat_dataflow_from_row(flat_row), artifact_compat=True)
    budget = setup.fusemax.buffer.capacity_bytes
    runs: dict[str, tuple[Result, tuple[str, ...]]] = {
        "attn-unfused": (get_mapper("unfused")().map(three, setup.flat, sizes), ()),
        "attn-flat": (get_mapper("flat")(flat_options).map(three, setup.flat, sizes), ("QK", "AV")),
        "attn-cascade": (
            FuseMaxMapper(
                FuseMaxOptions("cascade", artifact_compat=True, buffer_budget_bytes=budget)
            ).map(one, setup.flat, sizes),
            ("QK", "SLNV"),
        ),
    }
    for step in ("arch", "binding"):
        result = FuseMaxMapper(FuseMaxOptions(step)).map(one, setup.fusemax, sizes)
        runs[f"attn-{step}"] = (result, ("QK", "LM", "SLN", "SLD", "SLNV"))
    return {name: ({**key, **_units_row(r, cols)}, r) for name, (r, cols) in runs.items()}


def end_to_end_rows(model: TransformerModel, seq_len: int, setup: Setup) -> dict[str, Row]:
    """The layer's non-attention matmuls on FLAT's and FuseMax's hardware."""
    mapper = get_mapper("layer-matmuls")()
    cascade = load_cascade(setup.three_pass)
    sizes = {
        "B": model.batch,
        "P": seq_len,
        "D": model.d_model,
        "S": model.d_ff,
        "H": model.heads,
        "E": model.head_dim,
    }
    rows: dict[str, Row] = {}
    for table, arch in (("end2end-flat", setup.flat), ("end2end-proposal", setup.fusemax)):
        r = mapper.map(cascade, arch, sizes)
        rows[table] = {
            "model": model.name,
            "seq_len": length_label(seq_len),
            "traffic": r.dram_traffic_bytes,
            "latency": r.latency_s,
            "energy": r.energy_pj,
        }
    return rows


def pareto_arch(
    base: SpatialArch, side: int, head_dim: int, seq_len: int, buffer_multiplier: int
) -> SpatialArch:
    """FuseMax scaled to a `side` x `side` array, sized as in the paper's Pareto sweep.

    The buffer holds the minimum number of query tiles the pipeline needs: min_tiles =
    2 * max(1, side // E) tiles, min_P1 = max(1, min_tiles // (L / side)), and
    side * min_P1 * E * 8 words of 2 bytes, times `buffer_multiplier`. Register files hold
    2 * min_tiles (2D) and 8 * min_tiles (1D) entries.
    """
    min_tiles = 2 * max(1, side // head_dim)
    min_p1 = max(1, min_tiles // max(1, seq_len // side))
    buffer_bytes = side * min_p1 * head_dim * 8 * base.word_bytes * buffer_multiplier
    arch = base.with_array_shape(base.array_2d.name, side, side)
    arch = arch.with_array_shape(base.array_1d.name, 1, side)
    arch = arch.with_register_file_entries(base.array_2d.name, 2 * min_tiles)
    arch = arch.with_register_file_entries(base.array_1d.name, 8 * min_tiles)
    return arch.with_buffer_bytes(buffer_bytes)


def pareto_rows(model: TransformerModel, setup: Setup, seq_len: int = PARETO_LENGTH) -> list[Row]:
    """FuseMax at `seq_len` as the array side varies; the buffer doubles until compute-bound."""
    cascade = load_cascade(setup.one_pass)
    rows: list[Row] = []
    for side in PARETO_SIDES:
        multiplier = 1
        while True:
            arch = pareto_arch(setup.fusemax, side, model.head_dim, seq_len, multiplier)
            r = FuseMaxMapper(FuseMaxOptions("binding")).map(
                cascade, arch, model.attention_sizes(seq_len)
            )
            one_d = r.unit(arch.array_1d.name).busy_cycles
            if r.memory_cycles <= one_d or multiplier >= 1 << 12:
                break
            multiplier *= 2
        rows.append(
            {
                "accel": "proposal",
                "model": model.name,
                "PE_dim": side,
                "traffic": r.dram_traffic_bytes,
                "mem_lat": r.memory_cycles / arch.clock_hz,
                "comp_2d_lat": r.unit(arch.array_2d.name).busy_cycles / arch.clock_hz,
                "comp_1d_lat": one_d / arch.clock_hz,
                "latency": r.latency_s,
                "array_2d_area": arch.array_2d.area_um2,
                "area": arch.area_um2,
            }
        )
    return rows


def reproduce(
    models: Iterable[str],
    lengths: Iterable[int],
    setup: Setup | None = None,
    progress: Progress | None = None,
) -> dict[str, list[Row]]:
    """Every table of the reproduction, as rows keyed like the reference CSVs."""
    setup = setup or default_setup()
    dataflows = flat_dataflow_rows()
    tables: dict[str, list[Row]] = {t: [] for t in TABLES}
    for name in models:
        model = MODELS[name]
        for seq_len in lengths:
            if progress:
                progress(f"{name} {length_label(seq_len)}")
            for table, (row, _) in attention_rows(model, seq_len, setup, dataflows).items():
                tables[table].append(row)
            for table, row in end_to_end_rows(model, seq_len, setup).items():
                tables[table].append(row)
        if progress:
            progress(f"{name} pareto")
        tables["pareto"].extend(pareto_rows(model, setup))
    return tables
