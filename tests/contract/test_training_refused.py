"""Backward (training) built-ins on every mapper: priced as a backward or refused saying so.

gpu-bwd and fusemax model a fused backward dataflow (DK and DV summed over the queries;
fusemax's is tested in tests/unit/mappers/spatial/test_fusemax_bwd.py and refuses the 3-pass
backward), and unfused prices any cascade Einsum by Einsum (every intermediate through DRAM:
its cost does not depend on which rank is the key), saying in its warnings that the cascade
is a backward. The sequence-parallel mappers (gpu-ring-attention, gpu-ulysses, gpu-lasp2,
gpu-lasp2h) price the 1-pass backward built-ins as their schemes' backward, one device as
gpu-bwd's Result (tests/unit/mappers/multi/test_multi_backward.py).
Every other mapper must refuse the training family with a `MappingError` that says it is a
backward cascade, never price it as forward attention. The structure analysis refuses them
too, with `BackwardCascadeError`. New mappers and new backward built-ins are picked up.
"""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.einsum_ir.analysis.structure import BackwardCascadeError, attention_problem
from attnsim.einsum_ir.library import training_names
from attnsim.mappers.registry import get_mapper, mapper_names
from attnsim.mappers.spatial.view import MappingError

SIZES = {"B": 1, "H": 2, "G": 2, "R": 2, "P": 512, "M": 1024, "E": 64, "F": 64}
# every mapper but gpu-bwd (the backward kernel's model), fusemax and flat (their fused
# backward; flat's is tested in tests/unit/mappers/spatial/test_flat_bwd.py), unfused
# (Einsum by Einsum), layer-matmuls (no cascade) and the sequence-parallel schemes (their
# backward by gpu-bwd's model)
SEQUENCE_PARALLEL = ("gpu-ring-attention", "gpu-ulysses", "gpu-lasp2", "gpu-lasp2h")
PRICED = ("layer-matmuls", "gpu-bwd", "fusemax", "flat", "unfused", *SEQUENCE_PARALLEL)
MAPPERS = [m for m in mapper_names() if m not in PRICED]


def _sizes(name: str) -> dict[str, int]:
    symbols = set(load_cascade(name).size_symbols)
    return {k: v for k, v in SIZES.items() if k in symbols}


@pytest.mark.parametrize("name", training_names())
def test_structure_refuses_backward_cascades(name: str) -> None:
    with pytest.raises(BackwardCascadeError, match="indexed by the key rank M"):
        attention_problem(load_cascade(name), _sizes(name))


@pytest.mark.parametrize("name", ["attention-1pass-bwd-mh", "attention-3pass-bwd-gqa-causal"])
@pytest.mark.parametrize("mapper", MAPPERS)
def test_mappers_refuse_backward_cascades(mapper: str, name: str) -> None:
    arch = load_arch("h200" if mapper.startswith("gpu-") else "fusemax")
    with pytest.raises(MappingError, match="backward"):
        get_mapper(mapper)().map(load_cascade(name), arch, _sizes(name))


@pytest.mark.parametrize("mapper", ["fusemax", "flat"])
def test_fused_backward_mappers_refuse_the_3pass_backward(mapper: str) -> None:
    """Their fused backward recomputes the probabilities; the 3-pass backward reads them."""
    name = "attention-3pass-bwd-gqa-causal"
    with pytest.raises(MappingError, match=f"{mapper}: .*stored key x query tensor"):
        get_mapper(mapper)().map(load_cascade(name), load_arch(mapper), _sizes(name))


@pytest.mark.parametrize("name", ["attention-1pass-bwd-mh", "attention-3pass-bwd-gqa-causal"])
def test_unfused_prices_the_backward_einsum_by_einsum(name: str) -> None:
    """Its work is the executor's count of the backward's own operations, and it says why
    the ranks were read by letter (a backward cascade)."""
    from attnsim.einsum_ir.analysis.ops import count_ops

    cascade = load_cascade(name)
    result = get_mapper("unfused")().map(cascade, load_arch("fusemax"), _sizes(name))
    assert result.flops == count_ops(cascade, _sizes(name)).flops
    assert any("backward (gradient) cascade" in w for w in result.warnings)


def test_forward_cascades_are_still_read() -> None:
    problem = attention_problem(
        load_cascade("attention-1pass-gqa-causal"), {k: v for k, v in SIZES.items() if k != "H"}
    )
    assert (problem.roles.key, problem.roles.query) == ("M", "P")


@pytest.mark.parametrize("name", ["attention-1pass-bwd-mh", "attention-1pass-bwd-gqa-causal"])
def test_gpu_bwd_prices_the_1pass_backward(name: str) -> None:
    result = get_mapper("gpu-bwd")().map(load_cascade(name), load_arch("h200"), _sizes(name))
    assert result.latency_s > 0 and result.passes == 1
    assert any("read from attention-1pass" in w for w in result.warnings)
    # five matmuls of the backward plus the two recomputed by the separate dQ kernel, or
    # the dQ part by atomics: 2.5x to 3.5x the forward's matmul FLOPs (top-left causal tiles
    # visited whole: up to the dense count)
    forward = get_mapper("gpu-1pass")().map(
        load_cascade(name.replace("-bwd", "")), load_arch("h200"), _sizes(name)
    )
    assert 2.5 * forward.flops * 0.99 <= result.flops <= 3.5 * forward.flops * 1.3


@pytest.mark.parametrize(
    "name", ["attention-3pass-bwd-mh", "attention-1pass-bwd-mh-sigmoid", "attention-1pass-mh"]
)
def test_gpu_bwd_refuses_what_its_kernel_does_not_run(name: str) -> None:
    with pytest.raises(MappingError, match="gpu-bwd"):
        get_mapper("gpu-bwd")().map(load_cascade(name), load_arch("h200"), _sizes(name))


@pytest.mark.parametrize("mapper", SEQUENCE_PARALLEL)
def test_sequence_parallel_mappers_price_the_backward_or_refuse_the_3pass(mapper: str) -> None:
    arch = load_arch("h200")
    name = "attention-1pass-bwd-mh"
    result = get_mapper(mapper)().map(load_cascade(name), arch, _sizes(name))
    single = get_mapper("gpu-bwd")().map(load_cascade(name), arch, _sizes(name))
    assert result.latency_s == single.latency_s and result.mapper == mapper
    name = "attention-3pass-bwd-gqa-causal"
    with pytest.raises(MappingError, match="stored scores"):
        get_mapper(mapper)(devices=2).map(load_cascade(name), arch, _sizes(name))
