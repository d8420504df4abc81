"""GPU only: the decode kernel's figures for `gpu-decode`; writes `<device>-decode.yaml`.

    python -m attnsim.kernels.calibrate.microbench_decode --out archs/calibration/h200-decode.yaml

Measures, with `kernels.triton.attn_decode.attention_decode` timed by
`triton.testing.do_bench` (median, L2 flushed):

- `programs`: per configuration (head dim, value dim, packed rows, block_n, warps, stages)
  and programs per SM k, the unsplit kernel with one segment per program on two cache
  lengths: the slope over key tiles is `tile_us`, the intercept less the do_bench floor of
  an empty kernel is `fixed_us`. k = 1 runs `ISOLATED` programs (a quarter of the SMs: no
  HBM contention), k >= 2 runs k x SMs programs;
- `profiles`: per configuration, the unsplit kernel's time (less the floor) on `ISOLATED`
  segments over cache lengths of 1 to 512 key tiles: a program's time is not linear in its
  tiles (short runs pay ~1.7-1.9 us per tile and a ~2 us start, long ones 1.5 us and a larger
  intercept), so the model interpolates this curve;
- `merges`: with s = 1, 2, ..., 128 splits on 128 / s segments, so that 128 programs each
  stream 512 keys whatever s: t(s) - t(1) = piece + s x part, least squares, and the
  measured curve itself (`splits`/`added_us`); for the GQA kernel and for MLA's (head blocks
  16/32/64: partial states of the 512-wide latent), in the split-K and the stream-K builds
  of the kernel (`strategy: streamk`; their register allocations differ);
- `loads`: the per-tile time (slope over two cache lengths) with n = 16-528 programs
  streaming at once, how a program slows as the others load the GPU (MLA's too);
- `host_call_us`: host time of one launcher call per strategy on a tiny problem;
- `hbm_read_bandwidth_gb_per_s`: read-only streams over 4 GiB (`microbench.hbm_read_s`: the faster
  of torch.sum and a streaming Triton read).

- `builds`: per configuration and kernel build (unsplit, split-K, stream-K), the per-tile
  time with one program per SM streaming one whole segment: the builds compile the same
  loop to different register allocations (MLA's 64-row stream-K build is slower per tile).

Updates of an existing file (each replaces the same measurements, keeps the others):
`--merges-only` (split-K merges), `--streamk-merges`, `--mla-loads`, `--extend` (the 64-row
configuration of MQA, the GQA loads and the split-K merges), `--builds` (`builds` and the
GQA merges at 8 warps), `--empty` (`empty_program_us`: what a program that finds no tile
costs an SM, contiguous and ragged), `--tunings` (every figure of the tuned tilings,
`microbench_decode_builds.TUNED_CONFIGS`), `--paged` (`paged`: per-tile time through a
shuffled block table over the contiguous one, `archs/calibration/decode_paged.py`);
`--raw FILE` also writes what was measured.

None of the decode validation shapes (benchmarks/decode_probe.py) is used here. The file
format is in `archs/calibration/decode.py`.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import itertools
import sys
from pathlib import Path
from typing import Any

import triton

ISOLATED = 32  # programs for the k = 1 and merge figures (a quarter of an H200's SMs)
LENGTHS = (4096, 32768)  # two cache lengths per configuration (slope and intercept)
# (head_dim, value_dim, query heads per K/V head, block_n, warps, stages)
CONFIGS = (
    (128, 128, 4, 64, 4, 2),
    (64, 64, 4, 64, 4, 2),
    (128, 128, 32, 64, 4, 2),
    (128, 128, 4, 32, 4, 2),
    (128, 128, 4, 128, 4, 2),
    (128, 128, 4, 64, 4, 3),
    (128, 128, 4, 64, 8, 2),
)
PER_SM = (1, 2, 4)
PROFILE_LENGTHS = (64, 256, 1024, 2048, 4096, 8192, 32768)  # `profiles`: time over length
# merge figures: MERGE_PROGRAMS programs (one wave, one per SM) streaming MERGE_CHUNK keys
# each, as MERGE_PROGRAMS / s segments split s ways: only the merging differs with s, so
# t(s) - t(1) is what splitting adds
MERGE_PROGRAMS, MERGE_CHUNK = 128, 512
# MLA absorbed decode (kernels.triton.attn_mla): latent C and rope Rr dims (DeepSeek-V2/V3),
# head blocks, the kernel's default tiling (block_n, warps, stages), cache lengths
MLA_DIMS = (512, 64)
MLA_HEAD_BLOCKS = (16, 32, 64)
MLA_TILING = (32, 8, 2)
MLA_LENGTHS = (2048, 16384)
MLA_PROFILE_LENGTHS = (32, 128, 512, 1024, 2048, 4096, 16384)
# `--extend` (added to an existing file): the configuration of 64 packed rows (MQA), the
# per-tile time over how many programs stream at once (`loads`) and the merge over 2-128
# splits (each merge entry gains its measured curve)
EXTEND_CONFIGS = ((128, 128, 64, 64, 4, 2),)
LOAD_CONFIGS = ((128, 128, 4, 64, 4, 2), (64, 64, 4, 64, 4, 2), (128, 128, 64, 64, 4, 2))
LOAD_PROGRAMS = (16, 32, 66, 132, 198, 264, 396, 528)
LOAD_LENGTHS = (2048, 16384)
WIDE_SPLITS = (1, 2, 4, 8, 16, 32, 64, 128)
# merges: (head_dim, value_dim, query heads per K/V head) of the GQA kernel
MERGE_CONFIGS = ((128, 128, 4), (64, 64, 4), (128, 128, 32), (128, 128, 64))


def fit_line(xs: tuple[float, float], ys: tuple[float, float]) -> tuple[float, float]:
    """(slope, intercept) through two points."""
    slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
    return slope, ys[0] - slope * xs[0]


def fit_merge(splits: tuple[int, ...], times: tuple[float, ...]) -> tuple[float, float]:
    """(piece, part): least squares of t(s) - t(1) = piece + s x part over s > 1 (>= 0).

    `times[i]` is the call with `splits[i]` splits of equal chunks; splits[0] must be 1.
    """
    xs = splits[1:]
    ds = [t - times[0] for t in times[1:]]
    mx, md = sum(xs) / len(xs), sum(ds) / len(ds)
    var = sum((x - mx) ** 2 for x in xs)
    part = max(0.0, sum((x - mx) * (d - md) for x, d in zip(xs, ds, strict=True)) / var)
    return max(0.0, md - part * mx), part


def _bench_s(fn: Any) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=100, return_mode="median")) * 1e-3


def _timed(torch: Any, segments: int, group: int, e: int, f: int, seq: int, **kw: Any) -> float:
    """Seconds of one `attention_decode` call on `segments` (sequence, K/V head) caches."""
    from attnsim.kernels.triton.attn_decode import attention_decode

    dt = torch.bfloat16
    q = torch.randn(segments, group, 1, e, device="cuda", dtype=dt)
    k = torch.randn(segments, 1, seq, e, device="cuda", dtype=dt)
    v = torch.randn(segments, 1, seq, f, device="cuda", dtype=dt)
    attention_decode(q, k, v, **kw)
    return _bench_s(lambda: attention_decode(q, k, v, **kw))


def _tiling(cfg: tuple[int, ...]) -> dict[str, Any]:
    e, f, group, bn, w, st = cfg
    return dict(
        head_dim=e, value_dim=f, rows=_rows(group), block_n=bn, num_warps=w, num_stages=st
    )  # fmt: skip


def _rows(group: int) -> int:
    from attnsim.kernels.spec import decode_rows

    return decode_rows(group)


def profile_points(
    lengths: tuple[int, ...], block_n: int, times_s: list[float], floor_s: float
) -> dict[str, list[Any]]:
    """A profile's `tiles` and `time_us` from launch times at cache `lengths` (keys).

    A program visits ceil(length / block_n) key tiles, a partial one as a whole (its loop
    runs once; on the H200 a 64-key program of the (256, 8, 3) build took the time of a
    256-key one). Lengths that visit as many tiles as a shorter one keep the longest (whole
    tiles): the counts increase. (Before 2026-12-07 this was length // block_n, which wrote
    0 for a partial tile; the loader then dropped the whole profile.)
    """
    points: dict[int, float] = {}
    for n, t in zip(lengths, times_s, strict=True):
        points[-(-n // block_n)] = t  # the later, longer length of a count replaces it
    tiles = sorted(points)
    return {
        "tiles": tiles,
        "time_us": [round(max(0.0, points[x] - floor_s) * 1e6, 3) for x in tiles],
    }


def _profile(torch: Any, floor: float, cfg: tuple[int, ...], log: Any) -> dict[str, Any]:
    """`profiles` entry: `ISOLATED` programs' launch time over their cache length."""
    e, f, group, bn, w, st = cfg
    kw = dict(strategy="unsplit", block_n=bn, num_warps=w, num_stages=st)
    curve = [_timed(torch, ISOLATED, group, e, f, n, **kw) for n in PROFILE_LENGTHS]
    entry = dict(**_tiling(cfg), **profile_points(PROFILE_LENGTHS, bn, curve, floor))
    log(f"  profile {entry}")
    return entry


def _programs(
    torch: Any, floor: float, cfg: tuple[int, ...], sms: int, log: Any
) -> list[dict[str, Any]]:
    """`programs` entries of one configuration, one per programs-per-SM count."""
    e, f, group, bn, w, st = cfg
    out = []
    for per_sm in PER_SM:
        segments = ISOLATED if per_sm == 1 else per_sm * sms
        kw = dict(strategy="unsplit", block_n=bn, num_warps=w, num_stages=st)
        try:
            times = tuple(_timed(torch, segments, group, e, f, n, **kw) for n in LENGTHS)
        except Exception as exc:  # noqa: BLE001 - keep the other configurations
            log(f"  {e}/{f} R={group} {bn}/{w}/{st} k={per_sm} failed: {exc}")
            continue
        slope, icpt = fit_line(tuple(n / bn for n in LENGTHS), times)  # type: ignore[arg-type]
        entry = dict(
            **_tiling(cfg), programs_per_sm=per_sm, tile_us=round(slope * 1e6, 4),
            fixed_us=round(max(0.0, icpt - floor) * 1e6, 3),
        )  # fmt: skip
        log(f"  program {entry}")
        if slope > 0:
            out.append(entry)
        torch.cuda.empty_cache()
    return out


def _load(torch: Any, floor: float, cfg: tuple[int, ...], log: Any) -> dict[str, Any]:
    """`loads` entry: the per-tile time (slope over LOAD_LENGTHS) with n programs at once.

    `cfg`: (head_dim, value_dim, query heads per K/V head, block_n, warps, stages); a head
    dim of sum(MLA_DIMS) times the MLA kernel with head blocks of that many heads.
    """
    e, f, group, bn, w, st = cfg
    kw: dict[str, Any] = dict(strategy="unsplit", block_n=bn, num_warps=w, num_stages=st)
    mla = e == sum(MLA_DIMS)

    def call(n: int, m: int) -> float:
        if mla:
            return _timed_mla(torch, n, group, m, head_block=group, **kw)
        return _timed(torch, n, group, e, f, m, **kw)

    ns, tiles_us, fixed_us = [], [], []
    lengths = MLA_LENGTHS if mla else LOAD_LENGTHS
    for n in LOAD_PROGRAMS:
        try:
            times = tuple(call(n, m) for m in lengths)
        except Exception as exc:  # noqa: BLE001 - keep the other counts
            log(f"  load {cfg} n={n} failed: {exc}")
            continue
        slope, icpt = fit_line(tuple(m / bn for m in lengths), times)  # type: ignore[arg-type]
        ns.append(n)
        tiles_us.append(round(slope * 1e6, 4))
        fixed_us.append(round(max(0.0, icpt - floor) * 1e6, 3))
        torch.cuda.empty_cache()
    tiling = _tiling(cfg) | (dict(rows=group) if mla else {})
    entry = dict(**tiling, programs=ns, tile_us=tiles_us, fixed_us=fixed_us)
    log(f"  load {entry}")
    return entry


def _merge_curve(splits: tuple[int, ...], times: tuple[float, ...]) -> dict[str, Any]:
    """piece/part fitted over every split count, and the measured t(s) - t(1) itself."""
    piece, part = fit_merge(splits, times)
    return dict(
        piece_us=round(piece * 1e6, 3), part_us=round(part * 1e6, 4), splits=list(splits[1:]),
        added_us=[round((t - times[0]) * 1e6, 3) for t in times[1:]],
    )  # fmt: skip


def _kernel_warps() -> int:
    """attention_decode's default num_warps (a merge entry measured without one ran so)."""
    import inspect

    from attnsim.kernels.triton.attn_decode import attention_decode

    return int(inspect.signature(attention_decode).parameters["num_warps"].default)


def _merges(torch: Any, log: Any, strategy: str = "splitk", warps: int = 0) -> list[dict[str, Any]]:
    """Merge entries with their curve over WIDE_SPLITS: MERGE_CONFIGS and MLA's head blocks.

    MERGE_PROGRAMS programs on MERGE_PROGRAMS / s segments of s x MERGE_CHUNK keys, so each
    program streams MERGE_CHUNK keys whatever s and t(s) - t(1) is what merging s adds in
    `strategy`'s build of the kernel (split-K: s splits; stream-K: MERGE_PROGRAMS programs,
    one segment each; the builds' register allocations differ). Stream-K entries say so
    (`strategy: streamk`); split-K is the loader's default. Every entry names its programs'
    `num_warps`: the GQA kernel's default 4, or `warps` (then MERGE_CONFIGS only); MLA's 8.
    """

    def split(s: int) -> dict[str, Any]:
        if strategy == "streamk":
            return dict(strategy="streamk", programs=MERGE_PROGRAMS)
        return dict(strategy="splitk", splits=s)

    tag: dict[str, Any] = {"strategy": "streamk"} if strategy == "streamk" else {}
    gqa_warps = warps or _kernel_warps()
    out = []
    for e, f, group in MERGE_CONFIGS:
        ts = tuple(
            _timed(torch, MERGE_PROGRAMS // s, group, e, f, s * MERGE_CHUNK,
                   num_warps=gqa_warps, **split(s))
            for s in WIDE_SPLITS
        )  # fmt: skip
        out.append(dict(head_dim=e, value_dim=f, rows=_rows(group), **tag, num_warps=gqa_warps,
                        **_merge_curve(WIDE_SPLITS, ts)))  # fmt: skip
        log(f"  {strategy} merge {out[-1]}")
        torch.cuda.empty_cache()
    if warps:
        return out
    bn, w, st = MLA_TILING
    for hb in MLA_HEAD_BLOCKS:  # MLA: partial states of hb rows x the latent C (fp32)
        ts = tuple(
            _timed_mla(torch, MERGE_PROGRAMS // s, hb, s * MERGE_CHUNK, head_block=hb,
                       block_n=bn, num_warps=w, num_stages=st, **split(s))
            for s in WIDE_SPLITS
        )  # fmt: skip
        out.append(dict(head_dim=sum(MLA_DIMS), value_dim=MLA_DIMS[0], rows=hb, **tag,
                        num_warps=w, **_merge_curve(WIDE_SPLITS, ts)))  # fmt: skip
        log(f"  MLA {strategy} merge {out[-1]}")
        torch.cuda.empty_cache()
    return out


def measure_extension(torch: Any, log: Any) -> dict[str, Any]:
    """The `--extend` figures: EXTEND_CONFIGS' programs and profiles, `loads`, wide merges."""
    from attnsim.kernels.triton.common import num_sms

    sms = num_sms(torch.cuda.current_device())
    x = torch.empty(1, device="cuda")
    from attnsim.kernels.calibrate.microbench import empty_kernel

    floor = _bench_s(lambda: empty_kernel[(1,)](x))
    programs = [p for cfg in EXTEND_CONFIGS for p in _programs(torch, floor, cfg, sms, log)]
    profiles = [_profile(torch, floor, cfg, log) for cfg in EXTEND_CONFIGS]
    loads = [_load(torch, floor, cfg, log) for cfg in LOAD_CONFIGS]
    merges = _merges(torch, log)
    return {
        "programs": programs,
        "profiles": profiles,
        "loads": loads,
        "merges": merges,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "floor_us": round(floor * 1e6, 2),
    }


def measure_streamk_merges(torch: Any, log: Any) -> list[dict[str, Any]]:
    """Merge entries of the stream-K kernel (`strategy: streamk`), as the split-K ones."""
    return _merges(torch, log, "streamk")


def _timed_mla(torch: Any, segments: int, hb: int, seq: int, **kw: Any) -> float:
    """Seconds of one absorbed-MLA decode call on `segments` latent caches."""
    from attnsim.kernels.triton.attn_mla import attention_mla_decode

    dt = torch.bfloat16
    c, rr = MLA_DIMS
    ql = torch.randn(segments, hb, c, device="cuda", dtype=dt)
    qr = torch.randn(segments, hb, rr, device="cuda", dtype=dt)
    cache = torch.randn(segments, seq, c + rr, device="cuda", dtype=dt)
    call = functools.partial(attention_mla_decode, ql, qr, cache, None, 0.1, **kw)
    call()
    return _bench_s(call)


def measure(torch: Any, log: Any) -> dict[str, Any]:
    """Every figure of the decode calibration (see the module docstring)."""
    from attnsim.kernels.calibrate.microbench import empty_kernel, hbm_read_s, versions
    from attnsim.kernels.calibrate.microbench_steps import _host_per_call_us
    from attnsim.kernels.triton.attn_decode import attention_decode
    from attnsim.kernels.triton.common import num_sms

    sms = num_sms(torch.cuda.current_device())
    dt = torch.bfloat16
    x = torch.empty(1, device="cuda")
    floor = _bench_s(lambda: empty_kernel[(1,)](x))
    big = torch.ones(2**31, device="cuda", dtype=dt)
    read_bw = 2 * big.numel() / hbm_read_s(torch, big, _bench_s)
    del big
    log(f"do_bench floor {floor * 1e6:.2f} us, HBM read {read_bw / 1e9:.0f} GB/s")

    profiles: list[dict[str, Any]] = []
    programs: list[dict[str, Any]] = []
    profiles += [_profile(torch, floor, cfg, log) for cfg in (*CONFIGS[:3], *EXTEND_CONFIGS)]
    for cfg in (*CONFIGS, *EXTEND_CONFIGS):
        programs += _programs(torch, floor, cfg, sms, log)
    timed_mla = functools.partial(_timed_mla, torch)
    for hb in MLA_HEAD_BLOCKS:
        bn, w, st = MLA_TILING
        kw = dict(strategy="unsplit", head_block=hb, block_n=bn, num_warps=w, num_stages=st)
        curve = [timed_mla(ISOLATED, hb, n, **kw) for n in MLA_PROFILE_LENGTHS]
        entry = dict(
            head_dim=sum(MLA_DIMS), value_dim=MLA_DIMS[0], rows=hb, block_n=bn, num_warps=w,
            num_stages=st, **profile_points(MLA_PROFILE_LENGTHS, bn, curve, floor),
        )  # fmt: skip
        log(f"  MLA profile {entry}")
        profiles.append(entry)
        torch.cuda.empty_cache()
    for hb, per_sm in itertools.product(MLA_HEAD_BLOCKS, PER_SM):
        segments = ISOLATED if per_sm == 1 else per_sm * sms
        bn, w, st = MLA_TILING
        kw = dict(strategy="unsplit", head_block=hb, block_n=bn, num_warps=w, num_stages=st)
        try:
            mla_times = tuple(timed_mla(segments, hb, n, **kw) for n in MLA_LENGTHS)
        except Exception as exc:  # noqa: BLE001 - keep the other configurations
            log(f"  MLA head_block {hb} k={per_sm} failed: {exc}")
            continue
        slope, icpt = fit_line(tuple(n / bn for n in MLA_LENGTHS), mla_times)  # type: ignore[arg-type]
        entry = dict(
            head_dim=sum(MLA_DIMS), value_dim=MLA_DIMS[0], rows=hb, block_n=bn, num_warps=w,
            num_stages=st, programs_per_sm=per_sm, tile_us=round(slope * 1e6, 4),
            fixed_us=round(max(0.0, icpt - floor) * 1e6, 3),
        )  # fmt: skip
        log(f"  MLA program {entry}")
        if slope > 0:
            programs.append(entry)
        torch.cuda.empty_cache()
    merges = _merges(torch, log) + _merges(torch, log, "streamk")
    c, _ = MLA_DIMS
    mla = tuple((sum(MLA_DIMS), c, hb, *MLA_TILING) for hb in MLA_HEAD_BLOCKS)
    loads = [_load(torch, floor, cfg, log) for cfg in (*LOAD_CONFIGS, *mla)]
    q = torch.randn(1, 4, 1, 64, device="cuda", dtype=dt)
    kv = torch.randn(1, 1, 256, 64, device="cuda", dtype=dt)
    host = {}
    host_calls: tuple[tuple[str, dict[str, Any]], ...] = (
        ("unsplit", {}),
        ("splitk", {"splits": 4}),
        ("streamk", {"programs": sms}),
    )
    for strategy, kw in host_calls:
        host[strategy] = round(
            _host_per_call_us(
                torch,
                lambda kw=kw, strategy=strategy: attention_decode(
                    q, kv, kv, strategy=strategy, **kw
                ),
            ),
            2,
        )
    log(f"  host_call_us {host}")
    return {
        "device": torch.cuda.get_device_name(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": "kernels.calibrate.microbench_decode",
        "versions": versions(torch),
        "hbm_read_bandwidth_gb_per_s": round(read_bw / 1e9, 1),
        "host_call_us": host,
        "programs": programs,
        "profiles": profiles,
        "merges": merges,
        "loads": loads,
        "notes": [
            f"do_bench floor (empty kernel) {floor * 1e6:.2f} us subtracted from fixed_us",
            f"k = 1 figures from {ISOLATED} programs, k >= 2 from k x {sms} programs; "
            f"cache lengths {LENGTHS}",
        ],
    }


CONFIG_KEYS = ("head_dim", "value_dim", "rows", "block_n", "num_warps", "num_stages")
# what makes two entries of a section the same measurement (an update replaces it)
SECTION_KEYS = {
    "programs": (*CONFIG_KEYS, "programs_per_sm"),
    "profiles": CONFIG_KEYS,
    "loads": CONFIG_KEYS,
    "merges": ("head_dim", "value_dim", "rows", "strategy", "num_warps"),
    "builds": (*CONFIG_KEYS, "strategy"),
    "paged": (*CONFIG_KEYS, "page_size"),
}


def updated(record: dict[str, Any], fresh: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """`record` with each section's entries of `fresh` in place of the same measurements.

    Entries are the same measurement when their `SECTION_KEYS` agree (a merge without
    `strategy` is split-K's); the others are kept.
    """

    def key(section: str, e: dict[str, Any]) -> tuple[Any, ...]:
        default = {
            "strategy": "splitk",
            "num_warps": _kernel_warps() if section == "merges" else None,
        }
        return tuple(e.get(k, default.get(k)) for k in SECTION_KEYS[section])

    out = dict(record)
    for section, entries in fresh.items():
        new = {key(section, e) for e in entries}
        kept = [e for e in record.get(section, []) if key(section, e) not in new]
        out[section] = kept + entries
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure and write the YAML file, or update sections of an existing one."""
    import torch
    import yaml

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--merges-only",
        action="store_true",
        help="re-measure the split-K merges and replace them in the existing --out file",
    )
    mode.add_argument(
        "--extend",
        action="store_true",
        help="measure the 64-row configuration, `loads` and the split-K merges over 2-128 "
        "splits, and put them in the existing --out file",
    )
    mode.add_argument(
        "--mla-loads",
        action="store_true",
        help="measure MLA's `loads` (head blocks 16/32/64) and put them in the --out file",
    )
    mode.add_argument(
        "--streamk-merges",
        action="store_true",
        help="measure the stream-K kernel's merges and put them in the --out file",
    )
    mode.add_argument(
        "--empty",
        action="store_true",
        help="measure what a program that finds no tile costs (`empty_program_us`) and put "
        "it in the --out file",
    )
    mode.add_argument(
        "--builds",
        action="store_true",
        help="measure each kernel build's per-tile time (`builds`) and the merges at 8 warps, "
        "and put them in the --out file",
    )
    mode.add_argument(
        "--tunings",
        action="store_true",
        help="measure the tuned tilings' programs, profiles, loads and builds "
        "(microbench_decode_builds.TUNED_CONFIGS) and put them in the --out file",
    )
    mode.add_argument(
        "--paged",
        action="store_true",
        help="measure the per-tile time through a shuffled block table against contiguous "
        "(microbench_decode_builds.PAGED_CONFIGS) and put it in the --out file",
    )
    ap.add_argument("--raw", type=Path, help="with an update: also write the new figures here")
    args = ap.parse_args(argv)
    modes = (
        "merges_only", "extend", "mla_loads", "streamk_merges", "builds", "empty", "tunings",
        "paged",
    )  # fmt: skip
    update = any(getattr(args, m) for m in modes)
    if update and not args.out.is_file():
        ap.error(f"--out {args.out}: no such file (an update needs the calibration to update)")
    if not torch.cuda.is_available():
        print("microbench_decode needs a CUDA GPU", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fresh: dict[str, list[dict[str, Any]]] = {}
    empty: dict[str, float] = {}
    if args.merges_only:
        fresh, note = {"merges": _merges(torch, log)}, "split-K merges re-measured"
    elif args.streamk_merges:
        fresh, note = {"merges": _merges(torch, log, "streamk")}, "stream-K merges"
    elif args.mla_loads:
        from attnsim.kernels.calibrate.microbench import empty_kernel

        x = torch.empty(1, device="cuda")
        floor = _bench_s(lambda: empty_kernel[(1,)](x))
        c, _ = MLA_DIMS
        fresh = {"loads": [_load(torch, floor, (sum(MLA_DIMS), c, hb, *MLA_TILING), log)
                           for hb in MLA_HEAD_BLOCKS]}  # fmt: skip
        note = f"MLA loads, head blocks {MLA_HEAD_BLOCKS}"
    elif args.empty:
        from attnsim.kernels.calibrate.microbench_decode_builds import measure_empty

        empty = measure_empty(torch, log)
        note = "empty_program_us (programs that find no tile)"
    elif args.builds:
        from attnsim.kernels.calibrate.microbench_decode_builds import MERGE_WARPS, measure_builds

        fresh = measure_builds(torch, log)
        note = f"per-build tile times, merges at {MERGE_WARPS} warps (both builds)"
    elif args.tunings:
        from attnsim.kernels.calibrate.microbench_decode_builds import (
            TUNED_CONFIGS,
            measure_tunings,
        )

        fresh = measure_tunings(torch, log)
        note = f"tuned tilings {TUNED_CONFIGS}: programs, profiles, loads, builds"
    elif args.paged:
        from attnsim.kernels.calibrate.microbench_decode_builds import PAGE_SIZES, measure_paged

        fresh = measure_paged(torch, log)
        note = f"per-tile time through shuffled block tables of {PAGE_SIZES} keys per page"
    elif args.extend:
        ext = measure_extension(torch, log)
        fresh = {k: ext[k] for k in ("programs", "profiles", "loads", "merges")}
        note = (
            f"rows-64 programs and profile, loads (per-tile time over {LOAD_PROGRAMS} programs "
            f"at once), split-K merges over {WIDE_SPLITS[1:]} splits"
        )
    if update:
        from attnsim.einsum_ir.spec import read_yaml

        if args.raw:
            args.raw.write_text(yaml.safe_dump(fresh, sort_keys=False, width=100), "utf-8")
        record = updated(read_yaml(args.out), fresh)
        if args.empty:
            record["empty_program_us"] = empty
            if args.raw:
                args.raw.write_text(yaml.safe_dump({"empty_program_us": empty}), "utf-8")
        record.setdefault("notes", []).append(f"{stamp}: {note} (microbench_decode update)")
    else:
        record = measure(torch, log)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(yaml.safe_dump(record, sort_keys=False, width=100), encoding="utf-8")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
