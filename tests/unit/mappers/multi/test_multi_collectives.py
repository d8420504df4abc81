"""Alpha-beta collective costs against hand-computed values (Thakur et al. 2005; NCCL)."""

from __future__ import annotations

import math

import pytest

from attnsim.archs.interconnect import Cluster, Link, Measured, NcclCalibration
from attnsim.mappers.gpu.multi_collectives import collective, flat, p2p

# 1 us a step, 100 GB/s per direction inside a node; 10 us, 10 GB/s between nodes
NV = Link("nv", 100e9, 1e-6)
IB = Link("ib", 10e9, 10e-6)
CLUSTER = Cluster(NV, 8, IB)
MB = 1e6


def test_ring_formulas() -> None:
    n, p = 64 * MB, 8
    assert flat("all_gather", n, p, NV).seconds == pytest.approx(7e-6 + 7 / 8 * n / 100e9)
    assert flat("reduce_scatter", n, p, NV).seconds == pytest.approx(7e-6 + 7 / 8 * n / 100e9)
    assert flat("all_reduce", n, p, NV).seconds == pytest.approx(14e-6 + 2 * 7 / 8 * n / 100e9)
    assert flat("all_to_all", n, p, NV).seconds == pytest.approx(7e-6 + 7 / 8 * n / 100e9)
    assert flat("send_recv", n, 2, NV).seconds == pytest.approx(1e-6 + n / 100e9)


def test_tree_formulas_take_log2_p_steps() -> None:
    n, p = 1 * MB, 8
    ag = flat("all_gather", n, p, NV, "tree")
    assert ag.latency_s == pytest.approx(3e-6) and ag.bandwidth_s == pytest.approx(7 / 8 * n / 1e11)
    ar = flat("all_reduce", n, p, NV, "tree")
    assert ar.seconds == pytest.approx(6e-6 + 2 * 7 / 8 * n / 1e11)
    # small messages: the tree's fewer steps win; the bytes term is the same
    assert ag.seconds < flat("all_gather", n, p, NV).seconds


def test_one_device_costs_nothing() -> None:
    assert flat("all_gather", MB, 1, NV).seconds == 0.0


def test_hierarchical_all_gather_inter_then_intra() -> None:
    n, p = 64 * MB, 32  # 4 nodes of 8
    cost = collective(CLUSTER, "all_gather", n, p)
    inter = 3 * 10e-6 + 3 / 4 * (n / 8) / 10e9
    intra = 7 * 1e-6 + 7 / 8 * n / 100e9
    assert cost.seconds == pytest.approx(inter + intra)
    assert cost.inter_node_bytes == pytest.approx(3 / 4 * n / 8)
    assert cost.algorithm == "hierarchical-ring"


def test_hierarchical_all_reduce() -> None:
    n, p = 64 * MB, 16
    cost = collective(CLUSTER, "all_reduce", n, p)
    rs = 7e-6 + 7 / 8 * n / 1e11
    ar = 2 * 1 * 10e-6 + 2 * 1 / 2 * (n / 8) / 10e9
    assert cost.seconds == pytest.approx(rs + ar + rs)


def test_hierarchical_all_to_all_bound_by_the_slower_link() -> None:
    n, p = 64 * MB, 16
    cost = collective(CLUSTER, "all_to_all", n, p)
    lat = 7 * 1e-6 + 8 * 10e-6
    bw = max(7 / 16 * n / 100e9, 8 / 16 * n / 10e9)
    assert cost.seconds == pytest.approx(lat + bw)


def test_p2p_picks_the_link() -> None:
    assert p2p(CLUSTER, MB, False).seconds == pytest.approx(1e-6 + MB / 100e9)
    assert p2p(CLUSTER, MB, True).seconds == pytest.approx(10e-6 + MB / 10e9)


def test_across_nodes_without_inter_link_is_an_error() -> None:
    with pytest.raises(ValueError, match="no inter_node link"):
        collective(Cluster(NV, 8), "all_gather", MB, 16)


def test_calibration_fit_replaces_datasheet_alpha_beta() -> None:
    alpha, beta = 4e-6, 200e9  # "measured" from the formula itself: the fit recovers them
    rows = tuple(
        Measured("all_gather", "ring", 2, n, alpha + 0.5 * n / beta) for n in (1e3, 1e5, 1e7, 1e9)
    )
    cal = NcclCalibration("test-nccl", "intra_node", rows, "test-nccl.yaml")
    cost = collective(Cluster(NV, 8, IB, "test-nccl", cal), "all_gather", 1e8, 2)
    assert cost.seconds == pytest.approx(alpha + 0.5e8 / beta)
    assert math.isclose(cost.latency_s, alpha, rel_tol=1e-6)
