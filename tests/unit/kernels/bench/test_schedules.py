"""The 1-pass family's schedules on the host side: bench configurations and launcher checks.

The ping-pong kernel itself needs an sm_90 GPU (tests/gpu/test_attn_kernels.py) and is
checked compiled in test_pingpong_schedule.py; here: which configurations the timing harness
adds for it, and what `attention_fwd(..., schedule=...)` says on a machine that cannot run it.
"""

from __future__ import annotations

import csv
import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # kernels.triton.common defines @triton.jit helpers

import pytest  # noqa: E402

from attnsim.kernels.bench import harness as bench  # noqa: E402
from attnsim.kernels.bench.measure import SCHEDULES as MEASURE_SCHEDULES  # noqa: E402
from attnsim.kernels.gluon.attn_pingpong import pingpong_smem_bytes  # noqa: E402
from attnsim.kernels.spec import kernel_shape  # noqa: E402
from attnsim.kernels.triton.attn_fwd import SCHEDULES, attention_fwd  # noqa: E402

LIMIT = 227 * 1024
ALL = list(bench.FAMILIES)


def configs(suite: str, pingpong: bool, limit: int = LIMIT) -> list[bench.Config]:
    return bench.build_configs(suite, ALL, smem_limit=limit, pingpong=pingpong)


def test_schedule_names_agree() -> None:
    assert SCHEDULES == MEASURE_SCHEDULES == ("plain", "pingpong")


@pytest.mark.parametrize("suite", ["validation", "holdout", "smoke"])
def test_pingpong_configs_are_added_for_1pass_shapes_with_whole_query_tiles(suite: str) -> None:
    off, on = configs(suite, False), configs(suite, True)
    assert {c.schedule for c in off} == {"plain"}
    assert [c for c in on if c.schedule == "plain"] == off  # the plain ones are untouched
    pp = [c for c in on if c.schedule != "plain"]
    assert pp and {c.schedule for c in pp} == {"pingpong"}
    assert {c.family for c in pp} == {"triton-1pass"}
    eligible = {c.shape for c in off if c.family == "triton-1pass" and c.shape.seq_q % 128 == 0}
    if suite == "smoke":  # the smoke run leaves the causal shapes to the plain kernel
        eligible = {s for s in eligible if not s.causal}
    assert {c.shape for c in pp} == eligible
    n = 1 if suite == "smoke" else None  # the smoke suite takes the first tiling only
    for shape in eligible:
        tilings = [c.tiling for c in pp if c.shape == shape]
        assert tilings == bench.PINGPONG_TILINGS[shape.head_dim][:n], shape
        assert all(t[0] == 128 and t[2] == 8 and t[3] in (2, 3) for t in tilings)
    # the family's configurations stay together (pingpong ones after the plain ones)
    families = [c.family for c in on]
    assert families == sorted(families, key=ALL.index)


def test_ragged_query_lengths_get_no_pingpong_config() -> None:
    ragged = {s for s in bench.holdout_shapes() if s.seq_q % 128}
    assert {s.seq_q for s in ragged} == {1000, 2500, 4000}
    on = configs("holdout", True)
    assert not [c for c in on if c.shape in ragged and c.schedule == "pingpong"]
    assert [c for c in on if c.shape in ragged and c.family == "triton-1pass"]  # plain ones


def test_pingpong_configs_respect_the_shared_memory_limit() -> None:
    big = pingpong_smem_bytes(128, 128, 3)  # hd128, BLOCK_N 128, 3 slots
    assert big == 2 * 128 * (128 + 2 * 3 * 128) + 8 * 4 <= LIMIT
    pp = [c for c in configs("validation", True, big - 1) if c.schedule == "pingpong"]
    assert {(c.shape.head_dim, c.tiling) for c in pp} == {
        (64, (128, 128, 8, 3)),
        (64, (128, 64, 8, 3)),
        (128, (128, 64, 8, 3)),
    }


def test_label_and_compile_key_name_the_schedule() -> None:
    shape = kernel_shape(4, 16, 1024, 1024, 64, False)
    plain = bench.Config("triton-1pass", shape, (128, 128, 8, 3))
    pp = bench.Config("triton-1pass", shape, (128, 128, 8, 3), "pingpong")
    assert plain.label() == "triton-1pass B=4 H=16 S=1024 D=64 causal=0 tiling=128x128 w8 s3"
    assert pp.label() == plain.label() + " schedule=pingpong"
    assert bench.compile_key(plain) != bench.compile_key(pp)
    assert bench.estimate_run_s([plain, pp]) > bench.estimate_run_s([plain, plain])  # 2 compiles


def test_error_rows_name_the_schedule(tmp_path) -> None:
    shape = kernel_shape(1, 2, 512, 512, 128, True)
    path = tmp_path / "errors.csv"
    bench.append_error(path, bench.Config("triton-1pass", shape, (128, 64, 8, 3)), "bf16", "a\nb")
    bench.append_error(
        path, bench.Config("triton-1pass", shape, (128, 64, 8, 3), "pingpong"), "bf16", "boom"
    )
    rows = list(csv.DictReader(path.open(newline="", encoding="utf-8")))
    assert [r["error"] for r in rows] == ["a b", "[schedule pingpong] boom"]


def test_dry_run_lists_pingpong_unless_told_not_to(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--suite", "smoke", "--dry-run"]) == 0
    listed = capsys.readouterr().out.splitlines()
    pp = [line for line in listed if "schedule=pingpong" in line]
    assert len(pp) == len([c for c in configs("smoke", True) if c.schedule == "pingpong"]) > 0
    assert all(line.startswith("triton-1pass ") for line in pp)
    assert bench.main(["--suite", "smoke", "--dry-run", "--no-pingpong"]) == 0
    listed_off = capsys.readouterr().out.splitlines()
    assert not [line for line in listed_off if "schedule" in line]
    assert len(listed_off) == len(listed) - len(pp)


def test_default_follows_the_device() -> None:
    default = bench.build_configs("smoke", ALL, smem_limit=LIMIT)
    assert default == configs("smoke", bench.pingpong_device())
    if not torch.cuda.is_available():
        assert not bench.pingpong_device()


def test_smoke_suite_with_pingpong_stays_within_a_minute() -> None:
    assert bench.estimate_run_s(configs("smoke", True)) < 60


def qkv(seq: int = 256, d: int = 64, dtype: torch.dtype = torch.float16) -> list[torch.Tensor]:
    return [torch.zeros(1, 2, seq, d, dtype=dtype) for _ in range(3)]


def test_pingpong_on_the_cpu_says_it_needs_sm90() -> None:
    with pytest.raises(ValueError, match=r"schedule 'pingpong': needs a CUDA sm_90 \(Hopper\)"):
        attention_fwd(*qkv(), schedule="pingpong")  # defaults: 128 x 128, 8 warps, 3 slots
    with pytest.raises(ValueError, match="sm_90"):
        attention_fwd(
            *qkv(d=128), causal=True, block_m=128, block_n=64, num_warps=8, num_stages=2,
            schedule="pingpong",
        )  # fmt: skip


@pytest.mark.parametrize(
    ("tiling", "message"),
    [
        (dict(block_m=64), "needs block_m 128 and num_warps 8, got 64 and 8"),
        (dict(num_warps=4), "needs block_m 128 and num_warps 8, got 128 and 4"),
        (dict(block_n=32), "needs block_n 64 or 128, got 32"),
        (dict(num_stages=4), "needs num_stages 2 or 3"),
    ],
)
def test_pingpong_tiling_refusals_come_first(tiling: dict[str, int], message: str) -> None:
    """A tiling the kernel cannot take is named before the device (on any machine)."""
    with pytest.raises(ValueError, match=message):
        attention_fwd(*qkv(), schedule="pingpong", **tiling)


def test_unknown_schedule_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"schedule must be one of plain, pingpong, got 'nope'"):
        attention_fwd(*qkv(), schedule="nope")
    with pytest.raises(ValueError, match="one of plain, pingpong"):
        attention_fwd(*qkv(), schedule="")
