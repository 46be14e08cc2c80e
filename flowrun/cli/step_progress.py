"""A single run's steps on a terminal, updated in place: waiting, running (with its time so
far), done (with its time and cost) or failed; streamed model text prints above it.

Used only when stderr is a terminal and neither ``-q`` nor ``--json`` is given; the display
is cleared when the run ends (the cost report follows).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

SYMBOLS = {"waiting": "·", "running": "…", "succeeded": "✓", "failed": "✗", "skipped": "-"}


class StepProgress:
    """``on_step`` for the executor and ``__call__`` for streamed text, over a rich Live."""

    def __init__(self, stream: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.plain = bool(os.environ.get("NO_COLOR"))  # no styles at all (no-color.org)
        self.console = Console(file=stream or sys.stderr, stderr=True, no_color=self.plain)
        self.steps: dict[str, list[Any]] = {}  # id -> [state, started, result]
        self.live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.live.start()
        self._text_step: str | None = None
        self._pending = ""
        self._label = ""

    def on_step(self, sid: str, event: str, result: Any = None) -> None:
        entry = self.steps.setdefault(sid, ["waiting", None, None])
        if event == "running":
            entry[0], entry[1] = "running", time.perf_counter()
        elif event == "done":
            entry[0], entry[2] = result.status if result is not None else "succeeded", result

    def __call__(self, step: str, text: str) -> None:
        """Streamed text of a chat step, printed above the step list on whole lines; the
        first line starts with ``[step] ``."""
        if self._text_step != step:
            self._flush_text()
            self._text_step, self._label = step, f"[{step}] "
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._print_line(line)

    def _print_line(self, line: str) -> None:
        from rich.text import Text

        text = Text(self._label, style=self._style("bold"))
        text.append(line, style=self._style("dim"))
        self._label = ""
        self.console.print(text)

    def _flush_text(self) -> None:
        if self._pending or self._label:
            self._print_line(self._pending)
            self._pending = ""

    def _style(self, name: str) -> str:
        return "" if self.plain else name

    def end(self) -> None:
        if self._text_step is not None:
            self._flush_text()
        self.live.stop()

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        now = time.perf_counter()
        for sid, (state, started, result) in self.steps.items():
            if result is not None:
                cost = result.known_cost_usd
                money = "unpriced" if cost is None else f"${cost:.6f}"
                detail = f"{result.duration_s:.1f}s" + (f"  {money}" if result.calls else "")
                detail = "" if state == "skipped" else detail
            elif state == "running" and started is not None:
                detail = f"{now - started:.1f}s"
            else:
                detail = ""
            style = {"failed": "red", "succeeded": "green", "running": "yellow"}.get(state, "dim")
            style = self._style(style)
            table.add_row(
                Text(SYMBOLS.get(state, "?"), style=style),
                Text(sid),
                Text(state, style=style),
                Text(detail),
            )
        return table
