"""`gpu-bwd`: the FlashAttention-2-style backward kernel (`triton-bwd`) on a GPU, tiling searched.

It prices the 1-pass backward built-ins (`attention-1pass-bwd[-mh|-gqa][-causal]`,
`einsum_ir.library.training`): a backward cascade's outputs run along the key rank, so its
attention problem is not read from its own structure (`BackwardCascadeError`); the mapper
reads the problem from the forward the built-in declares it differentiates (its sizes, mask,
K/V heads, score function) and says so in the Result's warnings. A user-written backward
cascade, the 3-pass backward (scores stored: no kernel of ours) and the sigmoid backward are
refused. Masks: none, or top-left causal (the kernel's two). Every (tiling, dq mode) of
`kernels.spec.BWD_TILINGS` x {atomic, separate} is ranked by `mappers.gpu.backward.time_bwd`.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

from attnsim.archs.gpu import GpuArch
from attnsim.einsum_ir.analysis.structure import StructureError
from attnsim.einsum_ir.ir import Cascade
from attnsim.einsum_ir.library.builder import Algorithm, ScoreForm
from attnsim.einsum_ir.library.training import training_entry
from attnsim.einsum_ir.load import load_cascade
from attnsim.kernels.spec import (
    BWD_DP_FIRST_SUFFIX,
    BWD_HEAD_GROUP,
    BWD_TILINGS,
    CAUSAL_TOP_LEFT,
    NO_MASK,
    AttnShape,
)
from attnsim.mappers.gpu.assumptions import ASSUMPTIONS
from attnsim.mappers.gpu.backward import (
    DQ_MODES,
    SPREAD_MODE,
    BwdTime,
    dkdv_writers,
    time_bwd,
)
from attnsim.mappers.gpu.model import DeviceRates, Tiling, device_rates
from attnsim.mappers.options import option
from attnsim.mappers.options import problems as option_problems
from attnsim.mappers.registry import register_mapper
from attnsim.mappers.result import (
    VERSION,
    EinsumCost,
    Occupancy,
    Result,
    Traffic,
    UnitCost,
    input_hash,
)
from attnsim.mappers.spatial.view import MappingError


@dataclass(frozen=True, slots=True)
class BwdOptions:
    """Options of `gpu-bwd` (0 / "" = searched).

    Attributes:
        block_m: Query rows per step of the dK/dV kernel.
        block_n: Keys per dK/dV program.
        num_warps: Warps per program.
        num_stages: Software-pipelining depth.
        dq_mode: "atomic" (dQ by fp32 atomics from the dK/dV kernel) or "separate".
        dtype: Element type of Q, K, V, O, dO.
        head_group: Heads whose programs the kernels issue tile-major, the longest first (1:
            head-major). 0: the kernels' own, `kernels.spec.BWD_HEAD_GROUP` for causal calls
            and 1 for dense ones (whose programs are equal); another value models a launch
            order they do not run.
    """

    block_m: int = option(0, minimum=0, power_of_two=True, zero="searched")
    block_n: int = option(0, minimum=0, power_of_two=True, zero="searched")
    num_warps: int = option(0, minimum=0, power_of_two=True, zero="searched")
    num_stages: int = option(0, minimum=0, zero="searched")
    dq_mode: str = option("", choices=("", *DQ_MODES))
    dtype: str = option("bf16", choices=("fp16", "bf16"))
    head_group: int = option(0, minimum=0, zero="the kernels' own launch order")

    def __post_init__(self) -> None:
        bad = option_problems(self)
        if bad:
            raise MappingError("gpu-bwd options: " + "; ".join(bad))


def _forward_of(name: str, cascade: Cascade) -> Cascade:
    entry = training_entry(name)
    if entry is None:
        raise MappingError(
            f"gpu-bwd prices the 1-pass backward built-ins (attention-1pass-bwd[-mh|-gqa]"
            f"[-causal]); {name} is not one (a forward cascade maps on gpu-1pass; a backward "
            "written by hand has no forward this mapper can read its problem from)"
        )
    f = entry.forward
    if f.algorithm != Algorithm.ONE_PASS or f.score != ScoreForm.SOFTMAX:
        raise MappingError(
            f"gpu-bwd: {cascade.name} differentiates {f.name}; the triton-bwd kernel is the "
            "FlashAttention-2 backward of 1-pass softmax attention (no kernel of ours reads "
            "stored scores or runs the sigmoid backward)"
        )
    return load_cascade(f.name)


@register_mapper("gpu-bwd")
class GpuBwdMapper:
    """FlashAttention-2 backward: D pre-pass, dK/dV over key tiles, dQ atomic or separate."""

    name = "gpu-bwd"
    arch_kind = "gpu"
    Options = BwdOptions

    def __init__(self, options: BwdOptions | None = None, **kwargs: object) -> None:
        self.options = options or BwdOptions(**kwargs)  # type: ignore[arg-type]

    def map(self, cascade: Cascade, arch: object, sizes: dict[str, int]) -> Result:
        """Rank the backward's tilings at `sizes` on GPU `arch` and cost the chosen one."""
        return self.price(cascade, _forward_of(cascade.name, cascade), arch, sizes)

    def price(
        self, cascade: Cascade, forward: Cascade, arch: object, sizes: dict[str, int]
    ) -> Result:
        """The backward of `forward` at `sizes` on GPU `arch`, reported under `cascade`'s name.

        `map` passes the forward a backward built-in declares; the sequence-parallel mappers
        pass a forward cascade itself (their `direction: backward`).
        """
        from attnsim.mappers.gpu.problem import gpu_problem

        if not isinstance(arch, GpuArch):
            raise MappingError(f"{self.name} needs a GPU architecture (kind: gpu)")
        opts = self.options
        try:
            problem = gpu_problem(forward, sizes, opts.dtype)
        except StructureError as exc:
            raise MappingError(f"gpu-bwd: {cascade.name}: {exc}") from None
        shape = problem.shape
        if shape.bands not in (NO_MASK, CAUSAL_TOP_LEFT) or not problem.score.is_plain:
            raise MappingError(
                f"gpu-bwd: {cascade.name}: the backward kernel takes no mask but top-left causal "
                f"and no score modifier (got {shape.bands}, {problem.score.describe()})"
            )
        try:
            rates = device_rates(arch, opts.dtype)
        except KeyError as exc:
            raise MappingError(str(exc).strip("'\"")) from None
        given = (opts.block_m, opts.block_n, opts.num_warps, opts.num_stages)
        space = [
            (Tiling(*t), mode)
            for t in BWD_TILINGS
            for mode in DQ_MODES
            if all(g in (0, v) for g, v in zip(given, t, strict=True))
            and opts.dq_mode in ("", mode)
        ]
        if min(given) > 0 and not space:  # a tiling outside the candidates: model it alone
            space = [(Tiling(*given), m) for m in DQ_MODES if opts.dq_mode in ("", m)]
        if not space:
            known = ", ".join("x".join(map(str, t)) for t in BWD_TILINGS)
            raise MappingError(f"gpu-bwd: no candidate tiling matches the options ({known})")
        group = opts.head_group or None
        ranked = sorted(
            ((time_bwd(shape, t, m, rates, group), t, m) for t, m in space),
            key=lambda x: x[0].time_s,
        )
        valid = [r for r in ranked if not r[0].problem]
        if not valid:
            raise MappingError(f"gpu-bwd: no tiling fits {arch.name}: {ranked[0][0].problem}")
        best, tiling, mode = valid[0]
        return _result(self, cascade, forward, arch, sizes, shape, rates, best, tiling, mode,
                       [r[0].time_s for r in valid], problem.warnings)  # fmt: skip


def order_note(t: BwdTime, causal: bool) -> str:
    """The Result note on the launch order the call was priced with."""
    own = BWD_HEAD_GROUP if causal else 1
    whose = "the kernels' own" if t.head_group == own else f"asked for; the kernels' is {own}"
    if t.head_group == 1:
        return f"launch order: head-major, one head's programs after another's ({whose})"
    return (
        f"launch order: tile-major within groups of {t.head_group} heads, the longest programs "
        f"first ({whose})"
    )


def loop_note(t: BwdTime, causal: bool) -> str:
    """The Result note on how the causal dK/dV kernel's steps were priced (none if dense)."""
    if not causal:
        return ""
    if t.one_loop:
        return (
            "causal dK/dV kernel: one loop over its query tiles, every step priced masked "
            "(kernels.spec.BWD_DIAG_LOOP off)"
        )
    return (
        "causal dK/dV kernel: the diagonal tiles in a loop of their own, the rest unmasked "
        "(the build before 2026-12-06)"
    )


def build_note(t: BwdTime) -> str:
    """The Result note on the dK/dV kernel's step order and whose figures priced it."""
    dkdv = next(p for p in t.plans if p.name == "dkdv")
    if not t.dp_first:
        return "dK/dV step order: dP after the dV product (the build before 2026-12-07)"
    own = BWD_DP_FIRST_SUFFIX in dkdv.mode
    return (
        "dK/dV step order: dP right after S, the exponent of P overlapping that product "
        "(kernels.spec.BWD_DP_FIRST); "
        + (
            f"priced with that build's entries ({dkdv.mode})"
            if own
            else "no entries of that build in the calibration: priced with the earlier build's "
            f"({dkdv.mode}), which an H100 measured 0.91-0.99x slower than it at head dim 128 "
            "(read this time as an upper bound)"
        )
    )


def host_note(t: BwdTime) -> str:
    """The Result note on the launcher's host time and whether it bounds the call."""
    where = (
        f"host_call_us {t.host_key} of the calibration (or of the measurement file's host probe)"
        if t.host_key
        else f"not measured: {len(t.kernels)} kernel launches x the calibration's host_launch_us"
    )
    verdict = (
        "the call is host-bound: the GPU waits for the launcher, so the time is the host's "
        "less do_bench's head start plus the kernels submitted last"
        if t.host_bound
        else "the GPU's work outlasts it (not host-bound)"
    )
    host_us = t.host_s * 1e6
    return f"host: one attention_bwd call costs {host_us:.1f} us on the host ({where}); {verdict}"


def _measured_steps(rates: DeviceRates) -> bool:
    """Whether the GPU's figures include measured kernel steps (its own or transferred)."""
    cal = rates.arch.calibration
    return cal is not None and cal.origin != "datasheet"


# The H200's backward file predicted with its calibration withheld (`validate gpu
# --no-calibration`): measured / priced by dQ mode; recomputed by
# tests/unit/mappers/gpu/test_backward_model.py.
ATOMIC_DATASHEET_FILE = "kernels/measurements/bwd/bwd-h200-2026-12-06-planned.csv"
ATOMIC_DATASHEET_RATIOS = {"atomic": (1.01, 6.58), "separate": (0.98, 3.35)}


def atomic_datasheet_note() -> str:
    """The warning of a datasheet-priced atomic-dQ call (no measured atomic rate)."""
    (a_lo, a_hi), (s_lo, s_hi) = (ATOMIC_DATASHEET_RATIOS[m] for m in ("atomic", "separate"))
    return (
        "dQ by fp32 atomics, priced from a datasheet as L2 read-modify-write traffic: no "
        "datasheet gives an atomic rate, and a head's programs add into the same dQ rows at "
        f"once; with its calibration withheld, the H200's atomic-dQ calls ran {a_lo:.2f}-"
        f"{a_hi:.2f}x their price (separate dQ {s_lo:.2f}-{s_hi:.2f}x; "
        f"{ATOMIC_DATASHEET_FILE}): do not trust an atomic pick on an uncalibrated GPU"
    )


def spread_note(t: BwdTime, shape: AttnShape, tiling: Tiling) -> str:
    """The Result note on which dK/dV calibration entries priced the call (`spread_mode`)."""
    dkdv = next(p for p in t.plans if p.name == "dkdv")
    writers = dkdv_writers(shape, tiling)
    m = SPREAD_MODE.fullmatch(dkdv.mode)
    measured = (
        f"entries {dkdv.mode} (`microbench_bwd --spread {m['writers']}`: {m['writers']} "
        "programs per head)"
        if m
        else f"entries {dkdv.mode} (one head: a wave of programs shares its query tiles"
        + (" and dQ rows)" if "atomic" in dkdv.mode else ")")
    )
    return (
        f"dK/dV kernel: {writers} programs per K/V head share its query side"
        + (" and add into its dQ rows" if "atomic" in dkdv.mode else "")
        + f"; priced with the calibration's {measured}, the measured programs-per-head "
        "nearest the call's"
    )


def _result(mapper, cascade, forward, arch, sizes, shape, rates, t: BwdTime, tiling, mode,  # type: ignore[no-untyped-def]
            times, problem_warnings) -> Result:  # fmt: skip
    clock = arch.clock_hz
    latency = t.time_s
    flops = sum(p.flops for p in t.plans)
    reads = sum(p.hbm_read_bytes for p in t.plans)
    writes = sum(p.hbm_write_bytes for p in t.plans)
    peak = rates.peak_matmul_flops_per_s
    util = min(1.0, flops / (peak * latency))
    main = max(t.kernels, key=lambda k: k.time_s)
    res = main.residency
    headline, notes = rates.headline_and_notes("triton-bwd")
    warnings = [
        *headline,
        (
            f"the problem (sizes, mask, K/V heads) is read from {forward.name}, the forward "
            f"{cascade.name} declares it differentiates (einsum_ir.library.training)"
            if forward is not cascade
            else f"the backward of the forward {cascade.name} (its sizes, mask and K/V heads)"
        ),
        "times one call of kernels.triton.attn_bwd.attention_bwd: D pre-pass, dK/dV kernel, "
        "and dQ by atomics (zero-fill in the pre-pass, cast included) or by the separate "
        "kernel; the forward (O, LSE) is not included",
        host_note(t),
        order_note(t, shape.causal),
        *([build_note(t)] if _measured_steps(rates) else []),
        *([loop_note(t, True)] if shape.causal else []),
        *([spread_note(t, shape, tiling)] if _measured_steps(rates) else []),
        *([atomic_datasheet_note()] if mode == "atomic" and not _measured_steps(rates) else []),
        *ASSUMPTIONS,
        *notes,
        *problem_warnings,
    ]
    extras = {
        "achieved_tflops": flops / latency / 1e12,
        "hbm_read_bytes": reads,
        "hbm_write_bytes": writes,
        "grid_blocks": float(main.blocks),
        "blocks_per_sm": float(main.blocks_per_sm),
        "tiling_candidates": float(len(times)),
        "tiling_best_us": min(times) * 1e6,
        "tiling_median_us": statistics.median(times) * 1e6,
        "tiling_worst_us": max(times) * 1e6,
        "host_call_us": t.host_s * 1e6,
        "host_bound": float(t.host_bound),
        **{f"kernel_{k.name}_us": k.time_s * 1e6 for k in t.kernels},
    }
    return Result(
        cascade=cascade.name,
        arch=arch.name,
        mapper=mapper.name,
        options=(
            *asdict(tiling).items(),
            ("dq_mode", mode),
            ("dtype", shape.dtype),
            ("head_group", t.head_group),
        ),  # fmt: skip
        sizes=tuple(sorted(sizes.items())),
        passes=1,
        latency_cycles=latency * clock,
        latency_s=latency,
        compute_cycles=sum(k.scheduled_s for k in t.kernels) * clock,
        memory_cycles=sum(k.hbm_s for k in t.kernels) * clock,
        bound="host launch" if t.host_bound else main.bound,
        energy_pj=arch.board_power_w * latency * 1e12,
        dram_traffic_bytes=reads + writes,
        flops=flops,
        traffic=(
            Traffic("hbm", "reads (Q, K, V, O, dO, LSE, D)", reads, 0.0),
            Traffic("hbm", "writes (dQ, dK, dV, D)", 0.0, writes),
        ),
        occupancy=(
            Occupancy(
                "shared_memory", "per block", res.smem_bytes, arch.shared_memory_per_block_bytes
            ),  # fmt: skip
        ),
        per_einsum=tuple(
            EinsumCost(
                k.name, k.bound, i, p.flops, k.time_s * clock, min(1.0, p.flops / (peak * k.time_s))
            )  # fmt: skip
            for i, (k, p) in enumerate(zip(t.kernels, t.plans, strict=True))
        ),
        units=(UnitCost("tensor-core", util * latency * clock, peak / clock, util),),
        extras=tuple(extras.items()),
        warnings=tuple(warnings),
        provenance=(
            ("version", VERSION),
            ("input_hash", input_hash(cascade, arch, sorted(sizes.items()), mapper.options)),
            ("calibration", rates.calibration_label),
            ("combine", "sequential kernels"),
        ),
    )
