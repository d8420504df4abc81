"""Interconnects as data: links (NVLink, PCIe, InfiniBand, Ethernet), a GPU's cluster, NCCL fits.

A link preset is one YAML file under `archs/presets/interconnects/` (`link:` its name):

    link: nvlink4
    description: ...
    bandwidth_gb_per_s: 450      # per direction, per device (1e9 B/s)
    latency_us: 3.0              # alpha: the per-message (per collective step) latency
    latency_is_estimate: true    # a figure nobody measured is marked so, and warned of
    topology: switch             # switch (full bisection among the devices) or ring
    sources: [...]

A GPU preset names its cluster with an `interconnect:` mapping:

    interconnect:
      intra_node: nvlink4        # a link preset name, or an inline link mapping
      devices_per_node: 8
      inter_node: ib-ndr-400     # the link each device has to other nodes (one NIC a GPU)
      calibration: h200-nccl     # optional: archs/calibration/h200-nccl.yaml, when present

The calibration file (written by `kernels/calibrate/microbench_nccl.py`; absent: the
datasheet figures are used, and every Result says so) holds measured collective times:

    calibration: h200-nccl
    device: NVIDIA H200 x2 (NVLink 4)     # free text
    link: intra_node                      # which link the runs crossed: intra_node | inter_node
    measurements:
      - {collective: all_gather, algorithm: ring, devices: 2, bytes: 1048576, seconds: 1.9e-5}
      - {collective: send_recv, devices: 2, bytes: 1048576, seconds: 7.1e-6}

`collective` is one of `COLLECTIVES`; `algorithm` ring (default) or tree; `bytes` is the
buffer size as nccl-tests reports it (all_gather: the gathered output; reduce_scatter: the
input; all_reduce: the buffer; all_to_all: each device's whole send buffer; send_recv: the
message); `seconds` the median time of one call. `fit_link` fits alpha and beta by least
squares on the alpha-beta formulas of `mappers.gpu.multi_collectives` (the same coefficients:
`alpha_beta_terms`), which must be linear in (alpha, 1/beta).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from attnsim.einsum_ir.spec import Reader

LINKS_DIR = Path(__file__).parent / "presets" / "interconnects"
CALIBRATION_DIR = Path(__file__).parent / "calibration"
TOPOLOGIES = ("switch", "ring")
COLLECTIVES = ("all_gather", "reduce_scatter", "all_reduce", "all_to_all", "send_recv")
ALGORITHMS = ("ring", "tree")
LINK_KEYS = (
    "link",
    "description",
    "bandwidth_gb_per_s",
    "latency_us",
    "latency_is_estimate",
    "topology",
    "sources",
)
CLUSTER_KEYS = ("intra_node", "devices_per_node", "inter_node", "calibration")
CALIBRATION_KEYS = ("calibration", "device", "link", "measurements")
MEASUREMENT_KEYS = ("collective", "algorithm", "devices", "bytes", "seconds")


@dataclass(frozen=True, slots=True)
class Link:
    """One kind of link, seen from one device.

    Attributes:
        name: The preset's name (e.g. nvlink4).
        bandwidth_bytes_per_s: Per direction, per device (beta in alpha-beta costs).
        latency_s: Alpha: the latency of one message / one collective step.
        topology: "switch" (any pair at full speed: NVSwitch, an IB fat tree) or "ring".
        is_latency_estimate: Alpha is an estimate, not a measurement or a datasheet figure.
        fitted_from: The calibration file alpha and beta were fitted from ("" = datasheet).
    """

    name: str
    bandwidth_bytes_per_s: float
    latency_s: float
    topology: str = "switch"
    is_latency_estimate: bool = False
    fitted_from: str = ""
    description: str = ""
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Measured:
    """One measured collective call from an NCCL calibration file."""

    collective: str
    algorithm: str
    devices: int
    size_bytes: float
    seconds: float


@dataclass(frozen=True, slots=True)
class NcclCalibration:
    """An NCCL microbenchmark's measurements over one link."""

    name: str
    link: str  # intra_node | inter_node
    measurements: tuple[Measured, ...]
    source: str = ""


@dataclass(frozen=True, slots=True)
class Cluster:
    """A GPU's interconnect: the link inside a node, node size, and the link between nodes.

    `calibration_name` names the NCCL calibration the preset asks for; `calibration` holds it
    when its file exists (None: datasheet alpha and beta).
    """

    intra_node: Link
    devices_per_node: int
    inter_node: Link | None = None
    calibration_name: str = ""
    calibration: NcclCalibration | None = None

    def nodes(self, devices: int) -> int:
        """Nodes that `devices` devices fill (devices per node at most in each)."""
        return -(-devices // self.devices_per_node)

    def with_bandwidth(self, intra_gb_per_s: float = 0.0, inter_gb_per_s: float = 0.0) -> Cluster:
        """This cluster with per-direction bandwidths overridden (0 = keep)."""
        intra, inter = self.intra_node, self.inter_node
        if intra_gb_per_s > 0:
            intra = replace(intra, bandwidth_bytes_per_s=intra_gb_per_s * 1e9, fitted_from="")
        if inter_gb_per_s > 0 and inter is not None:
            inter = replace(inter, bandwidth_bytes_per_s=inter_gb_per_s * 1e9, fitted_from="")
        return replace(self, intra_node=intra, inter_node=inter)


# ----------------------------------------------------------------------------- fitting


def fit_alpha_beta(
    rows: tuple[tuple[float, float, float], ...],
) -> tuple[float, float] | None:
    """Least-squares (alpha_s, beta_bytes_per_s) from rows (latency terms, byte terms, seconds).

    Each row says seconds = a * alpha + b / beta; None when the rows cannot fix both (fewer
    than two distinct sizes) or the fit is not positive.
    """
    saa = sum(a * a for a, _, _ in rows)
    sbb = sum(b * b for _, b, _ in rows)
    sab = sum(a * b for a, b, _ in rows)
    sat = sum(a * t for a, _, t in rows)
    sbt = sum(b * t for _, b, t in rows)
    det = saa * sbb - sab * sab
    if len(rows) < 2 or abs(det) <= 1e-12 * max(saa * sbb, 1e-300):
        return None
    alpha = (sat * sbb - sbt * sab) / det
    inv_beta = (saa * sbt - sab * sat) / det
    if alpha < 0 or inv_beta <= 0:
        return None
    return alpha, 1.0 / inv_beta


def alpha_beta_terms(
    collective: str, algorithm: str, devices: int, size_bytes: float
) -> tuple[float, float]:
    """Coefficients (a, b) of one flat collective: seconds = a * alpha + b * size / beta.

    Ring (Thakur, Rabenseifner & Gropp 2005, sec. 4; NCCL's ring algorithms): AllGather and
    ReduceScatter (p-1, (p-1)/p), AllReduce 2(p-1), 2(p-1)/p. Tree (recursive doubling /
    halving, Thakur et al.): AllGather and ReduceScatter log2 p, (p-1)/p; AllReduce
    (Rabenseifner's) 2 log2 p, 2(p-1)/p. All-to-all (pairwise exchange): p-1, (p-1)/p.
    send_recv: 1, 1. `size_bytes` as in the module docstring.
    """
    p = devices
    if p <= 1 and collective != "send_recv":
        return 0.0, 0.0
    share = (p - 1) / p
    steps = math.log2(p) if algorithm == "tree" and p > 1 else p - 1
    if collective in ("all_gather", "reduce_scatter"):
        return steps, share * size_bytes
    if collective == "all_reduce":
        return 2 * steps, 2 * share * size_bytes
    if collective == "all_to_all":
        return p - 1, share * size_bytes
    return 1.0, size_bytes


def fit_link(link: Link, calibration: NcclCalibration, collective: str = "") -> Link:
    """`link` with alpha and beta fitted from `calibration` (one collective, or all when "").

    Returns `link` unchanged when the measurements cannot fix both.
    """
    rows = tuple(
        (*alpha_beta_terms(m.collective, m.algorithm, m.devices, m.size_bytes), m.seconds)
        for m in calibration.measurements
        if not collective or m.collective == collective
    )
    fit = fit_alpha_beta(rows)
    if fit is None:
        return link
    alpha, beta = fit
    return replace(
        link,
        latency_s=alpha,
        bandwidth_bytes_per_s=beta,
        is_latency_estimate=False,
        fitted_from=calibration.source or calibration.name,
    )


# ----------------------------------------------------------------------------- loading


def positive_number(r: Reader | None, default: float = 1.0) -> float:
    """A positive number field (`default` after reporting anything else at its line)."""
    if r is None or not r.check("number"):
        return default
    if not float(r.value) > 0:
        r.error(f"expected a positive number, got {r.value}")
        return default
    return float(r.value)


def link_names() -> tuple[str, ...]:
    """Names of the link presets, sorted."""
    return tuple(sorted(p.stem for p in LINKS_DIR.glob("*.yaml")))


def read_link(r: Reader) -> Link:
    """A link from a mapping (a preset file's root or an inline `intra_node:` mapping)."""
    if not r.check("map"):
        return Link("", 1.0, 0.0)
    name = r.req("link", "str")
    topo = r.opt("topology", "str")
    if topo is not None and topo.value not in TOPOLOGIES:
        topo.error(f"expected one of {', '.join(TOPOLOGIES)}, got {topo.value!r}")
    estimate = r.opt("latency_is_estimate", "bool")
    desc = r.opt("description", "str")
    sources_r = r.opt("sources", "list")
    latency_r = r.req("latency_us", "number")
    latency = 0.0
    if latency_r is not None:
        if float(latency_r.value) < 0:
            latency_r.error(f"expected a number >= 0, got {latency_r.value}")
        else:
            latency = float(latency_r.value) * 1e-6
    link = Link(
        name=str(name.value) if name is not None else "",
        bandwidth_bytes_per_s=positive_number(r.req("bandwidth_gb_per_s", "number")) * 1e9,
        latency_s=latency,
        topology=str(topo.value) if topo is not None and topo.value in TOPOLOGIES else "switch",
        is_latency_estimate=bool(estimate.value) if estimate is not None else False,
        description=str(desc.value) if desc is not None else "",
        sources=tuple(str(s.value) for s in sources_r.each()) if sources_r is not None else (),
    )
    r.done(LINK_KEYS)
    return link


def load_link(name: str) -> Link:
    """The link preset `name`; `SpecError` lists every problem of its file."""
    root = Reader.from_file(LINKS_DIR / f"{name}.yaml")
    root.finish()
    link = read_link(root)
    root.finish()
    return link


def _link_ref(r: Reader | None) -> Link | None:
    """A link named by preset (a string) or given inline (a mapping)."""
    if r is None:
        return None
    if isinstance(r.value, str):
        if r.value not in link_names():
            r.error(f"unknown link {r.value!r}; link presets: {', '.join(link_names())}")
            return None
        sub = Reader.from_file(LINKS_DIR / f"{r.value}.yaml")
        link = read_link(sub)
        r.problems.extend(sub.problems)
        return link
    if r.check("map"):
        return read_link(r)
    return None


def read_cluster(r: Reader, calibration_dir: Path = CALIBRATION_DIR) -> Cluster | None:
    """A GPU's `interconnect:` mapping; problems are recorded on `r` (None when unusable)."""
    if not r.check("map"):
        return None
    intra = _link_ref(r.req("intra_node"))
    per_node_r = r.req("devices_per_node", "int")
    per_node = 1
    if per_node_r is not None:
        if per_node_r.value < 1:
            per_node_r.error(f"expected a positive integer, got {per_node_r.value}")
        else:
            per_node = int(per_node_r.value)
    inter = _link_ref(r.opt("inter_node"))
    cal_r = r.opt("calibration", "str")
    cal = None
    if cal_r is not None:
        path = calibration_dir / f"{cal_r.value}.yaml"
        if path.is_file():  # absent: datasheet figures (the Results say so)
            cal = load_nccl_calibration(path, r.problems)
    r.done(CLUSTER_KEYS)
    if intra is None:
        return None
    return Cluster(
        intra_node=intra,
        devices_per_node=per_node,
        inter_node=inter,
        calibration_name=str(cal_r.value) if cal_r is not None else "",
        calibration=cal,
    )


def load_nccl_calibration(path: Path, problems: list | None = None) -> NcclCalibration | None:  # type: ignore[type-arg]
    """An NCCL calibration file; its problems are appended to `problems` (or raised)."""
    root = Reader.from_file(path)
    if problems is None:
        root.finish()
    name = root.req("calibration", "str")
    link_r = root.opt("link", "str")
    if link_r is not None and link_r.value not in ("intra_node", "inter_node"):
        link_r.error(f"expected intra_node or inter_node, got {link_r.value!r}")
    rows: list[Measured] = []
    list_r = root.req("measurements", "list")
    for item in list_r.each() if list_r is not None else ():
        if not item.check("map"):
            continue
        coll = item.req("collective", "str")
        if coll is not None and coll.value not in COLLECTIVES:
            coll.error(f"expected one of {', '.join(COLLECTIVES)}, got {coll.value!r}")
            coll = None
        algo = item.opt("algorithm", "str")
        if algo is not None and algo.value not in ALGORITHMS:
            algo.error(f"expected one of {', '.join(ALGORITHMS)}, got {algo.value!r}")
            algo = None
        devices = item.req("devices", "int")
        if devices is not None and devices.value < 2:
            devices.error(f"expected at least 2 devices, got {devices.value}")
            devices = None
        size = positive_number(item.req("bytes", "number"), 0.0)
        seconds = positive_number(item.req("seconds", "number"), 0.0)
        item.done(MEASUREMENT_KEYS)
        if coll is not None and devices is not None and size and seconds:
            algorithm = str(algo.value) if algo is not None else "ring"
            rows.append(Measured(coll.value, algorithm, int(devices.value), size, seconds))
    root.done(CALIBRATION_KEYS)
    if problems is None:
        root.finish()
    else:
        problems.extend(p for p in root.problems if p not in problems)
    return NcclCalibration(
        name=str(name.value) if name is not None else path.stem,
        link=str(link_r.value) if link_r is not None else "intra_node",
        measurements=tuple(rows),
        source=str(path.name),
    )
