"""Progress of a Batch API run: the batch display plus the current wave and its batches.

On a terminal the bar gains a column (``wave 2 · 3 batches in flight (...) · 450/600 requests
· ~2m left``); otherwise a plain line is printed when a round is submitted and when a batch
is created, held or collected, besides the periodic progress lines.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, TextIO

from flowrun.batch.batch_api.coordinator import WaveStatus
from flowrun.batch.progress import (
    PlainProgress,
    Progress,
    RichProgress,
    duration_text,
    make_progress,
)


def describe_wave(status: WaveStatus, now: float | None = None) -> str:
    """``2 batches in flight (1 in_progress, 1 validating) · 450/600 requests (3 failed) ·
    ~2m left``: the batches in flight, their own progress counts and the estimate they give."""
    if not status.batches:
        return f"wave {status.wave} · no batch in flight · {status.collected} collected"
    done = failed = total = 0
    states: Counter[str] = Counter()
    for tracked in status.batches:
        snap = tracked.snapshot
        total += len(tracked.custom_ids)
        if snap is not None:
            done += snap.completed
            failed += snap.failed
        states[snap.status if snap is not None else "submitted"] += 1
    count = len(status.batches)
    which = (
        f"{count} batch{'es' if count > 1 else ''} in flight ("
        + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        + ")"
    )
    text = f"wave {status.wave} · {which} · {done + failed:,}/{total:,} requests"
    if failed:
        text += f" ({failed:,} failed)"
    left = status.estimate(time.monotonic() if now is None else now)
    if left is not None:
        text += f" · ~{duration_text(left)} left"
    return text


class WavePlainProgress(PlainProgress):
    """Plain lines: the periodic progress line, and one line per wave event."""

    def __init__(self, stream: TextIO, every: float) -> None:
        super().__init__(stream, every)
        self._wave_text = ""

    def wave(self, status: WaveStatus) -> None:
        self._wave_text = describe_wave(status)
        if status.event:  # a round submitted; a batch created, held or collected
            flight = len(status.batches)
            print(
                f"batch api: wave {status.wave} · {status.event} · {flight} in flight · "
                f"{status.records_done:,} records done",
                file=self.stream,
                flush=True,
            )

    def line(self, f: dict[str, Any]) -> str:
        """The periodic line with the wave's batches (their own counts give the estimate)."""
        wave = f" · {self._wave_text}" if self._wave_text else ""
        return f"progress: {f['done']} records{f['percent']} · {f['failed']} failed · {f['cost']}{wave}"


class WaveRichProgress(RichProgress):
    """The progress bar with the current wave and its batches in an extra column."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._wave_text = "waiting for the first wave"

    def start(self, stats: Any) -> None:

        super().start(stats)
        bar = self._bar

        def renderables() -> Any:  # the wave on a line of its own: the bar keeps its width
            from rich.text import Text

            yield bar.make_tasks_table(bar.tasks)
            yield Text(self._wave_text, style="cyan")

        bar.get_renderables = renderables

    def wave(self, status: WaveStatus) -> None:
        self._wave_text = describe_wave(status)
        self.tick()


def make_wave_progress(quiet: bool = False, stream: TextIO | None = None) -> Progress:
    """Like ``flowrun.batch.progress.make_progress``, with the waves shown."""
    return make_progress(quiet, stream, bar=WaveRichProgress, lines=WavePlainProgress)
