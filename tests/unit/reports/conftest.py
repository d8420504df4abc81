"""Fixtures for the report tests: a small synthetic sweep built like the store's rows."""

from __future__ import annotations

import hashlib

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.fusemax import FuseMaxMapper, FuseMaxOptions
from attnsim.mappers.workloads import MODELS
from attnsim.reports.page.report import ReportData

# A design label and a failure message full of HTML metacharacters: the page must show them
# as text.
NASTY_DESIGN = '<b>fused & "tiled"</b>'
NASTY_ERROR = "MappingError: buffer <script>alert('x')</script> & too small"


def _row(result: Result, design: str, point: dict[str, object]) -> dict[str, object]:
    point_id = hashlib.sha256(repr((design, sorted(point.items()))).encode()).hexdigest()[:16]
    return {
        "point_id": point_id,
        "status": "ok",
        **result.to_row(),
        "edp_js": result.energy_pj * 1e-12 * result.latency_s,
        "design": design,
        **{f"point.{key}": value for key, value in point.items()},
    }


def build_report_data() -> ReportData:
    """FuseMax (three array sides), FLAT, unfused and one odd-named design, two models, three
    lengths; one failure."""
    models = {m.name: m for m in (MODELS.values() if isinstance(MODELS, dict) else MODELS)}
    one = load_cascade("attention-1pass-mh")
    three = load_cascade("attention-3pass-mh")
    fusemax, flat = load_arch("fusemax"), load_arch("flat")
    rows: list[dict[str, object]] = []
    results: list[Result] = []
    for model in ("BERT", "T5"):
        for seq_len in (1024, 4096, 16384):
            sizes = models[model].attention_sizes(seq_len)
            base = {"workload.model": model, "workload.seq_len": seq_len}
            for side in (64, 128, 256):
                arch = fusemax.with_overrides(array_shapes={"array_2d": (side, side)})
                result = FuseMaxMapper(FuseMaxOptions("binding")).map(one, arch, sizes)
                rows.append(_row(result, "fusemax/binding", {**base, "arch.array_2d": side}))
                results.append(result)
            for design, mapper in (("flat", "flat"), ("unfused", "unfused")):
                result = get_mapper(mapper)().map(three, flat, sizes)
                rows.append(_row(result, design, {**base, "arch.array_2d": 256}))
                results.append(result)
    odd = FuseMaxMapper(FuseMaxOptions("arch")).map(
        one, fusemax, models["BERT"].attention_sizes(512)
    )
    rows.append(
        _row(
            odd,
            NASTY_DESIGN,
            {"workload.model": "BERT", "workload.seq_len": 512, "arch.array_2d": 256},
        )
    )
    results.append(odd)
    failures: list[dict[str, object]] = [
        {
            "point_id": "f00d",
            "error": NASTY_ERROR,
            "point.workload.model": "XLM",
            "point.workload.seq_len": 1 << 20,
            "point.arch.array_2d": 16,
        }
    ]
    return ReportData(
        rows=rows,
        failures=failures,
        results=results,
        objectives=[("latency_s", "min"), ("energy_pj", "min"), ("area_um2", "min")],
        experiment="synthetic <sweep>",
        has_results_csv=True,
    )


@pytest.fixture(scope="session")
def report_data() -> ReportData:
    return build_report_data()
