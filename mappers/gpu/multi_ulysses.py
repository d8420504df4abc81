"""`gpu-ulysses`: DeepSpeed-Ulysses sequence parallelism, all-to-all over heads around attention.

Jacobs et al., "DeepSpeed Ulysses: System Optimizations for Enabling Training of Extreme Long
Sequence Transformer Models", 2023. Each of p devices holds N/p tokens of every head; an
all-to-all turns that into all N tokens of H/p heads (Q, K and V), each device runs the whole
sequence's attention on its heads (gpu-1pass's model at that shape), and a second all-to-all
brings the output back to N/p tokens of every head. Nothing overlaps: each all-to-all needs
the previous stage's whole result. Needs H divisible by p; K/V heads fewer than p (GQA) are
replicated to p.
"""

from __future__ import annotations

from attnsim.archs.gpu import GpuArch
from attnsim.archs.interconnect import Cluster
from attnsim.einsum_ir.ir import Cascade
from attnsim.mappers.gpu.multi_blocks import block_time, softmax_problem
from attnsim.mappers.gpu.multi_collectives import collective
from attnsim.mappers.gpu.multi_common import (
    SeqParallelMapper,
    Step,
    scheme_result,
)
from attnsim.mappers.registry import register_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError


@register_mapper("gpu-ulysses")
class UlyssesMapper(SeqParallelMapper):
    """DeepSpeed-Ulysses: all-to-all of Q, K, V over heads, local attention, all-to-all of O."""

    name = "gpu-ulysses"

    def split(
        self, cascade: Cascade, arch: object, gpu: GpuArch, cluster: Cluster, sizes: dict[str, int]
    ) -> Result:
        """Price Ulysses over the devices of `cluster`."""
        opts = self.options
        problem = softmax_problem(self.name, cascade, sizes, opts.dtype)
        shape, p = problem.shape, opts.devices
        if shape.heads < p or shape.heads % p:
            raise MappingError(
                f"{self.name}: {shape.heads} heads do not split over {p} devices (Ulysses "
                "gives each device whole heads: heads must be a multiple of the devices; use "
                "gpu-ring-attention or gpu-lasp2h)"
            )
        n = shape.seq_q
        if n % p:
            raise MappingError(f"{self.name}: {n} tokens do not split over {p} devices")
        c = n // p
        kv_heads = shape.heads // shape.kv_group
        notes = [
            f"all-to-all over {p} devices: {c} tokens x {shape.heads} heads -> {n} tokens x "
            f"{shape.heads // p} heads; local attention priced by gpu-1pass's model at that "
            "shape; no overlap (each all-to-all needs the whole previous stage)"
        ]
        if kv_heads % p:
            notes.append(f"{kv_heads} K/V heads do not split over {p} devices: replicated to "
                         f"{p} (each device receives whole K/V heads)")  # fmt: skip
            kv_heads = max(kv_heads, p) if p % kv_heads == 0 else p * -(-kv_heads // p)
        b, e, f = shape.elem_bytes, shape.head_dim, shape.value_dim
        qkv = shape.batch * c * (shape.heads * e + kv_heads * (e + f)) * b
        out = shape.batch * c * shape.heads * f * b
        before = collective(cluster, "all_to_all", qkv, p)
        after = collective(cluster, "all_to_all", out, p)
        local = block_time(
            problem, gpu, n, n, shape.causal, heads=shape.heads // p, tiling=opts.tiling
        )
        steps = (
            Step("all-to-all Q, K, V", 0.0, before.seconds, 0.0, sent_bytes=before.sent_bytes,
                 inter_node_bytes=before.inter_node_bytes),
            Step("local attention", local, 0.0, 0.0),
            Step("all-to-all O", 0.0, after.seconds, 0.0, sent_bytes=after.sent_bytes,
                 inter_node_bytes=after.inter_node_bytes),
        )  # fmt: skip
        extras = {
            "seq_len": float(n),
            "local_attention_s": local,
            "all_to_all_qkv_s": before.seconds,
            "all_to_all_o_s": after.seconds,
        }
        flops = 4.0 * shape.batch * shape.heads * n * n * e * (0.5 if shape.causal else 1.0)
        return scheme_result(self, cascade, gpu, sizes, cluster, steps, extras, tuple(notes),
                             flops)  # fmt: skip
