"""kernels.distributed across processes (gloo, CPU, float64): each distributed forward equals
the single-device result to 1e-10 (`check.run_checks`: Ring Attention non-causal, causal,
causal zig-zag, causal striped; LASP-2 with and without decay) on 2 and 3 processes.

Processes are forked (torch.multiprocessing, start method "fork": a spawned process would
import torch again, 5-10 s per world on 2 cores); the `spawn` path itself is what torchrun-less
users call with the default start method.
"""

from __future__ import annotations

import json

import pytest
import torch.multiprocessing as mp

from attnsim.kernels.distributed.check import CASES, check_worker
from attnsim.kernels.distributed.launch import spawn

pytestmark = pytest.mark.skipif(
    "fork" not in mp.get_all_start_methods(), reason="needs the fork start method"
)


@pytest.mark.parametrize("world", [2, 3])
def test_distributed_forwards_equal_the_single_device_result(world, tmp_path):
    spawn(check_worker, world, (str(tmp_path), (2, 3, 8 * world, 8)), start_method="fork")
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    assert all(res["world"] == world for res in results)
    rows = results[0]["rows"]
    assert [row["case"] for row in rows] == [case.label for case in CASES]
    for row in rows:
        assert row["max_abs_err"] < 1e-10, row
        assert row["rel_err"] < 1e-10, row
    assert all(res["rows"] == rows for res in results)  # errors were reduced over ranks


def _raise_on_rank_one(rank, world):
    if rank == 1:
        raise RuntimeError("rank one failed")


def test_spawn_raises_a_worker_exception():
    with pytest.raises(Exception, match="rank one failed"):
        spawn(_raise_on_rank_one, 2, start_method="fork")
