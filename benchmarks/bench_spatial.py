"""Benchmark the analytic spatial model: time per design point and a full reproduction.

Run: python benchmarks/bench_spatial.py [--points N]

Reports, from one run on this machine:
- ms per FuseMax design point with cold caches (every point a new shape) and warm caches,
- the same for the other registered attention mappers,
- the baseline: `count_ops` alone on the same shapes (the pure analysis every point needs),
  so mapper cost is printed as a ratio to it,
- seconds for `reproduce` over all four models and six lengths.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import count_ops, load_cascade
from attnsim.mappers.registry import get_mapper, mapper_names
from attnsim.mappers.spatial.view import MappingError
from attnsim.mappers.workloads import MODELS


def _shapes(n: int) -> list[dict[str, int]]:
    """Distinct attention shapes, `n` of them (so caches never hit)."""
    shapes = []
    for k in range(n):
        length = 1024 + 64 * k
        shapes.append({"B": 8 + k % 7, "H": 12, "M": length, "P": length, "E": 64, "F": 64})
    return shapes


def _time_per_point(fn, shapes) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for s in shapes:
        fn(s)
    return (time.perf_counter() - start) / len(shapes) * 1e3


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=200)
    args = parser.parse_args()
    arch = load_arch("fusemax")
    one = load_cascade("attention-1pass-mh")
    three = load_cascade("attention-3pass-mh")
    shapes = _shapes(args.points)
    baseline = _time_per_point(lambda s: count_ops(one, s), _shapes(args.points)[::-1])
    print(f"baseline count_ops (cold): {baseline:.3f} ms/point")
    for name in mapper_names():
        if name == "layer-matmuls":
            continue
        cascade = one if name == "fusemax" else three
        run = functools.partial(get_mapper(name)().map, cascade, arch)
        try:
            run(shapes[0])
        except MappingError:
            continue  # not a spatial mapper (e.g. the GPU mappers)
        cold = _time_per_point(run, shapes[1:])
        warm_runs = [_time_per_point(run, shapes[:20]) for _ in range(5)]
        warm = statistics.median(warm_runs)
        print(
            f"{name:<10} cold {cold:7.3f} ms/point ({cold / baseline:5.1f}x baseline), "
            f"warm {warm:7.3f} ms/point; {60_000 / cold:,.0f} cold points/min/core"
        )
    from attnsim.reports.paper.reproduce import reproduce

    start = time.perf_counter()
    reproduce(list(MODELS), [2**10, 2**12, 2**14, 2**16, 2**18, 2**20])
    print(f"reproduce fusemax (4 models x 6 lengths + pareto): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
