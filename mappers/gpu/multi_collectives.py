"""Alpha-beta costs of collectives over a cluster's links, flat and hierarchical.

A message of n bytes over a link costs alpha + n / beta (alpha: `Link.latency_s`, beta: the
per-direction `Link.bandwidth_bytes_per_s`). Flat collectives over p devices (Thakur,
Rabenseifner & Gropp, "Optimization of Collective Communication Operations in MPICH", IJHPCA
2005; NCCL's ring and tree algorithms, NCCL documentation / nccl-tests "performance.md"):

    ring AllGather, ReduceScatter:  (p-1) alpha + (p-1)/p * n / beta
    ring AllReduce:                2(p-1) alpha + 2(p-1)/p * n / beta
    tree (recursive doubling / halving; Rabenseifner's AllReduce): log2 p instead of p-1
    all-to-all (pairwise exchange): (p-1) alpha + (p-1)/p * n / beta
    send/recv:                      alpha + n / beta

n is the buffer as nccl-tests reports it: AllGather's gathered output, ReduceScatter's
input, AllReduce's buffer, all-to-all's whole send buffer of one device.

Across nodes (p > devices per node d, p = d x nodes) the collectives are hierarchical: the
inter-node part runs between the devices of one local rank (one NIC each, concurrently), the
intra-node part over NVLink. AllGather: inter-node AllGather of n/d, then intra-node of n;
ReduceScatter mirrors it; AllReduce: intra ReduceScatter, inter AllReduce of n/d, intra
AllGather; all-to-all: the (p-d)/p of the buffer bound to other nodes crosses the NIC while
the (d-1)/p for the node's own devices crosses NVLink at the same time (the slower bounds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from attnsim.archs.interconnect import Cluster, Link, alpha_beta_terms, fit_link


@dataclass(frozen=True, slots=True)
class CollectiveCost:
    """One collective's modelled time and what each device sends.

    Attributes:
        collective: all_gather, reduce_scatter, all_reduce, all_to_all or send_recv.
        algorithm: ring, tree, hierarchical (+ the inner algorithm) or p2p.
        devices: Devices taking part.
        seconds: Modelled time.
        latency_s: Its alpha part.
        bandwidth_s: Its beta part.
        sent_bytes: Bytes each device sends over its links in all.
        inter_node_bytes: Of those, bytes each device sends to other nodes.
        link: The slowest link crossed (its name).
    """

    collective: str
    algorithm: str
    devices: int
    seconds: float
    latency_s: float
    bandwidth_s: float
    sent_bytes: float
    inter_node_bytes: float
    link: str


def flat(
    collective: str, size_bytes: float, devices: int, link: Link, algorithm: str = "ring"
) -> CollectiveCost:
    """A collective over `devices` devices all on one `link` (formulas: module docstring)."""
    a, b = alpha_beta_terms(collective, algorithm, devices, size_bytes)
    lat, bw = a * link.latency_s, b / link.bandwidth_bytes_per_s
    name = "p2p" if collective == "send_recv" else algorithm
    return CollectiveCost(collective, name, devices, lat + bw, lat, bw, b, 0.0, link.name)


def _links(cluster: Cluster, collective: str) -> tuple[Link, Link | None]:
    """The cluster's links, with alpha and beta fitted from its NCCL calibration if any."""
    intra, inter = cluster.intra_node, cluster.inter_node
    cal = cluster.calibration
    if cal is not None:
        measured = {m.collective for m in cal.measurements}
        which = collective if collective in measured else ""
        if cal.link == "inter_node" and inter is not None:
            inter = fit_link(inter, cal, which)
        else:
            intra = fit_link(intra, cal, which)
    return intra, inter


def collective(
    cluster: Cluster,
    name: str,
    size_bytes: float,
    devices: int,
    algorithm: str = "ring",
) -> CollectiveCost:
    """Collective `name` over `devices` devices of `cluster`: flat in a node, else hierarchical.

    Raises:
        ValueError: more devices than one node holds and the cluster has no inter-node link.
    """
    intra, inter = _links(cluster, name)
    d = cluster.devices_per_node
    if devices <= d:
        return flat(name, size_bytes, devices, intra, algorithm)
    if inter is None:
        raise ValueError(
            f"{devices} devices span {cluster.nodes(devices)} nodes of {d} but the interconnect "
            "names no inter_node link"
        )
    if devices % d:
        raise ValueError(f"{devices} devices do not fill whole nodes of {d}")
    nodes = devices // d
    algo = f"hierarchical-{algorithm}"
    if name == "send_recv":  # a ring's hop to the next node: over the NIC
        cost = flat(name, size_bytes, 2, inter, algorithm)
        return CollectiveCost(name, "p2p", devices, cost.seconds, cost.latency_s,
                              cost.bandwidth_s, size_bytes, size_bytes, inter.name)  # fmt: skip
    if name == "all_to_all":
        a_in, b_in = d - 1, (d - 1) / devices * size_bytes
        a_out, b_out = devices - d, (devices - d) / devices * size_bytes
        lat = a_in * intra.latency_s + a_out * inter.latency_s
        bw = max(b_in / intra.bandwidth_bytes_per_s, b_out / inter.bandwidth_bytes_per_s)
        return CollectiveCost(name, algo, devices, lat + bw, lat, bw, b_in + b_out, b_out,
                              inter.name)  # fmt: skip
    parts: tuple[CollectiveCost, ...]
    if name in ("all_gather", "reduce_scatter"):
        parts = (
            flat(name, size_bytes / d, nodes, inter, algorithm),
            flat(name, size_bytes, d, intra, algorithm),
        )
    elif name == "all_reduce":
        parts = (
            flat("reduce_scatter", size_bytes, d, intra, algorithm),
            flat("all_reduce", size_bytes / d, nodes, inter, algorithm),
            flat("all_gather", size_bytes, d, intra, algorithm),
        )
    else:
        raise ValueError(f"unknown collective {name!r}")
    return CollectiveCost(
        name,
        algo,
        devices,
        sum(p.seconds for p in parts),
        sum(p.latency_s for p in parts),
        sum(p.bandwidth_s for p in parts),
        sum(p.sent_bytes for p in parts),
        sum(p.sent_bytes for p in parts if p.link == inter.name),
        inter.name,
    )


def p2p(cluster: Cluster, size_bytes: float, crosses_nodes: bool) -> CollectiveCost:
    """One send/recv of `size_bytes` between neighbours (over the NIC when `crosses_nodes`)."""
    intra, inter = _links(cluster, "send_recv")
    link = inter if crosses_nodes and inter is not None else intra
    cost = flat("send_recv", size_bytes, 2, link)
    inter_bytes = size_bytes if link is not intra else 0.0
    return CollectiveCost("send_recv", "p2p", 2, cost.seconds, cost.latency_s,
                          cost.bandwidth_s, size_bytes, inter_bytes, link.name)  # fmt: skip


def link_notes(cluster: Cluster, devices: int) -> tuple[str, ...]:
    """What the costs assume about the links, for a Result's warnings."""
    notes = []
    used = [cluster.intra_node]
    if devices > cluster.devices_per_node and cluster.inter_node is not None:
        used.append(cluster.inter_node)
    for link in used:
        where = f"fitted from {link.fitted_from}" if link.fitted_from else "datasheet"
        est = " (alpha an estimate)" if link.is_latency_estimate and not link.fitted_from else ""
        notes.append(
            f"link {link.name}: {link.bandwidth_bytes_per_s / 1e9:g} GB/s per direction, "
            f"alpha {link.latency_s * 1e6:g} us{est}, {link.topology}; {where}"
        )
    if cluster.calibration is None:
        what = cluster.calibration_name or "none named"
        notes.append(f"no measured NCCL calibration ({what}): alpha and beta from the datasheet")
    else:
        notes.append(f"alpha and beta fitted from {cluster.calibration.source} (NCCL, measured)")
    if devices > cluster.devices_per_node:
        notes.append(
            f"{devices} devices = {math.ceil(devices / cluster.devices_per_node)} nodes of "
            f"{cluster.devices_per_node}: hierarchical collectives (intra-node then inter-node)"
        )
    return tuple(notes)
