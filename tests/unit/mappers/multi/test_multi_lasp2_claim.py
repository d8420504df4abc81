"""LASP-2's claim over Ring Attention at the paper's scale, as the model sees it.

Sun et al., "LASP-2: Rethinking Sequence Parallelism for Linear Attention and Its Hybrid"
(arXiv 2502.07563, 2025), abstract and sec. 5: LASP-2 trains Linear-Llama3 +36.6% faster
(throughput) than Ring Attention at 2048K tokens on 64 GPUs. We take Linear-Llama3-1B's
attention layer as 16 heads of 128 (hidden 2048), batch 1, Lightning-2's linear attention
(`attention-lightning-2`), forward, on DGX A100-class nodes (a100-sxm: 8 GPUs on NVLink 3,
one HDR 200 Gb/s NIC per GPU); the same holds on h200 nodes.

What the model gives (not fitted to the claim): the direction holds, and the gain is far
larger than the paper's. The assumption that drives it: Ring Attention sends its K/V block
(N/p tokens x 16 heads x 256 x 2 bytes = 268 MB at 2048K / 64) p - 1 = 63 times in
sequence, each step bound by the slowest hop (between nodes, 25 GB/s), while LASP-2 sends
one AllGather of E x F states whose size does not grow with N. The paper's measured +36.6%
is end to end (every layer, forward and backward, with the MLPs); even adding the layer's
dense matmuls at the tensor-core peak (below) leaves the model's gain an order of magnitude
above the paper's, so the paper's Ring Attention must hide or shrink its K/V traffic in ways
this model does not credit (see the report).
"""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.registry import get_mapper

N = 2048 * 1024
DEVICES = 64
SIZES = {"B": 1, "H": 16, "E": 128, "F": 128, "P": N, "M": N}
PAPER_GAIN = 0.366
# Linear-Llama3-1B per layer: Q, K, V, O projections (4 d^2) and the SwiGLU MLP (3 d x 8192)
DENSE_PARAMS_PER_LAYER = 4 * 2048**2 + 3 * 2048 * 8192


def schemes(preset: str) -> tuple[dict[str, float], dict[str, float], float]:
    arch = load_arch(preset)
    cascade = load_cascade("attention-lightning-2")
    ring = get_mapper("gpu-ring-attention")(devices=DEVICES).map(cascade, arch, SIZES)
    lasp2 = get_mapper("gpu-lasp2")(devices=DEVICES).map(cascade, arch, SIZES)
    dense_s = 2 * DENSE_PARAMS_PER_LAYER * (N // DEVICES) / arch.tensor_flops_per_s("bf16")
    r = {**dict(ring.extras), "latency_s": ring.latency_s}
    x = {**dict(lasp2.extras), "latency_s": lasp2.latency_s}
    return r, x, dense_s


@pytest.mark.parametrize("preset", ["a100-sxm", "h200"])
def test_lasp2_beats_ring_attention_at_2048k_on_64_devices(preset: str) -> None:
    ring, lasp2, dense_s = schemes(preset)
    attention_gain = ring["latency_s"] / lasp2["latency_s"] - 1
    layer_gain = (ring["latency_s"] + dense_s) / (lasp2["latency_s"] + dense_s) - 1
    assert attention_gain > layer_gain > PAPER_GAIN  # the direction, and at least the size
    # the driving assumption: the ring's 63 sends of a 268 MB block dominate its time ...
    assert ring["block_bytes"] == pytest.approx(N / DEVICES * 16 * 256 * 2)
    assert ring["comm_s"] > 0.9 * ring["latency_s"]
    assert ring["comm_hidden_fraction"] < 0.1
    # ... while LASP-2's one AllGather of 16 x 128 x 128 fp32 states hides under its compute
    assert lasp2["state_bytes"] == 16 * 128 * 128 * 4
    assert lasp2["comm_hidden_fraction"] == 1.0


def test_the_model_gives_a_much_larger_gain_than_the_paper() -> None:
    """Recorded, not fitted: on a100-sxm the layer-level gain is >10x, not +36.6%."""
    ring, lasp2, dense_s = schemes("a100-sxm")
    layer_gain = (ring["latency_s"] + dense_s) / (lasp2["latency_s"] + dense_s) - 1
    assert layer_gain > 10
