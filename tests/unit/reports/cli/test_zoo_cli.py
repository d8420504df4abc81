"""The variant zoo through the CLI: passes as the write-up states, check, show, list by family.

WRITE_UP holds the "Passes" of /shared/reference/variants.md (Sec. 2.3, 2.4, 2.7 and the
at-a-glance table 2.9) for the zoo's variants; a built-in whose count differs must say in
its commit why the write-up was wrong.
"""

from __future__ import annotations

import pytest

from attnsim import einsum_ir
from attnsim.einsum_ir.library import ZOO, ZooCascade
from attnsim.einsum_ir.library.zoo_base import HEAD_STRUCTURE, LINEAR, STATIC_MASKS
from attnsim.einsum_ir.load import builtin_text, load_cascade_text
from attnsim.reports.cli.main import main

WRITE_UP = {
    # Sec. 2.4, static masks: B2 plus a predicate, 1 pass (PINE: 2)
    "attention-sinklora": 1,  # H2O eviction (not modelled) would add a column-sum pass
    "attention-moa": 1,
    "attention-fit": 1,
    "attention-lga": 1,
    "attention-aki": 1,
    "attention-video-ccam": 1,
    "attention-efficient-vdit": 1,
    "attention-pine": 2,
    # Sec. 2.3, head and K/V structure
    "attention-kdgqa": 2,  # norm pre-pass over K
    "attention-sigma": 1,  # 2 with selective V fetch (not modelled)
    "attention-moh": 1,
    "attention-bam": 1,
    # Sec. 2.7, linear / recurrent: one scan, the state the only serial dependency
    "attention-linear": 1,
    "attention-linear-causal-quadratic": 1,
    "attention-linear-causal-recurrent": 1,
    "attention-linear-causal-chunked": 1,
    "attention-lightning-2": 1,
    # not in the write-up: Lightning-2's backward (quadratic form), one pass over M
    "attention-lightning-2-bwd": 1,
    "attention-gla": 1,  # causal GLA (DSF #24: 1); ViG's bidirectional 2 is not built
    "attention-lightnet": 1,
    # Sec. 2.5 and 2.7, compression and pooled memory: 1 pass over K/V
    "attention-agent": 1,  # after a pooling pass over Q (not over K/V)
    "attention-cca": 1,
    "attention-longvq": 1,
    "attention-seqboat": 1,  # the attention unit alone (the SSM scan is not in it)
    "attention-seqboat-sma": 2,  # the whole layer: write-up 1 (SSM) + 1 (compacted attention)
    # Sec. 2.5, dynamic selection: the selected keys are inputs over their own rank N,
    # declared as picks of K (`gathers`), so their sweep follows the selector's
    "attention-hip": 3,  # write-up tree walk + 1: round 1's centres, the later rounds
    # (batched: one sweep of the halves KR), then the kept blocks
    "attention-dcal": 2,  # rollout 2 per layer (row statistics, then the weighted sum); GLCA 1
    "attention-hcam": 2,  # write-up 1 (summaries) + 1 (the k chunks)
    "attention-routing": 2,  # write-up 2: the assignment, then the clustered attention
    # Sec. 2.6, score and normalization
    "attention-sink-logit": 1,
    "attention-gpsa": 1,
    "attention-rcmha": 1,
    "attention-act": 1,  # the write-up's 1-pass form with a given (prefill) sink set
    "attention-gaam": 3,
    "attention-kronecker": 1,
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_passes_match_the_write_up(capsys: pytest.CaptureFixture[str], entry: ZooCascade) -> None:
    name = entry.name
    assert entry.passes == WRITE_UP[name]
    status, out, err = run(capsys, "cascade", "passes", name)
    assert status == 0, err
    word = "pass" if WRITE_UP[name] == 1 else "passes"
    assert out.splitlines()[0] == f"{name}: {WRITE_UP[name]} {word} over M"
    assert f"({WRITE_UP[name]} pass" in entry.description


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_check_show_and_yaml_round_trip(
    capsys: pytest.CaptureFixture[str], entry: ZooCascade
) -> None:
    name = entry.name
    status, out, err = run(capsys, "cascade", "check", name)
    assert status == 0, err
    assert out.startswith(f"{name}: ok:")
    text = builtin_text(name)
    assert "arXiv" in text  # the notes cite the paper
    assert load_cascade_text(text, f"{name}.yaml") == einsum_ir.load_cascade(name)
    status, out, err = run(capsys, "cascade", "show", name)
    assert status == 0, err
    assert "attention problem" in out


def test_list_groups_the_zoo_by_family(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "cascade", "list")
    assert status == 0, err
    lines = out.splitlines()
    headers = [line for line in lines if line.startswith("# ")]
    assert headers[0].startswith("# composed from parts") and headers[1].startswith("# serving")
    for family in (STATIC_MASKS, HEAD_STRUCTURE, LINEAR):
        members = [e.name for e in ZOO if e.family == family]
        if not members:
            continue
        start = lines.index(f"# {family}")
        rows = [line.split()[0] for line in lines[start + 1 : start + 1 + len(members)]]
        assert rows == members
    status, out, _ = run(capsys, "cascade", "list", "--mask", "window")
    assert not any(line.startswith("#") for line in out.splitlines())


def test_passes_and_show_report_the_recurrent_state(capsys: pytest.CaptureFixture[str]) -> None:
    from attnsim.reports.cli.cascade import DEFAULT_SIZES

    status, out, err = run(capsys, "cascade", "passes", "attention-lightning-2")
    assert status == 0, err
    words = DEFAULT_SIZES["E"] * DEFAULT_SIZES["F"]
    assert f"  KV: E x F = {words:,} words per head (recurrence over M1)" in out
    assert "(independent of M)" in out and "at default sizes" in out
    status, out, err = run(
        capsys, "cascade", "show", "attention-gla", "--sizes", "M=1024,P=1024,E=16,F=8,B=1,H=2"
    )
    assert status == 0, err
    assert f"KV: E x F = {16 * 8:,} words per head" in out
    table = out[out.index("   C   chunks") :].splitlines()[1:]
    assert [int(row.split()[0]) for row in table] == [16, 32, 64, 128, 256]
    status, out, _ = run(capsys, "cascade", "passes", "attention-1pass-mh")
    assert "recurrent state" not in out


def test_map_names_the_rank_its_passes_are_over(capsys: pytest.CaptureFixture[str]) -> None:
    """HCAM's attention sweeps its picked keys N once; the memory M takes 2 (warned)."""
    sizes = "B=1,H=2,M=4K,P=512,E=32,F=32"
    argv = ["map", "--arch", "fusemax", "--mapper", "fusemax", "--sizes", sizes, "--cascade"]
    status, out, err = run(capsys, *argv, "attention-hcam")
    assert status == 0, err
    assert "passes over N    1" in out
    assert "over M, which the picked inputs KC (from K) come from" in " ".join(out.split())
    status, out, err = run(capsys, *argv, "attention-1pass-mh")
    assert status == 0, err
    assert "passes over M    1" in out
