"""GPU mapper `gpu-decode`: one query per sequence against a KV cache, and how to split it.

Decode reads the whole KV cache to produce one output row per query head, so it is bound by
HBM bandwidth when enough programs stream the cache at once, and by a few slow programs when
not: an unsplit kernel runs one program per (sequence, K/V head) segment, 8 programs on a
132-SM H200 at batch 1 with 8 K/V heads. The mapper prices the three partitions the decode
kernel (kernels.triton.attn_decode, one launch) implements and picks the fastest:

- `unsplit`: one program per segment;
- `splitk` (FlashDecoding): `splits` programs per segment, equal chunks of its key tiles;
- `streamk` (Lean Attention): `programs` programs, equal shares of all key tiles across
  segment boundaries.

A split segment's contributors each store a partial softmax state and the last to arrive
merges them. Model (every assumption is in the Result's warnings):

- programs resident per SM k = min(what fits, ceil(programs / SMs)); what fits is the
  compiled build's measured residency (its registers: the H200's stream-K build of the
  16-row kernel holds 3 per SM, its unsplit build 5, MLA's kernels 1) when the calibration
  has it for exactly this configuration, else estimated from shared memory and registers;
- a program's time = per segment piece, the measured profile's start (its first dependent
  loads and its store) + its streaming time over its key tiles, read off the measured
  time-over-tiles profile (32 programs; scaled by the nearest measured configuration's
  per-tile time, by the measured ratio of its kernel build's per-tile time to the unsplit
  build's, and by the measured load curve at the number of programs streaming together
  while they stream (the launch's intercept growth at their mean number over the makespan),
  `decode_figures`; never faster than the SM's L2 share split among its k programs) + what
  splitting adds (piece per partial state it leaves, the merge curve measured on its build
  at the nearest warps over the partial states it merges); a program that finds no tile
  costs its SM the measured `empty_program_us`; figures from
  `kernels.calibrate.microbench_decode`; without them, Little's law (num_stages - 1 tiles
  in flight over the HBM latency), an HBM latency per piece and per empty program;
- the last contributor to arrive merges a split segment: split-K's last full chunk;
- programs are dispatched in launch order to the earliest free of SMs x k slots; stream-K's
  programs (equal shares) run in whole waves when they outnumber the slots, and each
  further wave pays the load curve's intercept growth again (`wave_ramps_us`); in split-K
  launches of >= 4 waves on contiguous caches, programs after the first wave take their
  tiling's measured steady cost (`decode_waves`, the calibration's `waves`);
- GPU time = launch overhead + max(that schedule, cache bytes / measured HBM read bandwidth
  + the longest merge, which starts when the stream has ended); the timed call adds the
  host's launcher time the way `model.call_time` does;
- a cascade that splits the keys itself (split-K's M2) fixes the split count to its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from attnsim.archs.calibration.decode import DecodeCalibration
from attnsim.archs.gpu import GpuArch
from attnsim.einsum_ir.ir import Cascade
from attnsim.kernels.spec import (
    DECODE_MAPPER,
    DECODE_STRATEGIES,
    AttnShape,
    decode_kv_bytes,
    decode_partition,
    decode_rows,
    default_splits,
)
from attnsim.mappers.gpu.decode_figures import (
    PAGED_MEASURED_NOTE,
    PAGED_NOTE,
    PAGED_STAGES,
    PARTIAL_WORD_BYTES,
    _figures,
    decode_calibration,
    figure_notes,
    waves_notes,
)
from attnsim.mappers.gpu.decode_schedule import schedule_s
from attnsim.mappers.gpu.decode_waves import later_waves
from attnsim.mappers.gpu.model import residency
from attnsim.mappers.gpu.rates import DeviceRates, device_rates
from attnsim.mappers.options import option
from attnsim.mappers.options import problems as option_problems
from attnsim.mappers.registry import register_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

SPLIT_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128)
STREAMK_PER_SM = (1, 2, 3, 4)  # stream-K candidates: programs = SMs x this
MAX_WAVES = 8  # split-K candidates stop at this many programs per SM
ASSUMPTIONS = (
    "decode program = per segment piece the measured profile's start + its key tiles' "
    "streaming time from the measured time-over-tiles profile "
    "(kernels.calibrate.microbench_decode; nearest configuration, scaled by its per-tile "
    "time) + per partial state left and the measured merge of the partial states it merges",
    "per-tile time scaled by the measured load curve (the unsplit kernel's per-tile time with "
    "n programs streaming at once over that with 32) at the programs streaming together: the "
    "resident ones, or fewer (the schedule's streaming time over its makespan) when programs "
    "end early or mostly start and merge; the launch adds the curve's intercept growth; "
    "configurations whose programs split an SM's throughput (MLA) are priced by that split "
    "instead",
    "programs dispatched in launch order to the earliest free of SMs x k slots",
    "GPU time = launch overhead + max(scheduled programs, cache bytes / measured HBM read "
    "bandwidth + the longest merge); partial states (fp32) are counted as L2 traffic: they "
    "stay in the 50+ MB L2",
    "the merge of a split segment is charged to the program holding its last key tiles (the "
    "kernel merges in whichever contributor arrives last)",
    "energy = board power x latency (an upper bound; no activity-based GPU energy model)",
)
# without a decode calibration (`kernels.calibrate.microbench_decode`) the first two
# assumptions are the unit model's instead (`decode_figures._figures`)
UNMEASURED_ASSUMPTIONS = (
    "decode program = a start of one HBM latency + a fixed time of two + its key tiles' "
    "streaming time, each tile one HBM latency over num_stages - 1 tiles in flight (Little's "
    "law), and no faster than the SM's share of L2 bandwidth moves its bytes + per partial "
    "state left its store (two "
    "HBM latencies and the state over the SM's L2 share) and the merge reading the states "
    "it merges (no decode calibration: nothing of the decode kernels measured)",
    *ASSUMPTIONS[2:],
)
# the measured kernel family of each strategy (the measurement files' `family`); the
# unsplit kernel is split-K's with one split
STRATEGY_FAMILIES = {
    "unsplit": "triton-decode-splitk",
    "splitk": "triton-decode-splitk",
    "streamk": "triton-decode-streamk",
}


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Options of `gpu-decode` (0 or "" = searched).

    Attributes:
        strategy: unsplit, splitk or streamk; "" ranks all three.
        splits: Split-K chunks per segment (0: searched over powers of two and the kernel's
            default).
        programs: Stream-K programs (0: searched over SMs x 1..4).
        block_n: Keys per step (0: searched among the tilings the decode calibration measured
            for this head dim, value dim and packed rows, and the kernel's default, 64; 32
            for MLA).
        num_warps: Warps per program (0: searched likewise; the kernel's default 4, MLA 8).
        head_block: MLA: query heads per program (0: the kernel's default, 32).
        num_stages: Software-pipelining depth of the K/V loads (0: searched likewise; the
            kernel's default 2).
        seq_lens: Cache length of each sequence (ragged batch; empty: every sequence has the
            cascade's key rank size). Its length must be the batch.
        page_size: Paged KV cache (a block table, as vLLM's): keys per page; 0 = contiguous.
            Priced as a contiguous cache, with the measured cost of paging in the warnings.
        dtype: Element type of Q, K, V, O.
    """

    strategy: str = option("", choices=("", *DECODE_STRATEGIES))
    splits: int = option(0, minimum=0, zero="searched")
    programs: int = option(0, minimum=0, zero="searched")
    block_n: int = option(0, minimum=0, power_of_two=True, zero="the kernel's: 64, MLA 32")
    num_warps: int = option(0, minimum=0, power_of_two=True, zero="the kernel's: 4, MLA 8")
    num_stages: int = option(0, minimum=0, zero="searched among the measured tilings, else 2")
    seq_lens: tuple[int, ...] = option((), minimum=1)
    head_block: int = option(0, minimum=0, power_of_two=True, zero="the kernel's: 32")
    page_size: int = option(0, minimum=0, zero="contiguous")
    dtype: str = option("bf16", choices=("fp16", "bf16"))

    def __post_init__(self) -> None:
        bad = option_problems(self)
        if bad:
            raise MappingError("gpu-decode options: " + "; ".join(bad))


@dataclass(frozen=True, slots=True)
class DecodeProblem:
    """A decode call as the kernel sees it.

    Attributes:
        shape: Sizes (seq_q = 1), K/V grouping (kv_group = query heads per K/V head).
        seq_lens: Each sequence's cache length.
        rows: Packed query rows per program (the R heads of a K/V head, or a block of them,
            >= 16).
        head_blocks: Programs that share one K/V head's cache, each with `rows` of its query
            heads (MLA: 128 heads share one latent, taken 16-64 at a time); the first reads
            the cache from HBM, the others from L2.
        shared_kv: V is a view of K's columns (MLA's latent): the cache is read once.
    """

    shape: AttnShape
    seq_lens: tuple[int, ...]
    rows: int
    head_blocks: int = 1
    shared_kv: bool = False

    @property
    def segments(self) -> int:
        """(sequence, K/V head, head block) triples."""
        return len(self.seq_lens) * self.shape.kv_heads // self.shape.batch * self.head_blocks

    def seg_tiles(self, block_n: int) -> tuple[int, ...]:
        """Key tiles of each segment in launch order (sequence-major)."""
        g = self.shape.kv_heads // self.shape.batch * self.head_blocks
        return tuple(-(-n // block_n) for n in self.seq_lens for _ in range(g))

    @property
    def cache_bytes(self) -> int:
        """HBM bytes of the KV cache: every cached key and value once per K/V head."""
        s = self.shape
        return decode_kv_bytes(
            self.seq_lens, s.kv_heads // s.batch, s.head_dim, s.value_dim, s.elem_bytes,
            self.shared_kv,
        )  # fmt: skip

    @property
    def qo_bytes(self) -> tuple[int, int]:
        """(query bytes read, output bytes written)."""
        s = self.shape
        rows = s.batch * s.heads
        return rows * s.head_dim * s.elem_bytes, rows * s.value_dim * s.elem_bytes


@dataclass(frozen=True, slots=True)
class DecodeTime:
    """One candidate's modelled time and its parts (seconds)."""

    strategy: str
    splits: int
    programs: int
    time_s: float
    gpu_s: float
    scheduled_s: float
    hbm_s: float
    host_s: float
    per_sm: int
    tile_s: float
    fixed_s: float
    merge_s: float
    partial_bytes: float
    ramps_s: float
    bound: str
    host_bound: bool
    problem: str = ""
    build_factor: float = 1.0  # the build's per-tile time over the unsplit build's (measured)
    resident_measured: bool = False  # k from the compiled build's measured residency
    tiling: tuple[int, int, int] = (0, 0, 0)  # (block_n, num_warps, num_stages)
    paged_factor: float = 0.0  # measured per-tile factor through a block table (0: none)
    later_note: str = ""  # later waves priced at the measured steady cost (decode_waves)


def time_decode(
    p: DecodeProblem,
    strategy: str,
    splits: int,
    programs: int,
    tiling: tuple[int, int, int],
    rates: DeviceRates,
    dcal: DecodeCalibration | None,
    page_size: int = 0,
) -> DecodeTime:
    """Model one decode call (see the module docstring).

    `page_size` > 0: keys through a block table; per-tile times times the measured paged
    factor of this tiling when the calibration has one, else the figures of `PAGED_STAGES`.
    """
    arch = rates.arch
    block_n, warps, stages = tiling
    s = p.shape
    runs = decode_partition(p.seg_tiles(block_n), strategy, splits, programs)
    grid = sum(c for c, _ in runs)
    smem = s.elem_bytes * (
        p.rows * s.head_dim + max(stages - 1, 1) * block_n * (s.head_dim + s.value_dim)
    )
    live = p.rows * (s.value_dim + 2 * block_n)  # fp32 accumulator and the score tile
    if p.shared_kv:  # V is K's first value_dim columns: one buffer per stage
        smem = s.elem_bytes * (p.rows * s.head_dim + max(stages - 1, 1) * block_n * s.head_dim)
    regs = 24 + math.ceil(live / (32 * warps))
    res = residency(arch, smem, regs, warps)
    # the compiled build's residency when measured (its registers), else the estimate's
    held = dcal.resident(s.head_dim, s.value_dim, p.rows, tiling, strategy) if dcal else 0
    k = max(1, min(held or res.blocks_per_sm, math.ceil(grid / arch.sm_count)))
    slots = arch.sm_count * k
    # programs streaming at once: first the resident ones; then, from the schedule, the
    # programs streaming together while they stream (their streaming time over the makespan
    # less the critical program's first start and what it adds after streaming: its last
    # partial store and merge; a stream-K program's starts between its segments fall among
    # the others' streaming), which sets the per-tile slowdown, and their mean number over the whole
    # makespan (below the resident count when programs end early, as in ragged batches, or
    # spend their time starting and merging), which sets the launch's intercept growth
    n = min(grid, slots)
    # through a block table each tile's loads wait for its page index: no deeper pipeline
    measured = dcal.paged_point(s.head_dim, s.value_dim, p.rows, tiling, page_size) if (
        page_size and dcal) else None  # fmt: skip
    paged = measured.factor if measured is not None else 1.0
    looked = (block_n, warps, min(stages, PAGED_STAGES)) if page_size and not measured else tiling
    f = _figures(p, looked, k, rates, dcal, n, strategy, paged=paged)
    # a paged launch's later programs: its one-wave price plus the contiguous build's steady
    # excess (the waves probe read no block table; the excess over unpaged figures)
    plain = _figures(p, looked, k, rates, dcal, n, strategy) if paged != 1.0 else None
    compiled = tiling if page_size else None  # a paged call's build: its paged waves, if any
    later = later_waves(dcal, p, looked, k, strategy, f, grid / slots, plain, compiled)
    made = schedule_s(runs, slots, f, later)
    around = max(
        (f.start_s + min(1, prog.partials) * f.piece_s + f.merge_s(prog.merges)
         for _, prog in runs if prog.tiles),
        default=0.0,
    )  # fmt: skip
    streamed = sum(c * f.stream_s(prog.tiles) for c, prog in runs)
    averaged = streamed / made if made else 0.0
    if averaged < 0.9 * n:
        together = min(n, streamed / max(made - around, 1e-12))
        f = _figures(p, looked, k, rates, dcal, max(1.0, together), strategy,
                     loading=max(1.0, averaged), paged=paged)  # fmt: skip
        if plain is not None:
            plain = _figures(p, looked, k, rates, dcal, max(1.0, together), strategy,
                             loading=max(1.0, averaged))  # fmt: skip
        later = later_waves(dcal, p, looked, k, strategy, f, grid / slots, plain, compiled)
        made = schedule_s(runs, slots, f, later)
    # stream-K programs have equal shares, so more of them than slots run in whole waves that
    # end together; each further wave starts its streams at once again and pays the measured
    # load curve's intercept growth again (the queue of first loads, with HBM below its
    # rate): on the H200 264 programs of the one-per-SM (128, 8, 3) build ran 6-32 us slower
    # than 132 programs on the same caches, where one intercept was priced
    waves = -(-sum(c for c, prog in runs if prog.tiles) // slots)
    load = dcal.load(s.head_dim, s.value_dim, p.rows, looked) if dcal and waves > 1 else None
    ramps = (waves - 1) * load.extra_fixed_s(n) if strategy == "streamk" and load else 0.0
    scheduled = f.fixed_s + made + ramps
    merge = sum(c * (prog.partials * f.piece_s + f.merge_s(prog.merges)) for c, prog in runs)
    # the last merges start when the stream has ended: they follow the HBM-bound time too
    tail = max((prog.partials * f.piece_s + f.merge_s(prog.merges) for _, prog in runs), default=0)
    hbm = p.cache_bytes / rates.hbm_read_bytes_per_s + ramps
    # partial states beyond what L2 holds are written to HBM and read back by the merges
    partials = sum(c * prog.partials for c, prog in runs)
    spill = max(0.0, partials * p.rows * (s.value_dim + 1) * PARTIAL_WORD_BYTES - arch.l2_bytes)
    hbm += spill / rates.hbm_write_bytes_per_s + spill / rates.hbm_read_bytes_per_s
    qo_read, qo_write = p.qo_bytes
    hbm += qo_read / rates.hbm_read_bytes_per_s + qo_write / rates.hbm_write_bytes_per_s
    gpu = rates.launch_s + max(scheduled, hbm + tail)
    host = (dcal.host_call(strategy) if dcal else None) or rates.host_launch_s
    # as model.call_time for one kernel: the host's launcher time less do_bench's head start
    lead = max(rates.bench_floor_s - rates.launch_s, host - rates.bench_head_start_s)
    total = lead + gpu
    host_bound = lead > 0.5 * total
    if host_bound:
        bound = "host launch"
    elif hbm >= scheduled:
        bound = "hbm"
    elif grid < arch.sm_count and hbm < 0.9 * scheduled:  # few programs, HBM far from full
        bound = f"occupancy ({grid} programs on {arch.sm_count} SMs)"
    elif merge > 0.25 * scheduled * arch.sm_count * k:
        bound = "merge"
    else:
        bound = "per-program streaming (latency)"
    return DecodeTime(
        strategy=strategy,
        splits=splits,
        programs=grid,
        time_s=total,
        gpu_s=gpu,
        scheduled_s=scheduled,
        hbm_s=hbm,
        host_s=host,
        per_sm=k,
        tile_s=f.tile_s,
        fixed_s=f.fixed_s,
        merge_s=merge,
        ramps_s=ramps,
        partial_bytes=float(partials * p.rows * (s.value_dim + 1) * PARTIAL_WORD_BYTES),
        bound=bound,
        host_bound=host_bound,
        problem=res.problem,
        build_factor=(
            dcal.build_factor(s.head_dim, s.value_dim, p.rows, tiling, strategy) if dcal else 1.0
        ),
        resident_measured=bool(held),
        tiling=tiling,
        paged_factor=measured.factor if measured is not None else 0.0,
        later_note=later.note(looked, grid / slots, bool(page_size))
        if later and grid > slots
        else "",
    )


def candidates(
    p: DecodeProblem, opts: DecodeOptions, sms: int, block_n: int
) -> list[tuple[str, int, int]]:
    """(strategy, splits, programs) candidates the options allow."""
    tiles = max(p.seg_tiles(block_n))
    out: list[tuple[str, int, int]] = []
    strategies = (opts.strategy,) if opts.strategy else DECODE_STRATEGIES
    for strat in strategies:
        if strat == "unsplit":
            out.append((strat, 1, 0))
        elif strat == "splitk":
            splits = (opts.splits,) if opts.splits else SPLIT_CANDIDATES
            default = default_splits(p.segments, max(p.seq_lens), sms)
            for n in dict.fromkeys((*splits, *(() if opts.splits else (default,)))):
                # more than MAX_WAVES waves of programs only adds merges
                if opts.splits or (n <= tiles and (n == 1 or p.segments * n <= MAX_WAVES * sms)):
                    out.append((strat, n, 0))
        else:
            progs = (opts.programs,) if opts.programs else tuple(sms * m for m in STREAMK_PER_SM)
            out += [(strat, 1, n) for n in progs]
    return out


def tiling_candidates(
    p: DecodeProblem,
    opts: DecodeOptions,
    dcal: DecodeCalibration | None,
    default: tuple[int, int, int],
) -> list[tuple[int, int, int]]:
    """(block_n, num_warps, num_stages) tilings to rank.

    The kernel's default, and every tiling the decode calibration measured (`programs`) for
    exactly this head dim, value dim and packed rows that agrees with the options the caller
    fixed (a searched tiling is priced from its own measured figures, not a neighbour's).
    """
    if opts.block_n and opts.num_warps and opts.num_stages:
        return [default]
    s = p.shape
    fixed = (opts.block_n, opts.num_warps, opts.num_stages)
    measured = (
        (q.block_n, q.num_warps, q.num_stages)
        for q in (dcal.programs if dcal else ())
        if (q.head_dim, q.value_dim, q.rows) == (s.head_dim, s.value_dim, p.rows)
    )
    agree = (t for t in measured if all(not f or f == v for f, v in zip(fixed, t, strict=True)))
    return list(dict.fromkeys((default, *agree)))


def decode_problem(
    shape: AttnShape, seq_lens: tuple[int, ...], shared_kv: bool, head_block: int = 0
) -> DecodeProblem:
    """The decode problem of a one-query shape (ragged lengths checked against it)."""
    lens = tuple(int(n) for n in seq_lens) or (shape.seq_k,) * shape.batch
    if len(lens) != shape.batch:
        raise MappingError(
            f"gpu-decode: seq_lens has {len(lens)} lengths for a batch of {shape.batch}"
        )
    if max(lens) > shape.seq_k:
        raise MappingError(
            f"gpu-decode: seq_lens up to {max(lens)} exceed the key rank's size {shape.seq_k}"
        )
    rows = head_block or decode_rows(shape.kv_group)
    blocks = -(-shape.kv_group // rows)
    return DecodeProblem(shape, lens, rows, head_blocks=blocks, shared_kv=shared_kv)


@register_mapper(DECODE_MAPPER)
class GpuDecodeMapper:
    """Decode attention on a GPU: unsplit, split-K or stream-K, searched (module docstring)."""

    name = DECODE_MAPPER
    arch_kind = "gpu"
    Options = DecodeOptions

    def __init__(self, options: DecodeOptions | None = None, **kwargs: object) -> None:
        if "seq_lens" in kwargs:
            kwargs["seq_lens"] = tuple(kwargs["seq_lens"])  # type: ignore[arg-type]
        self.options = options or DecodeOptions(**kwargs)  # type: ignore[arg-type]

    def map(self, cascade: Cascade, arch: object, sizes: dict[str, int]) -> Result:
        """Rank the decode partitions of `cascade` at `sizes` on GPU `arch`."""
        from attnsim.mappers.gpu.decode_mla import latent_problem
        from attnsim.mappers.gpu.decode_result import decode_result

        if not isinstance(arch, GpuArch):
            raise MappingError(f"{self.name} needs a GPU architecture (kind: gpu)")
        opts = self.options
        try:
            rates = device_rates(arch, opts.dtype)
        except KeyError as exc:
            raise MappingError(str(exc).strip("'\"")) from None
        latent = latent_problem(cascade, sizes, opts, rates)
        if latent is not None:
            problem, extra, notes = latent.problem, latent.kernels, latent.notes
            default = (opts.block_n or 32, opts.num_warps or 8, opts.num_stages or 2)
        else:
            problem, notes = self._problem(cascade, sizes)
            extra = ()
            default = (opts.block_n or 64, opts.num_warps or 4, opts.num_stages or 2)
        shape = problem.shape
        dcal = decode_calibration(arch)
        tilings = tiling_candidates(problem, opts, dcal, default)
        if opts.page_size:
            paged = [t for t in tilings if opts.page_size % t[0] == 0]
            if not paged:
                tiles = " or ".join(str(n) for n in sorted({t[0] for t in tilings}))
                raise MappingError(
                    f"{self.name}: page_size {opts.page_size} is no multiple of block_n "
                    f"{tiles} (the kernel reads whole key tiles from one page)"
                )
            tilings = paged
        fixed_splits = self._cascade_splits(cascade, sizes)
        ranked = sorted(
            (
                time_decode(problem, st, sp, pr, tiling, rates, dcal, opts.page_size)
                for tiling in tilings
                for st, sp, pr in (
                    [("splitk", fixed_splits, 0)]
                    if fixed_splits
                    else candidates(problem, opts, arch.sm_count, tiling[0])
                )
            ),
            key=lambda t: (bool(t.problem), t.time_s),
        )
        if not ranked:
            raise MappingError(f"{self.name}: no candidate partition for {cascade.name}")
        chosen = ranked[0]
        tiling = chosen.tiling
        if chosen.problem:
            raise MappingError(f"{self.name}: the decode program does not fit: {chosen.problem}")
        family = "triton-mla-decode" if latent is not None else STRATEGY_FAMILIES[chosen.strategy]
        headline, others = rates.headline_and_notes(family)
        assumed = ASSUMPTIONS if dcal is not None else UNMEASURED_ASSUMPTIONS
        notes = (*headline, *assumed, *others, *notes)
        if len(tilings) > 1:
            notes += (
                f"tiling searched among {len(tilings)} (block_n, warps, stages): the kernel's "
                f"default {default} and those the decode calibration measured for head dim "
                f"{shape.head_dim}, value dim {shape.value_dim} and {problem.rows} rows; chose "
                f"{tiling}",
            )
        if chosen.paged_factor:
            notes += (PAGED_MEASURED_NOTE.format(page=opts.page_size, tiling=tiling,
                                                 factor=chosen.paged_factor),)  # fmt: skip
        elif opts.page_size:
            notes += (PAGED_NOTE.format(page=opts.page_size),)
        notes += figure_notes(arch, dcal, problem, tiling)
        waves = waves_notes(chosen.programs, arch.sm_count * chosen.per_sm, chosen.strategy)
        notes += (chosen.later_note,) if chosen.later_note else waves
        return decode_result(
            self, cascade, arch, sizes, problem, chosen, ranked, notes, tiling, extra
        )

    @staticmethod
    def _cascade_splits(cascade: Cascade, sizes: dict[str, int]) -> int:
        """The split count a split-K cascade fixes (0 when the cascade does not split)."""
        from attnsim.einsum_ir.analysis.structure import StructureError, attention_problem
        from attnsim.einsum_ir.sizes import SizeError

        try:
            ap = attention_problem(cascade, sizes)
        except (StructureError, SizeError):
            return 0
        return ap.splits if ap.split_ranks else 0

    def _problem(
        self, cascade: Cascade, sizes: dict[str, int]
    ) -> tuple[DecodeProblem, tuple[str, ...]]:
        from attnsim.mappers.gpu.problem import gpu_problem  # the shared cascade reading

        opts = self.options
        gp = gpu_problem(cascade, sizes, opts.dtype)
        shape = gp.shape
        if shape.seq_q != 1:
            raise MappingError(
                f"{self.name}: {cascade.name} has {shape.seq_q} query positions; the decode "
                "kernel takes one query per sequence (P = 1): use gpu-1pass for prefill"
            )
        if shape.points != shape.seq_k:
            raise MappingError(
                f"{self.name}: the mask keeps {shape.points} of {shape.seq_k} keys; the decode "
                "kernel reads every cached key (use seq_lens for ragged caches)"
            )
        if not gp.score.is_plain:
            raise MappingError(
                f"{self.name}: score function {gp.score.describe()}: the decode kernel "
                "computes softmax attention only"
            )
        problem = decode_problem(shape, opts.seq_lens, shared_kv=False, head_block=opts.head_block)
        # the shared reading's notes on which prefill kernels implement the mask and GQA do
        # not apply here: say what the decode kernel does instead
        notes = tuple(n for n in gp.warnings if not n.startswith(("mask ", "GQA (")))
        if not shape.is_dense:
            notes += ("decode kernel: the mask keeps every cached key of the one query, which "
                      "the kernel reads whole (no mask test)",)  # fmt: skip
        if shape.kv_group > 1:
            notes += (
                f"decode kernel: the {shape.kv_group} query heads of a K/V head share a "
                f"program's query tile ({problem.rows} rows: a power of two in 16..64, "
                f"{problem.head_blocks} tile(s) per K/V head), so each K/V head is read once "
                "per tile",
            )
        ap = gp.structure
        if ap.split_ranks:
            if opts.strategy not in ("", "splitk") or opts.splits not in (0, ap.splits):
                raise MappingError(
                    f"{self.name}: {cascade.name} splits the keys into {ap.splits} chunks "
                    f"({','.join(ap.split_ranks)}): options strategy={opts.strategy!r}, "
                    f"splits={opts.splits} contradict it (leave them unset)"
                )
            notes += (
                f"split-K cascade: {ap.splits} splits over {','.join(ap.split_ranks)} (from the "
                "cascade), partial states merged in the same launch",
            )
        return problem, notes


__all__ = [
    "DecodeOptions",
    "DecodeProblem",
    "GpuDecodeMapper",
    "candidates",
    "decode_calibration",
    "decode_problem",
    "schedule_s",
    "time_decode",
]
