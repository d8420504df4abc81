"""The non-attention matmuls of a transformer layer, for end-to-end numbers.

A layer with batch B, sequence length P, model width D, FFN width S, H heads of E dims has
rows = B*P tokens and six matmuls (K x N): the Q, K and V projections (D x H*E), the output
projection (H*E x D), FFN1 (D x S) and FFN2 (S x D). Each runs on the 2D array after the
previous one: latency = sum of max(memory time, MACs / lanes).

Traffic follows each matmul's loop nest (`matmul_tiling`): the buffer holds a tile of token
rows of the activations and a tile of the weights; the outputs bypass it. Activations are
read once; a weight matrix that does not fit beside an activation tile is read once per
block of token rows (e.g. XLM's 2048 x 8192 FFN weights, 32 MiB, on 16 or 32 MiB buffers).
Every step of the contraction the array reads one K-slice of each tile from the buffer; DRAM
reads of activations and weights are written into it.

The mapper ignores the cascade argument: it maps the layer's matmuls, not attention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from attnsim.archs.model import SpatialArch
from attnsim.einsum_ir.ir import Cascade
from attnsim.mappers.options import option
from attnsim.mappers.options import problems as option_problems
from attnsim.mappers.registry import register_mapper
from attnsim.mappers.result import (
    VERSION,
    EinsumCost,
    EnergyItem,
    Occupancy,
    Result,
    Traffic,
    UnitCost,
    input_hash,
)
from attnsim.mappers.spatial import cost
from attnsim.mappers.spatial.matmul_tiling import MatmulTiling, tile_matmul
from attnsim.mappers.spatial.view import MappingError, require_spatial
from attnsim.mappers.workloads import MODELS

SIZE_KEYS = ("B", "P", "D", "S", "H", "E")


@dataclass(frozen=True, slots=True)
class LayerMatmulsOptions:
    """Options of the layer-matmuls mapper.

    Attributes:
        model: A name in `mappers.workloads.MODELS`; when set, it replaces B, D, S, H, E.
        seq_len: Sequence length P when `model` is set (0: take P from the sizes).
    """

    model: str = option("", choices=("", *MODELS))
    seq_len: int = option(0, minimum=0, zero="P from the sizes")

    def __post_init__(self) -> None:
        bad = option_problems(self)
        if bad:
            raise MappingError("layer-matmuls options: " + "; ".join(bad))


def layer_sizes(opts: LayerMatmulsOptions, sizes: dict[str, int]) -> dict[str, int]:
    """B, P, D, S, H, E from the options' model (if any) and `sizes`."""
    merged = dict(sizes)
    if opts.model:
        m = MODELS[opts.model]
        merged.update(B=m.batch, D=m.d_model, S=m.d_ff, H=m.heads, E=m.head_dim)
    if opts.seq_len:
        merged["P"] = opts.seq_len
    missing = [k for k in SIZE_KEYS if k not in merged]
    if missing:
        raise MappingError(
            f"layer-matmuls needs sizes {', '.join(SIZE_KEYS)}; missing {', '.join(missing)}"
        )
    return {k: int(merged[k]) for k in SIZE_KEYS}


def layer_matmuls(s: dict[str, int]) -> tuple[tuple[str, int, int, int], ...]:
    """(name, rows, K, N) of each matmul of the layer."""
    rows, d, he = s["B"] * s["P"], s["D"], s["H"] * s["E"]
    return (
        ("Q_proj", rows, d, he),
        ("K_proj", rows, d, he),
        ("V_proj", rows, d, he),
        ("O_proj", rows, he, d),
        ("FFN1", rows, d, s["S"]),
        ("FFN2", rows, s["S"], d),
    )


@register_mapper("layer-matmuls")
class LayerMatmulsMapper:
    """A layer's projection and FFN matmuls on the 2D array; see the module docstring."""

    Options = LayerMatmulsOptions

    name = "layer-matmuls"
    arch_kind = "spatial"
    binds_cascade_ranks = False  # the cascade is ignored; sizes name layer dims

    def __init__(self, options: LayerMatmulsOptions | None = None, **kwargs: object) -> None:
        self.options = options or LayerMatmulsOptions(**kwargs)  # type: ignore[arg-type]

    def map(self, cascade: Cascade | None, arch: SpatialArch, sizes: dict[str, int]) -> Result:
        """Cost the layer's matmuls at `sizes` on `arch` (`cascade` is ignored)."""
        require_spatial(arch, "layer-matmuls")
        s = layer_sizes(self.options, sizes)
        array = arch.array_2d
        wb = arch.word_bytes
        buffer = arch.buffer
        traffic: list[Traffic] = []
        per_einsum: list[EinsumCost] = []
        occupancy: list[Occupancy] = []
        extras: list[tuple[str, float]] = []
        warnings = [
            "layer-matmuls: the cascade argument is ignored (the layer's projection and FFN "
            "matmuls are mapped)"
        ]
        latency = compute = memory = macs = buffer_reads = buffer_fills = 0.0
        for name, rows, k, n in layer_matmuls(s):
            t = _tiling(name, rows, k, n, arch)
            read = float(t.activation_read_words + t.weight_read_words + t.output_read_words)
            mm_macs = float(rows * k * n)
            cycles = mm_macs * array.cycles("mac") / array.lanes
            mem = cost.memory_cycles(arch, (read + t.output_write_words) * wb)
            latency += max(cycles, mem)
            compute += cycles
            memory += mem
            macs += mm_macs
            buffer_reads += t.buffer_read_words
            buffer_fills += t.buffer_fill_words
            traffic.extend(_dram_traffic(name, t, wb))
            occupancy.append(
                Occupancy(buffer.name, name, float(t.buffer_words * wb), buffer.capacity_bytes)
            )
            extras.append((f"{name}.weight_fetches", float(t.weight_fetches)))
            per_einsum.append(EinsumCost(name, array.name, 1, mm_macs, cycles, 0.0))
            warnings.extend(_tiling_warnings(name, t, wb, buffer.capacity_bytes))
        per_einsum = [
            EinsumCost(
                e.einsum, e.unit, e.pass_index, e.ops, e.compute_cycles, e.compute_cycles / latency
            )
            for e in per_einsum
        ]
        energy: list[EnergyItem] = list(cost.compute_energy(array, {"mac": macs}))
        energy.extend(
            cost.dram_energy(
                arch, sum(t.read_bytes for t in traffic), sum(t.write_bytes for t in traffic)
            )
        )
        energy.extend(cost.buffer_energy(arch, buffer, buffer_reads, buffer_fills))
        units = tuple(
            UnitCost(
                a.name,
                compute if a is array else 0.0,
                float(a.lanes),
                compute / latency if a is array else 0.0,
            )
            for a in arch.arrays
        )
        return Result(
            cascade="layer-matmuls",
            arch=arch.name,
            mapper="layer-matmuls",
            options=tuple(asdict(self.options).items()),
            sizes=tuple(sorted(s.items())),
            passes=1,
            latency_cycles=latency,
            latency_s=latency / arch.clock_hz,
            compute_cycles=compute,
            memory_cycles=memory,
            bound="memory:dram" if memory > compute else "compute",
            energy_pj=sum(e.energy_pj for e in energy),
            dram_traffic_bytes=sum(t.total_bytes for t in traffic),
            area_um2=arch.area_um2,
            flops=2.0 * macs,
            traffic=tuple(traffic),
            energy=tuple(energy),
            occupancy=tuple(occupancy),
            per_einsum=tuple(per_einsum),
            units=units,
            ops=(("mac", macs),),
            extras=tuple(extras),
            warnings=tuple(warnings),
            provenance=(
                ("version", VERSION),
                ("schedule", "sequential"),
                ("input_hash", input_hash(arch, sorted(s.items()), self.options)),
            ),
        )


def _tiling(name: str, rows: int, k: int, n: int, arch: SpatialArch) -> MatmulTiling:
    array = arch.array_2d
    words = arch.buffer.capacity_bytes // arch.word_bytes
    try:
        return tile_matmul(rows, k, n, array.rows, array.cols, words)
    except ValueError as exc:
        raise MappingError(f"layer-matmuls: {name}: {exc}") from None


def _dram_traffic(name: str, t: MatmulTiling, word_bytes: int) -> tuple[Traffic, ...]:
    """DRAM traffic of one matmul by operand: activations, weights, outputs."""
    return (
        Traffic("dram", f"{name}.activations", float(t.activation_read_words * word_bytes), 0.0),
        Traffic("dram", f"{name}.weights", float(t.weight_read_words * word_bytes), 0.0),
        Traffic(
            "dram",
            f"{name}.outputs",
            float(t.output_read_words * word_bytes),
            float(t.output_write_words * word_bytes),
        ),
    )


def _tiling_warnings(name: str, t: MatmulTiling, word_bytes: int, capacity: int) -> list[str]:
    """Say when the buffer forces re-reads beyond compulsory traffic."""
    out = []
    if t.weight_fetches > 1:
        out.append(
            f"layer-matmuls: {name}'s weights ({_mib(t.k * t.n * word_bytes)}) do not fit the "
            f"{_mib(capacity)} buffer beside an activation tile: read {t.weight_fetches} times, "
            f"once per block of {t.m1 * t.m0} token rows"
        )
    if t.k2 > 1:
        out.append(
            f"layer-matmuls: {name}: one {t.k}-deep tile of each operand does not fit the "
            f"buffer, so K is split {t.k2} ways at DRAM (the FuseMax artifact never splits "
            f"K): activations read {t.activation_fetches} times, partial sums round-trip DRAM"
        )
    return out


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:g} MiB"


__all__ = ["LayerMatmulsMapper", "LayerMatmulsOptions", "layer_matmuls", "layer_sizes"]
