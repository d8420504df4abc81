"""Lightning Attention-2 (causal linear attention with per-head decay) as GPU kernel plans.

Models the `fused` schedule of `kernels.triton.lightning`: one program per (value block of
block_f, batch x head) walks the sequence in chunks of block_c, carrying the E x block_f
state in registers. Per chunk: Q K^T (C x C over E), the decay-masked scores times V
(C x block_f over C), Q times the state (C x block_f over E) and the state update K^T V
(E x block_f over C). The chunks of one program are a dependent chain (each reads the state
the previous one left), so few programs per SM leave the step's latency exposed: with a
calibration of this kernel (mode `lightning-fused`, `kernels.calibrate.microbench_lightning`)
its measured step and fixed times are used; otherwise the unit model, which does not know the
chain and under-predicts (by about 30% on the H200 probe's shapes).

The `split` schedule (states every R chunks, then all chunk outputs in parallel) is not
modelled: `time_lightning` refuses it.

Gated linear attention (GLA, the kernel's `gates=`): the same chain plus, per chunk step, the
gate work `gla_step_work` adds (exps on the SFU, element-wise multiplies on the CUDA cores;
both priced over the calibrated ungated step), the gated score product in TF32 (counted as
twice its bf16 tensor-core work), the gate tile's load and live registers, and the gates' fp32
HBM bytes. With a calibration of the GLA kernel itself (mode `lightning-fused-gla`,
`microbench_lightning --gated`) its measured step replaces all of the step's parts: on the
H200 a GLA call (8 x 16 x 2K, head dim 128, (64, 64, 4, 2)) ran 5.5x the ungated call
(0.577 against 0.104 ms; its registers spill), which no count of the added work predicts.
"""

from __future__ import annotations

from dataclasses import replace

from attnsim.mappers.gpu.assumptions import BASE_REGISTERS_PER_THREAD
from attnsim.mappers.gpu.model import (
    BlockGroup,
    DeviceRates,
    Dot,
    KernelPlan,
    KernelTime,
    StepWork,
    Tiling,
    time_kernel,
)

MODE_FUSED = "lightning-fused"
MODE_FUSED_GLA = "lightning-fused-gla"  # the GLA kernel's own measured step (microbench --gated)
SCHEDULES = ("fused",)  # the modelled schedules of kernels.triton.lightning


GATE_BYTES = 4  # the kernel reads fp32 log gates


def gla_step_work(c: int, e: int, bf: int) -> StepWork:
    """What GLA adds to one chunk step of one program (value block bf), in element ops.

    Exps: e^b and e^-b for the gated scores and e^(b_last - b) for the state update (C x E
    each) and e^b_last (E). CUDA-core fp32: the in-chunk cumulative sum, the products with
    Q, K (twice) and the subtraction b_last - b (C x E each) and the state's row scale
    (E x bf). Every value-block program of a head recomputes them (the kernel shares none).
    """
    return StepWork((), 3.0 * c * e + e, 5.0 * c * e + e * bf, 0.0)


def gla_smem_bytes(c: int, e: int, bf: int, num_stages: int, elem_bytes: int = 2) -> int:
    """Shared memory of the gated fused kernel.

    num_stages buffers of Q, K and the V block, and one fp32 gate tile (C x E).

    As compiled for sm_90 (Triton 3.6, bf16): (128, 128, 8, 2) at head dim 128 asked for
    262,144 bytes, exactly this, and failed to launch (232,448 available); (128, 64, 8, 2),
    229,376 by this count, ran (benchmarks/lightning_probe.py --gla, 2026-12-05).
    """
    return elem_bytes * num_stages * c * (2 * e + bf) + c * e * GATE_BYTES


def fused_plan(
    batch: int, heads: int, seq: int, e: int, f: int, t: Tiling, elem_bytes: int = 2,
    gated: bool = False,
) -> KernelPlan:  # fmt: skip
    """The fused kernel: program = (value block, batch x head), step = one chunk.

    `gated`: GLA's per-feature log gates (`gla_step_work`, module docstring).
    """
    c, bf, b = t.block_m, t.block_n, elem_bytes
    if f % bf:
        raise ValueError(f"block_f {bf} must divide the value dim {f}")
    chunks = -(-seq // c)
    dots = (
        Dot(2.0 * c * c * e, c, c, e),  # Q K^T
        Dot(2.0 * c * c * bf, c, bf, c),  # masked scores x V
        Dot(2.0 * c * e * bf, c, bf, e),  # Q x state
        Dot(2.0 * e * c * bf, e, bf, c),  # state update K^T V
    )
    # decay mask (exp2 per score and per row), mask-and-scale, state decay, output add
    step = StepWork(dots, c * c + 2 * c, 2.0 * c * c + e * bf + c * bf, c * (2 * e + bf) * b)
    programs = (f // bf) * batch * heads
    stages = max(t.num_stages - 1, 1)
    live = e * bf + c * c + c * bf  # state, scores, output accumulator (fp32)
    gate_read = 0.0
    added = StepWork()
    if gated:
        # the gated score product's operands are fp32 (TF32: half the bf16 tensor-core rate)
        step = StepWork((*dots, dots[0]), step.exp2, step.fp32_ops,
                        step.load_bytes + c * e * GATE_BYTES)  # fmt: skip
        added = gla_step_work(c, e, bf)
        live += 3 * c * e  # cumulative gates and the gated Q, K (fp32)
        gate_read = batch * heads * seq * e * float(GATE_BYTES)
    return KernelPlan(
        name="fused",
        tiling=t,
        smem_bytes=gla_smem_bytes(c, e, bf, t.num_stages, b)
        if gated
        else b * stages * c * (2 * e + bf),
        registers_per_thread=-(-live // (32 * t.num_warps)) + BASE_REGISTERS_PER_THREAD,
        step=step,
        masked_step=step,
        fixed=StepWork((), 0.0, e * bf, e * bf * 4.0),
        round_trips=2,
        groups=(BlockGroup(programs, chunks, 0),),
        hbm_read_bytes=batch * heads * seq * (2.0 * e + f) * b + gate_read,
        hbm_write_bytes=batch * heads * seq * f * float(b),
        flops=sum(d.flops for d in dots) * chunks * programs,
        mode=MODE_FUSED,
        head_dim=e,
        added=added,
    )


def time_lightning(
    batch: int,
    heads: int,
    seq: int,
    e: int,
    f: int,
    t: Tiling,
    rates: DeviceRates,
    schedule: str = "fused",
    gated: bool = False,
) -> KernelTime:
    """Model one call of the Lightning-2 kernel (fused schedule; `gated`: GLA's gates)."""
    if schedule not in SCHEDULES:
        raise ValueError(
            f"schedule {schedule!r} is not modelled (modelled: {', '.join(SCHEDULES)})"
        )
    return time_kernel(measured_gla(fused_plan(batch, heads, seq, e, f, t, gated=gated), rates),
                       rates)  # fmt: skip


def gla_measured(rates: DeviceRates, e: int, t: Tiling) -> bool:
    """Whether the calibration measured the GLA kernel's own step (mode lightning-fused-gla)."""
    return rates.chain_step(MODE_FUSED_GLA, e, t, 1) is not None


def measured_gla(plan: KernelPlan, rates: DeviceRates) -> KernelPlan:
    """A gated plan on the GLA kernel's measured step when calibrated, else unchanged.

    The measured step already holds the gates' work (exps, cumulative sums, spills), so the
    ungated step's `added` work is dropped.
    """
    if plan.added == StepWork() or not gla_measured(rates, plan.head_dim, plan.tiling):
        return plan
    return replace(plan, mode=MODE_FUSED_GLA, added=StepWork())
