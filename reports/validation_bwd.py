"""The backward probe `reports.validation_kernels` reads (family `triton-bwd`).

Files of `benchmarks/bwd_probe.py`; each row is predicted by `mappers.gpu.backward.time_bwd`
on its exact problem, tiling, dq mode, launch order (the `head_group` column; files
written before it had one ran head-major, group 1) and causal dK/dV loops (the `diag_loop`
column; files written before it ran the diagonal tiles in a loop of their own, 1) and dK/dV
step order (the `dp_first` column; files written before it issued dP after dV, 0). Host side:
a file written with a host probe (`<stem>-host.yaml`,
`kernels.calibrate.microbench_bwd.write_host_file`) is predicted with the launcher-call
figures measured in the same run (`reports.validation.host_adjusted`: its `bwd-*` figures in
place of the calibration's, do_bench's head start scaled by the forward launchers' figures
measured beside them); without one, with the calibration's figures (and where those have no
backward figure, one host launch per kernel).
"""

from __future__ import annotations

from pathlib import Path

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
    # the launch order it ran: files from before the column were all head-major (group 1)
    group = row_int(row, "head_group", 1)
    # and its causal dK/dV loops: files from before the column ran the diagonal loop (1)
    diag = bool(row_int(row, "diag_loop", 1))
    # and its dK/dV step order: files from before the column issued dP after dV (0)
    first = bool(row_int(row, "dp_first", 0))
    t = time_bwd(shape, tiling, row.get("dq_mode") or "atomic", rates, group, diag, first)
    if t.host_bound:
        return t.time_s * 1e3, "host launch"
    main = max(t.kernels, key=lambda k: k.time_s)
    return t.time_s * 1e3, main.bound


def bwd_host(path: Path, arch: object) -> tuple[object, str]:
    """The arch to predict `path`'s rows on, and whose host figures it carries.

    With `<stem>-host.yaml` beside the file: `arch` with that run's figures
    (`reports.validation.host_adjusted`); without: `arch` as it is.
    """
    from attnsim.archs.gpu import GpuArch
    from attnsim.kernels.bench.measure import read_host_figures
    from attnsim.mappers.gpu.backward import host_keys
    from attnsim.reports.validation import host_adjusted

    host = read_host_figures(path)
    if host is not None and isinstance(arch, GpuArch):
        raw = host["host_call_us"]
        assert isinstance(raw, dict)  # read_host_figures checked it
        calls = {str(f): float(us) for f, us in raw.items()}
        flush = float(host["bench_flush_us"])  # type: ignore[arg-type]
        return host_adjusted(arch, calls, flush), f"{host['path']} (measured in the same run)"
    cal = getattr(arch, "calibration", None)
    if cal is not None and cal.origin == "datasheet" and not cal.host_launch_s:
        return arch, "nowhere (measurements withheld: no host-side cost)"
    measured = cal is not None and any(
        cal.host_call(k) is not None
        for mode in ("atomic", "separate")
        for k in host_keys(mode, False)
    )
    if measured:
        return arch, "the calibration file (no host file beside it)"
    return arch, (
        "the calibration file, which has no backward launcher figure: one host launch per "
        "kernel (no host file beside it)"
    )


# `bwd_probe.py`'s files; its side probes' (`bwd_order_probe.py`, `bwd_tma_probe.py`: one
# `seq` column, trial builds) are read by their own tests, not by validate gpu
BWD = register(
    Probe(BWD_FAMILY, "gpu-bwd", "dq_mode", _bwd_shape, _bwd_config, _bwd_predict,
          host=bwd_host, needs=("seq_q", "seq_k"))
)  # fmt: skip
