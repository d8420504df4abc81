"""The decode builds probe (benchmarks/decode_builds_probe.py) and what its H100 run found."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
FOUND = ROOT / "kernels" / "measurements" / "decode" / "decode-builds-h100-2026-12-06.yaml"


@pytest.fixture(scope="module")
def probe(benchmark_module):  # type: ignore[no-untyped-def]
    return benchmark_module("decode_builds_probe")


def test_every_build_is_compiled_once(probe) -> None:  # type: ignore[no-untyped-def]
    runs = probe.runs()
    assert len(runs) == len(set(runs))
    ragged_streamk = [r for r in runs if r[1] == "streamk" and r[3]]
    assert len(ragged_streamk) == len(probe.CONFIGS) * 2 * len(probe.BATCH_BLOCKS)
    assert all(r[4] == 2 for r in runs if not (r[1] == "streamk" and r[3]))
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        assert probe.main(["--out", "/dev/null"]) == 2


def _held(builds, cfg, paged: bool, batch_block: int) -> int:  # type: ignore[no-untyped-def]
    e, bn, w, st = cfg
    return next(
        b["resident_per_sm"] for b in builds
        if (b["head_dim"], b["block_n"], b["num_warps"], b["num_stages"]) == (e, bn, w, st)
        and b["strategy"] == "streamk" and b["ragged"] and b["paged"] == paged
        and b["batch_block"] == batch_block
    )  # fmt: skip


def test_the_h100_run_matches_the_calibrations_builds_and_finds_batch_dependent_ones() -> None:
    """The contiguous fixed-length builds have the registers the H200's `builds` recorded;
    the paged, ragged stream-K build of (64, 8, 3) crosses the 2-per-SM step by batch."""
    builds = yaml.safe_load(FOUND.read_text(encoding="utf-8"))["builds"]
    cal = yaml.safe_load((ROOT / "archs" / "calibration" / "h200-decode.yaml").read_text("utf-8"))
    recorded = {
        (b["head_dim"], b["rows"], b["block_n"], b["num_warps"], b["num_stages"], b["strategy"]):
        b["registers"] for b in cal["builds"] if "registers" in b
    }  # fmt: skip
    same = [
        (b["registers"], recorded[key])
        for b in builds
        if "registers" in b and not b["paged"] and not b["ragged"]
        and (key := (b["head_dim"], b["rows"], b["block_n"], b["num_warps"], b["num_stages"],
                     b["strategy"])) in recorded
    ]  # fmt: skip
    assert len(same) == 21 and all(a == b for a, b in same)
    cfg = (128, 64, 8, 3)
    assert [_held(builds, cfg, True, n) for n in (4, 8, 16, 32)] == [1, 2, 1, 2]
