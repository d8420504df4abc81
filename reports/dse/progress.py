"""The sweep's progress display: a rich bar on a terminal, a line every 10% otherwise."""

from __future__ import annotations

import io
import os
import shutil
import sys
import time
from typing import Any, TextIO


class Progress:
    """A bar with rate and ETA on a terminal (rich); a line every 10% (or 30 s) otherwise.

    On a terminal the bar is `rich.progress`'s, sized to the terminal's width and never
    wrapped (the numbers are cut with an ellipsis before the line would wrap; the bar
    shrinks first). With a `budget` smaller than the sweep, progress and ETA count the points
    this run may evaluate, not the whole sweep.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        quiet: bool = False,
        budget: int | None = None,
    ) -> None:
        self.total = total
        self.budget = budget if budget is not None and budget < total else None
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.last_decile = -1
        self.count = 0
        self.evaluated = 0
        self.failed = 0
        self.refused = 0
        self._bar: Any = None
        if self.tty and not quiet:
            self._bar, self._task = _rich_bar(self.stream, self.width(), self.target)

    @property
    def done(self) -> int:
        """Progress so far: points evaluated against a budget, else points handled."""
        return self.evaluated if self.budget is not None else self.count

    @property
    def target(self) -> int:
        """What `done` counts up to: the budget, else the sweep's points."""
        return self.budget if self.budget is not None else self.total

    def advance(self, n: int, evaluated: int = 0, failed: int = 0, refused: int = 0) -> None:
        """Count `n` more points handled: `evaluated` ran, `failed` failed, `refused` refused."""
        self.count += n
        self.evaluated += evaluated
        self.failed += failed
        self.refused += refused
        now = time.monotonic()
        if self.quiet:
            return
        if self._bar is not None:
            if now - self.last_draw >= 0.1 or self.done >= self.target:
                self.last_draw = now
                text = self.line(now).removeprefix("attnsim run: ")
                self._bar.update(self._task, completed=self.done, description=text)
                self._bar.refresh()
            return
        decile = self.done * 10 // max(self.target, 1)
        if decile > self.last_decile or now - self.last_draw >= 30:
            self.last_decile = decile
            self.last_draw = now
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()

    def width(self) -> int:
        """Columns of the terminal the bar is drawn on (80 when it cannot be told)."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
            return shutil.get_terminal_size((80, 24)).columns

    def line(self, now: float) -> str:
        """The progress text (on a terminal, drawn beside rich's bar without the prefix)."""
        elapsed = max(now - self.start, 1e-9)
        rate = self.evaluated / elapsed
        # Skipped points take no time: the ETA is for the points still to evaluate.
        left = self.target - self.done
        eta = _clock(left / rate) if rate > 0 else "?"
        pct = 100.0 * self.done / max(self.target, 1)
        fail = f", {self.refused} refused" if self.refused else ""
        fail += f", {self.failed} failed" if self.failed else ""
        of = f"{self.done}/{self.target}"
        if self.budget is not None:
            skipped = self.count - self.evaluated
            of += f" of budget ({self.total} points, {skipped} done before)"
        return f"attnsim run: {of} ({pct:.0f}%) {rate:,.0f} points/s ETA {eta}{fail}"

    def close(self) -> None:
        """End the bar's line."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _rich_bar(stream: TextIO, width: int, total: int) -> tuple[Any, Any]:
    """A started `rich.progress.Progress` on `stream` (one task of `total` points)."""
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn
    from rich.progress import Progress as RichProgress

    console = Console(file=stream, force_terminal=True, width=width, highlight=False)
    bar = RichProgress(
        BarColumn(bar_width=min(30, max(10, width // 4))),
        TextColumn("{task.description}", markup=False),
        console=console,
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = bar.add_task("", total=max(total, 1))
    bar.start()
    return bar, task


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


# ----------------------------------------------------------------------------- driver
