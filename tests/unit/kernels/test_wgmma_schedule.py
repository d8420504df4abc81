"""The Gluon wgmma kernel's schedule, checked in its SASS (compiled for sm_90 on any host).

The kernel exists for one property: in the key-tile loop the P.V wgmma is still in flight
while the softmax's exponentials run. ptxas is free to move a `wgmma.wait_group` earlier
inside a basic block and did (kernels/attn_wgmma.py, `_kv_step`), so the test reads the
compiled loop: between the wait for the scores (`WARPGROUP.DEPBAR.LE gsb0, 0x1`) and the
loop's exponentials there must be no wait for all wgmmas (`... gsb0, 0x0`), and nothing may
spill. Needs Triton's bundled ptxas/cuobjdump, no GPU.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")

from kernels.attn_wgmma import compile_for_sm90  # noqa: E402

BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"


def sass_and_usage(tmp_path: Path, **kw: object) -> tuple[list[str], str]:
    if not (BIN / "cuobjdump").exists():
        pytest.skip("Triton's bundled cuobjdump is not there")
    cubin = tmp_path / "k.cubin"
    cubin.write_bytes(compile_for_sm90(**kw).asm["cubin"])  # type: ignore[arg-type]

    def run(*args: str) -> str:
        cmd = [str(BIN / "cuobjdump"), *args, str(cubin)]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    ops = [
        m.group(1)
        for m in re.finditer(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([^;]+);", run("-sass"))
    ]
    return ops, run("--dump-resource-usage")


@pytest.mark.parametrize("ws", [False, True], ids=["plain", "warp-specialized"])
@pytest.mark.parametrize(
    ("tiling", "head_dim", "causal"),
    [((128, 128, 8, 2), 128, False), ((128, 128, 8, 2), 128, True), ((128, 64, 8, 3), 64, False)],
    ids=["hd128", "hd128-causal", "hd64"],
)
def test_softmax_runs_under_the_pv_wgmma(tmp_path: Path, tiling, head_dim, causal, ws) -> None:  # type: ignore[no-untyped-def]
    ops, usage = sass_and_usage(tmp_path, tiling=tiling, head_dim=head_dim, causal=causal, ws=ws)
    assert "LOCAL:0" in usage and "STACK:0" in usage, usage  # no spills
    waits_1 = [i for i, op in enumerate(ops) if op.startswith("WARPGROUP.DEPBAR.LE gsb0, 0x1")]
    assert len(waits_1) == 1, "one wait-for-scores in the key-tile loop"
    start = waits_1[0]
    first_exp = next(i for i in range(start, len(ops)) if ops[i].startswith("MUFU.EX2"))
    between = ops[start + 1 : first_exp]
    assert not [op for op in between if op.startswith("WARPGROUP.DEPBAR.LE gsb0, 0x0")], between
    # and the loop still has exponentials for a whole score tile after that point
    n_exp = sum(op.startswith("MUFU.EX2") for op in ops[start:])
    assert n_exp >= tiling[0] * tiling[1] // (32 * tiling[2]), n_exp
