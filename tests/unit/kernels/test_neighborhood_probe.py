"""The neighborhood probe's cases and mask plumbing (benchmarks/neighborhood_probe.py), on CPU.

What the probe relies on is checked here on small sizes: its suites cover the brief and every
configuration is a valid problem (row tiles really leave tokens in place); FlexAttention's
mask_mod describes the same mask as `neighborhood_mask`; and one toy case runs end to end
(interpreter, eager FlexAttention, one call as the "time"), filling the CSV's columns.
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton
pytest.importorskip("triton")


@pytest.fixture(scope="module")
def probe(benchmark_module):
    return benchmark_module("neighborhood_probe")


def test_suites_cover_the_brief(probe):
    from attnsim.mappers.gpu.neighborhood import neighborhood_layout

    two_d = [c for c in probe.CASES if not c.one_d]
    assert {c.kernel[0] for c in two_d} >= {7, 31} and max(c.kernel[0] for c in two_d) <= 31
    assert min(min(c.image) for c in two_d) == 32 and max(max(c.image) for c in two_d) == 128
    assert {c.dilation[0] for c in two_d} >= {1, 2, 3, 4}
    for suite in ("validation", "holdout"):
        cases = [c for c in probe.CASES if c.suite == suite]
        assert any(c.one_d for c in cases) and any(c.causal[1] for c in cases)
    shapes = {
        s: {(c.batch, c.heads, c.head_dim, c.image, c.kernel, c.dilation, c.causal)
            for c in probe.CASES if c.suite == s}
        for s in ("validation", "holdout")
    }  # fmt: skip
    assert not shapes["validation"] & shapes["holdout"]
    for case in probe.CASES:
        configs = probe.configs(case)
        assert len(configs) == 2
        bm, bn = probe.TILINGS[case.head_dim][0][:2]
        rows = case.dilation == (1, 1) and probe.row_tiles(case.image[1], bm, bn) is not None
        for i, (q_tile, kv_tile, _, _) in enumerate(configs):
            kernel = case.kernel[1] if case.one_d else case.kernel
            plan = neighborhood_layout(case.image_arg, kernel, case.dilation, case.causal,
                                       q_tile, kv_tile)  # fmt: skip
            if case.one_d:
                assert plan.permuted == (case.dilation[1] > 1)
            else:  # 2-D tiles move tokens; rows as tiles (where the width allows) do not
                assert plan.permuted == (i == 0 or not rows)


@pytest.mark.parametrize(
    "image, kernel, dilation, causal",
    [((12, 10), (3, 5), (1, 2), (True, False)), ((16, 16), (7, 7), (2, 2), (False, False)),
     ((1, 60), (1, 5), (1, 3), (False, True)), ((9, 8), (3, 3), (2, 2), (False, False))],
)  # fmt: skip
def test_flex_mask_mod_is_the_neighborhood_mask(probe, image, kernel, dilation, causal):
    from torch.nn.attention.flex_attention import create_mask

    from attnsim.kernels.triton.neighborhood import neighborhood_mask
    from attnsim.kernels.triton.neighborhood_layout import Neighborhood

    case = probe.Case("validation", 1, 1, 16, image, kernel, dilation, causal)
    flex = probe.Flex("cpu")
    flex.block_mask(case)  # sets the captured sizes
    n = case.tokens
    got = create_mask(flex.mask_mod(), None, None, n, n, device="cpu")[0, 0]
    g = Neighborhood(image, kernel, dilation, causal, (4, 4), (4, 4))
    assert torch.equal(got, neighborhood_mask(g))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU only (a GPU runs the probe itself)")
def test_a_case_runs_end_to_end_at_toy_size(probe, monkeypatch, tmp_path):
    monkeypatch.setattr(probe, "TILINGS", {16: ((16, 16, 4, 2), (32, 16, 4, 2))})
    monkeypatch.setattr(probe, "_time", lambda fn: (fn(), 1.0, 1.0, 1.0)[1:])
    rows = []
    case = probe.Case("validation", 1, 2, 16, (8, 8), (3, 3))
    probe.run_case(case, probe.Flex("cpu"), rows.append, deadline=float("inf"), device="cpu")
    families = [r["family"] for r in rows]
    assert families == ["sdpa-dense", "flex", probe.FAMILY, probe.KERNEL_FAMILY, probe.FAMILY]
    assert all(r["status"] == "ok" for r in rows), [r["status"] for r in rows]
    assert all(set(r) <= set(probe.FIELDS) for r in rows)
    ours = [r for r in rows if r["family"] == probe.FAMILY]
    assert [r["q_tile"] for r in ours] == ["4x4", "2x8"] and ours[1]["permuted"] == 0
    assert ours[0]["permuted"] == 1 and ours[0]["positions"] == 64
    assert max(r["max_err"] for r in rows if r["family"] != "sdpa-dense") < 1e-5
    # the file the probe writes is one `validate gpu` reads (header, columns, layout facts)
    import csv

    from attnsim.reports.validation_kernels import predict_rows, probe_of
    from attnsim.reports.validation_neighborhood import NEIGHBORHOOD

    path = tmp_path / "neighborhood-validation-cpu.csv"
    with path.open("w", newline="") as fh:
        out = csv.DictWriter(fh, probe.FIELDS)
        out.writeheader()
        out.writerows(rows)
    assert probe_of(path) is NEIGHBORHOOD
    points = predict_rows([path])
    assert len(points) == 2 and all(p.predicted_ms > 0 for p in points)
