"""Sigmoid attention's per-score arithmetic in the sm_90 SASS (compiled on any host).

sigmoid(x) = 0.5 tanh(x / 2) + 0.5: per score one FFMA forms the tanh argument from the raw
q.k (scale, ln 2 / 2 and the bias folded into one multiply-add), one MUFU.TANH, one FFMA for
0.5 y + 0.5. A separate multiply or add per score (scaling, then the bias, then halving)
would show as FMUL/FADD counts of the order of the MUFU count.
"""

from __future__ import annotations

import json

import pytest

SCRIPT = r"""
import json
from attnsim.kernels.triton.sm90 import compile_fwd, sass_opcodes

out = {}
for causal in (False, True):
    k = compile_fwd((128, 128, 8, 3), 128, SIGMOID=True, FAST_TANH=True, CAUSAL=causal)
    out[str(causal)] = dict(sass_opcodes(k))
print(json.dumps(out))
"""


def test_sigmoid_scores_take_one_fma_each_before_the_tanh():
    pytest.importorskip("triton.backends.nvidia")
    from attnsim.kernels.triton.sm90 import run_script

    for causal, ops in json.loads(run_script(SCRIPT).splitlines()[-1]).items():
        tanh_ops = ops.get("MUFU", 0)
        assert tanh_ops >= 64, (causal, ops)  # 128x128 tile over 256 threads: 64 per loop body
        assert ops.get("FMUL", 0) + ops.get("FADD", 0) <= 4, (causal, ops)
        assert ops.get("FFMA", 0) <= 2 * tanh_ops, (causal, ops)
