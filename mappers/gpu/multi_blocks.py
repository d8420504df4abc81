"""The single-GPU prices the sequence-parallel mappers build on, at a block's shape.

Softmax blocks are priced by gpu-1pass's own model (`mappers.gpu.tiling.rank_tilings` over
its candidate tilings, the fastest runnable one: what `gpu-1pass` chooses), their backward by
gpu-bwd's (`mappers.gpu.backward.time_bwd` over `kernels.spec.BWD_TILINGS` x the dQ modes,
the fastest runnable one); linear-attention chunks by the `gpu-lightning` mapper at the
chunk's length. Small elementwise and matmul pieces of the schemes (merges, state products,
prefix sums, gradient sums) are priced as a roofline: max(FLOPs at the tensor-core peak,
bytes at HBM speed) plus one kernel launch. Each price carries its HBM bytes (`Priced`), so a
scheme's Result sums the device's DRAM traffic over its steps.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from attnsim.archs.gpu import GpuArch
from attnsim.einsum_ir.analysis.recurrent import find_states, query_ranks
from attnsim.einsum_ir.analysis.structure import BackwardCascadeError
from attnsim.einsum_ir.ir import Cascade
from attnsim.einsum_ir.library.builder import Algorithm, ScoreForm
from attnsim.einsum_ir.library.training import training_entry
from attnsim.einsum_ir.load import load_cascade
from attnsim.kernels.spec import BWD_TILINGS, CAUSAL_TOP_LEFT, NO_MASK, AttnShape
from attnsim.mappers.gpu.backward import DQ_MODES, time_bwd
from attnsim.mappers.gpu.kernels import ScoreCost
from attnsim.mappers.gpu.lightning_mapper import (
    GpuLightningMapper,
    LightningProblem,
    lightning_problem,
)
from attnsim.mappers.gpu.model import DeviceRates, Tiling, device_rates
from attnsim.mappers.gpu.problem import GpuProblem, gpu_problem
from attnsim.mappers.gpu.tiling import (
    Gpu1PassMapper,
    GpuOptions,
    candidate_tilings,
    pingpong_searched,
    rank_tilings,
)
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

LINEAR_BACKWARD = (
    "the backward of linear attention is not modelled (gpu-lightning prices the forward "
    "only; no kernel of ours runs the chunked recurrence's backward)"
)


@dataclass(frozen=True, slots=True)
class Priced:
    """One piece of a scheme on one device: seconds, HBM bytes read and written, FLOPs."""

    seconds: float
    read_bytes: float = 0.0
    write_bytes: float = 0.0
    flops: float = 0.0

    @property
    def dram(self) -> dict[str, float]:
        """The HBM bytes as a `Step`'s keyword arguments."""
        return {"dram_read_bytes": self.read_bytes, "dram_write_bytes": self.write_bytes}


def is_linear(cascade: Cascade) -> bool:
    """Whether the cascade carries a recurrent state over the keys (linear attention)."""
    return any(s.over is not None for s in find_states(cascade))


def single_gpu(
    cascade: Cascade, arch: GpuArch, sizes: dict[str, int], dtype: str, tiling: dict[str, int]
) -> Result:
    """The single-GPU Result: gpu-lightning for linear attention, else gpu-1pass (`tiling`)."""
    if is_linear(cascade):
        return lightning_result(cascade, arch, sizes, dtype)
    return Gpu1PassMapper(dtype=dtype, **tiling).map(cascade, arch, sizes)  # type: ignore[arg-type]


def rates_of(arch: GpuArch, dtype: str) -> DeviceRates:
    """The model's device rates, a missing dtype as a MappingError."""
    try:
        return device_rates(arch, dtype)
    except KeyError as exc:
        raise MappingError(str(exc).strip("'\"")) from None


def backward_forward(name: str, cascade: Cascade) -> Cascade | None:
    """The forward a backward built-in differentiates; None for any other cascade.

    Refuses the backward built-ins no kernel of ours runs (3-pass: stored scores; sigmoid).
    """
    entry = training_entry(cascade.name)
    if entry is None:
        return None
    f = entry.forward
    if f.algorithm != Algorithm.ONE_PASS or f.score != ScoreForm.SOFTMAX:
        raise MappingError(f"{name}: {cascade.name} differentiates {f.name}: the blocks' backward "
                           "is the FlashAttention-2 backward of 1-pass softmax attention "
                           "(triton-bwd); no kernel of ours reads stored scores or runs the "
                           "sigmoid backward")  # fmt: skip
    return load_cascade(f.name)


def softmax_problem(
    name: str, cascade: Cascade, sizes: dict[str, int], dtype: str, backward: bool = False
) -> GpuProblem:
    """The cascade's attention problem for a scheme that splits its sequence, or a refusal.

    Self-attention (P = M) with no mask or a top-left causal one, not split-K. A backward
    built-in's problem is its forward's; `backward` also needs the plain softmax score.
    """
    forward = backward_forward(name, cascade)
    try:
        problem = gpu_problem(forward or cascade, sizes, dtype)
    except BackwardCascadeError:
        raise MappingError(f"{name}: {cascade.name} is a backward cascade that is not a "
                           "built-in (attention-1pass-bwd[-mh|-gqa][-causal]): the schemes "
                           "read a backward's problem from the forward it differentiates, "
                           "which a hand-written backward does not name") from None  # fmt: skip
    shape = problem.shape
    if problem.structure.split_ranks:
        raise MappingError(f"{name}: {cascade.name} splits the keys (split-K decode); "
                           "sequence parallelism splits a prefill's sequence")  # fmt: skip
    if (backward or forward is not None) and not problem.score.is_plain:
        raise MappingError(f"{name}: {cascade.name}: the backward blocks (triton-bwd) take no "
                           f"score modifier (got {problem.score.describe()})")  # fmt: skip
    if shape.seq_q != shape.seq_k:
        raise MappingError(f"{name}: P = {shape.seq_q}, M = {shape.seq_k}: the schemes split "
                           "one sequence of self-attention (P = M)")  # fmt: skip
    if shape.layout is not None or shape.mask not in ((), NO_MASK, CAUSAL_TOP_LEFT):
        raise MappingError(f"{name}: {cascade.name}'s mask is neither none nor causal; the "
                           "sequence-parallel schemes are modelled for those two")  # fmt: skip
    return problem


def _block_shape(
    problem: GpuProblem, seq_q: int, seq_k: int, causal: bool, heads: int
) -> AttnShape:
    return dataclasses.replace(
        problem.shape,
        seq_q=seq_q,
        seq_k=seq_k,
        causal=causal,
        mask=CAUSAL_TOP_LEFT if causal else NO_MASK,
        heads=heads or problem.shape.heads,
    )


@functools.lru_cache(maxsize=4096)
def _block(
    arch: GpuArch, dtype: str, shape: AttnShape, score: ScoreCost, fixed: tuple[int, ...]
) -> Priced:
    rates = rates_of(arch, dtype)
    space = candidate_tilings(shape.causal, pingpong_searched("1pass", shape, arch))
    if fixed:
        tiling = GpuOptions(*fixed).fixed  # type: ignore[arg-type]
        space = (tiling,) if tiling is not None else space
    ranked = rank_tilings("1pass", shape, rates, space, score)
    if ranked[0].problem:
        raise MappingError(f"no gpu-1pass tiling fits {arch.name}: {ranked[0].problem}")
    best = ranked[0]
    flops = 4.0 * shape.batch * shape.heads * shape.seq_q * shape.seq_k * shape.head_dim
    reads, writes = best.hbm_bytes
    return Priced(best.time_s, reads, writes, flops * (0.5 if shape.causal else 1.0))


def block(
    problem: GpuProblem,
    arch: GpuArch,
    seq_q: int,
    seq_k: int,
    causal: bool,
    heads: int = 0,
    tiling: dict[str, int] | None = None,
) -> Priced:
    """gpu-1pass's modelled forward of `seq_q` queries on `seq_k` keys (zero when either is 0).

    `causal`: the block on the diagonal (top-left causal); else every pair is visible.
    `heads`: query heads on this device (0: the problem's). `tiling`: block_m, block_n,
    num_warps and num_stages when all are set (else searched, as gpu-1pass does).
    """
    if seq_q <= 0 or seq_k <= 0:
        return Priced(0.0)
    shape = _block_shape(problem, seq_q, seq_k, causal, heads)
    names = ("block_m", "block_n", "num_warps", "num_stages")
    fixed = tuple(tiling[n] for n in names) if tiling and len(tiling) == 4 else ()
    return _block(arch, shape.dtype, shape, problem.score, fixed)


@functools.lru_cache(maxsize=4096)
def _block_bwd(arch: GpuArch, shape: AttnShape) -> Priced:
    rates = rates_of(arch, shape.dtype)
    ranked = sorted(
        (time_bwd(shape, Tiling(*t), mode, rates) for t in BWD_TILINGS for mode in DQ_MODES),
        key=lambda r: r.time_s,
    )
    valid = [r for r in ranked if not r.problem]
    if not valid:
        raise MappingError(f"no gpu-bwd tiling fits {arch.name}: {ranked[0].problem}")
    best = valid[0]
    reads = sum(p.hbm_read_bytes for p in best.plans)
    writes = sum(p.hbm_write_bytes for p in best.plans)
    return Priced(best.time_s, reads, writes, sum(p.flops for p in best.plans))


def block_bwd(
    problem: GpuProblem, arch: GpuArch, seq_q: int, seq_k: int, causal: bool, heads: int = 0
) -> Priced:
    """gpu-bwd's modelled backward call (D pre-pass, dK/dV, dQ) of one block, tiling searched.

    The same block as `block`; one whole `attention_bwd` call, as a ring step of
    ring-flash-attention runs one FlashAttention backward per received K/V block.
    """
    if seq_q <= 0 or seq_k <= 0:
        return Priced(0.0)
    return _block_bwd(arch, _block_shape(problem, seq_q, seq_k, causal, heads))


def linear_problem(name: str, cascade: Cascade, sizes: dict[str, int]) -> LightningProblem:
    """The Lightning-2 problem of a linear-attention cascade (refusals say why)."""
    try:
        return lightning_problem(cascade, sizes)
    except MappingError as exc:
        raise MappingError(f"{name}: {exc}") from None


def chunk_sizes(cascade: Cascade, sizes: dict[str, int], seq: int, chunk: int) -> dict[str, int]:
    """`sizes` with the query and key lengths (`seq`) set to `chunk`."""
    seq_names = {str(r) for r in query_ranks(cascade)} | {"M"}
    return {k: (chunk if k in seq_names and v == seq else v) for k, v in sizes.items()}


def priced(result: Result) -> Priced:
    """A single-GPU Result as a scheme's piece: latency, HBM reads and writes, FLOPs."""
    hbm = [t for t in result.traffic if t.level == "hbm"]
    reads, writes = sum(t.read_bytes for t in hbm), sum(t.write_bytes for t in hbm)
    return Priced(result.latency_s, reads, writes, result.flops)


def lightning_result(cascade: Cascade, arch: GpuArch, sizes: dict[str, int], dtype: str) -> Result:
    """The gpu-lightning mapper's Result at `sizes`."""
    return _lightning(cascade, arch, tuple(sorted(sizes.items())), dtype)


@functools.lru_cache(maxsize=1024)
def _lightning(
    cascade: Cascade, arch: GpuArch, sizes: tuple[tuple[str, int], ...], dtype: str
) -> Result:
    return GpuLightningMapper(dtype=dtype).map(cascade, arch, dict(sizes))


def roofline(rates: DeviceRates, flops: float, read_bytes: float, write_bytes: float) -> Priced:
    """One small kernel: max(matmul FLOPs at peak, bytes at HBM speed) plus its launch."""
    memory = read_bytes / rates.hbm_read_bytes_per_s + write_bytes / rates.hbm_write_bytes_per_s
    seconds = max(flops / rates.peak_matmul_flops_per_s, memory) + rates.launch_s
    return Priced(seconds, read_bytes, write_bytes, flops)
