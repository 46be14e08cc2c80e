"""The shell and Python snippets of README.md and docs/*.md, and how the doc tests run them.

A fenced block in ``bash``, ``sh``, ``shell``, ``console`` or ``python`` is run, in document
order, as one terminal session per Markdown file (a fresh folder holding a copy of
``workflows/``, ``schemas/`` and ``examples/``, ``flowrun`` on PATH, ``OPENAI_BASE_URL``
pointing at a loopback server, ``FLOWRUN_HOME`` empty). An HTML comment on the line before a
fence changes that:

- ``<!-- not-run: REASON -->``: the block is shown, never run (say why);
- ``<!-- file: PATH -->``: the block (any language) is written to PATH for later blocks.

In ``console`` blocks only the ``$ `` lines are run. A Python block that defines ``test_``
functions is written to a file and run by pytest, as a user would run it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

SHELL = {"bash", "sh", "shell", "console", "zsh"}
PYTHON = {"python", "py", "python3"}
RUNNABLE = SHELL | PYTHON

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)[^\n]*$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>[\w-]+)\s*:\s*(?P<value>.*?)\s*-->\s*$")
_TEST_FUNCTION = re.compile(r"^(async\s+)?def test_\w*\(", re.M)
MARKERS = ("not-run", "file")


@dataclass
class Snippet:
    """One fenced block: where it starts (the fence's line), its language, text and marker."""

    doc: Path
    line: int
    lang: str
    text: str
    marker: str | None = None  # "not-run" | "file" | an unknown kind (reported)
    value: str = ""

    @property
    def where(self) -> str:
        return f"{self.doc.as_posix()}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in RUNNABLE and self.marker is None

    @property
    def is_pytest(self) -> bool:
        return self.lang in PYTHON and bool(_TEST_FUNCTION.search(self.text))

    def commands(self) -> str:
        """The shell text to run: for ``console``, the ``$`` lines and their continuations."""
        if self.lang != "console":
            return self.text
        lines: list[str] = []
        continuing = False
        for line in self.text.splitlines():
            if line.startswith("$ ") or continuing:
                lines.append(line[2:] if line.startswith("$ ") and not continuing else line)
                continuing = line.rstrip().endswith("\\")
        return "\n".join(lines) + "\n"


def snippets(path: Path, root: Path) -> list[Snippet]:
    """Every fenced block of a Markdown file, with the marker on the line before it, if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        before = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = _MARKER.match(before)
        snippet = Snippet(
            path.relative_to(root), i + 1, opening["lang"].lower(), "\n".join(body) + "\n"
        )
        if mark:
            snippet.marker, snippet.value = mark["kind"], mark["value"]
        found.append(snippet)
        i = j + 1
    return found


def marker_problems(all_snippets: list[Snippet]) -> list[str]:
    """Markers that cannot be obeyed: an unknown kind, a not-run without a reason, a bad path."""
    problems = []
    for s in all_snippets:
        if s.marker is None:
            continue
        if s.marker not in MARKERS:
            problems.append(
                f"{s.where}: unknown marker '<!-- {s.marker}: -->' (use one of {MARKERS})"
            )
        elif not s.value:
            what = "why it cannot run" if s.marker == "not-run" else "the path to write"
            problems.append(f"{s.where}: '<!-- {s.marker}: -->' needs {what}")
        elif s.marker == "file" and (s.value.startswith("/") or ".." in Path(s.value).parts):
            problems.append(
                f"{s.where}: '<!-- file: {s.value} -->' must be a relative path inside the folder"
            )
    return problems


# What a Python block is run with: top-level ``await`` allowed (as in ``python -m asyncio``).
PYTHON_RUNNER = """\
import ast, asyncio, sys
source = open(sys.argv[1], encoding="utf-8").read()
code = compile(source, sys.argv[2], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
namespace = {"__name__": "__main__"}
result = eval(code, namespace)
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


def session_script(doc_snippets: list[Snippet], folder: Path) -> str:
    """One bash script running a document's blocks in order; each failure names its block."""
    parts = ["set -o pipefail"]
    for s in doc_snippets:
        if s.marker == "file" and s.value:  # written when the session reaches it
            (folder / f"_file_{s.line}").write_text(s.text, encoding="utf-8")
            target = shlex.quote(s.value)
            parts.append(f'mkdir -p "$(dirname {target})" && cp _file_{s.line} {target}')
            continue
        if not s.runs:
            continue
        name = f"_snippet_{s.line}"
        if s.is_pytest:
            (folder / f"test_doc_{s.line}.py").write_text(s.text, encoding="utf-8")
            command = f'"$FLOWRUN_DOC_PYTHON" -m pytest -q -p no:cacheprovider test_doc_{s.line}.py'
        elif s.lang in PYTHON:
            (folder / f"{name}.py").write_text(s.text, encoding="utf-8")
            where = shlex.quote(s.where)
            command = f'"$FLOWRUN_DOC_PYTHON" _run_python_snippet.py {name}.py {where}'
        else:
            (folder / f"{name}.sh").write_text(s.commands(), encoding="utf-8")
            command = f"bash -e -o pipefail {name}.sh"
        parts.append(
            f"echo '@@ {s.line}' >&2\n"
            f'{command} || {{ code=$?; echo "@@ failed {s.line} $code" >&2; exit 1; }}'
        )
    (folder / "_run_python_snippet.py").write_text(PYTHON_RUNNER, encoding="utf-8")
    return "\n".join(parts) + "\n"
