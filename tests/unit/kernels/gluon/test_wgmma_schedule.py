"""The Gluon wgmma kernels' schedule, checked in their SASS (compiled for sm_90 on any host).

The kernels exist for one property: in the key-tile loop the P.V wgmma is still in flight
while the softmax's exponentials run. ptxas is free to move a `wgmma.wait_group` earlier
inside a basic block and did (kernels/gluon/attn_wgmma.py, `_kv_step`), so the test reads the
compiled loop: between the wait for the scores (`WARPGROUP.DEPBAR.LE gsb0, 0x1`) and the
loop's exponentials there must be no wait for all wgmmas (`... gsb0, 0x0`), and nothing may
spill. Needs Triton's bundled ptxas/cuobjdump, no GPU. The kernels are compiled in a fresh
interpreter: other tests of the session run Triton's CPU interpreter (TRITON_INTERPRET=1),
which patches the language builtins that compilation uses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")

BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
ROOT = Path(__file__).resolve().parents[4]
CASES = {  # id: (tiling, head_dim, causal, warp-specialized)
    f"{name}-{'ws' if ws else 'plain'}": (tiling, d, causal, ws)
    for name, tiling, d, causal in (
        ("hd128", (128, 128, 8, 2), 128, False),
        ("hd128-causal", (128, 128, 8, 2), 128, True),
        ("hd64", (128, 64, 8, 3), 64, False),
    )
    for ws in (False, True)
}
_COMPILE = """
import json, sys
from pathlib import Path
from attnsim.kernels.gluon.attn_wgmma import compile_for_sm90
out = Path(sys.argv[1])
for name, (tiling, d, causal, ws) in json.loads(sys.argv[2]).items():
    kernel = compile_for_sm90(tuple(tiling), head_dim=d, causal=causal, ws=ws)
    (out / f"{name}.cubin").write_bytes(kernel.asm["cubin"])
"""


@pytest.fixture(scope="module")
def cubins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (BIN / "cuobjdump").exists():
        pytest.skip("Triton's bundled cuobjdump is not there")
    out = tmp_path_factory.mktemp("wgmma")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-c", _COMPILE, str(out), json.dumps(CASES)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def sass_and_usage(cubin: Path) -> tuple[list[str], str]:
    def dump(*args: str) -> str:
        cmd = [str(BIN / "cuobjdump"), *args, str(cubin)]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    pattern = r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([^;]+);"
    return [m.group(1) for m in re.finditer(pattern, dump("-sass"))], dump("--dump-resource-usage")


@pytest.mark.parametrize("name", list(CASES))
def test_softmax_runs_under_the_pv_wgmma(cubins: Path, name: str) -> None:
    tiling = CASES[name][0]
    ops, usage = sass_and_usage(cubins / f"{name}.cubin")
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
