"""gpu-decode: the work partitions, the mapper's choices and its refusals."""

from __future__ import annotations

import itertools

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.kernels.spec import decode_partition
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.view import MappingError

GQA = "attention-1pass-gqa"


def _expand(runs):  # type: ignore[no-untyped-def]
    return [p for c, p in runs for _ in range(c)]


def _owners(seg_tiles: tuple[int, ...], programs: int) -> list[int]:
    """Brute force: the stream-K owner of every flattened tile."""
    total = sum(seg_tiles)
    owner = []
    for t in range(total):
        owner.append(
            next(
                p
                for p in range(programs)
                if p * total // programs <= t < (p + 1) * total // programs
            )
        )
    return owner


@pytest.mark.parametrize(
    "seg_tiles, programs",
    [((10, 10), 3), ((5,), 8), ((7, 1, 13, 2), 5), ((64,) * 8, 132), ((3, 9), 12)],
)
def test_streamk_partition_matches_brute_force(seg_tiles: tuple[int, ...], programs: int) -> None:
    progs = _expand(decode_partition(seg_tiles, "streamk", programs=programs))
    assert len(progs) == programs
    owner = _owners(seg_tiles, programs)
    starts = [0, *itertools.accumulate(seg_tiles)]
    for p, prog in enumerate(progs):
        mine = [t for t, o in enumerate(owner) if o == p]
        assert prog.tiles == len(mine)
        segs = {
            next(s for s in range(len(seg_tiles)) if starts[s] <= t < starts[s + 1]) for t in mine
        }
        assert prog.pieces == len(segs)
        split = [s for s in segs if len({owner[t] for t in range(starts[s], starts[s + 1])}) > 1]
        assert prog.partials == len(split)
        merges = sum(
            len({owner[t] for t in range(starts[s], starts[s + 1])})
            for s in split
            if owner[starts[s + 1] - 1] == p
        )
        assert prog.merges == merges


@pytest.mark.parametrize("seg_tiles, splits", [((10, 10), 4), ((3,), 8), ((17, 64, 1), 5)])
def test_splitk_partition(seg_tiles: tuple[int, ...], splits: int) -> None:
    progs = _expand(decode_partition(seg_tiles, "splitk", splits))
    assert len(progs) == splits * len(seg_tiles)
    for s, t in enumerate(seg_tiles):
        mine = progs[s * splits : (s + 1) * splits]
        assert sum(p.tiles for p in mine) == t
        contributors = [p for p in mine if p.tiles]
        if len(contributors) > 1:
            assert sum(p.merges for p in mine) == len(contributors)
            assert all(p.partials == 1 for p in contributors)
        else:
            assert sum(p.merges + p.partials for p in mine) == 0


def test_bad_partitions_raise() -> None:
    with pytest.raises(ValueError, match="strategy"):
        decode_partition((4,), "ring")
    with pytest.raises(ValueError, match="at least one key tile"):
        decode_partition((4, 0), "unsplit")
    with pytest.raises(ValueError, match="programs"):
        decode_partition((4,), "streamk")


def _map(arch: str = "h200", **opts: object):  # type: ignore[no-untyped-def]
    sizes = dict(opts.pop("sizes", {}))  # type: ignore[call-overload]
    base = dict(B=1, G=8, R=4, E=128, F=128, P=1, M=131072)
    return get_mapper("gpu-decode")(**opts).map(
        load_cascade(GQA), load_arch(arch), {**base, **sizes}
    )


def test_long_cache_at_batch_one_is_split_and_hbm_bound() -> None:
    r = _map()
    assert dict(r.options)["strategy"] in ("splitk", "streamk")
    unsplit = _map(strategy="unsplit")
    assert unsplit.latency_s > 3 * r.latency_s  # 8 programs stream 537 MB
    assert unsplit.bound.startswith("occupancy")
    # streams near HBM's bound: 128+ programs whose cache bytes take >= 80% of the GPU time
    assert r.extra("hbm_us") <= r.latency_s * 1e6
    assert r.extra("hbm_us") >= 0.8 * r.extra("gpu_us")
    kv = 2 * 8 * 131072 * 128 * 2
    assert r.extra("kv_cache_bytes") == kv


def test_gqa_reads_g_over_h_of_mha_cache() -> None:
    gqa = _map(sizes=dict(G=8, R=4))
    mha = _map(sizes=dict(G=32, R=1))
    ratio = gqa.extra("kv_cache_bytes") / mha.extra("kv_cache_bytes")
    assert ratio == pytest.approx(8 / 32)
    assert gqa.latency_s < mha.latency_s


def test_ragged_lengths_price_only_cached_keys() -> None:
    lens = (1000, 131072, 5, 20000)
    r = _map(seq_lens=lens, sizes=dict(B=4))
    assert r.extra("kv_cache_bytes") == sum(lens) * 8 * 2 * 128 * 2
    with pytest.raises(MappingError, match="4 lengths for a batch of 2"):
        _map(seq_lens=lens, sizes=dict(B=2))
    with pytest.raises(MappingError, match="exceed"):
        _map(seq_lens=(10, 200000), sizes=dict(B=2))


def test_refusals_name_the_reason() -> None:
    with pytest.raises(MappingError, match="P = 1"):
        _map(sizes=dict(P=16))
    with pytest.raises(MappingError, match="mask keeps"):
        get_mapper("gpu-decode")().map(
            load_cascade("attention-1pass-mh-causal"), load_arch("h200"),
            dict(B=1, H=8, E=64, F=64, P=1, M=4096),
        )  # fmt: skip
    with pytest.raises(MappingError, match="options"):
        get_mapper("gpu-decode")(strategy="ring")


def test_uncalibrated_gpu_says_so() -> None:
    r = _map("a100-sxm")
    assert any("no decode calibration" in w for w in r.warnings)
    assert r.latency_s > 0
    # first its own family's expected error; no claim of measured decode figures
    assert r.warnings[0].startswith("UNCALIBRATED a100-sxm:")
    assert "decode kernel" in r.warnings[0]
    assert not any("measured profile" in w for w in r.warnings)
    assert any("no decode calibration: nothing of the decode kernels measured" in w
               for w in r.warnings)  # fmt: skip


def test_a_sibling_gpu_takes_the_decode_figures_transferred_and_says_so() -> None:
    """The H100 (no figures of its own) takes the H200's decode figures, HBM bandwidth scaled
    by the datasheets: its stream-K call at 128K is HBM-bound at 4.8 / 3.35 the H200's time."""
    h100, h200 = _map("h100-sxm", strategy="streamk"), _map("h200", strategy="streamk")
    assert h100.warnings[0].startswith("UNCALIBRATED h100-sxm:")
    assert "the transfer's error on the H100" in h100.warnings[0]
    assert any(w.startswith("decode figures transferred") and "HBM read bandwidth x 0.698" in w
               for w in h100.warnings)  # fmt: skip
    assert not any("no decode calibration" in w for w in h100.warnings)
    assert 1.3 < h100.latency_s / h200.latency_s < 1.45


def test_figures_of_another_tiling_are_named() -> None:
    """A tiling the decode calibration has no profile of is priced on another's, and says
    which; the default tiling and a tuned one, measured whole, carry no such note (the tuned
    (128, 8, 3) did until 2026-12-07: its profile, recorded with a 0-tile point, was dropped
    unread and the note wrongly said none was measured)."""
    sizes = dict(B=1, G=8, R=4, M=32768, E=128, F=128, P=1)
    cascade, arch = load_cascade(GQA), load_arch("h200")
    two = get_mapper("gpu-decode")(block_n=64, num_warps=8, num_stages=2).map(cascade, arch, sizes)
    named = [w for w in two.warnings if w.startswith("no time-over-tiles profile")]
    assert named == [
        "no time-over-tiles profile measured at (block_n, warps, stages) (64, 8, 2): that of "
        "head dim 128, value dim 128, 16 rows, (block_n, warps, stages) (64, 8, 3), its "
        "streaming scaled by this tiling's measured per-tile time and its start unscaled"
    ]
    for tiling in ((64, 4, 2), (128, 8, 3)):
        own = get_mapper("gpu-decode")(
            block_n=tiling[0], num_warps=tiling[1], num_stages=tiling[2]
        ).map(cascade, arch, sizes)
        assert not any(w.startswith("no time-over-tiles") or w.startswith("no load curve")
                       for w in own.warnings), tiling  # fmt: skip


def test_warnings_describe_the_decode_kernel_not_the_prefill_ones() -> None:
    """The shared cascade reading's prefill-kernel notes (ping-pong, 2-pass) are replaced."""
    r = get_mapper("gpu-decode")().map(
        load_cascade("attention-decode-gqa"), load_arch("h200"),
        dict(B=1, G=8, R=4, M=32768, E=128, F=128, P=1),
    )  # fmt: skip
    assert not any("ping-pong" in w or "no Triton kernel implements" in w for w in r.warnings)
    assert any("4 query heads of a K/V head share a program's query tile (16 rows" in w
               for w in r.warnings)  # fmt: skip
    assert any("keeps every cached key" in w for w in r.warnings)


def test_fixed_strategy_and_splits_are_honoured() -> None:
    r = _map(strategy="splitk", splits=4)
    assert dict(r.options)["splits"] == 4 and r.extra("programs") == 4 * 8
    r = _map(strategy="streamk", programs=200)
    assert r.extra("programs") == 200


def test_split_k_cascade_fixes_the_splits() -> None:
    """attention-splitk-gqa states its split count (M2 = M / (M1 x M0)); gpu-decode uses it."""
    base = dict(B=1, G=8, R=4, E=128, F=128, P=1, M=131072)
    mapper, arch = get_mapper("gpu-decode")(), load_arch("h200")
    cascade = load_cascade("attention-splitk-gqa")
    many = mapper.map(cascade, arch, base)
    two = mapper.map(cascade, arch, {**base, "M1": 256})  # 131072 / (256 x 256) = 2 splits
    assert dict(two.options)["splits"] == 2 and dict(many.options)["splits"] > 2
    assert two.latency_s > 3 * many.latency_s
    assert any(w.startswith("split-K cascade: 2 splits") for w in two.warnings)
    with pytest.raises(MappingError, match="contradict"):
        get_mapper("gpu-decode")(strategy="streamk").map(cascade, arch, base)


@pytest.mark.parametrize("mapper", ["gpu-1pass", "gpu-2pass", "gpu-unfused"])
def test_prefill_mappers_refuse_split_k(mapper: str) -> None:
    with pytest.raises(MappingError, match="split-K"):
        get_mapper(mapper)().map(
            load_cascade("attention-splitk-gqa"), load_arch("h200"),
            dict(B=1, G=8, R=4, E=64, F=64, P=1, M=8192),
        )  # fmt: skip


def test_bad_decode_calibration_names_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from attnsim.archs.calibration.decode import load_decode_calibration
    from attnsim.einsum_ir.spec import SpecError

    bad = tmp_path / "x-decode.yaml"
    bad.write_text("device: X\ndate: '2026'\nsource: s\nprograms:\n  - {head_dim: -1}\n")
    with pytest.raises(SpecError) as err:
        load_decode_calibration(bad)
    assert f"{bad}:5" in str(err.value) and "head_dim" in str(err.value)


def _points(tiles_us: dict[int, float]):  # type: ignore[no-untyped-def]
    from attnsim.archs.calibration.decode import ProgramPoint

    return tuple(
        ProgramPoint(576, 512, 16, 32, 8, 2, k, t * 1e-6, 10e-6) for k, t in tiles_us.items()
    )


@pytest.mark.parametrize(
    "tiles_us, share_us",
    [
        ({1: 2.0, 2: 4.2, 4: 8.1}, 2.025),  # time grows with k: the SM's throughput is shared
        ({1: 1.5, 2: 2.0, 4: 3.7}, 0.0),  # latency-bound: co-resident programs overlap
        ({1: 2.0}, 0.0),  # nothing measured at k >= 2
    ],
)
def test_programs_sharing_an_sm_split_its_throughput_when_measured_so(
    tiles_us: dict[int, float], share_us: float
) -> None:
    from attnsim.archs.calibration.decode import DecodeCalibration
    from attnsim.mappers.gpu.decode_figures import _sm_share

    cal = DecodeCalibration("dev", "today", "test", programs=_points(tiles_us))
    assert _sm_share(cal, cal.programs[0], 132) * 1e6 == pytest.approx(share_us)


def test_programs_slowed_by_a_full_hbm_do_not_share_the_sm() -> None:
    """k x 132 programs of 32 x (576 + 512) bf16 tiles at 4.2 us per tile stream 4.4 TB/s:
    at a 4 TB/s GPU's HBM bound the growth with k is HBM's, not the SM's; at 40 TB/s, the SM's.
    """
    from attnsim.archs.calibration.decode import DecodeCalibration
    from attnsim.mappers.gpu.decode_figures import _sm_share

    points = _points({1: 2.0, 2: 4.2})
    slow = DecodeCalibration("dev", "t", "test", hbm_read_bandwidth_bytes_per_s=4e12,
                             programs=points)  # fmt: skip
    fast = DecodeCalibration("dev", "t", "test", hbm_read_bandwidth_bytes_per_s=40e12,
                             programs=points)  # fmt: skip
    assert _sm_share(slow, points[0], 132) == 0.0
    assert _sm_share(fast, points[0], 132) * 1e6 == pytest.approx(2.1)


def test_mla_split_k_over_the_sms_runs_in_waves() -> None:
    """The H200's compiled MLA kernel (16 rows) takes 140 registers: one program per SM
    (`builds`' resident_per_sm), so 264 programs run in two waves and must not look twice
    as fast as 128."""
    from attnsim.kernels.spec import AttnShape
    from attnsim.mappers.gpu.decode import decode_calibration, decode_problem, time_decode
    from attnsim.mappers.gpu.rates import device_rates

    arch = load_arch("h200")
    shape = AttnShape(1, 128, 1, 32768, 576, 512, False, "bf16", 2, kv_group=128)
    p = decode_problem(shape, (), shared_kv=True, head_block=16)
    rates, cal = device_rates(arch, "bf16"), decode_calibration(arch)
    one = time_decode(p, "splitk", 16, 0, (32, 8, 2), rates, cal)  # 128 programs
    two = time_decode(p, "splitk", 33, 0, (32, 8, 2), rates, cal)  # 264 programs
    assert cal is not None and cal.resident(576, 512, 16, (32, 8, 2), "splitk") == 1
    assert (one.per_sm, two.per_sm) == (1, 1)
    assert two.time_s > 0.8 * one.time_s


def test_paged_cache_is_priced_as_contiguous_and_says_so() -> None:
    """At 2 stages a paged call of a tiling without a measured paged factor ((64, 8, 2) on
    the H200) is priced as the contiguous one (no block-table term)."""
    tiling = dict(block_n=64, num_warps=8, num_stages=2)
    flat = _map(sizes=dict(B=4), **tiling)
    paged = _map(page_size=256, sizes=dict(B=4), **tiling)
    assert paged.latency_s == flat.latency_s
    assert any(
        "paged KV cache (256 keys per page)" in w and "2 pipeline stages" in w
        for w in paged.warnings
    )
    assert not any("paged" in w for w in flat.warnings)
    with pytest.raises(MappingError, match="page_size 96 is no multiple of block_n 64"):
        _map(page_size=96, block_n=64)


def test_paged_cache_runs_no_deeper_pipeline() -> None:
    """Through a block table a 4-stage tiling streams like its 2-stage build (the tile loads
    wait for the page index); on a contiguous cache the 4 stages are faster. On the H200
    both tilings have measured paged factors (`microbench_decode --paged`, 2026-12-06), which
    say so on their own: (64, 4, 4) 1.58 us a tile paged, 0.95 contiguous; (64, 4, 2) 1.59."""
    opts = dict(strategy="splitk", splits=4, block_n=64, num_warps=4)  # 32 programs
    deep, shallow = dict(opts, num_stages=4), dict(opts, num_stages=2)
    contiguous = _map(**deep).latency_s
    paged = _map(**deep, page_size=256)
    assert paged.latency_s > 1.3 * contiguous
    assert paged.latency_s == pytest.approx(_map(**shallow, page_size=256).latency_s, rel=0.05)
    assert any("measured per-tile time of tiling (64, 4, 4)" in w for w in paged.warnings)
