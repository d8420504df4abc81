"""benchmarks/seqpar_probe.py and kernels/calibrate/microbench_nccl.py on the CPU (gloo).

Their host logic (token counts, cost order, budget estimate, file names, message sizes) and a
dry run of each end to end on 2 forked processes (`--device cpu`: torch blocks, wall clock),
with the environment torchrun would set.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from attnsim.archs.interconnect import load_nccl_calibration
from attnsim.kernels.calibrate import microbench_nccl
from attnsim.kernels.distributed.check import Case

ROOT = Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location("seqpar_probe", ROOT / "benchmarks/seqpar_probe.py")
probe = importlib.util.module_from_spec(spec)
sys.modules["seqpar_probe"] = probe  # its dataclass looks its module up
spec.loader.exec_module(probe)

needs_fork = pytest.mark.skipif(
    "fork" not in mp.get_all_start_methods(), reason="needs the fork start method"
)


def test_parse_tokens():
    assert [probe.parse_tokens(t) for t in ("32K", "1m", "4096")] == [32768, 1 << 20, 4096]


def test_work_orders_lasp2_first_and_zigzag_under_none():
    seq = 1 << 16
    lasp, zig, striped, none, full = (probe.work_per_device(c, seq, 2) for c in probe.SCHEMES)
    assert lasp < zig == striped < none < full
    assert none == pytest.approx(1.5 * zig) and full == pytest.approx(2 * zig)


def test_estimate_scales_the_last_row():
    class Args:
        min_reps, target_s = 2, 1.0

    last = {"step_ms": 1000.0, "compute_ms": 900.0, "comm_ms": 10.0}
    # 4x the work: 4 s, 3.6 s calls at 1 + 2 repeats; comm 40 ms at 1 + 25 -> 20 repeats
    assert probe.estimate_s(last, 4.0, Args) == pytest.approx(3 * 4.0 + 3 * 3.6 + 21 * 0.04)


def test_out_path(tmp_path):
    assert probe.out_path(str(tmp_path / "a.csv"), "NVIDIA H200", 2) == tmp_path / "a.csv"
    name = probe.out_path(str(tmp_path), "NVIDIA H200", 2).name
    assert name.startswith("seqpar-h200x2-") and name.endswith(".csv")
    assert probe.out_path(None, "NVIDIA H200", 2).parent == ROOT / "kernels/measurements/seqpar"


def test_nccl_sizes_and_bytes():
    sizes = microbench_nccl.sizes(4 << 10, 1 << 30)
    assert sizes[0] == 4096 and sizes[-1] == 1 << 30 and len(sizes) == 19
    for name in microbench_nccl.COLLECTIVES:
        _, actual = microbench_nccl.make_call(name, 4096, 3, 0, torch.float32, "cpu")
        assert actual == 1023 * 4  # 1024 elements rounded down to a multiple of 3


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_like(rank, world, port, argv, which):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    (probe.main if which == "probe" else microbench_nccl.main)(argv)


@needs_fork
def test_probe_dry_run_writes_checked_rows(tmp_path):
    out = tmp_path / "seqpar.csv"
    argv = ["--device", "cpu", "--contexts", "64,128", "--heads", "2", "--head-dim", "16",
            "--target-s", "0.01", "--check-seq", "64", "--out", str(out)]  # fmt: skip
    mp.start_processes(_torchrun_like, args=(2, _free_port(), argv, "probe"), nprocs=2,
                       start_method="fork")  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * len(probe.SCHEMES)
    assert {r["status"] for r in rows} == {"ok"}
    assert all(float(r["check_rel_err"]) < 1e-5 for r in rows)
    ring = [r for r in rows if r["scheme"] == "ring" and r["seq_total"] == "128"]
    assert all(int(r["message_bytes"]) == 2 * 2 * 64 * 16 * 4 for r in ring)  # K|V, fp32
    balances = {(r["causal"], r["balance"]) for r in ring}
    assert balances == {("0", "none"), ("1", "none"), ("1", "zigzag"), ("1", "striped")}
    more = ["--device", "cpu", "--contexts", "256", "--heads", "2", "--head-dim", "16",
            "--target-s", "0.01", "--no-check", "--schemes", "lasp2-decay", "--append",
            "--out", str(out)]  # fmt: skip
    mp.start_processes(_torchrun_like, args=(2, _free_port(), more, "probe"), nprocs=2,
                       start_method="fork")  # fmt: skip
    again = list(csv.DictReader(out.open()))
    assert again[:-1] == rows and again[-1]["seq_total"] == "256"
    assert again[-1]["scheme"] == "lasp2" and again[-1]["check_rel_err"] == ""
    assert Case("lasp2", True, decay=True).label == "lasp2-decay"


@needs_fork
def test_nccl_microbench_dry_run_writes_the_yaml(tmp_path):
    out = tmp_path / "nccl.yaml"
    argv = ["--device", "cpu", "--max-bytes", "16384", "--out", str(out)]
    mp.start_processes(_torchrun_like, args=(2, _free_port(), argv, "nccl"), nprocs=2,
                       start_method="fork")  # fmt: skip
    cal = load_nccl_calibration(out)  # the alpha-beta fit's reader takes the file as it is
    assert cal.name == "nccl" and cal.link == "intra_node"
    got = {}
    for m in cal.measurements:
        assert m.devices == 2 and m.seconds > 0
        got.setdefault(m.collective, []).append(m.size_bytes)
    assert got == {name: [4096, 8192, 16384] for name in microbench_nccl.COLLECTIVES}
    head = out.read_text().splitlines()[:6]
    assert any(line.startswith("# date: ") for line in head)
    assert any(line.startswith("# devices: 2") for line in head)
