"""MLA at DeepSeek-V3 sizes: which form (naive or absorbed) the GPU model says is faster, for
prefill and for decode, against both forms timed on an H200 (held out: never fitted).

`kernels/measurements/mla/mla-prefill-h200-2026-12-03.csv` (benchmarks/mla_prefill_probe.py):
per length, each form end to end (its projection matmuls plus SDPA on every backend that runs
it; the absorbed form's key dim 576 runs only on the efficient backend). The model prices our
kernels (gpu-1pass for prefill, gpu-decode for decode), not SDPA: only the verdict and its
direction are compared. Observed when written: prefill (1K-8K) naive 5.7-14.5x faster
measured, 3.4-3.9x predicted; decode (4K, 32K cache) absorbed 1.8x faster measured (through
SDPA's slow 576-dim backend), 3-11x predicted with our MLA decode kernel.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper

DATA = Path(__file__).parents[4] / "kernels" / "measurements" / "mla"
ROWS = list(csv.DictReader((DATA / "mla-prefill-h200-2026-12-03.csv").open()))


def _measured() -> dict[tuple[int, int], dict[str, float]]:
    """(P, M) -> form -> best total ms over the SDPA backends that ran it."""
    out: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    for r in ROWS:
        form = "absorbed" if r["form"].startswith("absorbed") else "naive"
        key = (int(r["seq_q"]), int(r["seq_k"]))
        t = float(r["total_ms"])
        out[key][form] = min(t, out[key].get(form, t))
    return out


def _predicted_ms(form: str, p: int, m: int) -> float:
    mapper = "gpu-decode" if p == 1 else "gpu-1pass"
    sizes = dict(B=1, P=p, M=m, E=128, F=128)
    r = get_mapper(mapper)().map(load_cascade(f"attention-mla-{form}"), load_arch("h200"), sizes)
    return r.latency_s * 1e3


@pytest.mark.parametrize("p, m", sorted(_measured()), ids=lambda v: str(v))
def test_model_picks_the_measured_faster_form(p: int, m: int) -> None:
    measured = _measured()[(p, m)]
    assert set(measured) == {"naive", "absorbed"}
    faster = min(measured, key=measured.__getitem__)
    assert faster == ("absorbed" if p == 1 else "naive")  # the data say what MLA is known for
    model = {f: _predicted_ms(f, p, m) for f in measured}
    assert min(model, key=model.__getitem__) == faster, (model, measured)


def test_both_forms_computed_the_same_function() -> None:
    errs = [float(r["max_abs_err"]) for r in ROWS if r["form"] != "naive"]
    assert errs and max(errs) < 0.05
