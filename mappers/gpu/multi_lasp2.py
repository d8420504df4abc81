"""`gpu-lasp2` and `gpu-lasp2h`: LASP-2's one AllGather per layer, for linear and softmax attention.

Sun, Lan, Zhong, Qu & Cheng, "LASP-2: Rethinking Sequence Parallelism for Linear Attention
and Its Hybrid", 2025 (arXiv 2502.07563), Algorithms 1-2 (LASP-2 forward) and sec. 3.4
(LASP-2H). Each of p devices holds a chunk of N/p tokens.

`gpu-lasp2` (linear attention, Lightning-2's cascade): each device computes its chunk's state
M_t = K_t^T V_t (E x F a head, fp32), AllGathers the p states (a size independent of N), while
the intra-chunk output runs (gpu-lightning at the chunk's length); then sums the states of
the preceding chunks (prefix) and adds Q_t M_prefix. Time: state + max(intra, AllGather) +
prefix + inter.

`gpu-lasp2h` (softmax layers): an AllGather of every device's K and V, then each device's queries
attend to the keys they see (gpu-1pass's model: the own diagonal block causal, the earlier
keys full). The AllGather overlaps the diagonal block only (it needs no remote keys).

`gpu-lasp2h` backward (`direction: backward`, or a backward built-in): K and V are gathered
again (as in the forward: the gathered copy is not kept between the passes), each device runs
the FlashAttention-2 backward of its queries on the keys they see (gpu-bwd's model, the same
two calls as the forward), and a ReduceScatter of the fp32 dK, dV partials (every key's
gradient summed over the devices whose queries saw it) returns each device its own keys'.
LASP-2's backward for linear attention (an AllGather of the dM states) needs a backward of
the chunked recurrence, which no model of ours prices: refused.
"""

from __future__ import annotations

import dataclasses

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
from attnsim.mappers.gpu.multi_collectives import collective
from attnsim.mappers.gpu.multi_common import (
    SeqParallelMapper,
    Step,
    overlapped,
    scheme_result,
)
from attnsim.mappers.registry import register_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

STATE_BYTES = 4  # the states are gathered in fp32 (Lightning-2 accumulates them in fp32)


@register_mapper("gpu-lasp2")
class Lasp2Mapper(SeqParallelMapper):
    """LASP-2 for linear attention: one AllGather of the per-device E x F states."""

    name = "gpu-lasp2"

    def split(self, cascade: Cascade, gpu: GpuArch, cluster: Cluster, sizes: dict[str, int],
              backward: bool) -> Result:  # fmt: skip
        """Price LASP-2 over the devices of `cluster` (linear attention: forward only)."""
        opts = self.options
        if not is_linear(cascade):  # a softmax layer of a hybrid model: LASP-2H
            result = Lasp2HMapper(opts).split(cascade, gpu, cluster, sizes, backward)
            note = f"{self.name}: {cascade.name} is softmax attention: priced as LASP-2H"
            return dataclasses.replace(result, mapper=self.name, warnings=(note, *result.warnings))
        pb = linear_problem(self.name, cascade, sizes)
        p, n = opts.devices, pb.seq
        if n % p:
            raise MappingError(f"{self.name}: {n} tokens do not split over {p} devices")
        c = n // p
        heads = pb.batch * pb.heads
        b = dtype_bytes(opts.dtype)
        rates = rates_of(gpu, opts.dtype)
        state = heads * pb.e * pb.f * STATE_BYTES
        make_state = roofline(rates, 2.0 * heads * c * pb.e * pb.f,
                              heads * c * (pb.e + pb.f) * b, state)  # fmt: skip
        gather = collective(cluster, "all_gather", p * state, p)
        chunk = chunk_sizes(cascade, sizes, n, c)
        intra = priced(lightning_result(cascade, gpu, chunk, opts.dtype))
        prefix = roofline(rates, 0.0, p * state, state)
        inter = roofline(rates, 2.0 * heads * c * pb.e * pb.f,
                         heads * c * (pb.e + 2 * pb.f) * b + state,
                         heads * c * pb.f * b)  # fmt: skip
        tail = Priced(prefix.seconds + inter.seconds, prefix.read_bytes + inter.read_bytes,
                      prefix.write_bytes + inter.write_bytes)  # fmt: skip
        steps = (
            Step("chunk state K^T V", make_state.seconds, 0.0, 0.0, **make_state.dram),  # type: ignore[arg-type]
            overlapped("intra-chunk (gpu-lightning) with AllGather of states", intra.seconds,
                       gather.seconds, sent_bytes=gather.sent_bytes,
                       inter_node_bytes=gather.inter_node_bytes, **intra.dram),
            Step("prefix of states + Q M_prefix", tail.seconds, 0.0, 0.0, **tail.dram),  # type: ignore[arg-type]
        )  # fmt: skip
        notes = (
            f"LASP-2 over {p} devices: chunks of {c} tokens; one AllGather ({gather.algorithm})"
            f" of {p} x {state / 1e6:.3g} MB fp32 states (independent of the sequence length)",
            "the intra-chunk output priced by gpu-lightning at the chunk's length (it also "
            "carries its own state: the chunk-state product is counted twice, a small "
            "overestimate); state, prefix and inter-chunk products as rooflines",
        )
        extras = {
            "seq_len": float(n),
            "state_bytes": float(state),
            "allgather_s": gather.seconds,
            "intra_s": intra.seconds,
            "step_compute_s": make_state.seconds + intra.seconds + tail.seconds,
            "step_comm_s": gather.seconds,
        }
        flops = p * (intra.flops + 4.0 * heads * c * pb.e * pb.f)
        return scheme_result(self, cascade, gpu, sizes, cluster, steps, extras, notes, flops)


@register_mapper("gpu-lasp2h")
class Lasp2HMapper(SeqParallelMapper):
    """LASP-2H for softmax attention: one AllGather of K and V, then local attention."""

    name = "gpu-lasp2h"

    def split(self, cascade: Cascade, gpu: GpuArch, cluster: Cluster, sizes: dict[str, int],
              backward: bool) -> Result:  # fmt: skip
        """Price LASP-2H (its backward when `backward`) over the devices of `cluster`."""
        opts = self.options
        problem = softmax_problem(self.name, cascade, sizes, opts.dtype, backward=backward)
        shape, p = problem.shape, opts.devices
        n = shape.seq_q
        parts = 2 * p if opts.balance == "zigzag" else p
        if n % parts:
            raise MappingError(f"{self.name}: {n} tokens do not split into {parts} equal "
                               f"chunks ({opts.balance} over {p} devices)")  # fmt: skip
        c = n // p
        kv_heads = shape.batch * shape.heads // shape.kv_group
        kv = kv_heads * n * (shape.head_dim + shape.value_dim) * shape.elem_bytes
        gather = collective(cluster, "all_gather", kv, p)

        def price(q: int, k: int, causal: bool) -> Priced:
            if backward:
                return block_bwd(problem, gpu, q, k, causal)
            return block(problem, gpu, q, k, causal, tiling=opts.tiling)

        diag = price(c, c, shape.causal)
        if not shape.causal:
            rest = price(c, n - c, False)
        elif opts.balance == "zigzag":  # chunks r and 2p-1-r: (2p-2) N/2p earlier keys in all
            rest = price(c // 2, n - c, False)
        else:  # contiguous (the last device sees every earlier key) or striped (~ causal)
            rest = price(c, n - c, opts.balance == "striped")
        what = "backward" if backward else "attention"
        steps: tuple[Step, ...] = (
            overlapped(f"own block {what} with AllGather of K, V", diag.seconds, gather.seconds,
                       sent_bytes=gather.sent_bytes, inter_node_bytes=gather.inter_node_bytes,
                       **diag.dram),
            Step(f"{what} to gathered keys", rest.seconds, 0.0, 0.0, **rest.dram),  # type: ignore[arg-type]
        )  # fmt: skip
        notes = [
            f"LASP-2H over {p} devices: one AllGather ({gather.algorithm}) of K and V "
            f"({kv / 1e6:.3g} MB gathered), overlapped with the own diagonal block only",
            f"causal balance: {opts.balance if shape.causal else 'none needed (no mask)'}; "
            f"{what} priced by {'gpu-bwd' if backward else 'gpu-1pass'}'s model (the diagonal "
            "block and the earlier keys as two calls)",
        ]
        extras = {
            "seq_len": float(n),
            "gathered_bytes": float(kv),
            "allgather_s": gather.seconds,
            "step_compute_s": diag.seconds + rest.seconds,
            "step_comm_s": gather.seconds,
        }
        if backward:  # every device's fp32 dK, dV partials of all N keys, reduced and scattered
            grads = kv * 4 / shape.elem_bytes
            scatter = collective(cluster, "reduce_scatter", grads, p)
            steps += (Step("ReduceScatter of dK, dV", 0.0, scatter.seconds, 0.0,
                           sent_bytes=scatter.sent_bytes,
                           inter_node_bytes=scatter.inter_node_bytes),)  # fmt: skip
            notes.append(f"backward: K and V gathered again, then a ReduceScatter "
                         f"({scatter.algorithm}) of the fp32 dK, dV partials "
                         f"({grads / 1e6:.3g} MB), exposed (it needs every device's "
                         "partials)")  # fmt: skip
            extras["reduce_scatter_s"] = scatter.seconds
            extras["step_comm_s"] += scatter.seconds
        flops = 4.0 * shape.batch * shape.heads * n * n * shape.head_dim
        flops *= (0.5 if shape.causal else 1.0) * (2.5 if backward else 1.0)
        return scheme_result(self, cascade, gpu, sizes, cluster, steps, extras, tuple(notes),
                             flops)  # fmt: skip
