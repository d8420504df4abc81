"""`crossovers`: where a design overtakes the baseline along the swept length."""

from __future__ import annotations

from attnsim.reports.page.compare import CROSSOVER, SPEEDUP, crossovers


def rows(design: str, speedups: dict[int, float], workload: str = "w") -> list[dict[str, object]]:
    return [
        {"design": design, "workload": workload, "seq_len": n, SPEEDUP: s}
        for n, s in speedups.items()
    ]


def test_the_crossover_is_the_first_length_from_which_it_stays_faster() -> None:
    compared = [
        *rows("base", {1024: 1.0, 2048: 1.0, 4096: 1.0, 8192: 1.0}),
        # faster at 2K, slower again at 4K, faster from 8K on: the crossover is 8K
        *rows("linear", {1024: 0.5, 2048: 1.1, 4096: 0.9, 8192: 1.5}),
        *rows("always", {1024: 1.2, 2048: 2.0}),
        *rows("never", {1024: 0.2, 2048: 0.4}),
        *rows("alone", {1024: 3.0}),  # one length: nothing to cross
    ]
    found = {r["design"]: r for r in crossovers(compared, "base")}
    assert set(found) == {"linear", "always", "never"}
    assert found["linear"][CROSSOVER] == 8192 and found["linear"]["slower_at"] == 4096
    assert found["linear"]["speedup_before"] == 0.9 and found["linear"]["speedup_after"] == 1.5
    assert "between 4K and 8K" in found["linear"]["verdict"]
    assert found["always"][CROSSOVER] is None and "every length" in found["always"]["verdict"]
    assert found["never"][CROSSOVER] is None and "slower" in found["never"]["verdict"]


def test_each_workload_has_its_own_crossover() -> None:
    compared = [
        *rows("linear", {1024: 0.5, 2048: 2.0}, "gpu"),
        *rows("linear", {1024: 0.5, 2048: 0.8, 4096: 1.3}, "asic"),
    ]
    found = {r["workload"]: r[CROSSOVER] for r in crossovers(compared, "softmax")}
    assert found == {"gpu": 2048, "asic": 4096}
