"""The calibration's `power_cap`: how much slower tensor-heavy calls run under sustained load.

`benchmarks/sustained_probe.py` times kernels back to back for a second after an idle spell:
the first calls run at the clock of the short microbenchmarks, and once the board reaches
its power cap the tensor-heaviest builds slow down (the H200, 2026-12-06: the ping-pong
kernel at ~700 TFLOP/s by 12-14%, the plain kernel at ~500 by 1%, head dim 64 not at all).
`--merge CAL FILE` fits this entry from such a file::

    power_cap: {knee_tflops: 480, slowdown_per_tflops: 0.000533, gap_us: 39.74, cases: 10,
                source: sustained-h200-2026-12-06.csv}

A call's power demand is its useful FLOP/s at the full clock, averaged over the call and the
gap between calls under do_bench (`gap_us`: its L2 flush, which draws far less): demand =
FLOPs / (GPU time + gap). Calls that demand more than `knee_tflops` run
1 + `slowdown_per_tflops` x (demand - knee) times their full-clock time (`PowerCap.slowdown`).

The cap is fitted on softmax calls. A sigmoid call's tensor FLOPs count `sigmoid_weight` times
(optional, 1 if absent): its inner loop drops the row max, sum and rescale, so it reaches a
higher FLOP rate for about the same board power. `sustained_probe.py --merge-sigmoid CAL
PAIRS CAP` fits it from the probe's sigmoid cases and their softmax twins (same build and
shape, one run: `fit_sigmoid_weight`), against the cap fitted on the softmax cases of CAP, a
summary of the same device as PAIRS, and writes it with `sigmoid_source`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from attnsim.einsum_ir.spec import Reader

POWER_KEYS = ("knee_tflops", "slowdown_per_tflops", "gap_us", "cases", "source",
              "sigmoid_weight", "sigmoid_source")  # fmt: skip
WEIGHT_GRID = (0.5, 1.5, 0.001)  # the sigmoid weights `fit_sigmoid_weight` tries: from, to, step


@dataclass(frozen=True, slots=True)
class PowerCap:
    """A fitted sustained-load slowdown (`power_cap`): knee and slope in FLOP/s, gap in s."""

    knee_flops_per_s: float
    slowdown_per_flops_per_s: float
    gap_s: float
    cases: int = 0
    source: str = ""
    sigmoid_weight: float = 1.0  # a sigmoid call's tensor FLOPs count this many times
    sigmoid_source: str = ""

    def demand_flops_per_s(self, flops: float, gpu_s: float, sigmoid: bool = False) -> float:
        """FLOP/s a call demands over its time and the gap after it (0 for an empty call).

        `sigmoid`: a sigmoid call, its FLOPs weighted by `sigmoid_weight`.
        """
        weight = self.sigmoid_weight if sigmoid else 1.0
        return weight * flops / (gpu_s + self.gap_s) if gpu_s > 0 else 0.0

    def slowdown(self, flops: float, gpu_s: float, sigmoid: bool = False) -> float:
        """The factor on a call's full-clock GPU time (1 at or under the knee)."""
        over = self.demand_flops_per_s(flops, gpu_s, sigmoid) - self.knee_flops_per_s
        return 1.0 + self.slowdown_per_flops_per_s * max(0.0, over)


def fit_power_cap(
    cases: Sequence[tuple[float, float, float]], gap_s: float, source: str = ""
) -> PowerCap:
    """The knee and slope that fit (FLOPs, full-clock seconds, sustained seconds) cases.

    Least squares of the slowdown less 1 (a sustained call faster than the first ones, timing
    noise, counts as no slowdown) over the knee on a 10 TFLOP/s grid, the slope for each knee
    in closed form. At least two cases must slow down, or the fit is no power cap: ValueError.
    """
    points = [(f / (t + gap_s), max(0.0, s / t - 1.0)) for f, t, s in cases if t > 0]
    if sum(1 for _, y in points if y > 0) < 2:
        raise ValueError("fewer than two cases ran slower sustained: no power cap to fit")
    best: tuple[float, float, float] | None = None
    top = max(d for d, _ in points)
    knee = 0.0
    while knee < top:
        xs = [max(0.0, d - knee) for d, _ in points]
        sxx = sum(x * x for x in xs)
        slope = sum(x * y for x, (_, y) in zip(xs, points, strict=True)) / sxx
        sse = sum((y - slope * x) ** 2 for x, (_, y) in zip(xs, points, strict=True))
        if best is None or sse < best[0]:
            best = (sse, knee, slope)
        knee += 10e12
    assert best is not None
    return PowerCap(best[1], best[2], gap_s, len(points), source)


Case = tuple[float, float, float]  # (FLOPs, full-clock seconds, sustained seconds)


def fit_sigmoid_weight(pairs: Sequence[tuple[Case, Case]], cap: PowerCap) -> float:
    """The sigmoid weight that fits (softmax case, sigmoid case) pairs under `cap`.

    Each pair is one build and shape run with both score functions in one run, so what the
    day's board does to both cancels: least squares of the sigmoid case's slowdown less its
    twin's (each less 1, floored at 0 as in `fit_power_cap`) against what `cap` prices for the
    two demands, over the weights of `WEIGHT_GRID`. ValueError without pairs, or when no weight
    prices them differently (all under the knee, or a cap without slope).
    """
    if not pairs:
        raise ValueError("no sigmoid case with its softmax twin: no weight to fit")

    def slowed(c: Case) -> float:
        return max(0.0, c[2] / c[1] - 1.0)

    def sse(w: float) -> float:
        weighted = dataclasses.replace(cap, sigmoid_weight=w)
        return sum(
            (slowed(sig) - slowed(soft)
             - (weighted.slowdown(sig[0], sig[1], True) - cap.slowdown(soft[0], soft[1]))) ** 2
            for soft, sig in pairs
        )  # fmt: skip

    lo, hi, step = WEIGHT_GRID
    grid = [lo + i * step for i in range(round((hi - lo) / step) + 1)]
    errors = {w: sse(w) for w in grid}
    if max(errors.values()) - min(errors.values()) < 1e-12:  # no weight prices them differently
        raise ValueError("the sigmoid cases do not reach the cap's knee at any weight (or the "
                         "cap has no slope): no weight to fit")  # fmt: skip
    best: float = min(grid, key=lambda w: (errors[w], abs(w - 1.0)))  # ties: the nearest to 1
    return round(best, 3)


def power_cap(r: Reader) -> PowerCap | None:
    """The `power_cap` entry (problems go to the reader)."""
    if not r.check("map"):
        return None
    got = {}
    for key, scale in (("knee_tflops", 1e12), ("slowdown_per_tflops", 1e-12), ("gap_us", 1e-6)):
        c = r.req(key, "number")
        if c is not None and not float(c.value) >= 0:
            c.error(f"expected a number >= 0, got {c.value}")
        elif c is not None:
            got[key] = float(c.value) * scale
    cases, source = r.opt("cases", "int"), r.opt("source", "str")
    weight, weight_ok = 1.0, True
    c = r.opt("sigmoid_weight", "number")
    if c is not None and not 0 < float(c.value) <= 2:
        c.error(f"expected a weight in (0, 2] (1: as softmax), got {c.value}")
        weight_ok = False
    elif c is not None:
        weight = float(c.value)
    said = r.opt("sigmoid_source", "str")
    r.done(POWER_KEYS)
    if len(got) < 3 or not weight_ok:
        return None
    return PowerCap(
        got["knee_tflops"],
        got["slowdown_per_tflops"],
        got["gap_us"],
        int(cases.value) if cases is not None else 0,
        str(source.value) if source is not None else "",
        weight,
        str(said.value) if said is not None else "",
    )
