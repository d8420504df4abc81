"""The report opens in headless Chromium with every figure drawn, and hovering a point works.

The page's own script sets `data-render="ok"` and `data-plots-drawn` on <html> once plotly.js
has drawn every figure from its spec (and every <img>, if any, decoded); `--dump-dom` shows
the result. Network access is refused outright (--host-resolver-rules), so a page that needed
the network would not draw.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from attnsim.reports.page.report import ReportData, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian package `chromium`; .ci/run adds it)"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def report(report_data: ReportData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(tmp_path_factory.mktemp("run"), report_data)


def test_report_renders_with_every_figure_drawn(report: Path, tmp_path: Path) -> None:
    expected = report.read_text(encoding="utf-8").count('class="plot"')
    assert expected == 9
    done = chromium(tmp_path, "--virtual-time-budget=20000", "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    attrs = _root(done.stdout)
    assert attrs.get("data-plots-total") == str(expected), attrs
    assert attrs.get("data-plots-drawn") == str(expected), attrs
    assert attrs.get("data-render") == "ok", attrs
    assert done.stdout.count('class="main-svg"') >= expected  # plotly drew its SVG layers
    # The DOM Chromium built holds the escaped text as text, not as markup.
    assert "<b>fused" not in done.stdout.split("</script>")[-1]
    assert '&lt;b&gt;fused &amp; "tiled"&lt;/b&gt;' in done.stdout


# Moves the mouse onto the first point of the first Pareto plot (through the plot's own event
# layer, as a user's mouse would), then writes the hover label's text into <html data-hover>.
HOVER = """
<script>
window.addEventListener("load", function () {
  function tryHover(tries) {
    var gd = document.getElementById("pareto-latency-s-energy-pj");
    if (!gd || !gd._fullLayout || !gd._fullData) { return setTimeout(tryHover, 100, tries); }
    var i = gd._fullData.findIndex(function (t) { return t.text && t.x.length; });
    var t = gd._fullData[i];
    var xa = gd._fullLayout[t.xaxis.replace("x", "xaxis")];
    var ya = gd._fullLayout[t.yaxis.replace("y", "yaxis")];
    gd.scrollIntoView();
    var box = gd.getBoundingClientRect();
    var cx = box.left + xa._offset + xa.l2p(xa.d2l(t.x[0]));
    var cy = box.top + ya._offset + ya.l2p(ya.d2l(t.y[0]));
    var target = document.elementFromPoint(cx, cy);
    ["mouseover", "mousemove"].forEach(function (kind) {
      target.dispatchEvent(new MouseEvent(kind, {clientX: cx, clientY: cy, bubbles: true}));
    });
    setTimeout(function () {
      var label = gd.querySelector(".hoverlayer .hovertext");
      var text = label ? label.textContent : "";
      if (!text && tries > 0) { return tryHover(tries - 1); }
      document.documentElement.setAttribute("data-hover", text || "none");
    }, 300);
  }
  setTimeout(tryHover, 500, 5);
});
</script>
"""


def test_hover_shows_the_design_point(report: Path, tmp_path: Path) -> None:
    page = report.read_text(encoding="utf-8")
    hovered = tmp_path / "hover.html"
    hovered.write_text(page.replace("</body>", HOVER + "</body>"), encoding="utf-8")
    done = chromium(
        tmp_path, "--window-size=1400,1200", "--virtual-time-budget=30000", "--dump-dom",
        hovered.as_uri(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    attrs = _root(done.stdout)
    assert attrs.get("data-render") == "ok", attrs
    hover = attrs.get("data-hover", "")
    # The first point of the first panel: FuseMax with a 64x64 array on BERT at 1K.
    assert "fusemax/binding" in hover and "arch.array_2d = 64" in hover, hover
    assert "Latency" in hover and "point " in hover, hover


def test_broken_figure_is_detected(report: Path, tmp_path: Path) -> None:
    """The check is not vacuous: a page whose figure spec is broken reports 'broken'."""
    page = report.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace('id="speedup-spec">{', 'id="speedup-spec">{]', 1))
    done = chromium(tmp_path, "--virtual-time-budget=20000", "--dump-dom", broken.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'data-render="broken"' in done.stdout


def _root(dom: str) -> dict[str, str]:
    root = re.search(r"<html[^>]*>", dom)
    assert root is not None, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', root.group(0)))


def test_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    done = chromium(tmp_path, "--window-size=1280,1600", f"--screenshot={shot}", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[:2] == (1600, 1280)
    assert pixels.std() > 0.05  # a figure-filled page, not one flat color
