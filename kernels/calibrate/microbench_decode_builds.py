"""GPU only: the `--builds` and `--empty` figures of `microbench_decode` (see its docstring).

- `builds`: per configuration and kernel build (unsplit, split-K, stream-K), the per-tile
  time with one program per SM streaming one whole segment, and the compiled kernel's
  registers and programs per SM; and the GQA merges at MERGE_WARPS warps;
- `empty_program_us`: what a program that finds no key tile costs its SM;
- `--tunings`: `programs`, `profiles`, `loads` and `builds` of TUNED_CONFIGS, the deeper
  pipelines and wider tiles with which `benchmarks/decode_tune_probe.py` found the kernel
  as fast as SDPA's best backend on long caches (kernels/measurements/decode/decode-tune-*),
  so that `gpu-decode` can price and pick them;
- `--paged`: `paged`, per PAGED_CONFIGS entry and page size, the per-tile time through a
  shuffled block table and contiguous, in one run.
"""

from __future__ import annotations

from typing import Any

from attnsim.kernels.calibrate.microbench_decode import (
    ISOLATED,
    MLA_DIMS,
    MLA_HEAD_BLOCKS,
    MLA_TILING,
    _bench_s,
    _merges,
    _tiling,
    _timed,
    _timed_mla,
    fit_line,
)

# `--builds`: each kernel build's per-tile time with one program per SM, each streaming one
# whole segment (no partial state), for these GQA configurations and MLA's head blocks; and
# the GQA merges at MERGE_WARPS warps (the merge loop's loads spread over the warps)
BUILD_CONFIGS = (
    (128, 128, 4, 64, 4, 2),
    (128, 128, 4, 64, 8, 2),
    (64, 64, 4, 64, 4, 2),
    (64, 64, 4, 64, 8, 2),
    (128, 128, 32, 64, 4, 2),
    (128, 128, 64, 64, 4, 2),
)
BUILD_LENGTHS = (2048, 16384)
# `--tunings`: (head_dim, value_dim, query heads per K/V head, block_n, warps, stages) of the
# tilings decode_tune_probe found fastest at >= 32K keys (2026-12-04, H200): 3-4 K/V stages
# at head dim 128 (16 and 64 packed rows), wider key tiles at head dim 64
TUNED_CONFIGS = (
    (128, 128, 4, 64, 4, 4),
    (128, 128, 4, 128, 8, 3),
    (128, 128, 4, 64, 8, 3),
    (64, 64, 4, 128, 4, 4),
    (64, 64, 4, 256, 8, 3),
    (128, 128, 64, 64, 4, 4),
)
MERGE_WARPS = 8
# `--paged`: the default tiling and the tunings, through a shuffled block table of each page
# size that is a multiple of the tiling's block_n, and contiguous, in one run
PAGED_CONFIGS = ((128, 128, 4, 64, 4, 2), (64, 64, 4, 64, 4, 2), *TUNED_CONFIGS)
PAGE_SIZES = (64, 256)
# `--empty`: split-K on EMPTY_SEGMENTS one-tile segments in 1 and EMPTY_SPLITS splits: all
# but the first split of a segment find no tile and exit (ragged: after reading the length)
EMPTY_SEGMENTS, EMPTY_SPLITS = 132, 64


def _builds(
    torch: Any, floor: float, sms: int, log: Any, configs: tuple[tuple[int, ...], ...] = ()
) -> list[dict[str, Any]]:
    """`builds` entries: per configuration and kernel build, `sms` programs' per-tile time.

    Every program streams one whole segment whatever the build: unsplit on `sms` segments,
    split-K in 2 splits of `sms` / 2 segments twice as long (the merge of two is in the
    intercept), stream-K with `sms` programs on `sms` segments (each program's share is one
    segment). The slope over BUILD_LENGTHS keys per program is `tile_us`; the compiled
    kernel's `registers` and the programs an SM holds with them (`resident_per_sm`).
    `configs`: only these GQA configurations (no MLA); default BUILD_CONFIGS and MLA's.
    """
    from attnsim.kernels.calibrate.microbench_blocks import occupancy
    from attnsim.kernels.spec import DECODE_STRATEGIES
    from attnsim.kernels.triton.attn_decode import _PLANS

    c, _ = MLA_DIMS
    cfgs = [(cfg, False) for cfg in configs or BUILD_CONFIGS]
    if not configs:
        cfgs += [((sum(MLA_DIMS), c, hb, *MLA_TILING), True) for hb in MLA_HEAD_BLOCKS]
    out = []
    for cfg, mla in cfgs:
        e, f, group, bn, w, st = cfg
        for strategy in DECODE_STRATEGIES:
            segments, per = (sms // 2, 2) if strategy == "splitk" else (sms, 1)
            kw: dict[str, Any] = dict(strategy=strategy, block_n=bn, num_warps=w, num_stages=st)
            kw |= dict(splits=2) if strategy == "splitk" else {}
            kw |= dict(programs=sms) if strategy == "streamk" else {}
            _PLANS.plans.clear()  # the build's one compiled kernel is in the plans below
            try:
                if mla:
                    times = tuple(_timed_mla(torch, segments, group, per * m, head_block=group,
                                             **kw) for m in BUILD_LENGTHS)  # fmt: skip
                else:
                    times = tuple(
                        _timed(torch, segments, group, e, f, per * m, **kw) for m in BUILD_LENGTHS
                    )
            except Exception as exc:  # noqa: BLE001 - keep the other builds
                log(f"  build {cfg} {strategy} failed: {exc}")
                continue
            slope, icpt = fit_line(tuple(m / bn for m in BUILD_LENGTHS), times)  # type: ignore[arg-type]
            entry = _tiling(cfg) | (dict(rows=group) if mla else {})
            entry |= dict(strategy=strategy, programs=sms, tile_us=round(slope * 1e6, 4),
                          fixed_us=round(max(0.0, icpt - floor) * 1e6, 3))  # fmt: skip
            compiled = [p.launch.compiled for p in _PLANS.plans.values() if p.launch.compiled]
            if compiled:  # what the compiler gave it: how many programs an SM holds
                entry |= dict(registers=int(compiled[0].n_regs),
                              resident_per_sm=occupancy(torch, compiled[0], w))  # fmt: skip
            log(f"  build {entry}")
            if slope > 0:
                out.append(entry)
            torch.cuda.empty_cache()
    return out


def measure_builds(torch: Any, log: Any) -> dict[str, list[dict[str, Any]]]:
    """The `--builds` figures: `builds`, and both builds' merges at MERGE_WARPS warps."""
    from attnsim.kernels.calibrate.microbench import empty_kernel
    from attnsim.kernels.triton.common import num_sms

    sms = num_sms(torch.cuda.current_device())
    x = torch.empty(1, device="cuda")
    floor = _bench_s(lambda: empty_kernel[(1,)](x))
    merges = [m for strat in ("splitk", "streamk") for m in _merges(torch, log, strat, MERGE_WARPS)]
    return {"builds": _builds(torch, floor, sms, log), "merges": merges}


def measure_tunings(torch: Any, log: Any) -> dict[str, list[dict[str, Any]]]:
    """The `--tunings` figures: each TUNED_CONFIGS entry's programs, profile, load, builds."""
    from attnsim.kernels.calibrate.microbench import empty_kernel
    from attnsim.kernels.calibrate.microbench_decode import _load, _profile, _programs
    from attnsim.kernels.triton.common import num_sms

    sms = num_sms(torch.cuda.current_device())
    x = torch.empty(1, device="cuda")
    floor = _bench_s(lambda: empty_kernel[(1,)](x))
    return {
        "programs": [p for cfg in TUNED_CONFIGS for p in _programs(torch, floor, cfg, sms, log)],
        "profiles": [_profile(torch, floor, cfg, log) for cfg in TUNED_CONFIGS],
        "loads": [_load(torch, floor, cfg, log) for cfg in TUNED_CONFIGS],
        "builds": _builds(torch, floor, sms, log, TUNED_CONFIGS),
    }


def measure_empty(torch: Any, log: Any) -> dict[str, float]:
    """`empty_program_us`: what a program that finds no tile adds, per SM (contiguous, ragged).

    t(EMPTY_SPLITS) - t(1) on one-tile segments, times the SMs, over the empty programs: the
    launch time one more empty program costs an SM (its dispatch, the length read).
    """
    from attnsim.kernels.triton.attn_decode import attention_decode
    from attnsim.kernels.triton.common import num_sms

    sms = num_sms(torch.cuda.current_device())
    dt, n, bn = torch.bfloat16, EMPTY_SEGMENTS, 64
    q = torch.randn(n, 4, 1, 128, device="cuda", dtype=dt)
    k = torch.randn(n, 1, bn, 128, device="cuda", dtype=dt)
    lens = torch.full((n,), bn, device="cuda", dtype=torch.int32)
    out = {}
    for name, extra in (("contiguous", {}), ("ragged", dict(seq_lens=lens))):
        ts = []
        for splits in (1, EMPTY_SPLITS):
            kw = dict(strategy="splitk", splits=splits, block_n=bn, **extra)
            attention_decode(q, k, k, **kw)
            ts.append(_bench_s(lambda kw=kw: attention_decode(q, k, k, **kw)))
        empty = n * (EMPTY_SPLITS - 1)
        out[name] = round(max(0.0, ts[1] - ts[0]) * sms / empty * 1e6, 4)
        log(f"  empty programs ({name}): {ts[0] * 1e6:.2f} -> {ts[1] * 1e6:.2f} us, "
            f"{out[name]} us per empty program per SM")  # fmt: skip
    return out


def _timed_paged(
    torch: Any, segments: int, group: int, e: int, f: int, seq: int, page_size: int, **kw: Any
) -> float:
    """Seconds of one `attention_decode` call with each segment's cache in shuffled pages."""
    from attnsim.kernels.triton.attn_decode import attention_decode

    dt, per = torch.bfloat16, seq // page_size
    gen = torch.Generator(device="cuda").manual_seed(seq + page_size)
    q = torch.randn(segments, group, 1, e, device="cuda", dtype=dt)
    k = torch.randn(segments * per, 1, page_size, e, device="cuda", dtype=dt)
    v = torch.randn(segments * per, 1, page_size, f, device="cuda", dtype=dt)
    table = torch.randperm(segments * per, device="cuda", generator=gen).view(segments, per)
    table = table.to(torch.int32)
    attention_decode(q, k, v, block_table=table, **kw)
    return _bench_s(lambda: attention_decode(q, k, v, block_table=table, **kw))


def measure_paged(torch: Any, log: Any) -> dict[str, list[dict[str, Any]]]:
    """The `--paged` figures (`archs/calibration/decode_paged.py`).

    Per PAGED_CONFIGS entry and page size, the unsplit kernel's per-tile time (slope over
    BUILD_LENGTHS) on ISOLATED segments through a shuffled block table, and contiguous in the
    same run.
    """
    out = []
    for cfg in PAGED_CONFIGS:
        e, f, group, bn, w, st = cfg
        kw: dict[str, Any] = dict(strategy="unsplit", block_n=bn, num_warps=w, num_stages=st)
        tiles = tuple(m / bn for m in BUILD_LENGTHS)
        try:
            flat = tuple(_timed(torch, ISOLATED, group, e, f, m, **kw) for m in BUILD_LENGTHS)
        except Exception as exc:  # noqa: BLE001 - keep the other configurations
            log(f"  paged {cfg} contiguous failed: {exc}")
            continue
        contiguous, _ = fit_line(tiles, flat)  # type: ignore[arg-type]
        for page in (p for p in PAGE_SIZES if p % bn == 0):
            try:
                times = tuple(_timed_paged(torch, ISOLATED, group, e, f, m, page, **kw)
                              for m in BUILD_LENGTHS)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - keep the other page sizes
                log(f"  paged {cfg} page {page} failed: {exc}")
                continue
            slope, _ = fit_line(tiles, times)  # type: ignore[arg-type]
            entry = _tiling(cfg) | dict(
                page_size=page, programs=ISOLATED, tile_us=round(slope * 1e6, 4),
                contiguous_tile_us=round(contiguous * 1e6, 4),
            )  # fmt: skip
            log(f"  paged {entry}")
            if slope > 0 and contiguous > 0:
                out.append(entry)
            torch.cuda.empty_cache()
    return {"paged": out}
