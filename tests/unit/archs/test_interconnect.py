"""Interconnects as data: link presets, a GPU's cluster, NCCL calibration files and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnsim.archs.interconnect import (
    LINKS_DIR,
    Link,
    fit_link,
    link_names,
    load_link,
    load_nccl_calibration,
)
from attnsim.archs.load import load_arch, load_arch_text, preset_path
from attnsim.einsum_ir.spec import SpecError

H200 = preset_path("h200").read_text(encoding="utf-8")
BASE = H200.split("interconnect:")[0]


def with_interconnect(block: str) -> str:
    return BASE + block


@pytest.mark.parametrize("name", link_names())
def test_every_link_preset_loads(name: str) -> None:
    link = load_link(name)
    assert link.name == name and link.bandwidth_bytes_per_s > 0 and link.sources


def test_datasheet_figures() -> None:
    assert load_link("nvlink4").bandwidth_bytes_per_s == 450e9  # 900 GB/s bidirectional
    assert load_link("ib-ndr-400").bandwidth_bytes_per_s == 50e9  # 400 Gb/s
    assert load_link("pcie5-x16").bandwidth_bytes_per_s == 64e9
    assert load_link("nvlink4").is_latency_estimate


@pytest.mark.parametrize("preset", ["h200", "h100-sxm", "a100-sxm"])
def test_gpu_presets_name_their_cluster(preset: str) -> None:
    cluster = load_arch(preset).interconnect
    assert cluster is not None and cluster.devices_per_node == 8
    assert cluster.inter_node is not None and cluster.nodes(64) == 8


def test_inline_link_and_defaults() -> None:
    arch = load_arch_text(
        with_interconnect(
            "interconnect:\n"
            "  intra_node: {link: pcie, bandwidth_gb_per_s: 32, latency_us: 8, topology: ring}\n"
            "  devices_per_node: 4\n"
        )
    )
    cluster = arch.interconnect  # type: ignore[union-attr]
    assert cluster is not None and cluster.inter_node is None
    assert cluster.intra_node == Link("pcie", 32e9, 8e-6, "ring")


def test_bad_interconnect_names_file_line_and_field() -> None:
    text = with_interconnect(
        "interconnect:\n"
        "  intra_node: nvlink5\n"
        "  devices_per_node: 0\n"
        "  inter_node: {link: ib, bandwidth_gb_per_s: -1, latency_us: 5, topology: torus}\n"
        "  nics: 8\n"
    )
    line = BASE.count("\n") + 1
    with pytest.raises(SpecError) as err:
        load_arch_text(text, "bad.yaml")
    messages = [str(p) for p in err.value.problems]
    assert f"bad.yaml:{line + 1}:15: interconnect.intra_node: unknown link 'nvlink5'" in messages[0]
    assert any(
        m.startswith(f"bad.yaml:{line + 2}:21: interconnect.devices_per_node: expected a positive")
        for m in messages
    )
    assert any(
        f"bad.yaml:{line + 3}:" in m and "interconnect.inter_node.bandwidth_gb_per_s" in m
        for m in messages
    )
    assert any(
        "interconnect.inter_node.topology: expected one of switch, ring" in m for m in messages
    )
    assert any(
        f"bad.yaml:{line + 4}:9: interconnect.nics: unknown key 'nics'" in m for m in messages
    )


def test_missing_intra_node_is_reported() -> None:
    with pytest.raises(SpecError, match=r"interconnect: missing required key 'intra_node'"):
        load_arch_text(with_interconnect("interconnect: {devices_per_node: 8}\n"))


CAL = """calibration: test-nccl
device: two GPUs
link: intra_node
measurements:
  - {collective: all_gather, devices: 2, bytes: 1000000, seconds: 1.0e-5}
  - {collective: all_gather, devices: 2, bytes: 100000000, seconds: 2.6e-4}
  - {collective: send_recv, devices: 2, bytes: 100000000, seconds: 5.0e-4}
"""


def test_calibration_file_fits_alpha_and_beta(tmp_path: Path) -> None:
    path = tmp_path / "test-nccl.yaml"
    path.write_text(CAL, encoding="utf-8")
    cal = load_nccl_calibration(path)
    assert cal is not None and len(cal.measurements) == 3
    fitted = fit_link(load_link("nvlink4"), cal, "all_gather")
    # t = alpha + n / (2 beta): 1e-5 = a + 5e5/b, 2.6e-4 = a + 5e7/b
    beta = (5e7 - 5e5) / (2.6e-4 - 1e-5)
    assert fitted.bandwidth_bytes_per_s == pytest.approx(beta)
    assert fitted.latency_s == pytest.approx(1e-5 - 5e5 / beta)
    assert fitted.fitted_from == "test-nccl.yaml" and not fitted.is_latency_estimate


def test_bad_calibration_file(tmp_path: Path) -> None:
    path = tmp_path / "bad-nccl.yaml"
    path.write_text(
        "calibration: x\nlink: nvlink\nmeasurements:\n"
        "  - {collective: allgather, devices: 1, bytes: 10, seconds: -1}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as err:
        load_nccl_calibration(path)
    text = str(err.value)
    assert "bad-nccl.yaml:2:7: link: expected intra_node or inter_node" in text
    assert "bad-nccl.yaml:4:18: measurements[0].collective: expected one of" in text
    assert "measurements[0].devices: expected at least 2 devices" in text
    assert "measurements[0].seconds: expected a positive number" in text


def test_links_dir_is_not_an_arch_preset_folder() -> None:
    assert LINKS_DIR.parent.name == "presets"
    from attnsim.archs.load import preset_names

    assert "nvlink4" not in preset_names()


@pytest.mark.parametrize("preset", ["h200", "h100-sxm", "a100-sxm"])
def test_inline_preset_links_match_the_link_presets(preset: str) -> None:
    """The GPU presets give their links inline (so a preset reads alone); they must agree."""
    cluster = load_arch(preset).interconnect
    assert cluster is not None and cluster.inter_node is not None
    for link in (cluster.intra_node, cluster.inter_node):
        ref = load_link(link.name)
        assert (link.bandwidth_bytes_per_s, link.latency_s, link.topology) == (
            ref.bandwidth_bytes_per_s,
            ref.latency_s,
            ref.topology,
        )
        assert link.is_latency_estimate == ref.is_latency_estimate
