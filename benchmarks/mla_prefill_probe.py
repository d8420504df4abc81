"""GPU only: MLA prefill in its two forms, naive and absorbed, at DeepSeek-V3 sizes.

Run: PYTHONPATH=. python benchmarks/mla_prefill_probe.py --out DIR [--budget-s 150]

DeepSeek-V3 attention (arXiv 2412.19437, Sec. 2.1.1): 128 heads, latent C = 512, decoupled
RoPE dim R = 64, head dims E = F = 128; bf16, batch 1, P = M in 1K-8K without a mask (as the
built-in cascades `attention-mla-naive` / `-absorbed` are), and decode, P = 1, against 4K
and 32K caches, as a cross-check of the opposite verdict.

- naive: up-project the latent cache to per-head K (C -> E, plus the shared rope key) and V
  (C -> F) with cuBLAS matmuls, then multi-head SDPA with key dim E + R = 192, value dim F;
- absorbed: fold W_UK into the queries (Q.W_UK, cuBLAS), SDPA over the latent as one shared
  K/V head (key dim C + R = 576, value dim C; `enable_gqa`, or as `absorbed-expanded` a
  stride-0 view over the heads for backends without it), then the output through W_UV.

Each form is timed end to end (its matmuls plus its attention) with every SDPA backend that
runs it (flash, cuDNN, efficient; each tried, failures recorded), median of
`triton.testing.do_bench` with the L2 flushed; the two forms' outputs are checked against
each other (they are the same function). Writes DIR/mla-prefill-<device>-<date>.csv.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
import triton.testing
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnsim.kernels.spec import device_slug

H, C, R, E = 128, 512, 64, 128  # DeepSeek-V3: heads, latent, rope dim, head dim (= F)
LENGTHS = ((1, 1024, 1024), (1, 4096, 4096), (1, 8192, 8192), (1, 1, 4096), (1, 1, 32768))
BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}
FIELDS = ("device", "batch", "heads", "latent", "rope", "head_dim", "seq_q", "seq_k", "causal",
          "form", "backend", "total_ms", "matmul_ms", "attention_ms", "max_abs_err", "torch",
          "triton", "timestamp")  # fmt: skip


def _ms(fn) -> float:  # type: ignore[no-untyped-def]
    return float(triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median"))


def _inputs(b: int, p: int, m: int):  # type: ignore[no-untyped-def]
    g = torch.Generator(device="cuda").manual_seed(p * 7 + m)

    def mk(*shape: int, scale: float = 1.0) -> torch.Tensor:
        x = torch.randn(*shape, device="cuda", generator=g) * scale
        return x.to(torch.bfloat16)

    return dict(
        q=mk(b, H, p, E), qr=mk(b, H, p, R), ckv=mk(b, m, C), kr=mk(b, m, R),
        wuk=mk(H, C, E, scale=C**-0.5), wuv=mk(H, C, E, scale=C**-0.5),
    )  # fmt: skip


def naive_parts(x, causal):  # type: ignore[no-untyped-def]
    """(matmul step, attention step) of the naive form."""
    b, m = x["ckv"].shape[:2]

    def up():  # per-head K and V for every cached key
        k = torch.einsum("bmc,hce->bhme", x["ckv"], x["wuk"])
        v = torch.einsum("bmc,hcf->bhmf", x["ckv"], x["wuv"])
        kr = x["kr"][:, None].expand(b, H, m, R)
        return torch.cat((k, kr), -1), v

    q = torch.cat((x["q"], x["qr"]), -1)
    scale = (E + R) ** -0.5

    def attend(k, v):  # type: ignore[no-untyped-def]
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)

    return up, attend


def absorbed_parts(x, causal, expand=False):  # type: ignore[no-untyped-def]
    """(query absorption, attention over the latent + output projection) of the absorbed form.

    `expand`: pass the shared K/V head as a stride-0 view over the H heads instead of
    `enable_gqa` (for backends without it).
    """
    kv = torch.cat((x["ckv"], x["kr"]), -1)[:, None]  # one K/V head shared by all H
    v = x["ckv"][:, None]
    if expand:
        kv, v = kv.expand(-1, H, -1, -1), v.expand(-1, H, -1, -1)
    scale = (E + R) ** -0.5

    def absorb():
        qc = torch.einsum("bhpe,hce->bhpc", x["q"], x["wuk"])
        return torch.cat((qc, x["qr"]), -1)

    def attend(q):  # type: ignore[no-untyped-def]
        oc = F.scaled_dot_product_attention(
            q, kv, v, is_causal=causal, scale=scale, enable_gqa=not expand
        )
        return torch.einsum("bhpc,hcf->bhpf", oc, x["wuv"])

    return absorb, attend


def _time_form(form, x, causal, backend):  # type: ignore[no-untyped-def]
    """(total, matmul, attention) ms and the output of one form with one SDPA backend."""
    if form == "naive":
        first, second = naive_parts(x, causal)
    else:
        first, second = absorbed_parts(x, causal, expand=form.endswith("expanded"))
    with sdpa_kernel(backend):
        mid = first()
        out = second(*mid) if isinstance(mid, tuple) else second(mid)
        torch.cuda.synchronize()
        matmul = _ms(first)
        attention = _ms(lambda: second(*mid) if isinstance(mid, tuple) else second(mid))

        def both():  # type: ignore[no-untyped-def]
            m = first()
            return second(*m) if isinstance(m, tuple) else second(m)

        total = _ms(both)
    return total, matmul, attention, out


def main() -> int:
    """Time both forms per length and backend; write the CSV."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=150)
    args = ap.parse_args()
    start = time.monotonic()
    name = torch.cuda.get_device_name()
    stamp = dt.datetime.now(dt.UTC)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"mla-prefill-{device_slug(name)}-{stamp:%Y-%m-%d}.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        for b, p, m in LENGTHS:
            if time.monotonic() - start > args.budget_s:
                print("budget spent; stopping", file=sys.stderr)
                break
            x = _inputs(b, p, m)
            causal = False  # the built-in MLA cascades have no mask
            outs = {}
            for form in ("naive", "absorbed", "absorbed-expanded"):
                for bname, backend in BACKENDS.items():
                    try:
                        total, mm, att, out = _time_form(form, x, causal, backend)
                    except RuntimeError as exc:  # the backend does not take these dims
                        print(f"{form}/{bname} P={p} M={m}: {str(exc).splitlines()[0][:120]}")
                        continue
                    outs.setdefault(form, out)
                    err = float("nan")
                    if "naive" in outs and form != "naive":
                        err = float((out.float() - outs["naive"].float()).abs().max())
                    writer.writerow(dict(
                        device=name, batch=b, heads=H, latent=C, rope=R, head_dim=E, seq_q=p,
                        seq_k=m, causal=int(causal), form=form, backend=bname, total_ms=total,
                        matmul_ms=mm, attention_ms=att, max_abs_err=err,
                        torch=torch.__version__, triton=triton.__version__,
                        timestamp=stamp.isoformat(),
                    ))  # fmt: skip
                    fh.flush()
                    print(f"P={p:<5} M={m:<6} {form:<8} {bname:<9} total {total:8.3f} ms "
                          f"(matmul {mm:.3f}, attention {att:.3f}) err {err:.3g}")  # fmt: skip
            del x, outs
            torch.cuda.empty_cache()
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
