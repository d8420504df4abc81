"""reports.page.plots: every figure renders from the reference tables (sizes, not pixels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnsim.reports.page import plots
from attnsim.reports.page.tables import Row, read_csv

REFERENCE = Path(__file__).resolve().parents[4].parent / "shared" / "reference" / "fusemax"
pytestmark = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"reference tables not found at {REFERENCE}"
)
TABLES = (
    "attn-unfused",
    "attn-flat",
    "attn-cascade",
    "attn-arch",
    "attn-binding",
    "end2end-flat",
    "end2end-proposal",
    "pareto",
)
EXPECTED = {
    "fig6-utilization": plots.TALL,
    "fig7-einsum-utilization": plots.WIDE,
    "fig8-attention-speedup": plots.WIDE,
    "fig9-attention-energy": plots.WIDE,
    "fig10-end2end-speedup": plots.WIDE,
    "fig11-end2end-energy": plots.WIDE,
    "fig12-pareto": plots.PARETO,
}


@pytest.fixture(scope="module")
def reference() -> dict[str, list[Row]]:
    return {name: read_csv(REFERENCE / f"{name}.csv") for name in TABLES}


def check_png(path: Path, size_in: tuple[float, float]) -> None:
    from matplotlib.image import imread

    assert path.is_file()
    assert path.stat().st_size > 5_000
    height, width = imread(path).shape[:2]
    assert (width, height) == (round(size_in[0] * plots.DPI), round(size_in[1] * plots.DPI))


def test_save_all_writes_every_figure(reference: dict[str, list[Row]], tmp_path: Path) -> None:
    written = plots.save_all(reference, tmp_path / "figures")
    assert [path.stem for path in written] == list(EXPECTED)
    for path in written:
        check_png(path, EXPECTED[path.stem])


def test_save_all_skips_figures_without_their_tables(
    reference: dict[str, list[Row]], tmp_path: Path
) -> None:
    only_pareto = plots.save_all({"pareto": reference["pareto"]}, tmp_path)
    assert [path.name for path in only_pareto] == ["fig12-pareto.png"]


@pytest.mark.parametrize(
    "draw",
    [
        plots.fig7_einsum_utilization,
        plots.fig8_attention_speedup,
        plots.fig9_attention_energy,
        plots.fig10_end2end_speedup,
        plots.fig11_end2end_energy,
    ],
)
def test_axes_functions_draw_into_a_given_axes(
    draw: object, reference: dict[str, list[Row]], tmp_path: Path
) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=plots.WIDE)
    ax = figure.add_subplot()
    assert draw(reference, ax=ax) is ax  # type: ignore[operator]
    assert ax.get_title() and ax.get_ylabel()
    assert ax.get_legend() is not None
    assert len(ax.patches) > 0  # bars were drawn
    figure.savefig(tmp_path / "given.png", dpi=plots.DPI)
    check_png(tmp_path / "given.png", plots.WIDE)


def test_bars_have_one_value_per_point(reference: dict[str, list[Row]]) -> None:
    ax = plots.fig8_attention_speedup(reference)
    # 5 designs x (2 models x 6 lengths); unfused bars are exactly 1.
    assert len(ax.patches) == 5 * 12
    assert [patch.get_height() for patch in ax.patches[:12]] == [1.0] * 12
    assert [label.get_text() for label in ax.get_xticklabels()][:6] == [
        "1K",
        "4K",
        "16K",
        "64K",
        "256K",
        "1M",
    ]


def test_figure_functions_use_a_given_figure(
    reference: dict[str, list[Row]], tmp_path: Path
) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=plots.PARETO)
    assert plots.fig12_pareto(reference["pareto"], fig=figure) is figure
    area, latency = figure.axes[:2]
    assert area.get_xscale() == "log" and area.get_yscale() == "log"
    assert "µm²" in area.get_ylabel() and "(s)" in latency.get_ylabel()
    fig6 = plots.fig6_utilization(reference, fig=Figure(figsize=plots.TALL))
    assert [ax.get_ylabel() for ax in fig6.axes[:2]] == [
        "1D array utilization",
        "2D array utilization",
    ]


def test_no_global_matplotlib_state_changes(
    reference: dict[str, list[Row]], tmp_path: Path
) -> None:
    import matplotlib

    before = dict(matplotlib.rcParams)
    plots.save_all(reference, tmp_path)
    assert dict(matplotlib.rcParams) == before


@pytest.mark.parametrize(
    ("label", "tokens"), [("1K", 1024), ("256K", 262144), ("1M", 2**20), (512, 512)]
)
def test_seq_len_tokens(label: str | int, tokens: int) -> None:
    assert plots.seq_len_tokens(label) == tokens
