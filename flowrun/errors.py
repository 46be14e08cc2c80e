"""Every exception flowrun defines, with its exit code; ``Problem`` (FILE:LINE:COL: message).

The tree::

    FlowrunError                  exit 1 unless a subclass says otherwise; the CLI prints lines()
    ├── UsageError                exit 2: a bad argument, input value or option
    │   ├── UnknownRun            no run or batch has this id (the CLI adds: see flowrun runs list)
    │   ├── MissingInput          a required input not given (the CLI adds: -i NAME=VALUE ...)
    │   ├── NotAFlow              convert: the folder is not a promptflow flow
    │   └── BatchAPIMissing       --via batch-api on a server without the Files/Batches API
    ├── WorkflowInvalid           exit 2: one or more Problems in a workflow file
    ├── RunFailed                 exit 1: the run started and did not succeed
    │   ├── StepFailed            a step raised, or its output broke its schema
    │   ├── BudgetExceeded        a call could take the run past its budget
    │   ├── RunInterrupted        SIGINT / SIGTERM
    │   └── AlreadyRunning        another run of the workflow holds its lock (no-overlap)
    ├── StoreError                the run store cannot be opened or written
    │   └── StoreLocked           another process held its lock too long
    ├── ConversionFailed          convert: problems stop the conversion (nothing written)
    └── NotRunnable               convert: written, but parts of the flow did not convert

    Internal: raised and caught inside flowrun, reported as a step's error, a Problem or an Issue
    StepError                     a step failed; the executor makes it the step's error
    └── ImageFileError            a local image that is missing or not an image
    ModelCallError                a model call failed after the client's retries
    ToolArgumentError, ToolExit   a tool got bad arguments, or called sys.exit()
    ToolTimeout (TimeoutError)    a tool ran past its timeout_s
    TemplateError                 a template failed to parse or render   -> Problem or StepError
    ImportProblem                 module:callable cannot be resolved      -> Problem
    SignatureProblem              a function's signature has no JSON schema -> Problem
    DuplicateKey, YamlTooLarge    the YAML itself                         -> Problem
    NotStrictCompatible           a schema strict mode cannot express     -> JSON mode instead
    Suspended (BaseException)     a Batch API record waits for a batch: it runs again later
    RecordError                   one batch record cannot become inputs   -> that record fails
    NotText (ValueError)          a named file is not UTF-8 text          -> Problem or UsageError
    DataError                     JSON/YAML data a user file or -i holds  -> Problem or UsageError
    PromptError, PythonToolError  convert: a prompt or a python node      -> an Issue
    PromptflowToolError (ValueError) a flow's own Python called a stand-in promptflow tool
                                  with a prompt or functions it refuses   -> StepError

The CLI catches ``FlowrunError`` in one place (``cli/app.py``), prints its lines to stderr in
the CLI's words (messages name the Python API's settings, ``the run's max_cost``; the CLI
prints ``--max-cost``) and exits with ``exit_code``. Messages never carry tracebacks;
``--debug`` adds them. The other modules import these classes from here; the names they used
to define stay importable from them.

May import: nothing in flowrun.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
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


class Suspended(BaseException):  # noqa: N818 - a control signal, not an error
    """A model client parked a request whose answer comes later (the Batch API): the step,
    and its record, stop here and are run again when it comes. Not a failure; a
    ``BaseException``, so no ``except Exception`` takes it for one.

    ``steps`` is what the record has completed so far (the executor fills it in; empty
    until then). No ``__init__`` of its own: a Batch API record makes one for each step that
    parks a request and one each time it is suspended, and a Python ``__init__`` and the
    instance dict it fills would cost as much again as the rest of the signal.
    """

    steps: Mapping[str, Any] = MappingProxyType({})

    def __str__(self) -> str:
        return "suspended until a batch answers"


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


class UnknownRun(UsageError):
    """No run (or batch) in the store has this id or an id starting with it."""

    def __init__(self, run_id: str, store: object) -> None:
        super().__init__(f"no run '{run_id}' in {store}")
        self.run_id = run_id


class MissingInput(UsageError):
    """A required input was not given (the CLI adds how to give it)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"missing required input '{name}'")
        self.name = name


class BatchAPIMissing(UsageError):
    """The server has no Files/Batches API: nothing can be resumed, ``--via live`` works."""


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


class NotAFlow(UsageError):
    """The folder is not a promptflow DAG flow (exit 2)."""


class AlreadyRunning(RunFailed):
    """Another run of the same workflow holds the lock."""


class StoreError(FlowrunError):
    """The run store cannot be opened or written (corrupt, locked, unwritable)."""

    exit_code = 1


class StoreLocked(StoreError):
    """Another process held the run store's lock for longer than ``FLOWRUN_STORE_TIMEOUT``."""


class ConversionFailed(FlowrunError):
    """The flow has problems that stop the conversion; each is one line naming file and node."""

    exit_code = 1

    def __init__(self, problems: list[Any]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")

    def lines(self) -> list[str]:
        return [f"error: {p}" for p in self.problems] + ["nothing was written"]


class NotRunnable(FlowrunError):
    """The workflow was written, but parts of the flow did not convert (exit 1)."""

    exit_code = 1


# --- internal: raised and caught inside flowrun, reported as one of the above or a Problem


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
        answered: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retries = retries  # the SDK's retries before it gave up
        # the server answered (so may bill the call) but the answer is unusable, e.g. its
        # usage is impossible: a budget charges such a call its reserved worst case
        self.answered = answered


class ImageFileError(StepError):
    """A local image that is missing, unreadable or not an image (an invalid argument)."""


class ToolArgumentError(Exception):
    """Arguments that do not fit a function's signature; the message names them."""


class ToolTimeout(TimeoutError):
    """A tool ran longer than its ``timeout_s``."""


class ToolExit(Exception):
    """A tool raised ``SystemExit`` (``sys.exit()``) or another ``BaseException``."""


class TemplateError(Exception):
    """A template failed to parse or render; ``lineno`` is its line within the template."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


class ImportProblem(Exception):
    """A ``module:attr`` reference that cannot be resolved; the message says why.

    ``missing`` names the module that was not found (it may be one the module imports).
    """

    def __init__(self, message: str, missing: str | None = None) -> None:
        super().__init__(message)
        self.missing = missing


class SignatureProblem(Exception):
    """A signature that cannot be turned into a JSON schema; the message names the parameter."""


class DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, col: int, first_line: int) -> None:
        super().__init__(key)
        self.key, self.line, self.col, self.first_line = key, line, col, first_line


class YamlTooLarge(Exception):
    """The document cannot be expanded safely: its aliases nest too deep or into themselves."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


class NotStrictCompatible(Exception):
    """The schema uses something strict mode cannot express; the message says what."""


class RecordError(Exception):
    """One record cannot be turned into inputs; the message names its FILE:LINE."""

    def __init__(self, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.extra = extra or {}


class PromptError(Exception):
    """A prompt file that cannot be translated (a Jinja syntax error); the message says where."""


class PythonToolError(Exception):
    """The file has no usable ``@tool`` function; the message says why."""


class DataError(Exception):
    """Text that is not the JSON or YAML data it should be (``format/datafile.py``), or nests
    too deep; ``message`` never quotes the text (it may be a secret named by mistake)."""

    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.message, self.line, self.col = message, line, col

    def __str__(self) -> str:
        return f"{self.message} (line {self.line}, column {self.col})"


class NotText(ValueError):
    """A file the user named is not UTF-8 text (``format/textfile.py``)."""


class PromptflowToolError(ValueError):
    """The stand-in promptflow-tools (``promptflow.tools.common`` / ``openai`` / ``aoai``) refuse
    what a flow's own Python gave them, as promptflow-tools does: a prompt that does not render
    or has no role line before its text, ``functions`` or ``tools`` not as the API wants them."""
