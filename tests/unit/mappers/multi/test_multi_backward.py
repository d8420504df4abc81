"""The sequence-parallel mappers' backward and their DRAM traffic: step sums, refusals, 1 device."""

from __future__ import annotations

import dataclasses

import pytest

from attnsim.archs.interconnect import Cluster, Link
from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.gpu.multi_blocks import block, block_bwd, rates_of, roofline, softmax_problem
from attnsim.mappers.gpu.multi_ring import merge
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.view import MappingError

CAUSAL = load_cascade("attention-1pass-mh-causal")
DENSE = load_cascade("attention-1pass-mh")
BWD_CAUSAL = load_cascade("attention-1pass-bwd-mh-causal")
BWD_DENSE = load_cascade("attention-1pass-bwd-mh")
LINEAR = load_cascade("attention-lightning-2")
MODEL = {"B": 1, "H": 16, "E": 128, "F": 128}
SCHEMES = ("gpu-ring-attention", "gpu-ulysses", "gpu-lasp2h")


def sizes(n: int) -> dict[str, int]:
    return {**MODEL, "P": n, "M": n}


def with_link(gb_per_s: float, alpha_us: float = 0.0):  # type: ignore[no-untyped-def]
    link = Link("test", gb_per_s * 1e9, alpha_us * 1e-6)
    return dataclasses.replace(load_arch("h200"), interconnect=Cluster(link, 8, link))


def run(mapper: str, cascade, arch, n: int, **options):  # type: ignore[no-untyped-def]
    return get_mapper(mapper)(**options).map(cascade, arch, sizes(n))


@pytest.mark.parametrize("mapper", SCHEMES)
def test_one_device_backward_is_gpu_bwd(mapper: str) -> None:
    """The backward built-in, or the forward with direction: backward: gpu-bwd's own time."""
    arch = load_arch("h200")
    single = get_mapper("gpu-bwd")().map(BWD_CAUSAL, arch, sizes(4096))
    built_in = run(mapper, BWD_CAUSAL, arch, 4096, devices=1)
    by_option = run(mapper, CAUSAL, arch, 4096, devices=1, direction="backward")
    assert built_in.latency_s == by_option.latency_s == single.latency_s
    assert built_in.dram_traffic_bytes == single.dram_traffic_bytes > 0


@pytest.mark.parametrize("mapper", SCHEMES)
def test_backward_built_in_is_the_backward_option(mapper: str) -> None:
    arch = load_arch("h200")
    built_in = run(mapper, BWD_CAUSAL, arch, 16384, devices=4)
    by_option = run(mapper, CAUSAL, arch, 16384, devices=4, direction="backward")
    forward = run(mapper, CAUSAL, arch, 16384, devices=4)
    assert built_in.latency_s == by_option.latency_s > forward.latency_s
    assert built_in.flops == pytest.approx(2.5 * forward.flops)
    assert dict(built_in.options)["direction"] == "backward"  # what was priced, not the default
    assert any("is a backward built-in: priced as the backward" in w for w in built_in.warnings)


def test_ring_backward_steps() -> None:
    """p = 4, no mask: K/V go p-1 hops, the fp32 dK/dV p hops (the last exposed)."""
    n, p = 16384, 4
    c = n // p
    kv = 16 * c * 256 * 2  # K and V of 16 heads, bf16
    grad = 16 * c * 256 * 4  # fp32 dK, dV
    for gb_per_s in (2000.0, 5.0):
        arch = with_link(gb_per_s, alpha_us=2.0)
        problem = softmax_problem("t", DENSE, sizes(n), "bf16", backward=True)
        bwd = block_bwd(problem, arch, c, c, False)
        q_bytes = 16 * c * 128 * 4
        acc = roofline(rates_of(arch, "bf16"), 0.0, 2 * (q_bytes + grad), q_bytes + grad)
        send_kv = 2e-6 + kv / (gb_per_s * 1e9)
        send_grad = 2e-6 + grad / (gb_per_s * 1e9)
        expected = (
            max(bwd.seconds, send_kv)
            + 2 * (max(bwd.seconds, send_kv + send_grad) + acc.seconds)
            + max(bwd.seconds, send_grad) + acc.seconds
            + send_grad
        )  # fmt: skip
        result = run("gpu-ring-attention", BWD_DENSE, arch, n, devices=p)
        assert result.latency_s == pytest.approx(expected, rel=1e-12)
        ex = dict(result.extras)
        assert ex["sent_bytes_per_device"] == pytest.approx(3 * kv + 4 * grad)
        assert ex["comm_s"] == pytest.approx(3 * send_kv + 4 * send_grad)
        dram = 4 * (bwd.read_bytes + bwd.write_bytes) + 3 * (acc.read_bytes + acc.write_bytes)
        assert result.dram_traffic_bytes == pytest.approx(dram)
    assert result.bound == "communication"


def test_ring_forward_dram_is_the_blocks_and_merges() -> None:
    arch = load_arch("h200")
    n, p = 32768, 4
    c = n // p
    problem = softmax_problem("t", DENSE, sizes(n), "bf16")
    blk = block(problem, arch, c, c, False)
    fold = merge(arch, "bf16", 16 * c, 128)
    result = run("gpu-ring-attention", DENSE, arch, n, devices=p)
    per_step = blk.read_bytes + blk.write_bytes
    assert result.dram_traffic_bytes == pytest.approx(
        p * per_step + 3 * (fold.read_bytes + fold.write_bytes)
    )
    # a block's bytes are gpu-1pass's own at that shape
    single = get_mapper("gpu-1pass")().map(DENSE, arch, sizes(c))
    assert per_step == pytest.approx(single.dram_traffic_bytes)
    hbm = [t for t in result.traffic if t.level == "hbm"]
    assert sum(t.total_bytes for t in hbm) == pytest.approx(result.dram_traffic_bytes)


@pytest.mark.parametrize("mapper", ["gpu-ring-attention", "gpu-lasp2"])
def test_linear_forward_dram_is_summed(mapper: str) -> None:
    arch = load_arch("h200")
    result = run(mapper, LINEAR, arch, 65536, devices=4)
    chunk = get_mapper("gpu-lightning")().map(LINEAR, arch, sizes(16384))
    assert result.dram_traffic_bytes > chunk.dram_traffic_bytes > 0


def test_ulysses_backward_sends_the_forward_bytes_in_reverse() -> None:
    arch = with_link(100.0, alpha_us=1.0)
    n, p = 16384, 4
    fwd = dict(run("gpu-ulysses", CAUSAL, arch, n, devices=p).extras)
    bwd = dict(run("gpu-ulysses", BWD_CAUSAL, arch, n, devices=p).extras)
    assert bwd["all_to_all_before_s"] == pytest.approx(fwd["all_to_all_after_s"])  # dO ~ O
    assert bwd["all_to_all_after_s"] == pytest.approx(fwd["all_to_all_before_s"])  # dQKV ~ QKV
    problem = softmax_problem("t", CAUSAL, sizes(n), "bf16")
    assert bwd["local_attention_s"] == block_bwd(problem, arch, n, n, True, heads=4).seconds


def test_lasp2h_backward_reduce_scatters_fp32_gradients() -> None:
    arch = with_link(100.0, alpha_us=1.0)
    n, p = 16384, 4
    ex = dict(run("gpu-lasp2h", BWD_CAUSAL, arch, n, devices=p, balance="contiguous").extras)
    grads = 16 * n * 256 * 4
    assert ex["reduce_scatter_s"] == pytest.approx(3e-6 + 3 / 4 * grads / 100e9)
    assert ex["allgather_s"] == pytest.approx(3e-6 + 3 / 4 * (grads / 2) / 100e9)


def test_backward_refusals_say_why() -> None:
    arch = load_arch("h200")
    with pytest.raises(MappingError, match="backward of linear attention is not modelled"):
        run("gpu-lasp2", LINEAR, arch, 65536, devices=4, direction="backward")
    with pytest.raises(MappingError, match="backward of linear attention is not modelled"):
        run("gpu-ring-attention", LINEAR, arch, 65536, devices=1, direction="backward")
    with pytest.raises(MappingError, match="stored scores"):
        run("gpu-ring-attention", load_cascade("attention-3pass-bwd-mh"), arch, 8192, devices=2)
    with pytest.raises(MappingError, match="backward's tiling is searched"):
        run("gpu-ulysses", CAUSAL, arch, 8192, devices=2, direction="backward", block_m=128,
            block_n=64, num_warps=4, num_stages=3)  # fmt: skip
