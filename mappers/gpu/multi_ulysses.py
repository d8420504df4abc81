"""`gpu-ulysses`: DeepSpeed-Ulysses sequence parallelism, all-to-all over heads around attention.

Jacobs et al., "DeepSpeed Ulysses: System Optimizations for Enabling Training of Extreme Long
Sequence Transformer Models", 2023. Each of p devices holds N/p tokens of every head; an
all-to-all turns that into all N tokens of H/p heads (Q, K and V), each device runs the whole
sequence's attention on its heads (gpu-1pass's model at that shape), and a second all-to-all
brings the output back to N/p tokens of every head. Nothing overlaps: each all-to-all needs
the previous stage's whole result. Needs H divisible by p; K/V heads fewer than p (GQA) are
replicated to p.

Backward (`direction: backward`, or a backward built-in): the all-to-all's gradient is the
reverse all-to-all, so dO goes to the head layout (O and the log-sum-exp stay there from the
forward), each device runs the whole sequence's FlashAttention-2 backward on its heads
(gpu-bwd's model), and dQ, dK, dV go back to the sequence layout.
"""

from __future__ import annotations

from attnsim.archs.gpu import GpuArch
from attnsim.archs.interconnect import Cluster
from attnsim.einsum_ir.ir import Cascade
from attnsim.mappers.gpu.multi_blocks import block, block_bwd, softmax_problem
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

    def split(self, cascade: Cascade, gpu: GpuArch, cluster: Cluster, sizes: dict[str, int],
              backward: bool) -> Result:  # fmt: skip
        """Price Ulysses (its backward when `backward`) over the devices of `cluster`."""
        opts = self.options
        problem = softmax_problem(self.name, cascade, sizes, opts.dtype, backward=backward)
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
        what = "backward (gpu-bwd's model)" if backward else "attention (gpu-1pass's model)"
        notes = [
            f"all-to-all over {p} devices: {c} tokens x {shape.heads} heads -> {n} tokens x "
            f"{shape.heads // p} heads; local {what} at that shape; no overlap (each "
            "all-to-all needs the whole previous stage)"
        ]
        if kv_heads % p:
            notes.append(f"{kv_heads} K/V heads do not split over {p} devices: replicated to "
                         f"{p} (each device receives whole K/V heads)")  # fmt: skip
            if backward:
                notes.append("the sum of the replicated K/V heads' dK, dV after the last "
                             "all-to-all is not priced (an add of K/V's size)")  # fmt: skip
            kv_heads = max(kv_heads, p) if p % kv_heads == 0 else p * -(-kv_heads // p)
        b, e, f = shape.elem_bytes, shape.head_dim, shape.value_dim
        qkv = shape.batch * c * (shape.heads * e + kv_heads * (e + f)) * b
        out = shape.batch * c * shape.heads * f * b
        heads = shape.heads // p
        if backward:
            local = block_bwd(problem, gpu, n, n, shape.causal, heads)
        else:
            local = block(problem, gpu, n, n, shape.causal, heads, opts.tiling)
        before = collective(cluster, "all_to_all", out if backward else qkv, p)
        after = collective(cluster, "all_to_all", qkv if backward else out, p)
        names = ("dO", "dQ, dK, dV") if backward else ("Q, K, V", "O")
        steps = (
            Step(f"all-to-all {names[0]}", 0.0, before.seconds, 0.0,
                 sent_bytes=before.sent_bytes, inter_node_bytes=before.inter_node_bytes),
            Step(f"local {'backward' if backward else 'attention'}", local.seconds, 0.0, 0.0,
                 **local.dram),  # type: ignore[arg-type]
            Step(f"all-to-all {names[1]}", 0.0, after.seconds, 0.0,
                 sent_bytes=after.sent_bytes, inter_node_bytes=after.inter_node_bytes),
        )  # fmt: skip
        extras = {
            "seq_len": float(n),
            "local_attention_s": local.seconds,
            "all_to_all_before_s": before.seconds,
            "all_to_all_after_s": after.seconds,
        }
        flops = 4.0 * shape.batch * shape.heads * n * n * e * (0.5 if shape.causal else 1.0)
        flops *= 2.5 if backward else 1.0  # five matmuls to the forward's two
        return scheme_result(self, cascade, gpu, sizes, cluster, steps, extras, tuple(notes),
                             flops)  # fmt: skip
