"""benchmarks/fwd_order_probe.py: the shapes and tilings it times, and its H100 record."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
RUN = ROOT / "kernels" / "measurements" / "h100" / "fwd-order-h100-2026-12-06.csv"


@pytest.fixture(scope="module")
def probe(benchmark_module):  # type: ignore[no-untyped-def]
    return benchmark_module("fwd_order_probe")


def test_each_causal_shape_takes_its_fastest_plain_tiling(probe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fields = ("family", "batch", "heads", "seq_q", "seq_k", "head_dim", "causal", "block_m",
              "block_n", "num_warps", "num_stages", "median_ms", "schedule")  # fmt: skip
    rows = [
        ("triton-1pass", 1, 4, 512, 512, 64, 1, 64, 64, 4, 3, 0.2, "plain"),
        ("triton-1pass", 1, 4, 512, 512, 64, 1, 128, 64, 4, 3, 0.1, "plain"),
        ("triton-1pass", 1, 4, 512, 512, 64, 1, 128, 128, 8, 3, 0.05, "pingpong"),
        ("triton-1pass", 1, 4, 512, 512, 64, 0, 128, 128, 8, 3, 0.01, "plain"),
        ("triton-2pass", 1, 4, 512, 512, 64, 1, 128, 128, 8, 3, 0.01, "plain"),
        ("triton-1pass", 1, 4, 128, 512, 64, 1, 128, 128, 8, 3, 0.01, "plain"),
    ]
    path = tmp_path / "m.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        w.writerows(rows)
    assert probe.best_plain((path,)) == {(1, 4, 4, 512, 64): (128, 64, 4, 3)}
    assert len(probe.best_plain()) == 49
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        assert probe.main(["--out", str(tmp_path / "o.csv")]) == 2


def test_the_h100_record_is_what_the_readme_states() -> None:
    rows = list(csv.DictReader(RUN.open()))
    assert rows and all(r["status"] == "ok" and float(r["max_diff"]) == 0.0 for r in rows)
    by: dict[tuple[str, ...], dict[int, float]] = {}
    for r in rows:
        key = tuple(r[k] for k in ("batch", "heads", "kv_heads", "seq", "head_dim"))
        by.setdefault(key, {})[int(r["head_group"])] = float(r["median_ms"])
    ratios = [d[8] / d[1] for d in by.values()]
    text = (ROOT / "kernels" / "measurements" / "h100" / "README.md").read_text("utf-8")
    stated = (
        f"Group 8 over head-major: geomean {statistics.geometric_mean(ratios):.3f}x, "
        f"{min(ratios):.3f}x to {max(ratios):.3f}x"
    )
    assert len(by) == 49 and stated in text, stated
