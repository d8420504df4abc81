"""The report opens in headless Chromium with every figure decoded.

The page's own script sets `data-render="ok"` and `data-figures-loaded` on <html> once the
load event has fired and every <img> has a natural width; `--dump-dom` shows the result.
Network access is refused outright (--host-resolver-rules), so a figure that needed the
network would not load.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reports.page.report import ReportData, write_report

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


def test_report_renders_with_every_figure_loaded(report: Path, tmp_path: Path) -> None:
    expected = report.read_text(encoding="utf-8").count("<img ")
    assert expected == 9
    done = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    root = re.search(r"<html[^>]*>", done.stdout)
    assert root is not None, done.stdout[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', root.group(0)))
    assert attrs.get("data-figures-total") == str(expected), root.group(0)
    assert attrs.get("data-figures-loaded") == str(expected), root.group(0)
    assert attrs.get("data-render") == "ok", root.group(0)
    # The DOM Chromium built holds the escaped text as text, not as markup.
    assert "<b>fused" not in done.stdout
    assert '&lt;b&gt;fused &amp; "tiled"&lt;/b&gt;' in done.stdout


def test_broken_figure_is_detected(report: Path, tmp_path: Path) -> None:
    """The check is not vacuous: a page with one undecodable figure reports 'broken'."""
    page = report.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    done = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", broken.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'data-render="broken"' in done.stdout


def test_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    done = chromium(tmp_path, "--window-size=1280,1600", f"--screenshot={shot}", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[:2] == (1600, 1280)
    assert pixels.std() > 0.05  # a figure-filled page, not one flat color
