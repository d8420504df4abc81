"""gpu-decode on latent attention (MLA): the absorbed and the naive form, and the H200 data.

The measured side: `kernels/measurements/decode/decode-splits-h200-2026-12-03.csv`, suites
mla-*: the absorbed kernel (kernels.triton.attn_mla) and the naive form (the latent cache
up-projected by torch matmuls, then SDPA), DeepSeek-V2/V3 dims (C 512, rope 64).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.view import MappingError

FILE = Path(__file__).parents[4] / "kernels/measurements/decode/decode-splits-h200-2026-12-03.csv"
SIZES = dict(B=1, P=1, M=32768, E=128, F=128)  # H=128, C=512, R=64 are the cascades' params


def _map(name: str, **sizes: int):  # type: ignore[no-untyped-def]
    return get_mapper("gpu-decode")().map(load_cascade(name), load_arch("h200"), {**SIZES, **sizes})


def test_absorbed_reads_the_latent_once() -> None:
    r = _map("attention-mla-absorbed")
    assert r.extra("kv_cache_bytes") == 1 * 32768 * (512 + 64) * 2
    assert r.extra("rows_per_program") == 32
    assert {"kernel_QC_us", "kernel_AV_us"} <= {k for k, _ in r.extras}
    assert any("MLA absorbed" in w for w in r.warnings)


def test_naive_pays_the_up_projection() -> None:
    r = _map("attention-mla-naive")
    ups = [v for k, v in r.extras if k.startswith("kernel_") and k.endswith("_us")]
    assert ups and r.latency_s * 1e6 > sum(ups)
    # the up-projected K and V of 128 heads are written for every cached key
    assert r.dram_traffic_bytes > 128 * 32768 * (128 + 128) * 2


@pytest.mark.parametrize("batch, seq_k", [(1, 32768), (1, 131072), (16, 4096), (32, 2048)])
def test_model_and_measurement_agree_absorbed_wins_decode(batch: int, seq_k: int) -> None:
    absorbed = _map("attention-mla-absorbed", B=batch, M=seq_k).latency_s
    naive = _map("attention-mla-naive", B=batch, M=seq_k).latency_s
    assert absorbed < naive
    with FILE.open() as fh:
        rows = [
            r for r in csv.DictReader(fh)
            if r["suite"].startswith("mla") and (int(r["batch"]), int(r["seq_k"])) == (batch, seq_k)
            and r["heads"] == "128"
        ]  # fmt: skip
    best_absorbed = min(float(r["kernel_ms"]) for r in rows)
    naive_ms = [float(r["naive_ms"]) for r in rows if math.isfinite(float(r["naive_ms"]))]
    assert rows and naive_ms and best_absorbed < min(naive_ms)


def test_mla_prefill_is_refused_with_the_reason() -> None:
    with pytest.raises(MappingError, match="one query per sequence"):
        _map("attention-mla-absorbed", P=16)
