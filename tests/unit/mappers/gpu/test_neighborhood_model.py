"""mappers.gpu.neighborhood: the closed-form layout equals the kernel's host builder, and prices.

The numpy layout (`neighborhood_layout`, per-axis window bounds) is checked tile for tile
against `kernels.triton.neighborhood_layout.neighborhood_sparse` (torch, per-axis counts over
every query row) on 1-D and 2-D problems with borders, dilation, causal axes and row or 2-D
tiles; its visible pairs against the mask written plainly; the pricing against first
principles (a window as wide as the sequence is the dense layout; copies only when permuted).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.mappers.gpu.blocksparse import (
    BLOCK_SPARSE_ASSUMPTIONS,
    block_sparse_shape,
    evaluate_block_sparse,
    layout_of,
)
from attnsim.mappers.gpu.model import Tiling, device_rates
from attnsim.mappers.gpu.neighborhood import (
    NEIGHBORHOOD_ASSUMPTIONS,
    neighborhood_layout,
    neighborhood_result,
    neighborhood_shape,
    permute_time_s,
)

CASES = [  # image, kernel, dilation, causal, q tile, kv tile
    ((8, 8), 3, 1, False, (4, 4), (4, 4)),
    ((12, 10), 5, 2, False, (4, 4), (4, 4)),
    ((12, 10), (3, 5), (1, 2), (True, False), (4, 4), (4, 8)),
    ((21, 20), 9, 1, False, (8, 8), (4, 4)),
    ((16, 22), (3, 1), (3, 2), (True, False), (8, 4), (8, 8)),
    ((40, 64), 13, 1, False, (2, 64), (1, 64)),  # rows as tiles: row-major, nothing moves
    ((40, 64), 13, 1, False, (1, 32), (1, 16)),  # runs of a row: row-major too
    ((40, 48), 13, 1, False, (1, 32), (1, 16)),  # rows not a whole number of runs: permuted
    ((33, 37), 31, 1, False, (8, 16), (8, 8)),
    (181, 31, 1, False, (1, 16), (1, 16)),
    (60, 5, 3, True, (1, 32), (1, 16)),
    (500, 63, 4, False, (1, 64), (1, 32)),
]


def h200() -> GpuArch:
    arch = load_arch("h200")
    assert isinstance(arch, GpuArch)
    return arch


@pytest.mark.parametrize("case", CASES, ids=[str(c[:5]) for c in CASES])
def test_layout_matches_the_kernel_builder(case: tuple) -> None:  # type: ignore[type-arg]
    pytest.importorskip("torch")
    from attnsim.kernels.triton.neighborhood import neighborhood_mask
    from attnsim.kernels.triton.neighborhood_layout import Neighborhood, neighborhood_sparse

    g = Neighborhood.of(*case)
    bs = neighborhood_sparse(g)
    plan = neighborhood_layout(*case)
    lay = plan.layout
    assert (plan.permuted, plan.seq, plan.tokens) == (bs.is_permuted, bs.seq_q, g.tokens)
    assert lay.full == tuple(bs.full_counts[0, 0].tolist())
    assert lay.partial == tuple(bs.partial_counts[0, 0].tolist())
    assert (lay.block_q, lay.block_k, lay.key_tiles) == (bs.block_m, bs.block_n, bs.key_tiles)
    assert lay.points == int(neighborhood_mask(g).sum())


def test_2d_counts_from_first_principles() -> None:
    """16 x 16, 9 x 9, 4 x 4 tiles: per axis the four query bands see 3 key bands each, 2/1/1/2
    of them whole, so a query tile's counts are products: 9 visited, fy * fx full."""
    plan = neighborhood_layout((16, 16), 9, 1, False, (4, 4), (4, 4))
    whole = [2, 1, 1, 2]
    assert plan.layout.full == tuple(a * b for a in whole for b in whole)
    assert all(f + p == 9 for f, p in zip(plan.layout.full, plan.layout.partial, strict=True))
    assert plan.layout.points == 256 * 81 and plan.permuted and plan.seq == 256


def test_a_window_as_wide_as_the_sequence_is_the_dense_layout() -> None:
    plan = neighborhood_layout(8191, 8191, 1, False, (1, 128), (1, 64))
    dense = layout_of(8191, 8191, 128, 64)
    assert not plan.permuted and plan.seq == 8191
    assert (plan.layout.full, plan.layout.partial) == (dense.full, dense.partial)
    arch, t = h200(), Tiling(128, 64, 8, 3)
    ours = neighborhood_result(neighborhood_shape(1, 16, 128, plan), plan, t, arch)
    dense = replace(dense, window_bounds=4)  # its ragged last tiles masked as a window test
    theirs = evaluate_block_sparse(block_sparse_shape(1, 16, 8191, 8191, 128, dense), t, arch)
    assert ours.latency_s == pytest.approx(theirs.time_s, rel=1e-9)
    assert ours.extra("permute_us") == 0.0


def test_copies_are_priced_only_when_permuted() -> None:
    arch = h200()
    plan = neighborhood_layout((64, 64), 7, 2, False, (8, 16), (8, 8))
    shape = neighborhood_shape(2, 16, 128, plan, kv_heads=4)
    seconds, moved = permute_time_s(shape, plan, arch)
    rates = device_rates(arch, "bf16")
    rows = 2 * 16 * plan.seq + 2 * (2 * 4 * plan.seq) + 2 * 16 * plan.tokens
    assert moved == 2 * rows * 128 * 2
    per_byte = 1 / rates.hbm_read_bytes_per_s + 1 / rates.hbm_write_bytes_per_s
    assert seconds == pytest.approx(4 * rates.launch_s + rows * 128 * 2 * per_byte)
    r = neighborhood_result(shape, plan, Tiling(128, 64, 8, 3), arch)
    kernel = evaluate_block_sparse(shape, Tiling(128, 64, 8, 3), arch).time_s
    assert r.latency_s == pytest.approx(kernel + seconds)
    rows_plan = neighborhood_layout((64, 64), 7, 1, False, (2, 64), (1, 64))
    assert permute_time_s(neighborhood_shape(2, 16, 128, rows_plan), rows_plan, arch) == (0, 0)


def test_2d_tiles_beat_rows_on_a_large_neighborhood() -> None:
    """31 x 31 on 128 x 128: a row of 128 queries reaches 31 rows (3968 keys); an 8 x 16 tile
    reaches 38 x 46 (about 2200 keys in 8 x 8 tiles): faster even with the copies."""
    arch, t = h200(), Tiling(128, 64, 8, 3)
    times = {}
    for name, tiles in (("2d", ((8, 16), (8, 8))), ("rows", ((1, 128), (1, 64)))):
        plan = neighborhood_layout((128, 128), 31, 1, False, *tiles)
        times[name] = neighborhood_result(neighborhood_shape(1, 16, 128, plan), plan, t,
                                          arch).latency_s  # fmt: skip
    assert times["2d"] < 0.7 * times["rows"]
    small = neighborhood_layout((128, 128), 7, 1, False, (8, 16), (8, 8))
    large = neighborhood_layout((128, 128), 31, 1, False, (8, 16), (8, 8))
    assert sum(small.layout.full) + sum(small.layout.partial) < sum(large.layout.partial)


def test_the_result_says_what_it_assumed() -> None:
    plan = neighborhood_layout((32, 32), 7, 1, False, (8, 16), (8, 8))
    r = neighborhood_result(neighborhood_shape(4, 8, 64, plan), plan, Tiling(128, 64, 4, 3),
                            h200())  # fmt: skip
    assert set(NEIGHBORHOOD_ASSUMPTIONS) <= set(r.warnings)
    assert set(BLOCK_SPARSE_ASSUMPTIONS) <= set(r.warnings)
    assert r.flops == pytest.approx(4 * 4 * 8 * plan.layout.points * 64)
    assert plan.layout.points == 1024 * 49 and r.extra("tokens") == 1024
    assert r.cascade.endswith("(neighborhood layout)") and r.extra("permute_us") > 0


def test_bad_problems_are_refused() -> None:
    with pytest.raises(ValueError, match="must fit in the image"):
        neighborhood_layout((8, 8), 9)
    with pytest.raises(ValueError, match="must fit in the image"):
        neighborhood_layout(64, 4)
    with pytest.raises(ValueError, match="one tile must contain the other"):
        neighborhood_layout((32, 32), 3, 1, False, (8, 2), (2, 8))


def test_tile_sizes_are_cut_as_the_kernel_cuts_them() -> None:
    """Sizes instead of shapes: 1-D one row, 2-D near-square (the kernel's `tile_shape`);
    the defaults are the kernel's (128 x 64 tokens)."""
    two_d = neighborhood_layout((64, 64), 7, 1, False, (8, 16), (8, 8))
    assert neighborhood_layout((64, 64), 7) == two_d
    assert neighborhood_layout((64, 64), 7, 1, False, 128, 64) == two_d
    one_d = neighborhood_layout(4096, 63, 1, False, (1, 128), (1, 64))
    assert neighborhood_layout(4096, 63) == one_d
    pytest.importorskip("torch")
    from attnsim.kernels.triton.neighborhood_layout import (
        Neighborhood,
        neighborhood_sparse,
        tile_shape,
    )

    assert [tile_shape(b, 64) for b in (16, 32, 64, 128, 256)] == [
        (4, 4), (4, 8), (8, 8), (8, 16), (16, 16)
    ]  # fmt: skip
    for b in (16, 32, 256):
        plan = neighborhood_layout((48, 64), 7, 1, False, b, 32)
        bs = neighborhood_sparse(Neighborhood.of((48, 64), 7, 1, False, b, 32))
        assert plan.layout.full == tuple(bs.full_counts[0, 0].tolist())
        assert plan.layout.partial == tuple(bs.partial_counts[0, 0].tolist())


def test_the_measured_gaps_the_warnings_state_are_the_files() -> None:
    """The kernel-alone and copy ratios in NEIGHBORHOOD_ASSUMPTIONS come from the H200 file:
    per configuration, the kernel timed alone (tokens already in tile order) against the
    block-sparse prediction, and the call less the kernel against the copies' price."""
    import csv
    import re
    import statistics
    from pathlib import Path

    from attnsim.mappers.gpu.neighborhood import NEIGHBORHOOD_ASSUMPTIONS
    from attnsim.reports import validation_neighborhood as vn

    path = Path(__file__).parents[4] / "kernels" / "measurements" / "neighborhood"
    rows = list(csv.DictReader((path / "neighborhood-all-h200-2026-12-05-gather.csv").open()))
    cols = ("suite", "batch", "heads", "head_dim", "image_h", "image_w", "kernel_h",
            "kernel_w", "dilation_h", "dilation_w", "q_tile", "kv_tile", "num_warps")  # fmt: skip
    alone = {tuple(r[c] for c in cols): float(r["median_ms"]) for r in rows
             if r["family"] == "triton-neighborhood-kernel" and r["status"] == "ok"}  # fmt: skip
    arch = load_arch("h200")
    kernel, copies = [], []
    for r in rows:
        key = tuple(r[c] for c in cols)
        if r["family"] != "triton-neighborhood" or r["status"] != "ok" or key not in alone:
            continue
        image, kern, dil, causal = vn._problem(r)
        plan = neighborhood_layout(image, kern, dil, causal, vn._tile(r, "q_tile", "block_m"),
                                   vn._tile(r, "kv_tile", "block_n"))  # fmt: skip
        shape = neighborhood_shape(int(r["batch"]), int(r["heads"]), int(r["head_dim"]), plan)
        t = Tiling(*(int(r[c]) for c in ("block_m", "block_n", "num_warps", "num_stages")))
        kernel.append(alone[key] / (evaluate_block_sparse(shape, t, arch).time_s * 1e3))
        copies.append(
            (float(r["median_ms"]) - alone[key]) / (permute_time_s(shape, plan, arch)[0] * 1e3)
        )
    text = " ".join(NEIGHBORHOOD_ASSUMPTIONS)
    low, high, median = (
        float(x) for x in re.findall(r"ran ([\d.]+)-([\d.]+)x this \(median ([\d.]+)x", text)[0]
    )
    assert len(kernel) >= 12
    assert (min(kernel), max(kernel), statistics.median(kernel)) == pytest.approx(
        (low, high, median), abs=0.01
    )
    said = float(re.findall(r"they ran ([\d.]+)x this, median", text)[0])
    assert statistics.median(copies) == pytest.approx(said, abs=0.01)


def test_the_h200_steps_against_the_h100_steps_they_replaced() -> None:
    """NEIGHBORHOOD_ASSUMPTIONS' step ratio: the H200's microbenchmark (2026-12-06) over the
    H100's (2026-12-05), entry by entry; the H200 calibration holds the H200's."""
    import re
    from pathlib import Path

    import yaml

    from attnsim.mappers.gpu.neighborhood import NEIGHBORHOOD_ASSUMPTIONS

    root = Path(__file__).parents[4] / "kernels" / "measurements"
    h200 = root / "neighborhood" / "microbench-neighborhood-h200-2026-12-06.yaml"
    h100 = root / "h100" / "microbench-neighborhood-h100-2026-12-05.yaml"

    def steps(path: Path) -> dict[tuple[object, ...], float]:
        entries = yaml.safe_load(path.read_text())["attention_steps"]
        return {tuple(v for k, v in e.items() if k != "step_us"): e["step_us"] for e in entries}

    new, old = steps(h200), steps(h100)
    assert new.keys() == old.keys() and len(new) >= 20
    ratios = [new[k] / old[k] for k in new]
    low, high = (float(x) for x in re.findall(
        r"measured on it on 2026-12-06, ([\d.]+)-([\d.]+)x the H100's",
        " ".join(NEIGHBORHOOD_ASSUMPTIONS))[0])  # fmt: skip
    assert (round(min(ratios), 2), round(max(ratios), 2)) == (low, high)
    cal = load_arch("h200").calibration
    assert cal is not None
    held = {(p.mode, p.head_dim, p.block_m, p.block_n, p.num_warps, p.num_stages,
             p.blocks_per_sm): p.step_s * 1e6 for p in cal.attention_steps
            if p.mode.startswith("neighborhood")}  # fmt: skip
    assert {(k[0], *k[2:]): v for k, v in new.items()} == pytest.approx(held)


def test_measured_window_test_prices_exactly_its_tilings() -> None:
    """`DeviceRates.tested_steps`: the calibration's `neighborhood` and `neighborhood-full`
    steps of exactly the tiling (their difference: what the window test adds), else None
    (the test is then counted on the CUDA cores)."""
    rates = device_rates(load_arch("h200"), "bf16")
    cal = load_arch("h200").calibration
    assert cal is not None
    t = Tiling(128, 64, 4, 3)
    got = rates.tested_steps("neighborhood", 64, t, 1)
    assert got is not None
    steps = {p.mode: p.step_s for p in cal.attention_steps
             if (p.head_dim, p.block_m, p.block_n, p.num_warps, p.blocks_per_sm)
             == (64, 128, 64, 4, 1) and p.mode.startswith("neighborhood")}  # fmt: skip
    assert got == pytest.approx(
        (steps["neighborhood-full"], steps["neighborhood"] - steps["neighborhood-full"])
    )
    assert rates.tested_steps("neighborhood", 64, Tiling(64, 32, 4, 3), 1) is None
    assert rates.tested_steps("", 64, t, 1) is None


def test_the_key_loop_ratios_the_warning_states_are_the_h100_files() -> None:
    """The kept block-sparse key loop against the one before, on an H100 in one run: the
    microbenchmark's steps by mode and the suites' whole calls, as NEIGHBORHOOD_ASSUMPTIONS
    states them."""
    import csv
    import re
    from pathlib import Path

    import yaml

    from attnsim.mappers.gpu.neighborhood import NEIGHBORHOOD_ASSUMPTIONS

    h100 = Path(__file__).parents[4] / "kernels" / "measurements" / "h100"
    old_dir = h100 / "superseded"

    def steps(path: Path) -> dict[tuple[object, ...], float]:
        entries = yaml.safe_load(path.read_text())["attention_steps"]
        return {tuple(v for k, v in e.items() if k != "step_us"): e["step_us"] for e in entries}

    new = steps(h100 / "microbench-neighborhood-h100-2026-12-06.yaml")
    old = steps(old_dir / "microbench-neighborhood-h100-2026-12-06-before.yaml")
    ratios: dict[str, list[float]] = {"neighborhood-full": [], "neighborhood": []}
    for key, us in new.items():
        if key in old:
            ratios[str(key[0])].append(us / old[key])
    skip = ("status", "max_err", "timestamp")

    def rows(path: Path) -> dict[tuple[str, ...], float]:
        """Our whole calls by configuration (every column but the times and status)."""
        with path.open() as fh:
            return {
                tuple(v for k, v in r.items() if not k.endswith("_ms") and k not in skip): float(
                    r["median_ms"]
                )
                for r in csv.DictReader(fh)
                if r["family"] == "triton-neighborhood"
            }

    calls = []
    for suite in ("validation", "holdout"):
        a = rows(h100 / f"neighborhood-{suite}-h100-2026-12-06.csv")
        b = rows(old_dir / f"neighborhood-{suite}-h100-2026-12-06-before.csv")
        calls += [a[k] / b[k] for k in a if k in b]
    assert len(calls) == 30 and all(len(v) >= 10 for v in ratios.values())
    text = " ".join(NEIGHBORHOOD_ASSUMPTIONS)
    found = re.findall(
        r"untested step ran ([\d.]+)-([\d.]+)x those and its tested step "
        r"([\d.]+)-([\d.]+)x, whole neighborhood calls ([\d.]+)-([\d.]+)x",
        text,
    )
    assert found, text
    stated = [float(x) for x in found[0]]
    got = [
        min(ratios["neighborhood-full"]),
        max(ratios["neighborhood-full"]),
        min(ratios["neighborhood"]),
        max(ratios["neighborhood"]),
        min(calls),
        max(calls),
    ]
    assert [round(x, 2) for x in got] == stated
