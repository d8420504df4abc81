"""The `Result` of `gpu-decode` (mappers.gpu.decode): figures, traffic, extras, warnings."""

from __future__ import annotations

from typing import Any

from attnsim.archs.gpu import GpuArch
from attnsim.einsum_ir.ir import Cascade
from attnsim.kernels.spec import DECODE_STRATEGIES
from attnsim.mappers.gpu.decode import DecodeProblem, DecodeTime, decode_calibration
from attnsim.mappers.gpu.decode_mla import ExtraKernel
from attnsim.mappers.result import VERSION, Occupancy, Result, Traffic, UnitCost, input_hash


def decode_result(
    mapper: Any,
    cascade: Cascade,
    arch: GpuArch,
    sizes: dict[str, int],
    p: DecodeProblem,
    chosen: DecodeTime,
    ranked: list[DecodeTime],
    notes: tuple[str, ...],
    tiling: tuple[int, int, int],
    extra: tuple[ExtraKernel, ...] = (),
) -> Result:
    """The Result of a decode call: the chosen partition, its parts, any extra kernels.

    Extra kernels: MLA's query absorption and output projection, or the naive form's
    up-projections.
    """
    s = p.shape
    q_read, o_bytes = p.qo_bytes
    o_write = float(o_bytes)
    hbm_read = p.cache_bytes + q_read + sum(k.read_bytes for k in extra)
    o_write += sum(k.write_bytes for k in extra)
    latency = chosen.time_s + sum(k.time_s for k in extra)
    clock = arch.clock_hz
    flops = 2.0 * s.heads * sum(p.seq_lens) * (s.head_dim + s.value_dim)
    flops += sum(k.flops for k in extra)
    peak = arch.tensor_flops_per_s(s.dtype)
    best = {st: min((t.time_s for t in ranked if t.strategy == st), default=0.0) for st in
            DECODE_STRATEGIES}  # fmt: skip
    extras: dict[str, float] = {
        "splits": float(chosen.splits),
        "programs": float(chosen.programs),
        "programs_per_sm": float(chosen.per_sm),
        "rows_per_program": float(p.rows),
        "decode_us": chosen.time_s * 1e6,
        **{f"kernel_{k.name}_us": k.time_s * 1e6 for k in extra},
        "hbm_read_bytes": float(hbm_read),
        "hbm_write_bytes": float(o_write),
        "partial_l2_bytes": chosen.partial_bytes,
        "kv_cache_bytes": float(p.cache_bytes),
        "effective_read_gb_per_s": p.cache_bytes / latency / 1e9,
        "scheduled_us": chosen.scheduled_s * 1e6,
        "hbm_us": chosen.hbm_s * 1e6,
        "host_us": chosen.host_s * 1e6,
        "gpu_us": chosen.gpu_s * 1e6,
        "merge_program_us": chosen.merge_s * 1e6,
        "tile_us": chosen.tile_s * 1e6,
        "program_fixed_us": chosen.fixed_s * 1e6,
        "wave_ramps_us": chosen.ramps_s * 1e6,
        "kv_heads": float(s.kv_heads),
        "build_tile_factor": chosen.build_factor,
        "programs_per_sm_measured": float(chosen.resident_measured),
        "candidates": float(len(ranked)),
        **{f"best_{st}_us": t * 1e6 for st, t in best.items() if t},
    }
    warnings = list(notes)
    warnings.append(
        f"chose {chosen.strategy} ({chosen.programs} programs"
        + (f", {chosen.splits} splits" if chosen.strategy == "splitk" else "")
        + f"): bound by {chosen.bound}; best per strategy "
        + ", ".join(f"{st} {t * 1e6:.1f} us" for st, t in best.items() if t)
    )
    return Result(
        cascade=cascade.name,
        arch=arch.name,
        mapper=mapper.name,
        options=(
            ("strategy", chosen.strategy),
            # as options: re-running with them models this call (0 = not this strategy's)
            ("splits", chosen.splits if chosen.strategy != "streamk" else 0),
            ("programs", chosen.programs if chosen.strategy == "streamk" else 0),
            ("block_n", tiling[0]),
            ("num_warps", tiling[1]),
            ("num_stages", tiling[2]),
            ("dtype", s.dtype),
        ),
        sizes=tuple(sorted(sizes.items())),
        passes=1,
        latency_cycles=latency * clock,
        latency_s=latency,
        compute_cycles=chosen.scheduled_s * clock,
        memory_cycles=chosen.hbm_s * clock,
        bound=(
            f"projections ({', '.join(k.name for k in extra)})"
            if sum(k.time_s for k in extra) > chosen.time_s
            else chosen.bound
        ),
        energy_pj=arch.board_power_w * latency * 1e12,
        dram_traffic_bytes=float(hbm_read + o_write),
        flops=flops,
        traffic=(
            Traffic("hbm", "reads (K/V cache, Q, weights)", float(hbm_read), 0.0),
            Traffic("hbm", "writes (O)", 0.0, float(o_write)),
            Traffic(
                "l2",
                "partial states (written and merged)",
                chosen.partial_bytes,
                chosen.partial_bytes,
            ),
        ),  # fmt: skip
        occupancy=(
            Occupancy("programs", "per SM", float(chosen.per_sm), float(arch.max_blocks_per_sm)),
        ),
        units=(
            UnitCost(
                "tensor-core", flops / peak * clock, peak / clock, min(1.0, flops / peak / latency)
            ),
        ),
        extras=tuple(extras.items()),
        warnings=tuple(warnings),
        provenance=(
            ("version", VERSION),
            ("input_hash", input_hash(cascade, arch, sorted(sizes.items()), mapper.options)),
            ("calibration", arch.calibration.path if arch.calibration else ""),
            ("decode_calibration", "" if (d := decode_calibration(arch)) is None else d.path),
        ),
    )
