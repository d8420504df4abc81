"""count_passes on the built-in attention cascades and on user cascades with their own names."""

from __future__ import annotations

import pytest

from attnsim.einsum_ir import builtin_names, load_cascade, load_cascade_text
from attnsim.einsum_ir.analysis import Boundary, count_passes
from attnsim.einsum_ir.analysis.passes import Availability
from attnsim.einsum_ir.ir import Cascade, TensorName
from attnsim.einsum_ir.library import ZOO
from attnsim.einsum_ir.parse import parse_einsum

# the backward built-ins (einsum_ir.library.training) first, as their names extend the
# forwards': the stored-A backward needs rowsum(DA o A) over all keys before DS (2 passes),
# FlashAttention-2's reads D from a pre-pass without keys (1 pass)
EXPECTED = {"3pass-bwd": 2, "1pass-bwd": 1}
EXPECTED |= {"3pass": 3, "2pass-plain": 2, "2pass-deferred": 2, "2pass-tilemax": 2, "1pass": 1}
# the serving cascades (einsum_ir.library.serving): all 1 pass over the keys
EXPECTED |= {"mla-naive": 1, "mla-absorbed": 1, "splitk-gqa": 1, "decode-gqa": 1}
# the variant zoo: each record states the write-up's count (test_zoo_passes.py checks those)
EXPECTED |= {e.name.removeprefix("attention-"): e.passes for e in ZOO}


def expected_passes(name: str) -> int:
    """The count of the longest name the built-in extends (seqboat-sma before seqboat)."""
    keys = [k for k in EXPECTED if name.startswith(f"attention-{k}")]
    if not keys:
        raise AssertionError(f"no expected pass count for {name}")
    return EXPECTED[max(keys, key=len)]


@pytest.mark.parametrize("name", [n for n in builtin_names() if n.startswith("attention-")])
def test_builtin_pass_counts(name: str) -> None:
    report = count_passes(load_cascade(name))
    assert report.passes == expected_passes(name)
    assert len(report.boundaries) == report.passes - 1
    assert report.rank == "M"


def test_three_pass_boundaries_and_table() -> None:
    report = count_passes(load_cascade("attention-3pass"))
    assert report.boundaries == (
        Boundary(1, (TensorName("QK"),), (TensorName("GM"),)),
        Boundary(2, (TensorName("SN"),), (TensorName("SD"),)),
    )
    assert [report.pass_of(t) for t in ["QK", "GM", "SN", "SD", "A", "AV"]] == [1, 1, 2, 2, 3, 3]
    assert [r.availability for r in report.einsum_passes] == [
        Availability.STREAM,
        Availability.DONE,
        Availability.STREAM,
        Availability.DONE,
        Availability.STREAM,
        Availability.DONE,
    ]
    text = str(report)
    assert "passes over M: 3" in text
    assert "after pass 1: buffered [QK] carried [GM]" in text
    assert "after pass 2: buffered [SN] carried [SD]" in text
    with pytest.raises(KeyError):
        report.pass_of("nope")


def test_one_pass_recurrences_and_final_iterates() -> None:
    report = count_passes(load_cascade("attention-1pass"))
    assert report.passes == 1
    assert report.boundaries == ()
    av = report.einsum_passes[-1]
    assert (av.output, av.iterates_rank, av.pass_number) == ("AV", False, 1)
    assert av.availability is Availability.DONE
    # Over the key tile index alone the recurrences are still one pass.
    assert count_passes(load_cascade("attention-1pass"), "M1").passes == 1


def test_tilemax_buffers_per_tile_state() -> None:
    report = count_passes(load_cascade("attention-2pass-tilemax"))
    (boundary,) = report.boundaries
    assert set(boundary.buffered) == {"LM", "SLD", "SLNV"}
    assert boundary.carried == ("GM",)


def test_other_ranks() -> None:
    cascade = load_cascade("attention-3pass")
    over_p = count_passes(cascade, "P")
    assert over_p.passes == 1 and over_p.boundaries == ()
    over_e = count_passes(cascade, "E")
    assert over_e.passes == 1
    assert [r.iterates_rank for r in over_e.einsum_passes] == [True] + [False] * 5
    assert count_passes(cascade, "F").passes == 1
    with pytest.raises(ValueError, match="unknown rank Z"):
        count_passes(cascade, "Z")


def test_memoized() -> None:
    cascade = load_cascade("attention-3pass")
    assert count_passes(cascade, "M") is count_passes(cascade, "M")


def user(text: str) -> Cascade:
    return load_cascade_text(text, "<test>")


def test_two_pass_layer_norm() -> None:
    cascade = user(
        """
cascade: layernorm
inputs: {X: [B, N]}
einsums:
  - S1[b] = X[b,n]
  - S2[b] = X[b,n] * X[b,n]
  - VAR[b] = S2[b] - S1[b] * S1[b]
  - RS[b] = recip(sqrt(VAR[b]))
  - Y[b,n] = (X[b,n] - S1[b]) * RS[b]
outputs: [Y]
"""
    )
    report = count_passes(cascade, "N")
    assert report.passes == 2
    assert [r.pass_number for r in report.einsum_passes] == [1, 1, 1, 1, 2]
    assert [r.iterates_rank for r in report.einsum_passes] == [True, True, False, False, True]
    # Inputs are re-read from memory; only the small statistics cross the boundary.
    assert report.boundaries == (Boundary(1, (), (TensorName("S1"), TensorName("RS"))),)
    assert count_passes(cascade, "B").passes == 1


def test_naive_layer_norm_is_three_passes() -> None:
    cascade = user(
        """
cascade: layernorm-naive
inputs: {X: [B, N]}
einsums:
  - MU[b] = X[b,n]
  - D[b,n] = X[b,n] - MU[b]
  - VAR[b] = D[b,n] * D[b,n]
  - Y[b,n] = D[b,n] / sqrt(VAR[b])
outputs: [Y]
"""
    )
    report = count_passes(cascade, "N")
    assert report.passes == 3
    assert report.boundaries[0] == Boundary(1, (), (TensorName("MU"),))
    assert report.boundaries[1] == Boundary(2, (TensorName("D"),), (TensorName("VAR"),))


def test_prefix_sum_recurrence_is_one_pass() -> None:
    cascade = user(
        """
cascade: prefix
inputs: {X: [B, N]}
init: {S: 0}
einsums:
  - S[b,n+1] = S[b,n] + X[b,n]
  - T[b] = S[b,N]
outputs: [T]
"""
    )
    report = count_passes(cascade, "N")
    assert report.passes == 1
    assert report.einsum_passes[1].availability is Availability.DONE
    assert count_passes(cascade, "B").passes == 1


def test_done_value_feeding_a_tile_only_einsum() -> None:
    cascade = user(
        """
cascade: tile-weights
inputs: {X: [M, P]}
partitions: {M: [M1, M0]}
params: {M0: 4}
einsums:
  - TS[m1,p] = X[m1,m0,p]
  - G[p] = TS[m1,p]
  - W[m1,p] = TS[m1,p] / G[p]
outputs: [W]
"""
    )
    report = count_passes(cascade, "M")
    assert report.passes == 2
    assert report.pass_of("W") == 2
    assert report.boundaries == (Boundary(1, (TensorName("TS"),), (TensorName("G"),)),)


def test_final_iterate_read_in_a_later_pass_is_carried() -> None:
    cascade = user(
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
"""
    )
    report = count_passes(cascade, "M")
    assert report.passes == 2
    assert report.boundaries == (Boundary(1, (), (TensorName("RM"),)),)


def test_rank_no_einsum_iterates() -> None:
    cascade = user(
        """
cascade: independent
inputs: {X: [P], Y: [N]}
einsums:
  - Z[p] = X[p] * 2
outputs: [Z]
"""
    )
    report = count_passes(cascade, "N")
    assert report.passes == 0
    assert report.boundaries == ()
    assert report.einsum_passes[0].availability is Availability.CONST


def test_divergent_recurrence_is_reported() -> None:
    # Unchecked on purpose: a recurrence that needs its own final value never converges.
    einsums = (
        parse_einsum("X[m+1,p] = X[m,p] + G[p]"),
        parse_einsum("G[p] = X[M,p]"),
    )
    cascade = Cascade(
        name="loop",
        inputs=(),
        einsums=einsums,
        outputs=(TensorName("G"),),
        init=((TensorName("X"), 0.0),),
    )
    with pytest.raises(ValueError, match="does not converge"):
        count_passes(cascade, "M")


def test_pinned_gather_is_not_a_complete_reduction() -> None:
    # Y[p] reads the running sum at the query's own position: one element of N per output,
    # available as the pass visits it; Z, which reads a complete sum over N, is after pass 1
    # and W, combining it with per-element data, needs pass 2.
    cascade = user(
        """
cascade: state-at-position
inputs: {X: [N], Q: [P]}
init: {S: 0}
einsums:
  - S[n+1] = S[n] + X[n]
  - Y[p] = Q[p] * S[n+1] where n == p
  - G[n] = Y[p] * X[n] where n == p
  - T[] = X[n]
  - W[n] = X[n] / T[]
outputs: [G, W]
"""
    )
    report = count_passes(cascade, "N")
    assert report.pass_of("Y") == 1 and report.pass_of("G") == 1
    assert report.einsum_passes[1].availability is Availability.STREAM
    assert report.pass_of("W") == 2  # an unpinned reduction still ends its pass


def test_final_iterate_of_a_per_chunk_recurrence_streams_with_the_chunks() -> None:
    # C[m1] reads the last iterate over m0 of chunk m1 (GLA's chunk total): available when
    # chunk m1 ends, inside the one sweep; R recurs over the chunks in order (no split).
    cascade = user(
        """
cascade: chunk-totals
inputs: {X: [M]}
partitions: {M: [M1, M0]}
params: {M0: 4}
init: {B: 0, R: 0}
einsums:
  - B[m1,m0+1] = B[m1,m0] + X[m1,m0]
  - C[m1,m0] = X[m1,m0] * B[m1,M0]
  - R[m1+1] = R[m1] + B[m1,M0]
outputs: [C, R]
"""
    )
    report = count_passes(cascade, "M")
    assert report.passes == 1
    assert report.merge_ranks == ()
    assert not any(r.is_merge for r in report.einsum_passes)
