"""tensor_sizes and boundary footprints."""

from __future__ import annotations

from attnsim.einsum_ir import load_cascade, load_cascade_text
from attnsim.einsum_ir.analysis import tensor_sizes
from attnsim.einsum_ir.analysis.buffers import BoundaryFootprint, boundary_footprints


def test_one_pass_sizes_padding_and_iterates() -> None:
    sizes = tensor_sizes(load_cascade("attention-1pass"), {"M": 1000, "P": 10, "E": 4, "F": 3})
    m1, m0 = 4, 256  # M0 from the cascade's params; M1 = ceil(1000 / 256)
    assert sizes["Q"] == 40 and sizes["K"] == 4000 and sizes["V"] == 3000
    assert sizes["QK"] == m1 * m0 * 10  # declared over (M1, M0, P): padded tail included
    assert sizes["LM"] == m1 * 10
    assert sizes["RM"] == (m1 + 1) * 10  # iterates 0..M1
    assert sizes["RD"] == (m1 + 1) * 10
    assert sizes["RNV"] == (m1 + 1) * 3 * 10
    assert sizes["AV"] == 30
    assert list(sizes)[:3] == ["Q", "K", "V"]


def test_sizes_accept_derived_parts_and_multi_head() -> None:
    cascade = load_cascade("attention-1pass-mh")
    a = tensor_sizes(cascade, {"M": 512, "P": 2, "E": 2, "F": 2, "B": 3, "H": 5})
    b = tensor_sizes(cascade, {"M": 512, "M1": 7, "P": 2, "E": 2, "F": 2, "B": 3, "H": 5})
    assert a == b
    assert a["RM"] == 3 * 5 * 3 * 2


def test_three_pass_footprints() -> None:
    cascade = load_cascade("attention-3pass")
    got = boundary_footprints(cascade, {"M": 100, "P": 7, "E": 4, "F": 3})
    assert got == (BoundaryFootprint(1, 700, 7), BoundaryFootprint(2, 700, 7))


def test_final_iterate_is_carried_as_one_iterate() -> None:
    cascade = load_cascade_text(
        """
cascade: online-max-then-exp
inputs: {X: [M, P]}
partitions: {M: [M1, M0]}
params: {M0: 4}
init: {RM: -inf}
einsums:
  - LM[m1,p] = max[m0](X[m1,m0,p])
  - RM[m1+1,p] = max(RM[m1,p], LM[m1,p])
  - Y[m1,m0,p] = exp(X[m1,m0,p] - RM[M1,p])
outputs: [Y]
""",
        "<test>",
    )
    assert tensor_sizes(cascade, {"M": 10, "P": 6})["RM"] == 4 * 6
    assert boundary_footprints(cascade, {"M": 10, "P": 6}) == (BoundaryFootprint(1, 0, 6),)
