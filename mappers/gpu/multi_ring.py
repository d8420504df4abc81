"""`gpu-ring-attention`: K/V blocks passed around a ring of devices, overlapped with compute.

Ring Attention (Liu, Zaharia & Abbeel, "Ring Attention with Blockwise Transformers", 2023;
Ring Self-Attention: Li et al., "Sequence Parallelism", ACL 2023). The sequence of N tokens is
split over p devices; each holds N/p queries and starts with its own K/V block. In p steps
each device computes attention of its queries on the K/V block it holds while sending that
block to the next device and receiving the previous device's (p - 1 send/recv in all): a
step takes max(compute, send/recv), then the partial-softmax merge (the block's output and
log-sum-exp folded into the running ones: reads two outputs, writes one) which depends on
the step's compute.

A step's attention is priced by gpu-1pass's model at the block's shape (`multi_blocks.block_time`).
Causal work per step (the slowest device sets the step):

- contiguous: step 0 is the diagonal block (causal); in every later step some device sees a
  whole N/p x N/p block (its source precedes it), so each costs a full block;
- zigzag (Brandon et al. 2023 / zigzag ring flash-attn): device r holds chunks r and 2p-1-r of
  N/2p tokens; step 0 is causal over its two chunks, every later step is N/2p queries on N/p
  keys or N/p on N/2p: half a block, on every device alike;
- striped (Brandon et al., "Striped Attention", 2023): every step is a causal-like block.

Linear-attention cascades (Lightning-2's) on the ring: the own chunk runs on gpu-lightning,
each received K/V block adds its right-product term Q_i (K_j^T V_j) (two matmuls of N/p x E
x F a head, priced as a roofline); the K/V block still travels p - 1 times.
"""

from __future__ import annotations

from attnsim.archs.gpu import GpuArch, dtype_bytes
from attnsim.archs.interconnect import Cluster
from attnsim.einsum_ir.ir import Cascade
from attnsim.mappers.gpu.multi_blocks import (
    block_time,
    chunk_sizes,
    is_linear,
    lightning_result,
    linear_problem,
    rates_of,
    roofline_s,
    softmax_problem,
)
from attnsim.mappers.gpu.multi_collectives import p2p
from attnsim.mappers.gpu.multi_common import (
    SeqParallelMapper,
    Step,
    overlapped,
    scheme_result,
)
from attnsim.mappers.registry import register_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError


def merge_s(arch: GpuArch, dtype: str, rows: float, value_dim: int) -> float:
    """The partial-softmax merge of `rows` output rows: read two fp32 outputs, write one."""
    rates = rates_of(arch, dtype)
    row_bytes = value_dim * 4 + 4  # fp32 output row and its log-sum-exp
    return roofline_s(rates, 0.0, 2 * rows * row_bytes, rows * row_bytes)


@register_mapper("gpu-ring-attention")
class RingAttentionMapper(SeqParallelMapper):
    """Ring Attention: p - 1 send/recv steps of K/V blocks, each under a block's attention."""

    name = "gpu-ring-attention"

    def split(
        self, cascade: Cascade, arch: object, gpu: GpuArch, cluster: Cluster, sizes: dict[str, int]
    ) -> Result:
        """Price the ring over the devices of `cluster`."""
        opts = self.options
        if is_linear(cascade):
            return self._linear(cascade, gpu, sizes, cluster)
        problem = softmax_problem(self.name, cascade, sizes, opts.dtype)
        shape, p = problem.shape, opts.devices
        n = shape.seq_q
        parts = 2 * p if opts.balance == "zigzag" else p
        if n % parts:
            raise MappingError(f"{self.name}: {n} tokens do not split into {parts} equal "
                               f"chunks ({opts.balance} over {p} devices)")  # fmt: skip
        c = n // p
        kv_heads = shape.batch * shape.heads // shape.kv_group
        block_bytes = kv_heads * c * (shape.head_dim + shape.value_dim) * shape.elem_bytes
        send = p2p(cluster, block_bytes, crosses_nodes=p > cluster.devices_per_node)
        diag = block_time(problem, gpu, c, c, shape.causal, tiling=opts.tiling)
        if not shape.causal or opts.balance == "contiguous":
            later = block_time(problem, gpu, c, c, False, tiling=opts.tiling)
        elif opts.balance == "zigzag":
            later = max(block_time(problem, gpu, c // 2, c, False, tiling=opts.tiling),
                        block_time(problem, gpu, c, c // 2, False, tiling=opts.tiling))  # fmt: skip
        else:  # striped: each later block is causal-like
            later = diag
        merge = merge_s(gpu, opts.dtype, shape.batch * shape.heads * c, shape.value_dim)
        steps: tuple[Step, ...] = (
            overlapped(
                "own block",
                diag,
                send.seconds,
                sent_bytes=block_bytes,
                inter_node_bytes=send.inter_node_bytes,
            ),  # fmt: skip
            overlapped(
                "received blocks",
                later,
                send.seconds,
                serial_s=merge,
                sent_bytes=block_bytes,
                inter_node_bytes=send.inter_node_bytes,
                count=p - 2,
            ),  # fmt: skip
            Step("last block", later, 0.0, 0.0, serial_s=merge),
        )
        steps = tuple(s for s in steps if s.count > 0)
        balance = opts.balance if shape.causal else "none needed (no mask)"
        notes = (
            f"ring over {p} devices: {p} steps of {c} queries x {c} keys a device, "
            f"{p - 1} send/recv of {block_bytes / 1e6:.3g} MB (K and V of the block)",
            f"causal balance: {balance}; a step's attention priced by gpu-1pass's model at "
            "the block's shape, the merge of partial softmax states as a roofline",
            f"the hop to the next device crosses {send.link} (the slowest hop sets the step)",
        )
        extras = {
            "seq_len": float(n),
            "block_bytes": float(block_bytes),
            "step_compute_s": later,
            "step_comm_s": send.seconds,
            "step_s": steps[1].time_s if len(steps) > 1 else steps[0].time_s,
        }
        flops = 4.0 * shape.batch * shape.heads * n * n * shape.head_dim
        flops *= 0.5 if shape.causal else 1.0
        return scheme_result(self, cascade, gpu, sizes, cluster, steps, extras, notes, flops)

    def _linear(self, cascade: Cascade, gpu: GpuArch, sizes: dict[str, int],
                cluster: Cluster) -> Result:  # fmt: skip
        opts = self.options
        pb = linear_problem(self.name, cascade, sizes)
        p, n = opts.devices, pb.seq
        if n % p:
            raise MappingError(f"{self.name}: {n} tokens do not split over {p} devices")
        c = n // p
        b = dtype_bytes(opts.dtype)
        heads = pb.batch * pb.heads
        own = lightning_result(cascade, gpu, chunk_sizes(cascade, sizes, n, c), opts.dtype)
        rates = rates_of(gpu, opts.dtype)
        # K_j^T V_j then Q_i (K_j^T V_j), fp32 state; reads Q, K, V, reads/writes O
        flops = 4.0 * heads * c * pb.e * pb.f
        reads = heads * c * (2 * pb.e + pb.f) * b + heads * c * pb.f * b
        later = roofline_s(rates, flops, reads, heads * c * pb.f * b)
        block_bytes = heads * c * (pb.e + pb.f) * b
        send = p2p(cluster, block_bytes, crosses_nodes=p > cluster.devices_per_node)
        steps = tuple(
            s
            for s in (
                overlapped(
                    "own chunk (gpu-lightning)",
                    own.latency_s,
                    send.seconds,
                    sent_bytes=block_bytes,
                    inter_node_bytes=send.inter_node_bytes,
                ),
                overlapped(
                    "received blocks",
                    later,
                    send.seconds,
                    sent_bytes=block_bytes,
                    inter_node_bytes=send.inter_node_bytes,
                    count=p - 2,
                ),
                Step("last block", later, 0.0, 0.0),
            )  # fmt: skip
            if s.count > 0
        )
        notes = (
            f"linear attention on the ring over {p} devices: own chunk of {c} tokens on "
            "gpu-lightning, each received K/V block adds Q_i (K_j^T V_j) (right product, "
            "roofline); the contiguous layout's idle devices do not shorten a step",
            f"{p - 1} send/recv of {block_bytes / 1e6:.3g} MB K/V blocks over {send.link}: "
            "their size grows with the sequence",
        )
        extras = {
            "seq_len": float(n),
            "block_bytes": float(block_bytes),
            "step_compute_s": later,
            "step_comm_s": send.seconds,
            "step_s": steps[1].time_s if len(steps) > 1 else steps[0].time_s,
        }
        total = own.flops * p + flops * p * (p - 1) / 2
        return scheme_result(self, cascade, gpu, sizes, cluster, steps, extras, notes, total)
