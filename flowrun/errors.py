"""Every error flowrun reports, with its exit code and source location.

The hierarchy::

    FlowrunError                 exit 1 unless a subclass says otherwise
    ├── UsageError               exit 2: a bad argument, input value or option
    ├── WorkflowInvalid          exit 2: one or more Problems in a workflow file
    └── RunFailed                exit 1: the run started and did not succeed
        ├── StepFailed           a step raised, or its output broke its schema
        ├── BudgetExceeded       a call could take the run past its budget
        └── RunInterrupted       SIGINT / SIGTERM

The CLI catches ``FlowrunError`` in one place, prints ``show()`` to stderr and exits with
``exit_code``. Messages never carry tracebacks; ``--debug`` adds them.

May import: nothing in flowrun.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Whatever ``str.splitlines`` breaks a line at, with the blanks around it.
_LINE_BREAKS = re.compile(r"\s*[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]+\s*")


def close_matches(word: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """The choices closest to a misspelt ``word`` (difflib is imported only when needed)."""
    import difflib

    return difflib.get_close_matches(word, list(choices), n=n)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice to a misspelt ``word``, else ``""``."""
    close = close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def field_text(path: tuple[Any, ...]) -> str:
    """A field's path as a user writes it: ``("messages", 0, "content")`` -> ``messages[0].content``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def one_line(text: str) -> str:
    """``text`` with its line breaks (and the blanks around them) turned into single spaces."""
    return _LINE_BREAKS.sub(" ", text).strip()


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a workflow file, at a place in it; always printed as one line."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return one_line(f"{self.file}:{self.line}:{self.col}: {self.message}")


class StepError(Exception):
    """A step failed for a reason the user can act on; the message says which.

    Internal to a run: the executor turns it into the step's error and the run's ``StepFailed``.
    """


class ModelCallError(Exception):
    """A model call failed after the client's retries; the message is safe to show.

    Internal to a run, like ``StepError``: the step that made the call fails with its message.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retries: int = 0,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retries = retries  # the SDK's retries before it gave up


class FlowrunError(Exception):
    """Base of every error flowrun raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        """The error as the lines the CLI prints: the message, then what to do next."""
        return [f"error: {self.message}"] + ([f"hint: {self.hint}"] if self.hint else [])


class UsageError(FlowrunError):
    """A command-line argument, option or input value is invalid."""

    exit_code = 2


class WorkflowInvalid(FlowrunError):
    """A workflow file has problems; every one is listed, sorted by position."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        first = self.problems[0] if self.problems else "invalid workflow"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{first}{more}")

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class RunFailed(FlowrunError):
    """The run started and did not succeed."""

    exit_code = 1


class StepFailed(RunFailed):
    """A step failed; ``step`` names it."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"step '{step}' failed: {message}")
        self.step = step
        self.reason = message


class BudgetExceeded(RunFailed):
    """A call was refused because its worst case could pass the budget."""


class RunInterrupted(RunFailed):
    """The run was stopped by a signal."""
