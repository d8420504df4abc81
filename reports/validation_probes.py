"""The probes `reports.validation_kernels` reads: Lightning-2, window, score (and backward).

Each prediction runs the family's model on the row's exact problem and configuration. The
backward's probe lives in `reports.validation_bwd`.
"""

from __future__ import annotations

from attnsim.reports import validation_bwd  # noqa: F401  (registers triton-bwd first)
from attnsim.reports.validation_kernels import Probe, Row, register, row_int

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
        gated=row.get("decay") == "gla",  # GLA rows (lightning_probe.py --gla): gates read
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

WINDOW_FAMILY = "triton-window"  # the plain 1-pass kernel's window/sinks; masks_probe.py
SCORE_FAMILY = "triton-score"  # the plain 1-pass kernel's score functions; masks_probe.py


def _masks_shape(row: Row) -> str:
    b, h, s, d = (row_int(row, k) for k in ("batch", "heads", "seq", "head_dim"))
    if "score" in row:
        extra = f"{'causal ' if row_int(row, 'causal') else ''}{row.get('score', '')}"
    else:
        w, sinks = row_int(row, "window"), row_int(row, "sinks")
        extra = f"W={w} S={sinks}" if w else "causal"
    return f"B={b} H={h} S={s} E={d} {extra}"


def _schedule(row: Row) -> str:
    """The 1-pass kernel a masks-probe row ran (files before the column: the plain one)."""
    return row.get("schedule") or "plain"


def _tiling_text(row: Row) -> str:
    t = (row_int(row, k) for k in ("block_m", "block_n", "num_warps", "num_stages"))
    pingpong = "/pingpong" if _schedule(row) == "pingpong" else ""
    return "{}x{}/w{}/s{}".format(*t) + pingpong


def masks_cascade(row: Row) -> tuple[str, dict[str, int]]:
    """The built-in and extra sizes a masks-probe row ran: window, sinks or score function."""
    causal = "-causal" if row_int(row, "causal") else ""
    if "score" in row:
        score = row.get("score") or "softmax"
        suffix = "" if score == "softmax" else f"-{score}"
        extra = {"C": 50} if score == "softcap" else {}  # masks_probe: tanh softcap 50
        return f"attention-1pass-mh{causal}{suffix}", extra
    w, sinks = row_int(row, "window"), row_int(row, "sinks")
    if not w:
        return "attention-1pass-mh-causal", {}
    if sinks:
        return "attention-1pass-mh-sinks-window", {"W": w, "S": sinks}
    return "attention-1pass-mh-window", {"W": w}


def _masks_predict(row: Row, arch: object) -> tuple[float, str]:
    from attnsim.einsum_ir import load_cascade
    from attnsim.mappers.registry import get_mapper

    bm, bn, w, st = (row_int(row, k) for k in ("block_m", "block_n", "num_warps", "num_stages"))
    mapper = get_mapper("gpu-1pass")(
        schedule=_schedule(row), block_m=bm, block_n=bn, num_warps=w, num_stages=st,
        rank_candidates=False,
    )  # fmt: skip
    s, d = row_int(row, "seq"), row_int(row, "head_dim")
    name, extra = masks_cascade(row)
    sizes = dict(B=row_int(row, "batch"), H=row_int(row, "heads"), M=s, P=s, E=d, F=d)
    result = mapper.map(load_cascade(name), arch, {**sizes, **extra})
    ex = dict(result.extras)
    bound = "hbm" if float(ex.get("hbm_us", 0.0)) >= float(ex.get("scheduled_us", 0.0)) else "sm"
    return result.latency_s * 1e3, bound


def _masks_ratio(row: Row) -> tuple[str, str, str]:
    """A window against causal attention, a score function against softmax (same tiling)."""
    b, h, s, d = (row_int(row, k) for k in ("batch", "heads", "seq", "head_dim"))
    group = f"B={b} H={h} S={s} E={d} causal={row_int(row, 'causal')} {_tiling_text(row)}"
    if "score" in row:
        return group, row.get("score") or "softmax", "softmax"
    return group, "window" if row_int(row, "window") else "causal", "causal"


WINDOW = register(
    Probe(
        WINDOW_FAMILY,
        "gpu-1pass",
        "sinks",
        _masks_shape,
        _tiling_text,
        _masks_predict,
        ratio=_masks_ratio,
    )  # fmt: skip
)
SCORE = register(
    Probe(
        SCORE_FAMILY,
        "gpu-1pass",
        "score",
        _masks_shape,
        _tiling_text,
        _masks_predict,
        ratio=_masks_ratio,
    )  # fmt: skip
)

from attnsim.reports import validation_blocksparse, validation_neighborhood  # noqa: E402, F401
