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

import math
from dataclasses import dataclass
from typing import Any

from attnsim.archs.gpu import dtype_bytes
from attnsim.einsum_ir.analysis.serving import ProjectionSite
from attnsim.einsum_ir.analysis.structure import StructureError, attention_problem
from attnsim.einsum_ir.ir import Cascade
from attnsim.einsum_ir.sizes import SizeError
from attnsim.kernels.spec import MLA_HEAD_BLOCK, AttnShape
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


def latent_problem(
    cascade: Cascade, sizes: dict[str, int], opts: Any, rates: DeviceRates
) -> LatentDecode | None:
    """The MLA decode problem of `cascade`, or None when it has no latent structure."""
    from attnsim.mappers.gpu.decode import decode_problem

    try:
        ap = attention_problem(cascade, sizes)
    except (StructureError, SizeError):
        return None  # the plain reading reports what is wrong
    per_key = [p for p in ap.projections if p.site == ProjectionSite.KEY]
    if not ap.latent_inputs and not per_key:
        return None
    size = ap.sizes
    name = cascade.name
    if ap.seq_q != 1:
        raise MappingError(
            f"gpu-decode: {name} has {ap.seq_q} query positions; the decode kernel takes one "
            "query per sequence (P = 1)"
        )
    if ap.points() != ap.seq_k:
        raise MappingError(f"gpu-decode: {name}: the MLA decode kernel reads every cached key")
    elem = dtype_bytes(opts.dtype)
    ranks: dict[str, tuple[str, ...]] = {str(t): tuple(r) for t, r in cascade.tensor_ranks.items()}

    def count(tensor: str) -> int:
        return math.prod(int(size[r]) for r in ranks[tensor] if r in size)

    batch = math.prod(size[r] for r in ap.roles.batch)
    heads = ap.query_group
    key_dim = sum(math.prod(size[d] for d in t.dims) for t in ap.score_terms)
    kernels = []
    notes = [f"structure: {n}" for n in ap.notes]
    if ap.latent_inputs:
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
            f"query head (key dim {key_dim}, value dim {value_dim}, {heads} heads taken "
            f"{opts.head_block or MLA_HEAD_BLOCK} per program: the first program of a cache "
            "tile reads it from HBM, the others from L2); the projections "
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
            + ": matmul kernels writing them to HBM), then multi-head decode over them; the "
            "rope key shared by the heads is priced as part of each head's key"
        )
    shape = AttnShape(
        batch=batch, heads=heads, seq_q=1, seq_k=ap.seq_k, head_dim=key_dim,
        value_dim=value_dim, causal=False, dtype=opts.dtype, elem_bytes=elem,
        kv_group=kv_group,
    )  # fmt: skip
    block = opts.head_block or (MLA_HEAD_BLOCK if shared else 0)
    problem = decode_problem(shape, opts.seq_lens, shared_kv=shared, head_block=block)
    return LatentDecode(problem, tuple(kernels), tuple(notes))
