"""GPU threadblock performance model shared by the gpu-* mappers.

Device rates (calibration first, datasheet otherwise), block resources -> blocks per SM,
per-step time with partial overlap of the SM's units, block scheduling in waves (with
tail), and kernel time.

Model of one kernel (every assumption is also listed in `ASSUMPTIONS`):

- A block runs `steps` loop iterations; each step does tensor-core work (dots, each at the
  calibrated Triton matmul rate for its tile shape), exp2 on the special-function units,
  fp32 vector work on the CUDA cores, and loads `load_bytes` through L2.
- With k blocks resident on an SM, one *round* (every resident block doing one step) takes
  T = max(k * t_mem, k * t_max + k * (t_chain - t_max) * (1 - h)): the busiest compute unit
  t_max is never hidden, the rest of the dependent chain t_chain (tensor + sfu + cuda-core,
  plus the load when num_stages == 1, i.e. no prefetch) is hidden in the fraction
  h = overlap_efficiency * (1 - 1 / streams), streams = k * warpgroups per block. Loads with
  num_stages >= 2 are prefetched and only bound the round through L2 bandwidth.
- Each block also pays a fixed time besides its steps: measured per mode, head dim and tiling
  when the calibration has it (`attention_blocks`: block start, descriptors, the Q and first
  K/V loads right after do_bench's L2 flush, output store; by how many blocks start
  together), else `round_trips` dependent HBM latencies (first load, last store), hidden by
  the same fraction h, plus its prologue/epilogue work, plus for the blocks that start
  together (the first wave) their prologue loads (Q and the K/V tiles in flight) at HBM
  bandwidth.
- A later wave's block in a call whose heads have several query tiles takes the fixed time
  and step measured on waves of such blocks (they share their head's K/V through L2 and
  start as slots free: `kernels.calibrate.microbench_shared`), the step as that entry's
  ratio to the tile chain's step of its tiling.
- Blocks are dispatched in launch order to the earliest free of sm_count * k slots (waves;
  the last, partial wave runs with fewer blocks per SM and so faster rounds). Blocks of
  unequal length (causal) share their SM: with j resident each progresses at the rate of
  j co-resident blocks, so an SM's last blocks speed up as the others finish.
- Kernel time = max(host launch time, launch overhead + max(scheduled time, HBM bytes /
  calibrated bandwidth)): back-to-back launches from Python cannot go faster than the host
  issues them (calibrated `host_launch_us`; 0 when not measured).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from attnsim.archs.gpu import GpuArch
from attnsim.einsum_ir.analysis.structure import AttentionProblem
from attnsim.einsum_ir.ir import Cascade
from attnsim.mappers.gpu.rates import DeviceRates, Tiling, device_rates

__all__ = ["DeviceRates", "Tiling", "device_rates"]
RESERVED_SMEM_PER_BLOCK_BYTES = 1024  # CUDA reserves 1 KiB of shared memory per block (sm_80+)
REGISTER_ALLOCATION_UNIT = 8  # registers per thread are allocated in multiples of 8
# modes whose calibration ran every tiling it lists, so its figures stand over an estimate
# that says the tiling would spill or not fit (`plan_residency`)
MEASURED_WHOLE = ("bwd-", "lightning-")


# ----------------------------------------------------------------------------- kernel plans


@dataclass(frozen=True, slots=True)
class Dot:
    """One tl.dot per step: FLOPs and its tile shape (M x N output, K contracted)."""

    flops: float
    m: int
    n: int
    k: int


@dataclass(frozen=True, slots=True)
class StepWork:
    """Work of one block in one loop step (or its prologue/epilogue)."""

    dots: tuple[Dot, ...] = ()
    exp2: float = 0.0
    fp32_ops: float = 0.0
    load_bytes: float = 0.0


@dataclass(frozen=True, slots=True)
class BlockGroup:
    """`count` consecutive blocks (launch order) with `steps` unmasked and `masked` masked steps."""

    count: int
    steps: int
    masked: int


@dataclass(frozen=True, slots=True)
class KernelPlan:
    """One kernel launch as the model sees it."""

    name: str
    tiling: Tiling
    smem_bytes: int
    registers_per_thread: int
    step: StepWork
    masked_step: StepWork
    fixed: StepWork
    round_trips: int
    groups: tuple[BlockGroup, ...]
    hbm_read_bytes: float
    hbm_write_bytes: float
    flops: float
    mode: str = ""  # fused kernels: the measured tile chain it runs (online, stats, output)
    head_dim: int = 0
    tiles: str = "device"  # fused kernels: tile access, host- or kernel-built descriptors
    # unfused kernels timed alone in the calibration: seconds of the measured time less its
    # memory part per unit of the kernel's work (score tiles, softmax row bytes, P.V tile
    # steps) over the whole device, and the SM count (a block alone gets one SM's share);
    # `work` and `longest` are this plan's total and longest-block work
    measured: tuple[float, float] | None = None
    # a bound by programs from short-row entries: seconds per program, device-wide; the
    # kernel takes the larger of it and the per-work rate + HBM bound (0: none)
    measured_per_program_s: float = 0.0
    measured_from: str = ""  # which calibration entries `measured` comes from (for warnings)
    # (seconds per step of a program's row, fixed seconds) of the kernel measured with few
    # programs over long rows (calibration unfused_programs): a grid under one program per
    # SM takes its longest program's steps at that rate
    measured_program: tuple[float, float] | None = None
    measured_is_floor: bool = False  # `measured` only bounds the unit model from below
    # the measured rate is the whole time of a chain of dependent steps (its HBM stream hides
    # under it; the bytes only bound it from below): the two-loop row softmax
    chain_bound: bool = False
    # how a measured rate's rest and the HBM stream add: (hbm^p + rest^p)^(1/p), 1 the sum
    # (`unfused_rates.OVERLAP_P` where they overlap: the causal widest-block row softmax)
    memory_overlap_p: float = 1.0
    # the share of its SMs' time the grid keeps them busy, last wave included, where the
    # measured rate is taken net of its entry's (`unfused_waves.wave_share`; 1: none)
    measured_share: float = 1.0
    work: float = 0.0
    longest: float = 0.0
    # work a measured rate leaves out: what this plan's score function (sigmoid, softcap,
    # position bias) adds to (or, negative, removes from) the measured softmax kernel, per
    # step of a measured tile chain (fused) or per unit of `work` (unfused); priced at the
    # device's SFU and fp32 rates
    added: StepWork = StepWork()
    # the plain 1-pass kernel's score functions beyond softmax (sigmoid, softcap, alibi):
    # with calibration entries `score-<name>` their measured step difference replaces `added`
    scores: tuple[str, ...] = ()
    # masked steps of a measured kind (mode `window`: the sliding-window kernel's masked
    # step and per-loop cost), and (unmasked steps, masked steps, key loops) per profile
    masked_mode: str = ""
    loops: tuple[tuple[int, int, int], ...] = ()
    loop_mode: str = ""  # the mode whose measured per-loop cost `loops` take (default masked_mode)
    # a layout's element test measured as modes `<test_mode>` and `<test_mode>-full` (the
    # same layout's steps with and without it): their difference is what it adds to a step
    test_mode: str = ""
    # fused kernels: query tiles per head (they share the head's K/V tiles through L2)
    q_tiles: int = 1
    full_q_tiles: bool = False  # fused kernels: seq_q a multiple of block_m (no ragged tile)

    @property
    def blocks(self) -> int:
        """Blocks in the grid."""
        return sum(g.count for g in self.groups)


@dataclass(frozen=True, slots=True)
class Residency:
    """Blocks per SM and what limits them; `problem` is empty when the block can run."""

    blocks_per_sm: int
    limiter: str
    registers_per_thread: int
    smem_bytes: int
    problem: str = ""


def plan_residency(arch: GpuArch, plan: KernelPlan) -> Residency:
    """`residency` of a plan; the compiled kernel's measured occupancy when calibrated.

    The estimate from live tiles can be off (Triton's register allocation and shared-memory
    layout are its own); `kernels.calibrate.microbench_blocks` records the compiled kernel's blocks
    per
    SM for the tilings it measures, and that replaces the estimate.
    """
    res = residency(arch, plan.smem_bytes, plan.registers_per_thread, plan.tiling.num_warps)
    cal = arch.calibration
    t = plan.tiling
    measured = (
        cal.occupancy(
            plan.mode, plan.head_dim, (t.block_m, t.block_n, t.num_warps, t.num_stages), plan.tiles
        )
        if cal is not None and plan.mode
        else None
    )
    # a register or shared-memory estimate over the limit is kept for the forward kernels;
    # the backward's and the Lightning kernels' calibrations ran every tiling they list
    # (spills included) at the blocks per SM they record, so their measured figures stand
    # (a Lightning entry's blocks per SM is the grid it launched, SMs x k: where fewer fit,
    # its step is that of the waves it ran, twice the one-per-SM step at k = 2, so the
    # throughput it prices is what ran; microbench_lightning)
    if measured is None or (res.problem and not plan.mode.startswith(MEASURED_WHOLE)):
        return res
    return Residency(measured, "measured occupancy", res.registers_per_thread, res.smem_bytes)


def residency(arch: GpuArch, smem_bytes: int, registers_per_thread: int, warps: int) -> Residency:
    """How many blocks fit on one SM (shared memory, registers, threads, block slots)."""
    regs = math.ceil(registers_per_thread / REGISTER_ALLOCATION_UNIT) * REGISTER_ALLOCATION_UNIT
    threads = 32 * warps
    limits = {
        "shared memory": arch.shared_memory_per_sm_bytes
        // (smem_bytes + RESERVED_SMEM_PER_BLOCK_BYTES),
        "registers": arch.registers_per_sm // max(1, regs * threads),
        "threads": arch.max_threads_per_sm // threads,
        "block slots": arch.max_blocks_per_sm,
    }
    limiter = min(limits, key=lambda k: limits[k])
    problem = ""
    if smem_bytes > arch.shared_memory_per_block_bytes:
        problem = (
            f"needs {smem_bytes} B shared memory per block > {arch.shared_memory_per_block_bytes} B"
        )
    elif regs > arch.max_registers_per_thread:
        problem = (
            f"needs ~{regs} registers per thread > {arch.max_registers_per_thread} (would spill)"
        )
    elif limits[limiter] < 1:
        problem = f"no block fits on an SM ({limiter})"
    return Residency(max(limits[limiter], 1), limiter, regs, smem_bytes, problem)


# ----------------------------------------------------------------------------- timing


@dataclass(frozen=True, slots=True)
class StepTimes:
    """Seconds of one step of one block on each SM unit (the block alone on the SM)."""

    tensor_s: float
    sfu_s: float
    cuda_core_s: float
    l2_s: float

    def round_s(self, k: int, hidden: float, prefetched: bool) -> float:
        """Time for k resident blocks to each finish one step (see the module docstring)."""
        chain = [self.tensor_s, self.sfu_s, self.cuda_core_s]
        if not prefetched:
            chain.append(self.l2_s)
        busiest = max(chain)
        exposed = k * busiest + k * (sum(chain) - busiest) * (1 - hidden)
        return max(k * self.l2_s, exposed)

    @property
    def bottleneck(self) -> str:
        """The unit with the most work per step."""
        named = {
            "tensor-core": self.tensor_s,
            "sfu": self.sfu_s,
            "cuda-core": self.cuda_core_s,
            "l2": self.l2_s,
        }
        return max(named, key=lambda n: named[n])


def step_times(work: StepWork, rates: DeviceRates, warps: int) -> StepTimes:
    """Per-SM seconds of one step's work (device rates divided evenly among the SMs)."""
    sms = rates.arch.sm_count
    tensor = sum(
        d.flops / (rates.matmul_flops_per_s(d.m, d.n, d.k, warps) / sms) for d in work.dots
    )
    return StepTimes(
        tensor_s=tensor,
        sfu_s=work.exp2 / (rates.exp2_per_s / sms),
        cuda_core_s=work.fp32_ops / (rates.fp32_per_s / sms),
        l2_s=work.load_bytes / (rates.l2_bytes_per_s / sms),
    )


@dataclass(frozen=True, slots=True)
class KernelTime:
    """Modelled time of one kernel with its parts (seconds) and scheduling figures."""

    name: str
    time_s: float
    scheduled_s: float
    hbm_s: float
    launch_s: float
    ideal_s: float
    blocks: int
    blocks_per_sm: int
    resident_per_sm: int
    waves: float
    step: StepTimes
    residency: Residency
    bound: str


def _block_times(
    plan: KernelPlan, rates: DeviceRates, k: int, started: int = 0, later: bool = False
) -> dict[tuple[int, int], float]:
    """Seconds per block for each distinct (steps, masked) profile with k blocks per SM.

    `started`: how many blocks start together (default: the whole device's k per SM, or the
    grid when smaller); it selects the measured per-block fixed time. `later`: a block that
    starts when a slot frees (after the first wave), with the later-wave fixed time.
    """
    t = plan.tiling
    hidden = rates.overlap_efficiency * (1 - 1 / (k * max(1, t.num_warps // 4)))
    prefetched = t.num_stages >= 2
    grid = min(plan.blocks, k * rates.arch.sm_count)  # programs running together
    chain = rates.chain_step(plan.mode, plan.head_dim, t, k, grid)
    if chain is not None:
        # measured round of `chain.blocks_per_sm` co-resident blocks doing one step of the tile
        # chain (dots, exp2, softmax update); more resident blocks than were measured share the
        # SM at the same rate. The micro-kernel loads its K/V tiles every step through the same
        # tensor-descriptor path from L2, on every SM at once, so the step already contains
        # the L2 traffic: no separate L2 bound (first-touch HBM reads are the kernel's HBM
        # term). Masked steps add their mask arithmetic on the CUDA cores.
        base = chain_base = chain.step_s * k / chain.blocks_per_sm
        delta = rates.score_delta_s(plan.scores, plan.head_dim, t, k, plan.mode)
        if delta is not None:  # the kernel's score functions, measured against its softmax
            # (both measured on the kernel: no floor at the matmul tile rate, which the
            # kernel's own measured steps undercut)
            base += k * delta
        elif plan.added != StepWork():  # a score function the measured chain did not run
            sms = rates.arch.sm_count
            delta = plan.added.exp2 / (rates.exp2_per_s / sms)
            delta += plan.added.fp32_ops / (rates.fp32_per_s / sms)
            tensor = step_times(plan.step, rates, t.num_warps).tensor_s
            priced = max(base + k * delta, k * tensor)  # never under its matmuls
            # work taken away (sigmoid's max, sum and rescale) never makes the step slower
            # than the measured softmax step (the matmul floor at the datasheet's tile rate
            # can exceed a kernel's measured step: the ping-pong kernel's)
            base = min(base, priced) if delta <= 0 else priced
        mask_ops = plan.masked_step.fp32_ops - plan.step.fp32_ops
        full = base
        masked = base + k * mask_ops / (rates.fp32_per_s / rates.arch.sm_count)
        window = rates.chain_step(plan.masked_mode, plan.head_dim, t, k)
        if window is not None:  # the window kernel's masked step, measured (softmax)
            masked = window.step_s * k / window.blocks_per_sm + (base - chain_base)
        tested = rates.tested_steps(plan.test_mode, plan.head_dim, t, k)
        if tested is not None:  # the layout's steps, measured with and without its test
            # (on the layout's key-tile indirection, slower per step than the tile chain's
            # contiguous K/V: the neighborhood's unmasked steps take that figure too)
            full = max(full, tested[0] + (base - chain_base))
            masked = full + tested[1]
    else:
        # the ping-pong kernel's two warp groups take turns on the tensor cores, one group's
        # softmax under the other's matmuls: the rest of the chain is hidden under the busiest
        # unit (on the H200 its measured step, 1.49 us at 128x128 head dim 128, is under the
        # tensor time of that tile at the calibrated Triton matmul rate, 1.91 us)
        # (with no tile-shape matmul rate measured, that argument is gone: the datasheet's
        # tile rate is far under the kernel's step, and the plain rule below applies)
        turns = plan.mode == "pingpong" and rates.has_tile_matmuls
        steps_hidden = 1.0 if turns else hidden
        full = step_times(plan.step, rates, t.num_warps).round_s(k, steps_hidden, prefetched)
        masked = step_times(plan.masked_step, rates, t.num_warps).round_s(
            k, steps_hidden, prefetched
        )
        floor = rates.floor_step(plan.mode, plan.head_dim, t, k)
        if floor is not None:  # a faster GPU's measured round (archs.datasheet floors)
            round_s = floor.step_s * k / floor.blocks_per_sm
            full, masked = max(full, round_s), max(masked, round_s)
    started = started or min(plan.blocks, k * rates.arch.sm_count)
    overhead = rates.block_fixed_s(plan.mode, plan.head_dim, t, k, started, later, plan.tiles)
    shared = rates.later_shared(plan.mode, plan.head_dim, t, plan.tiles) if later else None
    if shared is not None and chain is not None and plan.q_tiles > 1:
        # a later wave of a call whose heads have several query tiles: the step and fixed
        # time measured so (kernels.calibrate.microbench_shared: waves of blocks whose heads
        # share K/V, started as slots free; nearest measured tiling), the step as the ratio of
        # that entry's step to the tile chain's step of the same tiling
        own = Tiling(shared.block_m, shared.block_n, shared.num_warps, shared.num_stages)
        at = rates.chain_step(plan.mode, plan.head_dim, own, shared.blocks_per_sm)
        if at is not None and at.step_s > 0 and shared.step_s > 0:
            ratio = shared.step_s / (at.step_s * shared.blocks_per_sm / at.blocks_per_sm)
            full, masked = full * ratio, masked * ratio
            overhead = max(0.0, rates.steady_fixed_s(shared))
    if overhead is None:  # not measured: prologue/epilogue work + dependent HBM round trips
        overhead = step_times(plan.fixed, rates, t.num_warps).round_s(k, hidden, False)
        overhead += plan.round_trips * rates.arch.hbm_latency_s * (1 - hidden)
        if not later:
            # the first wave's blocks start together after do_bench's L2 flush, and their
            # prologue loads (Q, the K/V tiles in flight) share HBM
            burst = plan.fixed.load_bytes + max(t.num_stages - 1, 1) * plan.step.load_bytes
            overhead += burst * started / rates.hbm_read_bytes_per_s
        fixed_floor = rates.floor_block_fixed_s(plan.mode, plan.head_dim, t, k, started, later)
        overhead = max(overhead, fixed_floor or 0.0)  # a faster GPU's measured one (floors)
    profiles = {(g.steps, g.masked) for g in plan.groups}
    loop_mode = plan.loop_mode or plan.masked_mode
    loop_s = rates.loop_s(loop_mode, plan.head_dim, t, k) if plan.loops else 0.0
    win = rates.later_shared(plan.masked_mode, plan.head_dim, t, plan.tiles, k) if later else None
    own_tiling = (t.block_m, t.block_n, t.num_warps, t.num_stages, k)
    exact = win is not None and (win.block_m, win.block_n, win.num_warps, win.num_stages,
                                 win.blocks_per_sm) == own_tiling  # fmt: skip
    if win is not None and exact and chain is not None and win.step_s > 0:
        # a later wave of the window kernel, measured so (microbench_masks: waves of window
        # blocks, W = BLOCK_M, on heads of many query tiles; this tiling at this residency
        # only): its masked step, fixed time and loop cost; the fixed time net of the call's
        # wave transient (paid once a call)
        masked = win.step_s * k / win.blocks_per_sm + (base - chain_base)
        # (the whole transient: the entry's grid, of W = BLOCK_M blocks, held it unfaded)
        whole = rates.wave_transient_s(plan.mode, plan.head_dim, plan.tiling, plan.q_tiles)
        overhead = max(0.0, win.fixed_s - whole / max(1, win.waves - 1))
        loop_s = max(0.0, win.loop_s)
    loops = {(a, m): max(0, n - 1) for a, m, n in plan.loops}  # beyond the first loop
    times = {
        (a, m): a * full + m * masked + overhead + loops.get((a, m), 0) * loop_s
        for a, m in profiles
    }
    measured = None
    if later and plan.full_q_tiles:
        measured = rates.later_waves(plan.mode, plan.head_dim, t, plan.tiles, plan.q_tiles, k)
    if measured is not None:
        # no faster than the measured later wave of this kernel at this length (blocks of 1-2
        # tiles and of one query tile a head run over the fixed-plus-steps line)
        for (a, m), time_s in times.items():
            times[(a, m)] = max(time_s, measured.floor_s(a + m) or 0.0)
    return times


def _schedule_s(plan: KernelPlan, rates: DeviceRates, k: int) -> float:
    sms = rates.arch.sm_count
    slots = sms * k
    durations = _block_times(plan, rates, k)
    groups = [g for g in plan.groups if g.count > 0]
    if len(durations) == 1:
        waves = math.ceil(plan.blocks / slots)
        last = plan.blocks - (waves - 1) * slots
        k_last = math.ceil(last / sms)
        if waves == 1:
            (tail,) = _block_times(plan, rates, k_last, last).values()
            return tail
        (first,) = durations.values()
        (later,) = _block_times(plan, rates, k, later=True).values()
        (tail,) = _block_times(plan, rates, k_last, last, later=True).values()
        return first + (waves - 2) * later + tail + _transient_s(plan, rates)
    return _shared_schedule_s(plan, rates, k, groups)


def _transient_s(plan: KernelPlan, rates: DeviceRates) -> float:
    """The one-off excess of a call's first later waves (calibration `wave_transients`).

    Faded by the call's mean key tiles a block (`rates.transient_fade`).
    """
    steps = sum(g.count * (g.steps + g.masked) for g in plan.groups) / max(plan.blocks, 1)
    return rates.wave_transient_s(plan.mode, plan.head_dim, plan.tiling, plan.q_tiles, steps)


def _shared_schedule_s(
    plan: KernelPlan, rates: DeviceRates, k: int, groups: list[BlockGroup]
) -> float:
    """Blocks of unequal length: dispatch in launch order, SM time shared by its blocks.

    The first sm_count x k blocks go out breadth-first (one per SM, then a second, ...);
    each later block takes the first slot that frees. While j blocks are resident on an SM
    each progresses at 1 / (its block time with j resident), so an SM whose other blocks
    have finished runs its last ones faster (causal grids, partial last waves).
    """
    sms = rates.arch.sm_count
    # per resident count j: block times of the first blocks (started together) and of later
    # ones (started as slots free); a profile is (steps, masked, later)
    per_j = []
    for j in range(1, k + 1):
        times = {(a, m, False): t for (a, m), t in _block_times(plan, rates, j).items()}
        later_times = _block_times(plan, rates, j, later=True)
        times.update({(a, m, True): t for (a, m), t in later_times.items()})
        per_j.append(times)
    first = [(g.steps, g.masked, False) for g in groups for _ in range(g.count)]
    queue = iter(first[: sms * k] + [(a, m, True) for a, m, _ in first[sms * k :]])
    # per SM: resident blocks as (fraction of the block left, profile)
    active: list[list[tuple[float, tuple[int, int, bool]]]] = [[] for _ in range(sms)]
    for _ in range(k):
        for sm in range(sms):
            key = next(queue, None)
            if key is not None:
                active[sm].append((1.0, key))
    last = [0.0] * sms
    events: list[tuple[float, int]] = []

    def schedule(sm: int, now: float) -> None:
        if active[sm]:
            times = per_j[len(active[sm]) - 1]
            heapq.heappush(events, (now + min(f * times[p] for f, p in active[sm]), sm))

    for sm in range(sms):
        schedule(sm, 0.0)
    end = 0.0
    while events:
        now, sm = heapq.heappop(events)
        times = per_j[len(active[sm]) - 1]
        left = [(f - (now - last[sm]) / times[p], p) for f, p in active[sm]]
        active[sm] = [(f, p) for f, p in left if f > 1e-9]
        last[sm] = end = max(end, now)
        while len(active[sm]) < k and (key := next(queue, None)) is not None:
            active[sm].append((1.0, key))
        schedule(sm, now)
    return end + (_transient_s(plan, rates) if len(first) > sms * k else 0.0)


def time_kernel(plan: KernelPlan, rates: DeviceRates) -> KernelTime:
    """Model one kernel launch (see the module docstring)."""
    arch = rates.arch
    res = plan_residency(arch, plan)
    k = max(1, min(res.blocks_per_sm, math.ceil(plan.blocks / arch.sm_count)))
    scheduled = _schedule_s(plan, rates, k) if plan.blocks else 0.0
    hbm = plan.hbm_read_bytes / rates.hbm_read_bytes_per_s
    hbm += plan.hbm_write_bytes / rates.hbm_write_bytes_per_s
    if plan.measured is not None and plan.work > 0:  # measured rate replaces the unit model
        s_rest, sms = plan.measured
        s_rest += plan.added.exp2 / rates.exp2_per_s + plan.added.fp32_ops / rates.fp32_per_s
        # memory part at this device's bandwidth + the measured rest; a grid too small to
        # fill the SMs runs at its longest block's one-SM share; plus the kernel's dependent
        # HBM round trips (first load, last store), which the rate of the calibration's long
        # kernels leaves out (~1 us against their >= 100 us) and a tiny call pays in full
        # thousands of short programs: bound by their count, not by their work
        rest, p = plan.work * s_rest, plan.memory_overlap_p
        body = rest if plan.chain_bound else (hbm**p + rest**p) ** (1.0 / p)
        body /= plan.measured_share
        rated = max(body, plan.blocks * plan.measured_per_program_s)
        occupancy = max(1.0, plan.longest * sms / plan.work)
        if plan.measured_program is not None and occupancy > 1.0 and plan.blocks <= sms:
            # fewer programs than SMs (a short query chunk against a long cache): each runs
            # alone on its SM, its row's steps at the rate measured so; their HBM stream is
            # shared (the device's bandwidth bounds it), not scaled by the under-occupancy
            step_s, fixed_s = plan.measured_program
            rated = max(fixed_s + plan.longest * step_s, hbm)
        else:
            rated *= occupancy
        rated += plan.round_trips * arch.hbm_latency_s
        scheduled = max(scheduled, rated) if plan.measured_is_floor else rated
    per_block = _block_times(plan, rates, res.blocks_per_sm, later=True)
    busy = sum(g.count * per_block[(g.steps, g.masked)] for g in plan.groups)
    ideal = busy / (arch.sm_count * res.blocks_per_sm)
    step = step_times(plan.step, rates, plan.tiling.num_warps)
    total = rates.launch_s + max(scheduled, hbm)  # GPU time; the host side is in `call_time`
    if rates.launch_s >= 0.5 * total:
        bound = "launch"
    elif plan.measured is not None:
        bound = "hbm" if hbm >= 0.8 * scheduled else "memory access"
    elif hbm >= scheduled:
        bound = "hbm"
    elif scheduled > 1.25 * ideal:
        bound = "occupancy/tail"
    else:
        bound = step.bottleneck
    return KernelTime(
        name=plan.name,
        time_s=total,
        scheduled_s=scheduled,
        hbm_s=hbm,
        launch_s=rates.launch_s,
        ideal_s=ideal,
        blocks=plan.blocks,
        blocks_per_sm=res.blocks_per_sm,
        resident_per_sm=k,
        waves=plan.blocks / (arch.sm_count * res.blocks_per_sm),
        step=step,
        residency=res,
        bound=bound,
    )


def call_time(
    kernels: tuple[KernelTime, ...], rates: DeviceRates, family: str
) -> tuple[float, bool]:
    """Seconds of one timed call of a family's launcher, and whether the host bounds it.

    The host issues the family's kernels in order while running its launcher (argument
    checks, allocations, one Triton launch per kernel): kernel i is submitted after
    (i + 1) / n of the launcher's host time (`host_call_us`, measured per family). The timing
    harness (`triton.testing.do_bench`) starts the GPU clock after its L2 flush, which gives
    the host a head start (`bench_head_start_us`, measured). A kernel starts when it has been
    submitted and the previous one has finished: with long kernels the host is ahead and the
    time is the GPU's; with tiny ones it is the host's, less the head start.
    """
    n = len(kernels)
    host = rates.host_call_s(family, n)
    t = rates.bench_floor_s - rates.launch_s  # the harness's floor beyond one launch
    for i, k in enumerate(kernels):
        submitted = host * (i + 1) / n - rates.bench_head_start_s
        t = max(t, submitted) + k.time_s
    waiting = t - sum(k.time_s for k in kernels) - (rates.bench_floor_s - rates.launch_s)
    return t, waiting > 0.5 * t


GATHERED = (
    "a rank the queries and the output lack, contracted before the scores (a head gather or "
    "mix the cascade computes, e.g. KDGQA's data-dependent K/V head per query head); the "
    "kernels read K/V by head"
)


def gathered_ranks(cascade: Cascade, ap: AttentionProblem) -> tuple[str, ...]:
    """Ranks of the key-side inputs that play no attention role (K[b,g,e,m] read per head h)."""
    r = ap.roles
    known = {r.key, *r.batch, *r.query_groups, *r.score_dims, *r.value_dims, *ap.latent_dims}
    known |= {d for p in ap.projections for d in p.dims}
    keyed = [{cascade.root(x) for x in ranks} for _, ranks in cascade.inputs]
    return tuple(sorted({x for k in keyed if r.key in k for x in k} - known))
