"""The probes `reports.validation_kernels` reads: the backward and Lightning-2 families.

Each prediction runs the family's model on the row's exact problem and configuration.
"""

from __future__ import annotations

from attnsim.reports.validation_kernels import Probe, Row, register, row_int

BWD_FAMILY = "triton-bwd"  # kernels.triton.attn_bwd, timed by benchmarks/bwd_probe.py


def _bwd_shape(row: Row) -> str:
    b, h, g = row_int(row, "batch"), row_int(row, "heads"), row_int(row, "kv_heads")
    kv = f"/{g}" if g and g != h else ""
    causal = " causal" if row_int(row, "causal") else ""
    return (
        f"B={b} H={h}{kv} P={row_int(row, 'seq_q')} M={row_int(row, 'seq_k')} "
        f"E={row_int(row, 'head_dim')}{causal}"
    )


def _bwd_config(row: Row) -> str:
    t = (row_int(row, k) for k in ("block_m", "block_n", "num_warps", "num_stages"))
    return "{}x{}/w{}/s{}".format(*t) + f"/{row.get('dq_mode', '')}"


def _bwd_predict(row: Row, arch: object) -> tuple[float, str]:
    from attnsim.archs.gpu import dtype_bytes
    from attnsim.kernels.spec import AttnShape
    from attnsim.mappers.gpu.backward import time_bwd
    from attnsim.mappers.gpu.rates import Tiling, device_rates

    h, g = row_int(row, "heads"), row_int(row, "kv_heads")
    e = row_int(row, "head_dim")
    dtype = row.get("dtype") or "bf16"
    shape = AttnShape(
        row_int(row, "batch"),
        h,
        row_int(row, "seq_q"),
        row_int(row, "seq_k"),
        e,
        e,
        bool(row_int(row, "causal")),
        dtype,
        dtype_bytes(dtype),
        kv_group=h // g if g else 1,
    )
    bm, bn, w, st = (row_int(row, k) for k in ("block_m", "block_n", "num_warps", "num_stages"))
    tiling = Tiling(bm, bn, w, st)
    rates = device_rates(arch, dtype)  # type: ignore[arg-type]
    t = time_bwd(shape, tiling, row.get("dq_mode") or "atomic", rates)
    main = max(t.kernels, key=lambda k: k.time_s)
    return t.time_s * 1e3, main.bound


BWD = register(Probe(BWD_FAMILY, "gpu-bwd", "dq_mode", _bwd_shape, _bwd_config, _bwd_predict))

LIGHTNING_FAMILY = "triton-lightning"  # kernels.triton.lightning, benchmarks/lightning_probe.py


def _lightning_shape(row: Row) -> str:
    b, h, s, d = (row_int(row, k) for k in ("batch", "heads", "seq", "head_dim"))
    return f"B={b} H={h} S={s} E=F={d} decay={row.get('decay', '')}"


def _lightning_config(row: Row) -> str:
    t = (row_int(row, k) for k in ("block_c", "block_f", "num_warps", "num_stages"))
    extra = f"/{row.get('state_tile', '')}x{row.get('state_chunks', '')}"
    return (
        "c{}/f{}/w{}/s{}".format(*t)
        + f"/{row.get('schedule', '')}"
        + (extra if row.get("schedule") == "split" else "")
    )


def _lightning_predict(row: Row, arch: object) -> tuple[float, str]:
    from attnsim.mappers.gpu.lightning import time_lightning
    from attnsim.mappers.gpu.rates import Tiling, device_rates

    c, bf, w, st = (row_int(row, k) for k in ("block_c", "block_f", "num_warps", "num_stages"))
    d = row_int(row, "head_dim")
    rates = device_rates(arch, row.get("dtype") or "bf16")  # type: ignore[arg-type]
    k = time_lightning(
        row_int(row, "batch"), row_int(row, "heads"), row_int(row, "seq"), d, d,
        Tiling(c, bf, w, st), rates, row.get("schedule") or "fused",
    )  # fmt: skip
    return k.time_s * 1e3, k.bound


# The split schedule (states every R chunks, outputs in parallel) is not modelled: its rows
# give the comparison with fla-core only.
LIGHTNING = register(
    Probe(
        LIGHTNING_FAMILY, "", "block_c", _lightning_shape, _lightning_config,
        _lightning_predict, modelled=lambda row: row.get("schedule") == "fused",
    )
)  # fmt: skip
