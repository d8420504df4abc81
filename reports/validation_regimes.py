"""GPU validation error by regime: per family, MAPE by band of each shape dimension.

Bands (a measurement falls in one band of each dimension):

- seq: the key length seq_k, <= 512, 513-4K, 4K-32K (4097..32768), > 32K;
- batch x heads: <= 16, 17-128, > 128 (16 or fewer programs per query tile cannot fill the
  SMs);
- seq_q / seq_k: = 1, between 1/8 and 1, <= 1/8 (a short query chunk against a long cache),
  > 1;
- mask: causal or not.

Each cell holds the point count, the MAPE and the mean signed error (percent of measured),
so that a weak regime shows itself, and its direction.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from attnsim.kernels.bench.measure import Measurement

Band = tuple[str, Callable[[Measurement], bool]]
DIMENSIONS: tuple[tuple[str, tuple[Band, ...]], ...] = (
    (
        "seq_k",
        (
            ("<=512", lambda m: m.seq_k <= 512),
            ("513-4K", lambda m: 512 < m.seq_k <= 4096),
            ("4K-32K", lambda m: 4096 < m.seq_k <= 32768),
            (">32K", lambda m: m.seq_k > 32768),
        ),
    ),
    (
        "batch x heads",
        (
            ("<=16", lambda m: m.batch * m.heads <= 16),
            ("17-128", lambda m: 16 < m.batch * m.heads <= 128),
            (">128", lambda m: m.batch * m.heads > 128),
        ),
    ),
    (
        "seq_q/seq_k",
        (
            ("=1", lambda m: m.seq_q == m.seq_k),
            ("1/8..1", lambda m: 8 * m.seq_q > m.seq_k > m.seq_q),
            ("<=1/8", lambda m: 8 * m.seq_q <= m.seq_k),
            (">1", lambda m: m.seq_q > m.seq_k),
        ),
    ),
    (
        "mask",
        (
            ("dense", lambda m: not m.causal),
            ("causal", lambda m: bool(m.causal)),
        ),
    ),
)


class ErrorPoint(Protocol):
    """What the tables read of a validation point (`reports.validation.Point`)."""

    @property
    def measurement(self) -> Measurement:
        """The measured configuration."""

    @property
    def family(self) -> str:
        """Its kernel family."""

    @property
    def error_pct(self) -> float:
        """Signed error of the prediction, percent of the measured time."""


def regime_table(points: Sequence[ErrorPoint]) -> dict[str, dict[str, dict[str, Any]]]:
    """{family: {dimension: {band: {"n", "mape", "bias"}}}}; empty bands are left out.

    `mape` is the mean absolute error and `bias` the mean signed error, both in percent.
    """
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for family in dict.fromkeys(p.family for p in points):
        mine = [p for p in points if p.family == family]
        table[family] = {}
        for dimension, bands in DIMENSIONS:
            cells: dict[str, Any] = {}
            for band, test in bands:
                errors = [p.error_pct for p in mine if test(p.measurement)]
                if errors:
                    cells[band] = {
                        "n": len(errors),
                        "mape": statistics.fmean(abs(e) for e in errors),
                        "bias": statistics.fmean(errors),
                    }
            table[family][dimension] = cells
    return table


def format_regimes(table: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The tables as text: one line per family and dimension, `band MAPE (n, bias)` cells."""
    lines = ["error by regime: band MAPE% (points, mean signed error%)"]
    for family, dims in table.items():
        lines.append(f"  {family}")
        for dimension, cells in dims.items():
            row = "  ".join(
                f"{band} {c['mape']:.1f} ({c['n']}, {c['bias']:+.1f})" for band, c in cells.items()
            )
            lines.append(f"    {dimension:<14}{row}")
    return "\n".join(lines)
