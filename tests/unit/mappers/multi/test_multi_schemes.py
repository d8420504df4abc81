"""The sequence-parallel mappers: ring overlap, zig-zag balance, refusals, 1 device exact."""

from __future__ import annotations

import dataclasses

import pytest

from attnsim.archs.interconnect import Cluster, Link
from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.gpu.multi_blocks import block, softmax_problem
from attnsim.mappers.gpu.multi_ring import merge
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.view import MappingError

CAUSAL = load_cascade("attention-1pass-mh-causal")
DENSE = load_cascade("attention-1pass-mh")
LINEAR = load_cascade("attention-lightning-2")
MODEL = {"B": 1, "H": 16, "E": 128, "F": 128}


def sizes(n: int) -> dict[str, int]:
    return {**MODEL, "P": n, "M": n}


def with_link(gb_per_s: float, alpha_us: float = 0.0, per_node: int = 8):  # type: ignore[no-untyped-def]
    """The H200 with one hand-made link (bandwidth per direction, alpha)."""
    link = Link("test", gb_per_s * 1e9, alpha_us * 1e-6)
    return dataclasses.replace(load_arch("h200"), interconnect=Cluster(link, per_node, link))


def run(mapper: str, cascade, arch, n: int, **options):  # type: ignore[no-untyped-def]
    return get_mapper(mapper)(**options).map(cascade, arch, sizes(n))


@pytest.mark.parametrize("mapper", ["gpu-ring-attention", "gpu-ulysses", "gpu-lasp2h"])
def test_one_device_is_the_single_gpu_result(mapper: str) -> None:
    arch = load_arch("h200")
    single = get_mapper("gpu-1pass")().map(CAUSAL, arch, sizes(4096))
    result = run(mapper, CAUSAL, arch, 4096, devices=1)
    assert result.latency_s == single.latency_s
    assert result.flops == single.flops and result.mapper == mapper


@pytest.mark.parametrize("mapper", ["gpu-ring-attention", "gpu-lasp2"])
def test_one_device_linear_is_gpu_lightning(mapper: str) -> None:
    arch = load_arch("h200")
    single = get_mapper("gpu-lightning")().map(LINEAR, arch, sizes(8192))
    assert run(mapper, LINEAR, arch, 8192, devices=1).latency_s == single.latency_s


def test_ring_step_overlaps_send_with_the_block() -> None:
    """p = 4, no mask: 4 blocks of N/4; 3 sends of K and V, each under a block's attention."""
    n, p = 16384, 4
    c = n // p
    block_bytes = 16 * c * (128 + 128) * 2  # K and V of 16 heads, bf16
    for gb_per_s in (1000.0, 5.0):  # compute-bound, then communication-bound
        arch = with_link(gb_per_s, alpha_us=2.0)
        problem = softmax_problem("t", DENSE, sizes(n), "bf16")
        blk = block(problem, arch, c, c, False).seconds
        send = 2e-6 + block_bytes / (gb_per_s * 1e9)
        fold = merge(arch, "bf16", 16 * c, 128).seconds
        expected = max(blk, send) + 2 * (max(blk, send) + fold) + blk + fold
        result = run("gpu-ring-attention", DENSE, arch, n, devices=p)
        assert result.latency_s == pytest.approx(expected, rel=1e-12)
        ex = dict(result.extras)
        assert ex["comm_s"] == pytest.approx(3 * send)
        assert ex["comm_hidden_fraction"] == pytest.approx(min(blk, send) / send)
        assert ex["sent_bytes_per_device"] == pytest.approx(3 * block_bytes)
        assert ex["step1.comm_bound"] == (1.0 if send > blk else 0.0)
    assert result.bound == "communication"  # 5 GB/s: the sends bound the ring


def test_zigzag_halves_the_causal_imbalance() -> None:
    """Contiguous: every later step waits for a whole block; zig-zag: half of one."""
    arch = load_arch("h200")
    n, p = 65536, 8
    contiguous = dict(
        run("gpu-ring-attention", CAUSAL, arch, n, devices=p, balance="contiguous").extras
    )
    zigzag = dict(run("gpu-ring-attention", CAUSAL, arch, n, devices=p, balance="zigzag").extras)
    ratio = zigzag["step_compute_s"] / contiguous["step_compute_s"]
    assert 0.45 < ratio < 0.6
    assert zigzag["compute_s"] < 0.6 * contiguous["compute_s"]


def test_ulysses_refuses_heads_that_do_not_split() -> None:
    arch = load_arch("h200")
    with pytest.raises(MappingError, match="16 heads do not split over 32 devices"):
        run("gpu-ulysses", CAUSAL, arch, 65536, devices=32)
    with pytest.raises(MappingError, match="heads must be a multiple of the devices"):
        get_mapper("gpu-ulysses")(devices=8).map(CAUSAL, arch, {**sizes(8192), "H": 12})


def test_ulysses_comm_is_two_all_to_alls() -> None:
    arch = with_link(100.0, alpha_us=1.0)
    n, p = 16384, 4
    result = run("gpu-ulysses", CAUSAL, arch, n, devices=p)
    c = n // p
    qkv, out = c * 16 * (128 * 3) * 2, c * 16 * 128 * 2
    expected = 2 * 3e-6 + 3 / 4 * (qkv + out) / 100e9
    assert dict(result.extras)["comm_s"] == pytest.approx(expected)
    assert dict(result.extras)["comm_hidden_fraction"] == 0.0


def test_lasp2_communication_is_independent_of_the_sequence() -> None:
    arch = load_arch("h200")
    comm = [dict(run("gpu-lasp2", LINEAR, arch, n, devices=16).extras) for n in (65536, 1 << 20)]
    assert comm[0]["comm_s"] == comm[1]["comm_s"] > 0
    assert comm[0]["sent_bytes_per_device"] == comm[1]["sent_bytes_per_device"]
    ring = [
        dict(run("gpu-ring-attention", LINEAR, arch, n, devices=16).extras)
        for n in (65536, 1 << 20)
    ]
    assert ring[1]["comm_s"] > 10 * ring[0]["comm_s"]  # K/V blocks grow with the sequence


def test_multi_node_ring_crosses_the_nic() -> None:
    arch = load_arch("h200")
    result = run("gpu-ring-attention", CAUSAL, arch, 65536, devices=16)
    assert dict(result.extras)["inter_node_bytes_per_device"] > 0
    assert any("ib-ndr-400" in w for w in result.warnings)
    assert any("datasheet" in w for w in result.warnings)


def test_link_bandwidth_option_overrides_the_link() -> None:
    arch = load_arch("h200")
    slow = run("gpu-ring-attention", DENSE, arch, 16384, devices=8, link_gb_per_s=1.0)
    fast = run("gpu-ring-attention", DENSE, arch, 16384, devices=8)
    assert slow.latency_s > fast.latency_s
    assert any("1 GB/s per direction" in w for w in slow.warnings)


def test_unfilled_nodes_are_refused() -> None:
    arch = load_arch("h200")
    with pytest.raises(MappingError, match="do not fill whole nodes of 8"):
        run("gpu-ring-attention", CAUSAL, arch, 12288, devices=12)
    with pytest.raises(MappingError, match="names no interconnect"):
        run("gpu-lasp2h", CAUSAL, _no_link(), 8192, devices=2)


def _no_link():  # type: ignore[no-untyped-def]
    return dataclasses.replace(load_arch("h200"), interconnect=None)


def test_lasp2h_gathers_kv_once() -> None:
    arch = with_link(100.0, alpha_us=1.0)
    n, p = 16384, 4
    ex = dict(run("gpu-lasp2h", CAUSAL, arch, n, devices=p, balance="contiguous").extras)
    gathered = 16 * n * 256 * 2
    assert ex["gathered_bytes"] == gathered
    assert ex["allgather_s"] == pytest.approx(3e-6 + 3 / 4 * gathered / 100e9)
