"""Size guards (issue 19 item 4): absurd sizes, `--seed -1`, `cascade eval`'s memory budget,
FuseMax's query tiling search at huge P, and experiments that expand to no points."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from attnsim.einsum_ir import load_cascade
from attnsim.reports.cli.limits import eval_footprint, memory_bytes
from attnsim.reports.cli.main import main

EXAMPLES = Path(__file__).parents[4] / "examples"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_eval_refuses_sizes_over_the_memory_budget_and_suggests_smaller(
    capsys: pytest.CaptureFixture[str],
) -> None:
    start = time.perf_counter()
    status, out, err = run(
        capsys, "cascade", "eval", "--sizes", "M=65536,P=65536,E=64,F=64", "attention-3pass"
    )
    assert time.perf_counter() - start < 5
    assert status == 2 and out == ""
    assert err.startswith(
        "attnsim: error: --sizes: evaluating attention-3pass needs about 2.1 TiB of memory "
        "(largest: QK's iteration space M×P×E = 65536×65536×64), over the budget of 2.0 GiB "
        "(--max-memory); try smaller sizes, e.g. --sizes "
    )
    hint = err.strip().rsplit("--sizes ", 1)[1]
    status, out, _ = run(capsys, "cascade", "eval", "--sizes", hint, "attention-3pass")
    assert status == 0 and out.startswith("AV  shape=")


def test_the_budget_is_an_option(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["cascade", "eval", "--sizes", "M=64,P=64,E=16,F=16", "attention-3pass"]
    assert run(capsys, *argv)[0] == 0
    status, _, err = run(capsys, *argv, "--max-memory", "10KiB")
    assert status == 2 and "over the budget of 10.0 KiB (--max-memory)" in err
    status, _, err = run(capsys, *argv, "--max-memory", "lots")
    assert status == 2
    assert "argument --max-memory: expected a size such as 4GiB, got 'lots'" in err


def test_the_footprint_leaves_out_a_recurrences_stepped_rank() -> None:
    cascade = load_cascade("attention-1pass")
    need = eval_footprint(cascade, {"M": 4096, "P": 4096, "E": 64, "F": 64})
    assert need.largest.startswith("QK's iteration space ")
    assert "M1" not in need.largest.split("=")[0]
    assert need.total_bytes < 2**30


def test_memory_sizes_parse() -> None:
    assert memory_bytes("4GiB") == 4 * 2**30
    assert memory_bytes("512 MiB") == 512 * 2**20
    assert memory_bytes("1000") == 1000


@pytest.mark.parametrize(
    "sizes", ["M=9223372036854775808,P=4,E=2,F=2", "M=4,P=4,E=2,F=2,M0=9223372036854775808"]
)
@pytest.mark.parametrize("command", ["eval", "show", "map"])
def test_absurd_sizes_are_input_errors(
    capsys: pytest.CaptureFixture[str], sizes: str, command: str
) -> None:
    if command == "map":
        argv = ["map", "--arch", "fusemax", "--cascade", "attention-1pass"]
        argv += ["--mapper", "fusemax", "--sizes", sizes]
    else:
        argv = ["cascade", command, "--sizes", sizes, "attention-1pass"]
    status, _, err = run(capsys, *argv)
    assert status == 2
    big = [s for s in sizes.split(",") if s.endswith("808")][0]
    assert err.strip().endswith(f"{big}: sizes are at most 2^40 (1,099,511,627,776)")
    assert "Traceback" not in err


def test_an_absurd_param_in_a_cascade_file_is_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, text, _ = run(capsys, "cascade", "show", "attention-1pass", "--yaml")
    path = tmp_path / "big.yaml"
    path.write_text(text.replace("params: {M0: 256}", "params: {M0: 9223372036854775808}"))
    status, _, err = run(capsys, "cascade", "check", str(path))
    line = 1 + text.splitlines().index("params: {M0: 256}")
    assert status == 2
    assert err.strip() == (
        f"{path}:{line}:14: params.M0: expected a size of at most 2^40 (1,099,511,627,776), "
        "got 9223372036854775808"
    )


def test_a_negative_seed_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["cascade", "eval", "--sizes", "M=4,P=4,E=2,F=2", "--seed", "-1", "attention-3pass"]
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert "argument --seed: expected a non-negative integer, got -1" in err


def test_fusemax_tiling_at_a_trillion_queries_is_fast(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    status, out, err = run(
        capsys,
        "map",
        "--arch",
        "fusemax",
        "--cascade",
        "attention-1pass",
        "--mapper",
        "fusemax",
        "--sizes",
        "M=1000000000000,P=1000000000000,E=64,F=64",
    )
    assert status == 0, err
    assert time.perf_counter() - start < 10
    # P/256 = 3,906,250,000 = 2^4 * 5^12 has 5 * 13 = 65 divisors, each tried once.
    assert "p0=256, p1=250, p2=1.5625e+07, search_candidates=65, search_feasible=16" in out


def test_an_experiment_with_an_empty_random_space_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (EXAMPLES / "iso-area.yaml").read_text()
    sweep = text.index("sweep:")
    block = (
        "sweep:\n  - fixed: {workload: BERT, design: fusemax}\n"
        "    random: {samples: 3, seed: 1, space: {}}\n"
    )
    path = tmp_path / "empty.yaml"
    path.write_text(text[:sweep] + block + text[text.index("objectives:") :])
    line = text[:sweep].count("\n") + 3
    for command in ("check", "run"):
        status, _, err = run(capsys, command, str(path))
        assert status == 2
        assert err.strip() == (
            f"{path}:{line}:42: sweep[0].random.space: expected at least one sampled path"
        )
