"""The single-GPU prices the sequence-parallel mappers build on, at a block's shape.

Softmax blocks are priced by gpu-1pass's own model (`mappers.gpu.tiling.rank_tilings` over
its candidate tilings, the fastest runnable one: what `gpu-1pass` chooses); linear-attention
chunks by the `gpu-lightning` mapper at the chunk's length. Small elementwise and matmul
pieces of the schemes (merges, state products, prefix sums) are priced as a roofline:
max(FLOPs at the tensor-core peak, bytes at HBM speed) plus one kernel launch.
"""

from __future__ import annotations

import dataclasses
import functools

from attnsim.archs.gpu import GpuArch
from attnsim.einsum_ir.analysis.recurrent import find_states, query_ranks
from attnsim.einsum_ir.analysis.structure import BackwardCascadeError
from attnsim.einsum_ir.ir import Cascade
from attnsim.kernels.spec import CAUSAL_TOP_LEFT, NO_MASK, AttnShape
from attnsim.mappers.gpu.kernels import ScoreCost
from attnsim.mappers.gpu.lightning_mapper import (
    GpuLightningMapper,
    LightningProblem,
    lightning_problem,
)
from attnsim.mappers.gpu.model import DeviceRates, device_rates
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

BACKWARD = (
    "backward is not modelled for the sequence-parallel schemes yet (gpu-bwd prices the "
    "single-GPU backward; its ring / AllGather versions are future work)"
)


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


def softmax_problem(name: str, cascade: Cascade, sizes: dict[str, int], dtype: str) -> GpuProblem:
    """The cascade's attention problem for a scheme that splits its sequence, or a refusal.

    Self-attention (P = M) with no mask or a top-left causal one, not split-K, forward only.
    """
    try:
        problem = gpu_problem(cascade, sizes, dtype)
    except BackwardCascadeError:
        raise MappingError(f"{name}: {cascade.name}: {BACKWARD}") from None
    shape = problem.shape
    if problem.structure.split_ranks:
        raise MappingError(f"{name}: {cascade.name} splits the keys (split-K decode); "
                           "sequence parallelism splits a prefill's sequence")  # fmt: skip
    if shape.seq_q != shape.seq_k:
        raise MappingError(f"{name}: P = {shape.seq_q}, M = {shape.seq_k}: the schemes split "
                           "one sequence of self-attention (P = M)")  # fmt: skip
    if shape.layout is not None or shape.mask not in ((), NO_MASK, CAUSAL_TOP_LEFT):
        raise MappingError(f"{name}: {cascade.name}'s mask is neither none nor causal; the "
                           "sequence-parallel schemes are modelled for those two")  # fmt: skip
    return problem


@functools.lru_cache(maxsize=4096)
def _block_time(
    arch: GpuArch, dtype: str, shape: AttnShape, score: ScoreCost, fixed: tuple[int, ...]
) -> float:
    rates = rates_of(arch, dtype)
    space = candidate_tilings(shape.causal, pingpong_searched("1pass", shape, arch))
    if fixed:
        tiling = GpuOptions(*fixed).fixed  # type: ignore[arg-type]
        space = (tiling,) if tiling is not None else space
    ranked = rank_tilings("1pass", shape, rates, space, score)
    if ranked[0].problem:
        raise MappingError(f"no gpu-1pass tiling fits {arch.name}: {ranked[0].problem}")
    return ranked[0].time_s


def block_time(
    problem: GpuProblem,
    arch: GpuArch,
    seq_q: int,
    seq_k: int,
    causal: bool,
    heads: int = 0,
    tiling: dict[str, int] | None = None,
) -> float:
    """gpu-1pass's modelled time for `seq_q` queries on `seq_k` keys (0 when either is 0).

    `causal`: the block on the diagonal (top-left causal); else every pair is visible.
    `heads`: query heads on this device (0: the problem's). `tiling`: block_m, block_n,
    num_warps and num_stages when all are set (else searched, as gpu-1pass does).
    """
    if seq_q <= 0 or seq_k <= 0:
        return 0.0
    shape = dataclasses.replace(
        problem.shape,
        seq_q=seq_q,
        seq_k=seq_k,
        causal=causal,
        mask=CAUSAL_TOP_LEFT if causal else NO_MASK,
        heads=heads or problem.shape.heads,
    )
    names = ("block_m", "block_n", "num_warps", "num_stages")
    fixed = tuple(tiling[n] for n in names) if tiling and len(tiling) == 4 else ()
    return _block_time(arch, shape.dtype, shape, problem.score, fixed)


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


def lightning_result(cascade: Cascade, arch: GpuArch, sizes: dict[str, int], dtype: str) -> Result:
    """The gpu-lightning mapper's Result at `sizes`."""
    return _lightning(cascade, arch, tuple(sorted(sizes.items())), dtype)


@functools.lru_cache(maxsize=1024)
def _lightning(
    cascade: Cascade, arch: GpuArch, sizes: tuple[tuple[str, int], ...], dtype: str
) -> Result:
    return GpuLightningMapper(dtype=dtype).map(cascade, arch, dict(sizes))


def roofline_s(rates: DeviceRates, flops: float, read_bytes: float, write_bytes: float) -> float:
    """One small kernel: max(matmul FLOPs at peak, bytes at HBM speed) plus its launch."""
    memory = read_bytes / rates.hbm_read_bytes_per_s + write_bytes / rates.hbm_write_bytes_per_s
    return max(flops / rates.peak_matmul_flops_per_s, memory) + rates.launch_s
