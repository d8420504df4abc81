"""Latent attention (MLA) decode for `gpu-decode`: the absorbed and the naive form.

Read from the cascade's structure (`attention_problem`: latent inputs, score terms,
projections), never from its name:

- **absorbed** (a latent input serves as K and V): the decode kernel runs MQA over the latent
  cache with every query head sharing it (kernels.triton.attn_mla, `triton-mla-decode`): key
  dim = the score terms' dims (latent C + rope R), value dim = C, V a view of K (the cache is
  read once), heads taken `head_block` at a time. The query absorption (Q.WUK) and the output
  projection (OC.WUV) run as their own matmul kernels before and after it;
- **naive** (per-key projections up-project the latent): one matmul kernel per projection
  writes per-head K (or V) for the whole cache, which the decode kernel then reads as
  multi-head attention (key dim E + R, value dim F).

Each extra kernel is priced as a launch plus the larger of its HBM bytes at the measured
read bandwidth and its FLOPs at the best measured matmul rate, and at least the host's time
to launch it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from attnsim.archs.gpu import dtype_bytes
from attnsim.einsum_ir.analysis.serving import ProjectionSite
from attnsim.einsum_ir.analysis.structure import (
    MaskKind,
    ScoreKind,
    StructureError,
    attention_problem,
)
from attnsim.einsum_ir.ir import Cascade
from attnsim.einsum_ir.sizes import SizeError
from attnsim.kernels.spec import CAUSAL_TOP_LEFT, MLA_HEAD_BLOCK, AttnShape
from attnsim.mappers.gpu.rates import DeviceRates
from attnsim.mappers.spatial.view import MappingError


@dataclass(frozen=True, slots=True)
class ExtraKernel:
    """A kernel besides the decode kernel (a projection), priced on its own."""

    name: str
    time_s: float
    read_bytes: float
    write_bytes: float
    flops: float


@dataclass(frozen=True, slots=True)
class LatentAttention:
    """An MLA cascade as attention kernels see it: the attention shape and the projections.

    `shape` is what the attention kernel runs: absorbed, MQA over the latent (kv_group = all
    query heads, key dim C + R, value dim C, `shared` V = K's first C columns); naive,
    multi-head attention over up-projected K and V (key dim E + R, value dim F).
    """

    shape: AttnShape
    shared: bool
    kernels: tuple[ExtraKernel, ...]
    notes: tuple[str, ...]
    structure: Any  # einsum_ir.analysis.structure.AttentionProblem


@dataclass(frozen=True, slots=True)
class LatentDecode:
    """The decode kernel's problem for an MLA cascade, its extra kernels, and what was assumed."""

    problem: Any  # mappers.gpu.decode.DecodeProblem (imported lazily: it imports this module)
    kernels: tuple[ExtraKernel, ...]
    notes: tuple[str, ...]


def _matmul_kernel(
    name: str, flops: float, read: float, write: float, rates: DeviceRates
) -> ExtraKernel:
    gpu = rates.launch_s + max(
        read / rates.hbm_read_bytes_per_s + write / rates.hbm_write_bytes_per_s,
        flops / rates.peak_matmul_flops_per_s,
    )
    return ExtraKernel(name, max(gpu, rates.host_launch_s), read, write, flops)


def latent_attention(
    cascade: Cascade, sizes: dict[str, int], dtype: str, rates: DeviceRates, head_block: int = 0
) -> LatentAttention | None:
    """The MLA structure of `cascade` (None when it has none): attention shape, projections."""
    try:
        ap = attention_problem(cascade, sizes)
    except (StructureError, SizeError):
        return None  # the plain reading reports what is wrong
    per_key = [p for p in ap.projections if p.site == ProjectionSite.KEY]
    if ap.score.kind == ScoreKind.LINEAR or (not ap.latent_inputs and not per_key):
        return None  # linear attention's gates and decays are no latent: the plain reading
    if ap.mask.kind == MaskKind.GENERIC or ap.mask.key_tile_aligned:
        return None  # no tiles to price (pooled or agent cascades): the plain reading refuses
    size = ap.sizes
    elem = dtype_bytes(dtype)
    ranks: dict[str, tuple[str, ...]] = {str(t): tuple(r) for t, r in cascade.tensor_ranks.items()}

    def count(tensor: str) -> int:
        return math.prod(int(size[r]) for r in ranks[tensor] if r in size)

    batch = math.prod(size[r] for r in ap.roles.batch)
    heads = ap.query_group
    key_dim = sum(math.prod(size[d] for d in t.dims) for t in ap.score_terms)
    kernels = []
    notes = [f"structure: {n}" for n in ap.notes]
    # naive when per-key projections up-project the latent (the latent is then an input of
    # those projections, not of the attention); absorbed when the latent itself is K and V
    if ap.latent_inputs and not per_key:
        value_dim = math.prod(size[d] for d in ap.latent_dims)
        shared = True
        kv_group = heads
        for p in ap.projections:
            out = count(p.output) * elem
            kernels.append(
                _matmul_kernel(p.output, 2.0 * p.macs, count(p.weight) * elem, out, rates)
            )
        notes.append(
            f"MLA absorbed: latent {'/'.join(ap.latent_inputs)} read once as K and V by every "
            f"query head (key dim {key_dim}, value dim {value_dim}, {heads} heads"
            + (f" taken {head_block or MLA_HEAD_BLOCK} per program" if ap.seq_q == 1 else "")
            + ": the first program of a cache tile reads it from HBM, the others from L2); "
            "the projections "
            + ", ".join(f"{p.output} = .{p.weight}" for p in ap.projections)
            + " priced as their own matmul kernels (bytes or FLOPs at the calibrated rates)"
        )
    else:
        value_dim = math.prod(size[d] for d in ap.roles.value_dims)
        shared = False
        kv_group = 1
        for p in ap.projections:
            out = count(p.output) * elem
            read = count(p.weight) * elem
            if p.site == ProjectionSite.KEY:
                read += sum(count(t) for t in ap.latent_inputs or ()) * elem
            kernels.append(_matmul_kernel(p.output, 2.0 * p.macs, read, out, rates))
        notes.append(
            "MLA naive: the latent cache up-projected to per-head K and V for every key ("
            + ", ".join(f"{p.output} = .{p.weight}" for p in per_key)
            + ": matmul kernels writing them to HBM), then multi-head attention over them; "
            "the rope key shared by the heads is priced as part of each head's key"
        )
    bands = ap.mask.bands
    shape = AttnShape(
        batch=batch, heads=heads, seq_q=ap.seq_q, seq_k=ap.seq_k, head_dim=key_dim,
        value_dim=value_dim, causal=bands == CAUSAL_TOP_LEFT, dtype=dtype, elem_bytes=elem,
        mask=bands, kv_group=kv_group,
    )  # fmt: skip
    return LatentAttention(shape, shared, tuple(kernels), tuple(notes), ap)


def latent_problem(
    cascade: Cascade, sizes: dict[str, int], opts: Any, rates: DeviceRates
) -> LatentDecode | None:
    """The MLA decode problem of `cascade`, or None when it has no latent structure."""
    from attnsim.mappers.gpu.decode import decode_problem

    lat = latent_attention(cascade, sizes, opts.dtype, rates, opts.head_block)
    if lat is None:
        return None
    name = cascade.name
    if lat.shape.seq_q != 1:
        raise MappingError(
            f"gpu-decode: {name} has {lat.shape.seq_q} query positions; the decode kernel takes "
            "one query per sequence (P = 1); gpu-1pass prices MLA prefill"
        )
    if lat.structure.points() != lat.shape.seq_k:
        raise MappingError(f"gpu-decode: {name}: the MLA decode kernel reads every cached key")
    shape = dataclasses.replace(lat.shape, causal=False)
    block = opts.head_block or (MLA_HEAD_BLOCK if lat.shared else 0)
    problem = decode_problem(shape, opts.seq_lens, shared_kv=lat.shared, head_block=block)
    return LatentDecode(problem, lat.kernels, lat.notes)


def latent_prefill(
    mapper: str, family: str, cascade: Cascade, sizes: dict[str, int], dtype: str, arch: Any
) -> tuple[Any, tuple[ExtraKernel, ...]] | None:
    """MLA prefill for the prefill GPU mappers: (GpuProblem, projection kernels) or None.

    The attention part runs the 1-pass kernel's model on the latent shape (`latent_attention`):
    naive, multi-head attention with key dim E + R; absorbed, MQA over the latent with key
    dim C + R and value dim C. Our Triton kernels take power-of-two head dims only, so that
    attention is priced as the 1-pass kernel would run it (said in the warnings).
    """
    from attnsim.mappers.gpu.kernels import ScoreCost
    from attnsim.mappers.gpu.problem import GpuProblem
    from attnsim.mappers.gpu.rates import device_rates

    try:
        rates = device_rates(arch, dtype)
    except KeyError:
        return None  # the mapper reports the missing rate
    lat = latent_attention(cascade, sizes, dtype, rates)
    if lat is None:
        return None
    if family != "1pass":
        raise MappingError(
            f"{mapper}: {cascade.name} is latent attention (MLA): gpu-1pass prices its prefill "
            "and gpu-decode its decode"
        )
    s = lat.shape
    notes = (
        *lat.notes,
        f"MLA attention (key dim {s.head_dim}, value dim {s.value_dim}): the Triton 1-pass "
        "kernels take power-of-two head dims of 16-256 only, so it is priced as the 1-pass "
        "kernel would run these dims (not timed; benchmarks/mla_prefill_probe.py times both "
        "forms with SDPA backends)"
        + (
            "; K and V are priced as separate loads although V is the latent K's first "
            f"{s.value_dim} columns"
            if lat.shared
            else ""
        ),
    )
    return GpuProblem(s, ScoreCost(), lat.structure, notes), lat.kernels


def with_projections(result: Any, kernels: tuple[ExtraKernel, ...]) -> Any:
    """`result` (a prefill Result) with the projection kernels run before and after it."""
    if not kernels:
        return result
    extra_s = sum(k.time_s for k in kernels)
    latency = result.latency_s + extra_s
    scale = latency / result.latency_s
    read = sum(k.read_bytes for k in kernels)
    write = sum(k.write_bytes for k in kernels)
    extras = dict(result.extras)
    extras.update({f"kernel_{k.name}_us": k.time_s * 1e6 for k in kernels})
    extras["projections_us"] = extra_s * 1e6
    names = ", ".join(k.name for k in kernels)
    return dataclasses.replace(
        result,
        latency_s=latency,
        latency_cycles=result.latency_cycles * scale,
        energy_pj=result.energy_pj * scale,
        dram_traffic_bytes=result.dram_traffic_bytes + read + write,
        flops=result.flops + sum(k.flops for k in kernels),
        extras=tuple(extras.items()),
        bound=f"projections ({names})" if extra_s > result.latency_s / scale else result.bound,
        warnings=(
            *result.warnings,
            f"latency includes the projection kernels ({names}: {extra_s * 1e6:.1f} us, "
            f"{(read + write) / 1e6:.1f} MB of HBM traffic)",
        ),
    )
