"""GPU only: the 1-pass family's ping-pong kernel -- correctness, then timing vs cuDNN/Triton.

`check`: relative error against a float64 reference next to SDPA's on small shapes (ragged
keys, one key tile, causal, both head dims, 2 and 3 K/V slots), two input draws each.
`time`: the ping-pong kernel (kernels/gluon/attn_pingpong.py), the Triton 1-pass kernel (three
tilings) and SDPA cuDNN on the issue's head-dim-128 non-causal >= 4K shapes and a few others,
all in one run; prints the mean cuDNN/ours ratio over the bf16 head-dim-128 non-causal shapes.

Run: PYTHONPATH=. python benchmarks/pingpong_probe.py check|time [--out FILE.json]
"""

from __future__ import annotations

import json
import sys
from functools import partial

import torch
import torch.nn.functional as F
import triton.testing
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnsim.kernels.triton.attn_fwd import attention_fwd


def attention_fwd_pp(q, k, v, causal=False, tiling=(128, 128, 8, 3)):  # type: ignore[no-untyped-def]
    """The family's launcher with schedule "pingpong" and a (BM, BN, warps, stages) tiling."""
    bm, bn, w, st = tiling
    return attention_fwd(
        q, k, v, causal, block_m=bm, block_n=bn, num_warps=w, num_stages=st, schedule="pingpong"
    )


DT = {"bf16": torch.bfloat16, "fp16": torch.float16}
CHECK = [  # (b, h, sq, sk, d, causal, dtype, tiling)
    (1, 1, 128, 128, 128, False, "bf16", (128, 128, 8, 3)),  # one tile
    (1, 2, 256, 384, 128, False, "bf16", (128, 128, 8, 3)),  # 3 tiles: one ring pass
    (2, 3, 512, 1000, 128, False, "fp16", (128, 128, 8, 3)),  # ragged keys
    (2, 4, 1024, 1024, 128, True, "bf16", (128, 128, 8, 3)),
    (2, 4, 1024, 2048, 64, False, "bf16", (128, 128, 8, 3)),
    (2, 4, 1024, 1024, 64, True, "fp16", (128, 64, 8, 3)),
    (1, 8, 4096, 4096, 128, False, "bf16", (128, 64, 8, 3)),
    (4, 16, 2048, 2048, 128, False, "bf16", (128, 128, 8, 3)),
]
TIME = [
    (4, 16, 4096, 4096, 128, False, "bf16"),
    (2, 16, 8192, 8192, 128, False, "bf16"),
    (1, 16, 16384, 16384, 128, False, "bf16"),
    (1, 16, 32768, 32768, 128, False, "bf16"),
    (1, 4, 4096, 4096, 128, False, "bf16"),
    (1, 4, 8192, 8192, 128, False, "bf16"),
    (1, 4, 16384, 16384, 128, False, "bf16"),
    (1, 4, 32768, 32768, 128, False, "bf16"),
    (4, 16, 4096, 4096, 128, False, "fp16"),
    (2, 16, 8192, 8192, 128, True, "bf16"),
    (2, 16, 8192, 8192, 64, False, "bf16"),
    (2, 16, 8192, 8192, 64, True, "bf16"),
]
TRITON_TILINGS = [(128, 128, 8, 3), (64, 64, 4, 3), (128, 64, 8, 3)]
PP_TILINGS = [(128, 128, 8, 3), (128, 64, 8, 3)]


def _inputs(b, h, sq, sk, d, dt, seed=0):  # type: ignore[no-untyped-def]
    g = torch.Generator(device="cuda").manual_seed(seed)
    return [torch.randn(b, h, s, d, device="cuda", dtype=DT[dt], generator=g) for s in (sq, sk, sk)]


def check() -> int:
    """Correctness on the CHECK shapes; returns 1 on any failure."""
    bad = 0
    for b, h, sq, sk, d, causal, dt, tiling in CHECK:
        for seed in (0, 1):
            q, k, v = _inputs(b, h, sq, sk, d, dt, seed)
            ref = F.scaled_dot_product_attention(
                q.double(), k.double(), v.double(), is_causal=causal
            )
            low = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            out = attention_fwd_pp(q, k, v, causal=causal, tiling=tiling)
            torch.cuda.synchronize()
            e_out = float((out.double() - ref).norm() / ref.norm())
            e_low = float((low.double() - ref).norm() / ref.norm())
            ok = bool(torch.isfinite(out).all()) and e_out <= 2 * e_low + 1e-5
            bad += not ok
            print(
                f"check {[b, h, sq, sk, d, causal, dt]} {list(tiling)} seed {seed}: "
                f"rel err {e_out:.2e} (sdpa {e_low:.2e}) {'ok' if ok else 'FAIL'}",
                flush=True,
            )
    print(f"check: {bad} failures", flush=True)
    return 1 if bad else 0


def _ms(fn) -> float:  # type: ignore[no-untyped-def]
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def time_all(out_path: str | None) -> int:
    """Time every TIME shape; print one line per shape and the mean cuDNN ratios."""
    rows = []
    for b, h, sq, sk, d, causal, dt in TIME:
        q, k, v = _inputs(b, h, sq, sk, d, dt)
        flops = 4 * b * h * sq * sk * d // (2 if causal else 1)
        ms = {}
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            ms["cudnn"] = _ms(partial(F.scaled_dot_product_attention, q, k, v, is_causal=causal))
        for bm, bn, w, st in TRITON_TILINGS:
            ms[f"triton{[bm, bn, w, st]}"] = _ms(partial(
                attention_fwd, q, k, v, causal=causal, block_m=bm, block_n=bn, num_warps=w,
                num_stages=st))  # fmt: skip
        for t in PP_TILINGS:
            try:
                ms[f"pp{list(t)}"] = _ms(
                    partial(attention_fwd_pp, q, k, v, causal=causal, tiling=t)
                )
            except ValueError as e:
                print("  pp", t, e)
        line = f"{[b, h, sq, sk, d, causal, dt]}"
        for p in ("cudnn", "triton", "pp"):
            v_, k_ = min((v_, k_) for k_, v_ in ms.items() if k_.startswith(p))
            line += f" | {k_} {v_:.4f} ms {flops / v_ / 1e9:.0f} TF/s"
        print(line, flush=True)
        rows.append({"shape": [b, h, sq, sk, d, causal, dt], "ms": ms})
        if out_path:
            with open(out_path, "w") as f:
                json.dump(rows, f, indent=1)
    tgt = [
        r for r in rows if r["shape"][4] == 128 and not r["shape"][5] and r["shape"][6] == "bf16"
    ]
    for p in ("triton", "pp"):
        rat = [
            r["ms"]["cudnn"] / min(v for k, v in r["ms"].items() if k.startswith(p)) for r in tgt
        ]
        print(
            f"{p}: mean cuDNN/ours over {len(rat)} hd128 non-causal >=4K bf16 shapes: "
            f"{sum(rat) / len(rat):.3f}"
        )
    return 0


if __name__ == "__main__":
    mode = sys.argv[1]
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else None
    sys.exit(check() if mode == "check" else time_all(out))
