"""`microbench_bwd --merge-host`: a probe host file's backward launcher figures into a calibration.

The backward probe (`benchmarks/bwd_probe.py`) measures its launcher's host time per dq mode
and mask beside its CSV (`-host.yaml`), on whatever host the run had; `merge_host` carries
those figures to the calibration's host so that a backward call predicted without a host file
is bounded by a measured launcher cost rather than one host launch per kernel.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import yaml

from attnsim.einsum_ir.spec import read_yaml
from attnsim.kernels.bench.measure import MeasurementError, read_host_figures
from attnsim.kernels.spec import FAMILY_NAMES, host_call_key

# the forward launchers' host figures that place a timing host against the calibration's
FORWARD_HOST_KEYS = tuple(host_call_key(f) for f in FAMILY_NAMES)
SUFFIX = "-host.yaml"  # kernels.bench.measure.host_figures_path: <csv stem>-host.yaml


def merge_host(cal_path: Path, host_path: Path) -> str:
    """Put a probe host file's backward launcher figures into a calibration's `host_call_us`.

    The file (`bwd_probe.py`'s `-host.yaml`) was measured on a timing host; its `bwd-*`
    figures (the planned launcher's, not the JIT diagnostics') are scaled to the calibration
    host by the median ratio of the forward launchers' figures measured in both, the speed
    `reports.validation.host_adjusted` applies the other way. Returns the note it writes;
    raises ValueError naming the file and field of every problem.
    """
    if not host_path.name.endswith(SUFFIX):
        raise ValueError(f"{host_path}: expected a probe's host file, <csv stem>{SUFFIX}")
    problems = []
    try:
        host = read_host_figures(host_path.with_name(host_path.name.removesuffix(SUFFIX)))
    except MeasurementError as exc:
        raise ValueError(str(exc)) from None
    if host is None:
        raise ValueError(f"{host_path}: no such file")
    calls = host["host_call_us"]
    assert isinstance(calls, dict)  # read_host_figures checked it
    data = read_yaml(cal_path)
    have = data.get("host_call_us") if isinstance(data, dict) else None
    if not isinstance(have, dict):
        raise ValueError(f"{cal_path}: host_call_us: expected the calibration's mapping")
    ratios = [have[k] / calls[k] for k in FORWARD_HOST_KEYS if k in calls and have.get(k)]
    if not ratios:
        keys = ", ".join(FORWARD_HOST_KEYS)
        problems.append(f"{host_path}: host_call_us: none of {keys} to place the host by")
    bwd = {k: v for k, v in calls.items() if k.startswith("bwd-") and not k.startswith("bwd-jit")}
    if not bwd:
        problems.append(f"{host_path}: host_call_us: no bwd-<dq mode>[-causal] figure")
    if problems:
        raise ValueError("; ".join(problems))
    speed = statistics.median(ratios)
    scaled = {k: round(v * speed, 2) for k, v in sorted(bwd.items())}
    note = (
        f"host_call_us {', '.join(scaled)}: the backward launcher's host time measured by "
        f"benchmarks/bwd_probe.py ({host_path.name}), scaled to this calibration's host by the "
        f"median ratio of its forward launchers' figures ({speed:.3f}; "
        "kernels.calibrate.microbench_bwd --merge-host)"
    )
    text = cal_path.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("# Written"))
    assert isinstance(data, dict)
    data["host_call_us"] = {**have, **scaled}
    data["notes"] = [n for n in data.get("notes", []) if "--merge-host" not in n] + [note]
    cal_path.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100), "utf-8")
    return note
