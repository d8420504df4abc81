"""`gpu-lightning`: Lightning Attention-2's chunked kernel (`triton-lightning`) on a GPU.

It prices causal linear attention whose state is one E x F matrix per head carried along the
keys, with at most a per-head scalar decay or a per-key, per-feature gate, and no normalizer:
Lightning Attention-2's function (`attention-lightning-2`) and gated linear attention's
(`attention-gla`), which `kernels.triton.lightning.lightning_fwd` computes (GLA: `gates=`).
What the cascade states is read from its structure (`einsum_ir.analysis.recurrent`): the
carried state and its ranks, the head ranks, inputs besides Q, K and V (the inputs the
state's decay factor derives from: per head, a scalar decay; with K's ranks (the state's row
rank E and the keys), GLA's gate; any other key-side input, such as LightNet's weights, is
refused), and a normalizer state (Katharopoulos' denominator, refused: the kernel computes
none). Self-attention only (P = M). Every tiling of
`kernels.spec_lightning.LIGHTNING_TILINGS` that fits F is ranked by `mappers.gpu.lightning`'s
model of the fused schedule (the one modelled; calibrated by
`kernels.calibrate.microbench_lightning`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from attnsim.archs.gpu import GpuArch, dtype_bytes
from attnsim.einsum_ir.analysis.recurrent import find_states, head_ranks, query_ranks
from attnsim.einsum_ir.analysis.structure import (
    BackwardCascadeError,
    StructureError,
    attention_problem,
)
from attnsim.einsum_ir.ir import Binary, BinaryOp, Cascade, Read, TensorName, reads, walk
from attnsim.einsum_ir.sizes import SizeError, resolve_sizes
from attnsim.kernels.spec_lightning import GATED_MIN_BLOCK, lightning_tilings
from attnsim.mappers.gpu.assumptions import ASSUMPTIONS
from attnsim.mappers.gpu.lightning import (
    GATE_BYTES,
    MODE_FUSED_GLA,
    fused_plan,
    gla_step_work,
    measured_gla,
)
from attnsim.mappers.gpu.model import (
    KernelPlan,
    KernelTime,
    Tiling,
    device_rates,
    time_kernel,
)
from attnsim.mappers.gpu.rates import DeviceRates
from attnsim.mappers.options import option
from attnsim.mappers.options import problems as option_problems
from attnsim.mappers.registry import register_mapper
from attnsim.mappers.result import (
    VERSION,
    Occupancy,
    Result,
    Traffic,
    UnitCost,
    input_hash,
)
from attnsim.mappers.spatial.view import MappingError


@dataclass(frozen=True, slots=True)
class LightningOptions:
    """Options of `gpu-lightning` (0 = searched).

    Attributes:
        block_c: Keys (and queries) per chunk.
        block_f: Value columns per program (the state is E x block_f).
        num_warps: Warps per program.
        num_stages: Software-pipelining depth.
        dtype: Element type of Q, K, V and O.
        schedule: The kernel's schedule; only "fused" is priced ("split" is refused with
            the reason).
    """

    block_c: int = option(0, minimum=0, power_of_two=True, zero="searched")
    block_f: int = option(0, minimum=0, power_of_two=True, zero="searched")
    num_warps: int = option(0, minimum=0, power_of_two=True, zero="searched")
    num_stages: int = option(0, minimum=0, zero="searched")
    dtype: str = option("bf16", choices=("fp16", "bf16"))
    schedule: str = option("fused", choices=("fused", "split"))

    def __post_init__(self) -> None:
        bad = option_problems(self)
        if not bad and self.schedule == "split":
            bad = [SPLIT_REFUSAL]
        if bad:
            raise MappingError("gpu-lightning options: " + "; ".join(bad))


# what `schedule=split` answers (mappers.gpu.lightning refuses to time it)
SPLIT_REFUSAL = (
    "schedule split is not modelled: its two kernels (the state pass, then every chunk's "
    "output in parallel) have no calibration of their own, and priced with the fused "
    "kernel's measured chunk step they were off by 41% (mean, +32% signed) on the 266 split "
    "rows of kernels/measurements/lightning/lightning-h200-2026-12-04.csv "
    "(benchmarks/lightning_split_transfer.py); the kernel runs it "
    "(kernels.triton.lightning.lightning_fwd(schedule='split')), the model prices only fused"
)


@dataclass(frozen=True, slots=True)
class LightningProblem:
    """Lightning-2 as the kernel runs it: batch x heads sequences of `seq` tokens."""

    batch: int
    heads: int
    seq: int
    e: int
    f: int
    decay: str  # the per-head decay input, "" for none
    gate: str = ""  # GLA's per-key, per-feature gate input, "" for none


def decay_inputs(cascade: Cascade, state: str) -> set[str]:
    """The inputs the factor multiplying the previous state derives from (empty: none).

    Reads the state's recurrence (`KV[m1+1] = GT * KV[m1] + ...`): in every product with a
    read of the state, the other side's tensors, followed back through their producers.
    """
    producers = cascade.producers
    einsum = producers.get(TensorName(state))
    if einsum is None:
        return set()
    factors: set[str] = set()
    for node in walk(einsum.expr):
        if isinstance(node, Binary) and node.op is BinaryOp.MUL:
            for side, other in ((node.left, node.right), (node.right, node.left)):
                if isinstance(side, Read) and str(side.access.tensor) == state:
                    factors |= {str(a.tensor) for a in reads(other)}
    inputs = {str(t) for t, _ in cascade.inputs}
    found: set[str] = set()
    seen: set[str] = set()
    while factors:
        name = factors.pop()
        if name in seen or name == state:
            continue
        seen.add(name)
        if name in inputs:
            found.add(name)
        elif TensorName(name) in producers:
            factors |= {str(a.tensor) for a in reads(producers[TensorName(name)].expr)}
    return found


def lightning_problem(cascade: Cascade, sizes: dict[str, int]) -> LightningProblem:
    """Read the problem from the cascade's structure, or raise MappingError saying why not."""
    refuse = f"gpu-lightning: {cascade.name}: "
    try:
        size = {str(k): v for k, v in resolve_sizes(cascade, sizes).items()}
    except SizeError as exc:
        raise MappingError(refuse + str(exc)) from None
    try:  # a backward cascade runs along the keys: no forward kernel computes it
        attention_problem(cascade, sizes)
    except BackwardCascadeError as exc:
        raise MappingError(refuse + str(exc)) from None
    except StructureError:  # linear attention has no (query, key) score problem
        pass
    states = find_states(cascade)
    if not states:
        raise MappingError(refuse + "no recurrent state over the keys (not linear attention in "
                           "recurrent or chunked form)")  # fmt: skip
    carried = [s for s in states if s.over is not None]
    if len(carried) != len(states):
        raise MappingError(refuse + "a state summed once over every key (non-causal linear "
                           "attention); the triton-lightning kernel is causal")  # fmt: skip
    if len(states) != 1 or len(states[0].ranks) != 2:
        shown = ", ".join(f"{s.tensor}[{','.join(s.ranks)}]" for s in states)
        raise MappingError(refuse + f"states {shown}: the kernel carries one E x F state per "
                           "head and no normalizer (Lightning-2 divides by nothing)")  # fmt: skip
    state = states[0]
    heads = head_ranks(cascade)
    queries = query_ranks(cascade)
    if len(queries) != 1:
        raise MappingError(refuse + f"query ranks {queries}: expected one")
    roots = {str(t): {str(cascade.root(r)) for r in rs} for t, rs in cascade.inputs}
    key_side = [t for t, rs in roots.items() if "M" in rs]
    per_head = [t for t, rs in roots.items() if rs and rs <= {str(h) for h in heads}]
    query_side = {t for t, rs in roots.items() if str(queries[0]) in rs}
    others = sorted(set(roots) - set(key_side) - set(per_head) - query_side)
    # GLA's gate: a key-side input with K's ranks (the state's row rank, not its column
    # rank) from which the state's decay factor derives
    row, col = (str(r) for r in state.ranks)
    decays = decay_inputs(cascade, str(state.tensor))
    k_ranks = roots.get("K", set())
    gates = [t for t in key_side if t in decays and roots[t] == k_ranks and row in roots[t]
             and col not in roots[t]]  # fmt: skip
    if len(gates) == 1 and not others and len(key_side) == 3:
        key_side.remove(gates[0])
    if len(key_side) != 2 or others:
        extra = sorted(set(key_side) - {"K", "V"}) + others
        raise MappingError(
            refuse + f"inputs {', '.join(extra) or ', '.join(key_side)}: the kernel takes Q, K, "
            "V and at most a per-head scalar decay or one per-key, per-feature gate that "
            "decays the state's rows (GLA's); a weight per key that is not the state's decay "
            "(LightNet's) or a second key-side input has no kernel of ours"
        )
    if len(per_head) > 1 or (per_head and gates):
        shown = ", ".join(per_head + gates[:1])
        raise MappingError(refuse + f"decay inputs {shown}: one decay or one gate at most")
    seq_q, seq_k = size[str(queries[0])], size["M"]
    if seq_q != seq_k:
        raise MappingError(refuse + f"P = {seq_q}, M = {seq_k}: the kernel runs self-attention")
    counts = [size[str(h)] for h in heads]
    e, f = (size[str(r)] for r in state.ranks)
    return LightningProblem(math.prod(counts[:-1]), counts[-1] if counts else 1, seq_k, e, f,
                            per_head[0] if per_head else "", gates[0] if gates else "")  # fmt: skip


@register_mapper("gpu-lightning")
class GpuLightningMapper:
    """Lightning Attention-2's fused chunked kernel: state in registers, chunks in sequence."""

    name = "gpu-lightning"
    arch_kind = "gpu"
    Options = LightningOptions

    def __init__(self, options: LightningOptions | None = None, **kwargs: object) -> None:
        self.options = options or LightningOptions(**kwargs)  # type: ignore[arg-type]

    def map(self, cascade: Cascade, arch: object, sizes: dict[str, int]) -> Result:
        """Rank the kernel's tilings at `sizes` on GPU `arch` and cost the chosen one."""
        if not isinstance(arch, GpuArch):
            raise MappingError(f"{self.name} needs a GPU architecture (kind: gpu)")
        pb = lightning_problem(cascade, sizes)
        opts = self.options
        try:
            rates = device_rates(arch, opts.dtype)
        except KeyError as exc:
            raise MappingError(str(exc).strip("'\"")) from None
        given = (opts.block_c, opts.block_f, opts.num_warps, opts.num_stages)
        # GLA's kernel faults on sm_90 with blocks under GATED_MIN_BLOCK (kernels.spec_lightning)
        gated_sm90 = bool(pb.gate) and int(arch.compute_capability or 0) == 9
        candidates = lightning_tilings(pb.f, gated=gated_sm90)
        space = [Tiling(*t) for t in candidates
                 if all(g in (0, v) for g, v in zip(given, t, strict=True))]  # fmt: skip
        if min(given) > 0 and not space:  # a tiling outside the candidates: model it alone
            space = [Tiling(*given)]
        small = [t for t in space if min(t.block_m, t.block_n) < GATED_MIN_BLOCK]
        if gated_sm90 and (small or not space):
            raise MappingError(
                f"gpu-lightning: GLA's gated kernel needs block_c and block_f of at least "
                f"{GATED_MIN_BLOCK} on {arch.name} (sm_90: Triton 3.6 raises an illegal memory "
                f"access below, measured on the H200); "
                + (f"asked for block_c {small[0].block_m}, block_f {small[0].block_n}"
                   if small else f"F = {pb.f} leaves no such tiling")
            )  # fmt: skip
        if not space:
            raise MappingError(f"gpu-lightning: no candidate tiling matches the options for "
                               f"F = {pb.f} ({candidates})")  # fmt: skip
        b = dtype_bytes(opts.dtype)
        timed = []
        for t in space:
            if pb.f % t.block_n:  # block_f must divide F
                continue
            plan = fused_plan(pb.batch, pb.heads, pb.seq, pb.e, pb.f, t, b, gated=bool(pb.gate))
            plan = measured_gla(plan, rates)
            timed.append((time_kernel(plan, rates), plan, t))
        valid = sorted((x for x in timed if not x[0].residency.problem), key=lambda x: x[0].time_s)
        if not valid:
            why = timed[0][0].residency.problem if timed else "no block_f divides F"
            raise MappingError(f"gpu-lightning: no tiling fits {arch.name} at F = {pb.f}: {why}")
        best, plan, tiling = valid[0]
        return _result(self, cascade, arch, sizes, pb, rates, best, plan, tiling,
                       [k.time_s for k, _, _ in valid])  # fmt: skip


def _result(mapper, cascade, arch, sizes, pb: LightningProblem, rates, k: KernelTime,  # type: ignore[no-untyped-def]
            plan: KernelPlan, tiling: Tiling, times: list[float]) -> Result:  # fmt: skip
    clock, latency = arch.clock_hz, k.time_s
    util = min(1.0, plan.flops / (rates.peak_matmul_flops_per_s * latency))
    res = k.residency
    headline, notes = rates.headline_and_notes("triton-lightning")
    decay = f"per-head decay {pb.decay}" if pb.decay else "no decay"
    if pb.gate:
        decay = f"GLA gates {pb.gate} as gates=, per key and feature"
    warnings = [
        *headline,
        f"times one call of kernels.triton.lightning.lightning_fwd, schedule fused ({decay}): "
        "one program per (value block, batch x head) walks the chunks in sequence with the "
        "E x block_f state in registers; the split schedule is not modelled",
        "the feature map of Q and K (if any) is applied outside the kernel and not priced",
        *(_gate_warnings(pb, tiling, plan, rates) if pb.gate else ()),
        *ASSUMPTIONS,
        *notes,
    ]
    extras = {
        **(
            {"gate_hbm_read_bytes": pb.batch * pb.heads * pb.seq * pb.e * float(GATE_BYTES)}
            if pb.gate
            else {}
        ),  # fmt: skip
        "achieved_tflops": plan.flops / latency / 1e12,
        "hbm_read_bytes": plan.hbm_read_bytes,
        "hbm_write_bytes": plan.hbm_write_bytes,
        "grid_blocks": float(plan.blocks),
        "blocks_per_sm": float(res.blocks_per_sm),
        "registers_per_thread_estimate": float(res.registers_per_thread),
        "state_bytes_per_program": float(pb.e * tiling.block_n * 4),
        "tiling_candidates": float(len(times)),
        "tiling_best_us": min(times) * 1e6,
        "tiling_median_us": statistics.median(times) * 1e6,
        "tiling_worst_us": max(times) * 1e6,
    }
    return Result(
        cascade=cascade.name,
        arch=arch.name,
        mapper=mapper.name,
        options=(
            ("block_c", tiling.block_m),
            ("block_f", tiling.block_n),
            ("num_warps", tiling.num_warps),
            ("num_stages", tiling.num_stages),
            ("dtype", mapper.options.dtype),
        ),
        sizes=tuple(sorted(sizes.items())),
        passes=1,
        latency_cycles=latency * clock,
        latency_s=latency,
        compute_cycles=k.scheduled_s * clock,
        memory_cycles=k.hbm_s * clock,
        bound=k.bound,
        energy_pj=arch.board_power_w * latency * 1e12,
        dram_traffic_bytes=plan.hbm_read_bytes + plan.hbm_write_bytes,
        flops=plan.flops,
        traffic=(
            Traffic(
                "hbm",
                f"reads (Q, K, V{', ' + pb.gate if pb.gate else ''})",
                plan.hbm_read_bytes,
                0.0,
            ),  # fmt: skip
            Traffic("hbm", "writes (O)", 0.0, plan.hbm_write_bytes),
        ),
        occupancy=(
            Occupancy(
                "shared_memory", "per block", res.smem_bytes, arch.shared_memory_per_block_bytes
            ),  # fmt: skip
            # a tiling the calibration ran is no capacity check for the register estimate: the
            # compiled kernel ran (its spills in the measured step); the estimate stays in extras
            *(
                ()
                if res.limiter == "measured occupancy"
                else (
                    Occupancy(
                        "registers",
                        "per thread",
                        res.registers_per_thread,
                        arch.max_registers_per_thread,
                    ),
                )  # fmt: skip
            ),
        ),
        units=(
            UnitCost(
                "tensor-core", util * latency * clock, rates.peak_matmul_flops_per_s / clock, util
            ),
        ),  # fmt: skip
        extras=tuple(extras.items()),
        warnings=tuple(warnings),
        provenance=(
            ("version", VERSION),
            ("input_hash", input_hash(cascade, arch, sorted(sizes.items()), mapper.options)),
            ("calibration", rates.calibration_label),
        ),
    )


# the fused GLA calls timed on the H200 against this estimate (tests check it against the file)
GLA_UNMEASURED_GAP = "on the H200 the 18 fused GLA calls timed ran 2.3-5.6x this estimate"


def _gate_warnings(
    pb: LightningProblem, tiling: Tiling, plan: KernelPlan, rates: DeviceRates
) -> tuple[str, ...]:
    """What GLA adds to the model: its measured step, or what is assumed without one."""
    c, e, bf = tiling.block_m, pb.e, tiling.block_n
    work = gla_step_work(c, e, bf)
    if plan.mode == MODE_FUSED_GLA:
        cal = rates.arch.calibration
        head = f"modes {MODE_FUSED_GLA}: "
        # the merge's note says where the entries were measured (microbench_bwd.merge_modes)
        where = next((n for n in (cal.notes if cal else ()) if head in n), "")
        step = (
            f"GLA (gate {pb.gate}): the GLA kernel's chunk step as measured (calibration mode "
            f"{MODE_FUSED_GLA}, kernels.calibrate.microbench_lightning --gated: gates, spills "
            f"and all); the gates' fp32 tile per step and {GATE_BYTES} bytes per gate element "
            "of HBM reads (B H S E)" + (f"; the calibration says: {where}" if where else "")
        )
    else:
        step = (
            f"GLA (gate {pb.gate}): UNMEASURED (the calibration has no {MODE_FUSED_GLA} entry): "
            f"per chunk step the ungated kernel's measured step plus {work.exp2:.0f} exps (SFU: "
            f"e^b, e^-b, e^(b_last - b) per C x E, e^b_last per E) and {work.fp32_ops:.0f} fp32 "
            "element ops (the in-chunk cumulative gate sum, the products with Q and K, the "
            "state's row scale), recomputed by each of the F / block_f value-block programs; the "
            "gated score product in TF32 (twice its bf16 tensor-core work); the gates' fp32 "
            f"tile per step and {GATE_BYTES} bytes per gate element of HBM reads (B H S E). "
            f"{GLA_UNMEASURED_GAP} (kernels/measurements/lightning/gla-h200-2026-12-05.csv): "
            "take this time as a lower bound"
        )
    return (
        step,
        f"GLA: the gate's log-space transform ({pb.gate} to log alpha, e.g. log-sigmoid / tau) "
        "runs outside the kernel (which reads fp32 log gates) and is not priced; the "
        "kernel is exact while a chunk's log-gate sum stays above -80 "
        "(kernels.triton.lightning.GATE_SUM_LIMIT)",
        "GLA: compiled for sm_90 the fused gated kernel spills registers at head dim 128 at "
        "every candidate tiling (56-1128 bytes of stack; those with a 32-key chunk compile "
        "without but fault: blocks under 64 are refused); the model's register estimate "
        "does not see spills (a measured GLA step does)",
    )
