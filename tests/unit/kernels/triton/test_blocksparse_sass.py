"""The block-sparse key loop's prefetch in the sm_90 SASS (compiled on any host).

The 1-pass kernel's dense loop loads K and V two tiles ahead (num_stages 3): before its first
wgmma it issues five TMA loads (Q, then K and V of the first two key tiles). A block-sparse
loop whose list entry is read in the step that uses it compiled, under Triton 3.6, to three
(Q, K0, V0: K/V one tile ahead) with the entry staged through shared memory by cp.async
(LDGSTS) behind one more CTA barrier a step. `attn_loop.attn_inner` reads the entry a step
ahead into a register; these tests keep it that way.
"""

from __future__ import annotations

import json

import pytest

SCRIPT = r"""
import json
from attnsim.kernels.triton.sm90 import compile_fwd, sass_opcodes

out = {}
for name, kw in (("dense", {}), ("sparse", {"BLOCK_SPARSE": True}),
                 ("segments", {"BLOCK_SPARSE": True, "SEGMENTS": 1})):
    k = compile_fwd((128, 64, 8, 3), 128, **kw)
    lines = k.asm["sass"].splitlines()
    first_mma = next(i for i, line in enumerate(lines) if "HGMMA" in line)
    ahead = sum("UTMALDG" in line for line in lines[:first_mma])
    out[name] = {"ahead": ahead, "ops": dict(sass_opcodes(k))}
print(json.dumps(out))
"""


def test_block_sparse_loads_k_and_v_as_far_ahead_as_the_dense_loop():
    pytest.importorskip("triton.backends.nvidia")
    from attnsim.kernels.triton.sm90 import run_script

    got = json.loads(run_script(SCRIPT).splitlines()[-1])
    dense = got["dense"]
    assert dense["ahead"] == 5, dense["ahead"]  # Q, K0, V0, K1, V1
    for name in ("sparse", "segments"):
        assert got[name]["ahead"] == dense["ahead"], (name, got[name]["ahead"])
        assert got[name]["ops"].get("BAR", 0) <= dense["ops"].get("BAR", 0), name
    # no list entry through shared memory (the segment build stages its key ids that way)
    assert got["sparse"]["ops"].get("LDGSTS", 0) == 0, got["sparse"]["ops"].get("LDGSTS")
