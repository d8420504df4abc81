"""attention-lightning-2-bwd against torch autograd of Lightning-2's forward, in float64.

The reference forward is written directly in torch (decayed causal weights, bottom-right
aligned) and checked against the zoo's chunked attention-lightning-2 first, so the gradients
are those of the built-in forward; the executor's DQ, DK, DV must equal autograd's.
"""

from __future__ import annotations

import numpy as np
import pytest

from attnsim.einsum_ir import evaluate, load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.view import MappingError

torch = pytest.importorskip("torch")

SHAPES = [  # (B, H, E, F, P, M, M0 of the forward's chunks)
    (1, 2, 4, 3, 8, 8, 4),
    (2, 3, 5, 4, 6, 10, 2),  # P < M: the last P tokens, bottom-right aligned
]


@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_equal_autograd_of_the_forward(shape: tuple[int, ...]) -> None:
    b, h, e, f, p, m, m0 = shape
    gen = torch.Generator().manual_seed(sum(shape))

    def rand(*dims: int) -> object:
        return torch.randn(dims, generator=gen, dtype=torch.float64)

    q, k, v = rand(b, h, e, p), rand(b, h, e, m), rand(b, h, f, m)
    dl, do = rand(h), rand(b, h, f, p)
    for t in (q, k, v):
        t.requires_grad_(True)
    lam = torch.sigmoid(dl)
    dist = (torch.arange(p) + m - p)[None, :] - torch.arange(m)[:, None]  # q - m, [m, p]
    decay = torch.where(dist >= 0, lam[:, None, None] ** dist.clamp(min=0), 0.0)
    weights = torch.einsum("bhep,bhem->bhmp", q, k) * decay
    out = torch.einsum("bhmp,bhfm->bhfp", weights, v)
    sizes = {"B": b, "H": h, "E": e, "F": f, "P": p, "M": m}
    arrays = {"Q": q, "K": k, "V": v, "DL": dl}
    inputs = {n: t.detach().numpy() for n, t in arrays.items()}
    forward = evaluate(load_cascade("attention-lightning-2"), inputs, {**sizes, "M0": m0})
    np.testing.assert_allclose(forward["AV"], out.detach().numpy(), rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad((out * do).sum(), (q, k, v))
    got = evaluate(load_cascade("attention-lightning-2-bwd"), {**inputs, "DO": do.numpy()}, sizes)
    for name, want in zip(("DQ", "DK", "DV"), grads, strict=True):
        np.testing.assert_allclose(got[name], want.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mapper", ["gpu-lightning", "gpu-lasp2", "gpu-1pass"])
def test_forward_gpu_mappers_refuse_it_as_a_backward(mapper: str) -> None:
    from attnsim.archs.load import load_arch

    sizes = {"B": 1, "H": 2, "E": 64, "F": 64, "P": 1024, "M": 1024}
    with pytest.raises(MappingError, match="backward"):
        get_mapper(mapper)().map(
            load_cascade("attention-lightning-2-bwd"), load_arch("h200"), sizes
        )


def test_cascade_passes_pairs_it_with_its_forward(capsys: pytest.CaptureFixture[str]) -> None:
    from attnsim.reports.cli.main import main

    assert (
        main(
            [
                "cascade",
                "passes",
                "attention-lightning-2-bwd",
                "--sizes",
                "B=1,H=2,E=64,F=64,P=512,M=512",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "training: forward attention-lightning-2 (1 pass over M)" in out
    assert "nothing besides the forward's inputs" in out
