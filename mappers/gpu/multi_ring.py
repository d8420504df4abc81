"""`gpu-ring-attention`: K/V blocks passed around a ring of devices, overlapped with compute.

Ring Attention (Liu, Zaharia & Abbeel, "Ring Attention with Blockwise Transformers", 2023;
Ring Self-Attention: Li et al., "Sequence Parallelism", ACL 2023). The sequence of N tokens is
split over p devices; each holds N/p queries and starts with its own K/V block. In p steps
each device computes attention of its queries on the K/V block it holds while sending that
block to the next device and receiving the previous device's (p - 1 send/recv in all): a
step takes max(compute, send/recv), then the partial-softmax merge (the block's output and
log-sum-exp folded into the running ones: reads two outputs, writes one) which depends on
the step's compute.

A step's attention is priced by gpu-1pass's model at the block's shape (`multi_blocks.block`).
Causal work per step (the slowest device sets the step):

- contiguous: step 0 is the diagonal block (causal); in every later step some device sees a
  whole N/p x N/p block (its source precedes it), so each costs a full block;
- zigzag (Brandon et al. 2023 / zigzag ring flash-attn): device r holds chunks r and 2p-1-r of
  N/2p tokens; step 0 is causal over its two chunks, every later step is N/2p queries on N/p
  keys or N/p on N/2p: half a block, on every device alike;
- striped (Brandon et al., "Striped Attention", 2023): every step is a causal-like block.

Backward (`direction: backward`, or a backward built-in), as ring-flash-attention runs it
(zhuzilin/ring-flash-attention, `ring_flash_attn_backward`): Q, O, dO and the log-sum-exp
stay; K/V blocks travel the ring as in the forward and the fp32 dK/dV accumulators travel
with them, one step behind (step i sends the dK/dV summed through step i-1 while it computes):
each step is one FlashAttention-2 backward call on the block (gpu-bwd's model at the block's
shape) overlapped with the K/V and dK/dV sends, then dQ += the block's dQ and the received
dK/dV += the block's (a roofline); a last send returns each dK/dV to its owner, exposed.

Linear-attention cascades (Lightning-2's) on the ring: the own chunk runs on gpu-lightning,
each received K/V block adds its right-product term Q_i (K_j^T V_j) (two matmuls of N/p x E
x F a head, priced as a roofline); the K/V block still travels p - 1 times.
"""

from __future__ import annotations

from attnsim.archs.gpu import GpuArch, dtype_bytes
from attnsim.archs.interconnect import Cluster
from attnsim.einsum_ir.ir import Cascade
from attnsim.mappers.gpu.multi_blocks import (
    Priced,
    block,
    block_bwd,
    chunk_sizes,
    is_linear,
    lightning_result,
    linear_problem,
    priced,
    rates_of,
    roofline,
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


def merge(arch: GpuArch, dtype: str, rows: float, value_dim: int) -> Priced:
    """The partial-softmax merge of `rows` output rows: read two fp32 outputs, write one."""
    rates = rates_of(arch, dtype)
    row_bytes = value_dim * 4 + 4  # fp32 output row and its log-sum-exp
    return roofline(rates, 0.0, 2 * rows * row_bytes, rows * row_bytes)


def ring_chunk(name: str, n: int, p: int, balance: str) -> int:
    """Tokens per device, or a refusal when the balance's chunks are unequal."""
    parts = 2 * p if balance == "zigzag" else p
    if n % parts:
        raise MappingError(f"{name}: {n} tokens do not split into {parts} equal chunks "
                           f"({balance} over {p} devices)")  # fmt: skip
    return n // p


def later_blocks(price, c: int, causal: bool, balance: str) -> Priced:  # type: ignore[no-untyped-def]
    """A later ring step's work on the slowest device: `price(seq_q, seq_k, causal)`."""
    if not causal or balance == "contiguous":
        return price(c, c, False)  # type: ignore[no-any-return]
    if balance == "zigzag":  # N/2p queries on N/p keys, or N/p on N/2p
        return max(price(c // 2, c, False), price(c, c // 2, False), key=lambda x: x.seconds)  # type: ignore[no-any-return]
    return price(c, c, True)  # type: ignore[no-any-return]  # striped: causal-like


@register_mapper("gpu-ring-attention")
class RingAttentionMapper(SeqParallelMapper):
    """Ring Attention: p - 1 send/recv steps of K/V blocks, each under a block's attention."""

    name = "gpu-ring-attention"

    def split(self, cascade: Cascade, gpu: GpuArch, cluster: Cluster, sizes: dict[str, int],
              backward: bool) -> Result:  # fmt: skip
        """Price the ring (its backward when `backward`) over the devices of `cluster`."""
        opts = self.options
        if backward:
            return self._backward(cascade, gpu, cluster, sizes)
        if is_linear(cascade):
            return self._linear(cascade, gpu, sizes, cluster)
        problem = softmax_problem(self.name, cascade, sizes, opts.dtype)
        shape, p = problem.shape, opts.devices
        n = shape.seq_q
        c = ring_chunk(self.name, n, p, opts.balance)
        kv_heads = shape.batch * shape.heads // shape.kv_group
        block_bytes = kv_heads * c * (shape.head_dim + shape.value_dim) * shape.elem_bytes
        send = p2p(cluster, block_bytes, crosses_nodes=p > cluster.devices_per_node)

        def price(q: int, k: int, causal: bool) -> Priced:
            return block(problem, gpu, q, k, causal, tiling=opts.tiling)

        diag = price(c, c, shape.causal)
        later = later_blocks(price, c, shape.causal, opts.balance)
        fold = merge(gpu, opts.dtype, shape.batch * shape.heads * c, shape.value_dim)
        sent = {"sent_bytes": block_bytes, "inter_node_bytes": send.inter_node_bytes}
        folded = {
            "serial_s": fold.seconds,
            "dram_read_bytes": later.read_bytes + fold.read_bytes,
            "dram_write_bytes": later.write_bytes + fold.write_bytes,
        }
        steps: tuple[Step, ...] = (
            overlapped("own block", diag.seconds, send.seconds, **sent, **diag.dram),
            overlapped(
                "received blocks", later.seconds, send.seconds, **sent, **folded, count=p - 2
            ),  # fmt: skip
            Step("last block", later.seconds, 0.0, 0.0, **folded),  # type: ignore[arg-type]
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
            "step_compute_s": later.seconds,
            "step_comm_s": send.seconds,
            "step_s": steps[1].time_s if len(steps) > 1 else steps[0].time_s,
        }
        flops = 4.0 * shape.batch * shape.heads * n * n * shape.head_dim
        flops *= 0.5 if shape.causal else 1.0
        return scheme_result(self, cascade, gpu, sizes, cluster, steps, extras, notes, flops)

    def _backward(
        self, cascade: Cascade, gpu: GpuArch, cluster: Cluster, sizes: dict[str, int]
    ) -> Result:
        """Price the ring's backward (ring-flash-attention's) over the devices of `cluster`."""
        opts = self.options
        problem = softmax_problem(self.name, cascade, sizes, opts.dtype, backward=True)
        shape, p = problem.shape, opts.devices
        n, e, f = shape.seq_q, shape.head_dim, shape.value_dim
        c = ring_chunk(self.name, n, p, opts.balance)
        kv_heads = shape.batch * shape.heads // shape.kv_group
        kv_bytes = kv_heads * c * (e + f) * shape.elem_bytes
        grad_bytes = kv_heads * c * (e + f) * 4  # fp32 dK, dV accumulators
        crosses = p > cluster.devices_per_node
        kv_send = p2p(cluster, kv_bytes, crosses_nodes=crosses)
        grad_send = p2p(cluster, grad_bytes, crosses_nodes=crosses)

        def price(q: int, k: int, causal: bool) -> Priced:
            return block_bwd(problem, gpu, q, k, causal)

        diag = price(c, c, shape.causal)
        later = later_blocks(price, c, shape.causal, opts.balance)
        # dQ += block dQ and received dK, dV += block dK, dV: fp32, read two, write one
        q_bytes = shape.batch * shape.heads * c * e * 4
        acc = roofline(rates_of(gpu, opts.dtype), 0.0, 2 * (q_bytes + grad_bytes),
                       q_bytes + grad_bytes)  # fmt: skip
        both = kv_send.seconds + grad_send.seconds
        inter = kv_send.inter_node_bytes + grad_send.inter_node_bytes
        folded = {
            "serial_s": acc.seconds,
            "dram_read_bytes": later.read_bytes + acc.read_bytes,
            "dram_write_bytes": later.write_bytes + acc.write_bytes,
        }
        steps: tuple[Step, ...] = (
            overlapped("own block backward", diag.seconds, kv_send.seconds, sent_bytes=kv_bytes,
                       inter_node_bytes=kv_send.inter_node_bytes, **diag.dram),
            overlapped("received blocks backward (K, V and the previous dK, dV sent)",
                       later.seconds, both, sent_bytes=kv_bytes + grad_bytes,
                       inter_node_bytes=inter, count=p - 2, **folded),
            overlapped("last block backward (the previous dK, dV sent)", later.seconds,
                       grad_send.seconds, sent_bytes=grad_bytes,
                       inter_node_bytes=grad_send.inter_node_bytes, **folded),
            Step("return dK, dV to their owners", 0.0, grad_send.seconds, 0.0,
                 sent_bytes=grad_bytes, inter_node_bytes=grad_send.inter_node_bytes),
        )  # fmt: skip
        steps = tuple(s for s in steps if s.count > 0)
        balance = opts.balance if shape.causal else "none needed (no mask)"
        notes = (
            f"ring backward over {p} devices (ring-flash-attention's): {p} steps of {c} queries "
            f"x {c} keys; {p - 1} send/recv of K, V ({kv_bytes / 1e6:.3g} MB) and {p} of the "
            f"fp32 dK, dV accumulators ({grad_bytes / 1e6:.3g} MB), the last one exposed",
            f"causal balance: {balance}; a step's backward is one FlashAttention-2 backward call "
            "(D pre-pass, dK/dV, dQ) priced by gpu-bwd's model at the block's shape, tiling "
            "searched; the dQ and dK/dV sums as a roofline; the forward is not included",
            f"the hop to the next device crosses {kv_send.link} (the slowest hop sets the step)",
        )
        extras = {
            "seq_len": float(n),
            "block_bytes": float(kv_bytes),
            "grad_block_bytes": float(grad_bytes),
            "step_compute_s": later.seconds,
            "step_comm_s": both,
            "step_s": steps[1].time_s,
        }
        # five matmuls to the forward's two: 2.5x the forward's FLOPs (FlashAttention-2's count)
        flops = 10.0 * shape.batch * shape.heads * n * n * e * (0.5 if shape.causal else 1.0)
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
        own = priced(lightning_result(cascade, gpu, chunk_sizes(cascade, sizes, n, c), opts.dtype))
        rates = rates_of(gpu, opts.dtype)
        # K_j^T V_j then Q_i (K_j^T V_j), fp32 state; reads Q, K, V, reads/writes O
        flops = 4.0 * heads * c * pb.e * pb.f
        reads = heads * c * (2 * pb.e + pb.f) * b + heads * c * pb.f * b
        later = roofline(rates, flops, reads, heads * c * pb.f * b)
        block_bytes = heads * c * (pb.e + pb.f) * b
        send = p2p(cluster, block_bytes, crosses_nodes=p > cluster.devices_per_node)
        steps = tuple(
            s
            for s in (
                overlapped(
                    "own chunk (gpu-lightning)",
                    own.seconds,
                    send.seconds,
                    sent_bytes=block_bytes,
                    inter_node_bytes=send.inter_node_bytes,
                    **own.dram,
                ),
                overlapped(
                    "received blocks",
                    later.seconds,
                    send.seconds,
                    sent_bytes=block_bytes,
                    inter_node_bytes=send.inter_node_bytes,
                    count=p - 2,
                    **later.dram,
                ),
                Step("last block", later.seconds, 0.0, 0.0, **later.dram),  # type: ignore[arg-type]
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
            "step_compute_s": later.seconds,
            "step_comm_s": send.seconds,
            "step_s": steps[1].time_s if len(steps) > 1 else steps[0].time_s,
        }
        total = own.flops * p + flops * p * (p - 1) / 2
        return scheme_result(self, cascade, gpu, sizes, cluster, steps, extras, notes, total)
