"""Options, step records and the Result builder shared by the sequence-parallel mappers.

A scheme's time is a list of steps; each step has a compute part (the device's kernels), a
communication part (its collective or send/recv), how much of that communication hides
behind the compute, and what bounds it. Times are those of the slowest device (every step
ends at a barrier: the next block or the gathered states are needed by all).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from attnsim.archs.gpu import GpuArch
from attnsim.archs.interconnect import Cluster
from attnsim.einsum_ir.ir import Cascade
from attnsim.einsum_ir.library.training import training_entry
from attnsim.mappers.gpu.multi_blocks import (
    LINEAR_BACKWARD,
    backward_forward,
    is_linear,
    single_gpu,
)
from attnsim.mappers.gpu.multi_collectives import link_notes
from attnsim.mappers.options import option
from attnsim.mappers.options import problems as option_problems
from attnsim.mappers.result import VERSION, Result, Traffic, input_hash
from attnsim.mappers.spatial.view import MappingError

BALANCES = ("contiguous", "zigzag", "striped")


@dataclass(frozen=True, slots=True)
class SeqOptions:
    """Options of the sequence-parallel mappers.

    Attributes:
        devices: Devices the sequence is split over (1: the single-GPU mapper's Result).
        balance: How causal work is spread: "contiguous" (device r holds the r-th block),
            "zigzag" (blocks r and 2p-1-r) or "striped" (token t on device t mod p).
        link_gb_per_s: Intra-node bandwidth per direction, overriding the GPU's link (0: keep).
        inter_link_gb_per_s: Inter-node bandwidth per direction (0: keep).
        direction: "forward", or "backward": each block's FlashAttention-2 backward (gpu-bwd's
            model) with the scheme's gradient communication; a backward built-in cascade
            (attention-1pass-bwd*) is priced as the backward whatever this says.
        dtype: Element type of Q, K, V, O.
        block_m, block_n, num_warps, num_stages: gpu-1pass's tiling for every softmax
            block (all four set) or searched per block (0).
    """

    devices: int = option(1, minimum=1, maximum=1024)
    balance: str = option("zigzag", choices=BALANCES)
    link_gb_per_s: float = option(0.0, minimum=0, zero="the GPU's link")
    inter_link_gb_per_s: float = option(0.0, minimum=0, zero="the GPU's link")
    direction: str = option("forward", choices=("forward", "backward"))
    dtype: str = option("bf16", choices=("fp16", "bf16"))
    block_m: int = option(0, minimum=0, power_of_two=True, zero="searched")
    block_n: int = option(0, minimum=0, power_of_two=True, zero="searched")
    num_warps: int = option(0, minimum=0, power_of_two=True, zero="searched")
    num_stages: int = option(0, minimum=0, zero="searched")

    def __post_init__(self) -> None:
        bad = option_problems(self)
        if bad:
            raise MappingError("sequence-parallel options: " + "; ".join(bad))

    @property
    def tiling(self) -> dict[str, int]:
        """The tiling options that are set, for gpu-1pass."""
        names = ("block_m", "block_n", "num_warps", "num_stages")
        return {n: getattr(self, n) for n in names if getattr(self, n)}


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a scheme on the slowest device (seconds, bytes per device).

    Attributes:
        label: What the step does.
        compute_s: Its kernels' time.
        comm_s: Its communication's time.
        hidden_s: The part of `comm_s` that runs under the compute.
        serial_s: Work after both (e.g. the partial-softmax merge).
        sent_bytes: Bytes each device sends in this step.
        inter_node_bytes: Of those, bytes to other nodes.
        count: Identical steps this record stands for.
        dram_read_bytes, dram_write_bytes: HBM bytes the device's kernels of this step read
            and write.
    """

    label: str
    compute_s: float
    comm_s: float
    hidden_s: float
    serial_s: float = 0.0
    sent_bytes: float = 0.0
    inter_node_bytes: float = 0.0
    count: int = 1
    dram_read_bytes: float = 0.0
    dram_write_bytes: float = 0.0

    @property
    def time_s(self) -> float:
        """Compute and communication with the hidden part counted once, then the serial part."""
        return self.compute_s + self.comm_s - self.hidden_s + self.serial_s

    @property
    def bound(self) -> str:
        """What bounds the step: compute or communication."""
        return "communication" if self.comm_s > self.compute_s else "compute"


def overlapped(label: str, compute_s: float, comm_s: float, **kw: float) -> Step:
    """A step whose communication runs under its compute: max(compute, comm) + serial."""
    return Step(label, compute_s, comm_s, min(compute_s, comm_s), **kw)  # type: ignore[arg-type]


def wants_backward(name: str, cascade: Cascade, opts: SeqOptions) -> bool:
    """Whether to price the backward (the option, or a backward built-in); refusals say why."""
    backward = opts.direction == "backward" or training_entry(cascade.name) is not None
    if not backward:
        return False
    if is_linear(cascade):
        raise MappingError(f"{name}: {cascade.name}: {LINEAR_BACKWARD}")
    if opts.tiling:
        raise MappingError(f"{name}: block_m, block_n, num_warps and num_stages set gpu-1pass's "
                           "forward tiling; the backward's tiling is searched over gpu-bwd's "
                           "candidates (leave them 0 with direction: backward)")  # fmt: skip
    return True


def cluster_of(name: str, arch: object, opts: SeqOptions) -> tuple[GpuArch, Cluster | None]:
    """The GPU and its interconnect with the options' overrides (refusals say why)."""
    if not isinstance(arch, GpuArch):
        raise MappingError(f"{name} needs a GPU architecture (kind: gpu)")
    if opts.devices == 1:
        return arch, None
    cluster = arch.interconnect
    if cluster is None:
        raise MappingError(f"{name}: {arch.name} names no interconnect (add `interconnect:` "
                           "to its preset: archs/interconnect.py)")  # fmt: skip
    cluster = cluster.with_bandwidth(opts.link_gb_per_s, opts.inter_link_gb_per_s)
    p, d = opts.devices, cluster.devices_per_node
    if p > d and cluster.inter_node is None:
        raise MappingError(f"{name}: {p} devices exceed a node of {d} and {arch.name}'s "
                           "interconnect names no inter_node link")  # fmt: skip
    if p > d and p % d:
        raise MappingError(f"{name}: {p} devices do not fill whole nodes of {d}")
    return arch, cluster


def single_device(
    mapper: object,
    cascade: Cascade,
    arch: GpuArch,
    sizes: dict[str, int],
    opts: SeqOptions,
    backward: bool = False,
) -> Result:
    """One device: the single-GPU model's Result itself (`multi_blocks.single_gpu`), renamed.

    The backward: gpu-bwd's Result (its problem read from the forward).
    """
    name = str(getattr(mapper, "name", ""))
    if backward:
        from attnsim.mappers.gpu.backward_mapper import GpuBwdMapper

        forward = backward_forward(name, cascade) or cascade
        base = GpuBwdMapper(dtype=opts.dtype).price(cascade, forward, arch, sizes)
    else:
        base = single_gpu(cascade, arch, sizes, opts.dtype, opts.tiling)
    return dataclasses.replace(
        base,
        mapper=name,
        options=(
            ("devices", 1),
            ("direction", "backward" if backward else "forward"),
            *base.options,
        ),  # fmt: skip
        warnings=(
            *base.warnings,
            f"{name}: 1 device: the single-GPU model's result, no communication",
        ),  # fmt: skip
    )


class SeqParallelMapper:
    """Shared body of the sequence-parallel mappers: options, the interconnect, one device.

    Subclasses set `name` and price `split`: the scheme, forward or backward, over
    `devices` > 1 devices of `cluster`; one device is the single-GPU model's Result itself
    (`single_device`).
    """

    name = "gpu-seq"
    arch_kind = "gpu"
    Options = SeqOptions

    def __init__(self, options: SeqOptions | None = None, **kwargs: object) -> None:
        self.options = options or SeqOptions(**kwargs)  # type: ignore[arg-type]

    def map(self, cascade: Cascade, arch: object, sizes: dict[str, int]) -> Result:
        """Price the scheme at `sizes` over `devices` devices of `arch`'s interconnect."""
        gpu, cluster = cluster_of(self.name, arch, self.options)
        backward = wants_backward(self.name, cascade, self.options)
        if cluster is None:
            result = single_device(self, cascade, gpu, sizes, self.options, backward)
        else:
            result = self.split(cascade, gpu, cluster, sizes, backward)
        if backward and self.options.direction != "backward":  # a backward built-in
            options = tuple(
                (k, "backward" if k == "direction" else v) for k, v in result.options
            )  # fmt: skip
            note = (f"{self.name}: {cascade.name} is a backward built-in: priced as the "
                    "backward (direction: backward)")  # fmt: skip
            result = dataclasses.replace(result, options=options,
                                         warnings=(note, *result.warnings))  # fmt: skip
        return result

    def split(
        self,
        cascade: Cascade,
        gpu: GpuArch,
        cluster: Cluster,
        sizes: dict[str, int],
        backward: bool,
    ) -> Result:
        """The scheme (its backward when `backward`) over more than one device (subclasses)."""
        raise NotImplementedError


def scheme_result(
    mapper: object,
    cascade: Cascade,
    arch: GpuArch,
    sizes: dict[str, int],
    cluster: Cluster,
    steps: tuple[Step, ...],
    extras: dict[str, float],
    notes: tuple[str, ...],
    flops: float,
) -> Result:
    """The Result of a multi-device scheme from its steps (latency: their sum)."""
    opts: SeqOptions = mapper.options  # type: ignore[attr-defined]
    name = str(getattr(mapper, "name", ""))
    p = opts.devices
    latency = sum(s.time_s * s.count for s in steps)
    compute = sum(s.compute_s * s.count for s in steps)
    comm = sum(s.comm_s * s.count for s in steps)
    hidden = sum(s.hidden_s * s.count for s in steps)
    sent = sum(s.sent_bytes * s.count for s in steps)
    inter = sum(s.inter_node_bytes * s.count for s in steps)
    dram_read = sum(s.dram_read_bytes * s.count for s in steps)
    dram_write = sum(s.dram_write_bytes * s.count for s in steps)
    clock = arch.clock_hz
    bound = "communication" if comm - hidden > 0.5 * (compute + comm - hidden) else "compute"
    per_step = {}
    for i, s in enumerate(steps):
        tag = f"step{i}"
        per_step.update({
            f"{tag}.compute_s": s.compute_s, f"{tag}.comm_s": s.comm_s,
            f"{tag}.hidden_fraction": s.hidden_s / s.comm_s if s.comm_s else 1.0,
            f"{tag}.serial_s": s.serial_s, f"{tag}.count": float(s.count),
            f"{tag}.comm_bound": 1.0 if s.bound == "communication" else 0.0,
            f"{tag}.sent_bytes": s.sent_bytes,
            f"{tag}.dram_bytes": s.dram_read_bytes + s.dram_write_bytes,
        })  # fmt: skip
    headline = {
        "devices": float(p),
        "compute_s": compute,
        "comm_s": comm,
        "comm_hidden_s": hidden,
        "comm_exposed_s": comm - hidden,
        "comm_hidden_fraction": hidden / comm if comm else 1.0,
        "sent_bytes_per_device": sent,
        "inter_node_bytes_per_device": inter,
        "dram_bytes_per_device": dram_read + dram_write,
        "tokens_per_s": float(sizes_seq(extras)) / latency if latency else 0.0,
    }
    warnings = (
        *notes,
        f"{name}: per-step compute, communication, hidden fraction and bound in the extras "
        "step<i>.* (step<i>.count identical steps), the steps in order: "
        + "; ".join(f"{i} {s.label}" for i, s in enumerate(steps)),
        *link_notes(cluster, p),
        "memory_cycles holds the communication time (all steps); compute_cycles the kernels'",
        "DRAM traffic: the HBM bytes of one device's kernels summed over the steps (each "
        "block's from the single-GPU model at its shape, small pieces as rooflines), the "
        "device whose steps set the time; the cluster moves up to devices x that. Energy = "
        "board power x latency x devices (an upper bound, as gpu-1pass's)",
        "every step waits for the slowest device; NCCL's own use of SMs while it overlaps "
        "compute is not modelled (overlap is taken as free)",
    )
    links = [cluster.intra_node.name]
    if inter and cluster.inter_node is not None:
        links.append(cluster.inter_node.name)
    traffic: tuple[Traffic, ...] = (
        Traffic("hbm", "kernels' reads and writes per device", dram_read, dram_write),
        Traffic(links[0], "sent per device", 0.0, sent - inter),
    )
    if len(links) > 1:
        traffic += (Traffic(links[1], "sent per device", 0.0, inter),)
    options = tuple(
        (f.name, getattr(opts, f.name)) for f in dataclasses.fields(opts)
    )  # fmt: skip
    return Result(
        cascade=cascade.name,
        arch=arch.name,
        mapper=name,
        options=options,
        sizes=tuple(sorted(sizes.items())),
        passes=1,
        latency_cycles=latency * clock,
        latency_s=latency,
        compute_cycles=compute * clock,
        memory_cycles=comm * clock,
        bound=bound,
        energy_pj=arch.board_power_w * latency * 1e12 * p,
        dram_traffic_bytes=dram_read + dram_write,
        flops=flops,
        traffic=traffic,
        extras=tuple({**headline, **extras, **per_step}.items()),
        warnings=warnings,
        provenance=(
            ("version", VERSION),
            ("input_hash", input_hash(cascade, arch, sorted(sizes.items()), opts)),
            ("combine", "steps: sum of max(compute, comm) + serial"),
        ),
    )


def sizes_seq(extras: dict[str, float]) -> float:
    """The sequence length a scheme recorded in its extras (`seq_len`)."""
    return extras.get("seq_len", 0.0)
