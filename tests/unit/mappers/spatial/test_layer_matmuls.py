from __future__ import annotations

import csv
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.layer_matmuls import LayerMatmulsMapper, LayerMatmulsOptions
from attnsim.mappers.spatial.view import MappingError
from attnsim.mappers.workloads import LENGTHS, MODELS

REF = Path(__file__).resolve().parents[5] / "shared" / "reference" / "fusemax"


def _rows(name: str) -> list[dict[str, str]]:
    if not (REF / name).exists():
        return []  # no reference data: the parametrized test is reported as skipped
    with open(REF / name) as f:
        return [{k: v for k, v in r.items() if k} for r in csv.DictReader(f)]


CASES = [("end2end-flat.csv", "flat", r) for r in _rows("end2end-flat.csv")] + [
    ("end2end-proposal.csv", "fusemax", r) for r in _rows("end2end-proposal.csv")
]


def _id(x: object) -> str:
    return x if isinstance(x, str) else f"{x['model']}-{x['seq_len']}"  # type: ignore[index]


@pytest.mark.parametrize(("table", "preset", "row"), CASES, ids=_id)
def test_matches_artifact(table: str, preset: str, row: dict[str, str]) -> None:
    m = MODELS[row["model"]]
    sizes = {
        "B": m.batch,
        "P": LENGTHS[row["seq_len"]],
        "D": m.d_model,
        "S": m.d_ff,
        "H": m.heads,
        "E": m.head_dim,
    }
    res = LayerMatmulsMapper().map(None, load_arch(preset), sizes)
    assert res.dram_traffic_bytes == pytest.approx(float(row["traffic"]), rel=0.01)
    assert res.latency_s == pytest.approx(float(row["latency"]), rel=0.01)
    assert res.energy_pj == pytest.approx(float(row["energy"]), rel=0.02)


def test_options_equal_sizes() -> None:
    arch = load_arch("flat")
    m = MODELS["T5"]
    a = get_mapper("layer-matmuls")(model="T5", seq_len=4096).map(None, arch, {})
    b = LayerMatmulsMapper().map(
        None, arch, {"B": 64, "P": 4096, "D": m.d_model, "S": m.d_ff, "H": m.heads, "E": m.head_dim}
    )
    assert a.energy_pj == b.energy_pj and a.latency_s == b.latency_s
    assert [e.einsum for e in a.per_einsum] == [
        "Q_proj",
        "K_proj",
        "V_proj",
        "O_proj",
        "FFN1",
        "FFN2",
    ]


def test_missing_sizes_and_unknown_model() -> None:
    with pytest.raises(MappingError, match="missing D, S"):
        LayerMatmulsMapper().map(None, load_arch("flat"), {"B": 1, "P": 8, "H": 2, "E": 4})
    with pytest.raises(MappingError, match="model: expected one of '', 'BERT'"):
        LayerMatmulsOptions(model="GPT")
