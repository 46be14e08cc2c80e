"""Batch progress on stderr: a rich progress bar on a terminal, plain periodic lines otherwise.

Both show records done (of the total, when known), failed, rate, cost so far and the ETA.
Plain lines come every ``FLOWRUN_PROGRESS_EVERY`` seconds (default 10), for logs and cron.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Protocol, TextIO

PROGRESS_ENV = "FLOWRUN_PROGRESS_EVERY"
DEFAULT_EVERY_S = 10.0


class Stats(Protocol):
    """What progress reads from the running batch."""

    total: int | None
    done: int
    failed: int
    cost_usd: float
    started: float


class Progress:
    """No progress output (``--quiet``); the base of the real ones."""

    def start(self, stats: Stats) -> None:
        self.stats = stats

    def update(self) -> None:
        """A record finished."""

    def tick(self) -> None:
        """Called about once a second while the batch runs."""

    def note(self, line: str) -> None:
        """Print a line (a failure, a warning) without breaking the display."""

    def close(self) -> None:
        """The batch ended; the summary follows."""


def describe(stats: Stats, now: float | None = None) -> dict[str, str]:
    """The figures both displays show, as text."""
    now = time.perf_counter() if now is None else now
    elapsed = max(now - stats.started, 1e-9)
    rate = stats.done / elapsed
    total = stats.total
    remaining = None if total is None else max(0, total - stats.done)
    eta = "?" if remaining is None or rate <= 0 else duration_text(remaining / rate)
    return {
        "done": f"{stats.done:,}" + (f"/{total:,}" if total is not None else ""),
        "percent": f" ({100 * stats.done / total:.0f}%)" if total else "",
        "failed": f"{stats.failed:,}",
        "rate": f"{rate:,.1f}/s",
        "cost": f"${stats.cost_usd:.6f}",
        "eta": eta,
    }


def duration_text(seconds: float) -> str:
    """``45s``, ``2m05s``, ``1h03m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class PlainProgress(Progress):
    """One line every ``every`` seconds: for logs, CI and cron (stderr is not a terminal)."""

    def __init__(self, stream: TextIO, every: float) -> None:
        self.stream = stream
        self.every = every
        self._last = 0.0

    def start(self, stats: Stats) -> None:
        super().start(stats)
        self._last = time.perf_counter()

    def update(self) -> None:
        self.tick()

    def tick(self) -> None:
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            print(self.line(describe(self.stats, now)), file=self.stream, flush=True)

    def line(self, f: dict[str, Any]) -> str:
        """The periodic line, from ``describe``'s fields."""
        return (
            f"progress: {f['done']} records{f['percent']} · {f['failed']} failed · "
            f"{f['rate']} · {f['cost']} · ETA {f['eta']}"
        )

    def note(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


class RichProgress(Progress):
    """A live progress bar (rich) on a terminal, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console

        plain = bool(os.environ.get("NO_COLOR"))  # no-color.org: no styles at all, bold neither
        self.console = Console(file=stream, color_system=None if plain else "auto")
        self._bar: Any = None
        self._task: Any = None
        self._last = 0.0

    def start(self, stats: Stats) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        super().start(stats)
        self._bar = Progress(
            TextColumn("[bold]batch[/]"),
            BarColumn(),
            TextColumn("{task.fields[done]}{task.fields[percent]}"),
            TextColumn("{task.fields[failed_text]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("[green]{task.fields[cost]}[/]"),
            TextColumn("ETA {task.fields[eta]}"),
            console=self.console,
            transient=False,
        )
        self._task = self._bar.add_task("batch", total=stats.total, **bar_fields(describe(stats)))
        self._bar.start()

    def update(self) -> None:
        now = time.perf_counter()
        if now - self._last >= 0.1:
            self._refresh(now)

    def tick(self) -> None:
        self._refresh(time.perf_counter())

    def _refresh(self, now: float) -> None:
        self._last = now
        if self._bar is not None:
            fields = bar_fields(describe(self.stats, now))
            self._bar.update(self._task, completed=self.stats.done, **fields)

    def note(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._bar is not None:
            self._refresh(time.perf_counter())
            self._bar.stop()
            self._bar = None


def bar_fields(described: dict[str, Any]) -> dict[str, Any]:
    """The bar's fields: ``failed`` in red only when some record failed."""
    failed = described["failed"]
    text = f"[red]{failed} failed[/]" if str(failed) not in ("0", "") else f"{failed} failed"
    return {**described, "failed_text": text}


def make_progress(
    quiet: bool = False,
    stream: TextIO | None = None,
    *,
    bar: type[RichProgress] = RichProgress,
    lines: type[PlainProgress] = PlainProgress,
) -> Progress:
    """The right display for ``stream`` (default stderr): none, a ``bar`` on a terminal, or
    plain ``lines`` (the Batch API passes its own kinds of both)."""
    stream = stream or sys.stderr
    if quiet:
        return Progress()
    if stream.isatty() and os.environ.get("TERM") != "dumb":
        return bar(stream)
    try:
        every = float(os.environ.get(PROGRESS_ENV) or DEFAULT_EVERY_S)
    except ValueError:
        every = DEFAULT_EVERY_S
    return lines(stream, max(every, 0.0))
