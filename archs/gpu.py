"""GPUs as data: the `GpuArch` record and its YAML loader (`kind: gpu` presets).

SMs, clocks, unit rates, on-chip limits, L2 and HBM; measured rates live in `archs.calibration`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from attnsim.archs.calibration import Calibration, calibration_path, load_calibration
from attnsim.archs.interconnect import Cluster, positive_number, read_cluster
from attnsim.einsum_ir.spec import Reader

KIB = 1024
TOP_KEYS = (
    "architecture",
    "kind",
    "description",
    "sources",
    "sm_count",
    "boost_clock_ghz",
    "tensor_core_dense_tflops",
    "cuda_core_fp32_tflops",
    "sfu_ops_per_clock_per_sm",
    "shared_memory_per_sm_kib",
    "shared_memory_per_block_kib",
    "registers_per_sm",
    "max_registers_per_thread",
    "max_threads_per_sm",
    "max_blocks_per_sm",
    "max_warps_per_sm",
    "l2_size_mib",
    "l2_bandwidth_gb_per_s",
    "hbm_size_gib",
    "hbm_bandwidth_gb_per_s",
    "launch_overhead_us",
    "hbm_latency_ns",
    "board_power_w",
    "compute_capability",
    "calibration",
    "interconnect",
)
DTYPE_BYTES = {"fp8": 1, "fp16": 2, "bf16": 2, "tf32": 4, "fp32": 4}


@dataclass(frozen=True, slots=True)
class GpuArch:
    """A GPU: datasheet figures (units in field names) plus an optional measured calibration.

    Rates are whole-device peaks as published; per-SM-per-clock figures are derived from them.
    """

    name: str
    sm_count: int
    clock_hz: float
    tensor_tflops: tuple[tuple[str, float], ...]
    cuda_core_fp32_tflops: float
    sfu_ops_per_clock_per_sm: float
    shared_memory_per_sm_bytes: int
    shared_memory_per_block_bytes: int
    registers_per_sm: int
    max_registers_per_thread: int
    max_threads_per_sm: int
    max_blocks_per_sm: int
    max_warps_per_sm: int
    l2_bytes: int
    l2_bandwidth_bytes_per_s: float
    hbm_bytes: int
    hbm_bandwidth_bytes_per_s: float
    launch_overhead_s: float
    hbm_latency_s: float
    board_power_w: float
    description: str = ""
    sources: tuple[str, ...] = ()
    compute_capability: float | None = None  # e.g. 9.0; kernels that need a given one check it
    calibration: Calibration | None = None
    interconnect: Cluster | None = None  # links to other devices (archs.interconnect)
    source: str = field(default="", compare=False)

    kind = "gpu"

    @property
    def word_bytes(self) -> int:
        """Bytes of the default attention dtype (fp16/bf16), for code that asks any arch."""
        return 2

    def tensor_flops_per_s(self, dtype: str) -> float:
        """Datasheet dense tensor-core FLOP/s for `dtype` (KeyError lists the known dtypes)."""
        rates = dict(self.tensor_tflops)
        if dtype not in rates:
            raise KeyError(f"{self.name} has no tensor-core rate for {dtype!r}; has {list(rates)}")
        return rates[dtype] * 1e12

    @property
    def sfu_ops_per_s(self) -> float:
        """Special-function (exp2) results per second over the whole device."""
        return self.sfu_ops_per_clock_per_sm * self.sm_count * self.clock_hz

    @property
    def fp32_ops_per_s(self) -> float:
        """CUDA-core fp32 operations (one FMA = one op) per second over the whole device."""
        return self.cuda_core_fp32_tflops * 1e12 / 2


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a dtype name (fp16, bf16, fp32, ...)."""
    if dtype not in DTYPE_BYTES:
        raise KeyError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


# ----------------------------------------------------------------------------- loading


def _pos_int(r: Reader | None, default: int = 1) -> int:
    if r is None or not r.check("int"):
        return default
    if r.value <= 0:
        r.error(f"expected a positive integer, got {r.value}")
        return default
    return int(r.value)


def load_gpu(root: Reader) -> GpuArch:
    """Build a `GpuArch` from a `kind: gpu` mapping; every problem is reported at once."""
    name = root.req("architecture", "str")
    desc = root.opt("description", "str")
    rates: list[tuple[str, float]] = []
    tc = root.req("tensor_core_dense_tflops", "map")
    for dtype, value in tc.items() if tc is not None else ():
        if dtype not in DTYPE_BYTES:
            value.error(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}")
        rates.append((dtype, positive_number(value)))
    sources_r = root.opt("sources", "list")
    sources = tuple(str(s.value) for s in sources_r.each()) if sources_r is not None else ()
    smem_sm = positive_number(root.req("shared_memory_per_sm_kib", "number"))
    smem_block = positive_number(root.req("shared_memory_per_block_kib", "number"))
    if smem_block > smem_sm:
        root.error("shared_memory_per_block_kib exceeds shared_memory_per_sm_kib")
    cc_r = root.opt("compute_capability", "number")
    cc = positive_number(cc_r) if cc_r is not None else None
    cal = None
    cal_r = root.opt("calibration", "str")
    if cal_r is not None:
        path = calibration_path(str(cal_r.value), Path(root.file).parent)
        if path is None:
            cal_r.error(f"no calibration file {cal_r.value!r} (looked in archs/calibration/)")
        else:
            cal = load_calibration(path, root.problems)
    ic_r = root.opt("interconnect", "map")
    cluster = read_cluster(ic_r) if ic_r is not None else None
    arch = GpuArch(
        name=str(name.value) if name else "",
        sm_count=_pos_int(root.req("sm_count", "int")),
        clock_hz=positive_number(root.req("boost_clock_ghz", "number")) * 1e9,
        tensor_tflops=tuple(rates),
        cuda_core_fp32_tflops=positive_number(root.req("cuda_core_fp32_tflops", "number")),
        sfu_ops_per_clock_per_sm=positive_number(root.req("sfu_ops_per_clock_per_sm", "number")),
        shared_memory_per_sm_bytes=int(smem_sm * KIB),
        shared_memory_per_block_bytes=int(smem_block * KIB),
        registers_per_sm=_pos_int(root.req("registers_per_sm", "int")),
        max_registers_per_thread=_pos_int(root.req("max_registers_per_thread", "int")),
        max_threads_per_sm=_pos_int(root.req("max_threads_per_sm", "int")),
        max_blocks_per_sm=_pos_int(root.req("max_blocks_per_sm", "int")),
        max_warps_per_sm=_pos_int(root.req("max_warps_per_sm", "int")),
        l2_bytes=int(positive_number(root.req("l2_size_mib", "number")) * KIB * KIB),
        l2_bandwidth_bytes_per_s=positive_number(root.req("l2_bandwidth_gb_per_s", "number")) * 1e9,
        hbm_bytes=int(positive_number(root.req("hbm_size_gib", "number")) * KIB**3),
        hbm_bandwidth_bytes_per_s=positive_number(root.req("hbm_bandwidth_gb_per_s", "number"))
        * 1e9,
        launch_overhead_s=positive_number(root.req("launch_overhead_us", "number")) * 1e-6,
        hbm_latency_s=positive_number(root.req("hbm_latency_ns", "number")) * 1e-9,
        board_power_w=positive_number(root.req("board_power_w", "number")),
        description=str(desc.value) if desc else "",
        sources=sources,
        compute_capability=cc,
        calibration=cal,
        interconnect=cluster,
        source=root.file,
    )
    if tc is not None and not rates:
        tc.error("expected at least one {dtype: tflops} entry")
    root.done(TOP_KEYS)
    root.finish()
    return arch
