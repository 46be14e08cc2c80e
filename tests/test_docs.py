"""Every shell and Python snippet of README.md and docs/*.md runs (see tests/doc_snippets.py),
one terminal session per document, against a loopback server; or says why it cannot."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowrun.provider.mock import mock_text
from flowrun.testing import LoopbackServer, RecordedRequest, Reply
from tests.doc_snippets import marker_problems, session_script, snippets
from tests.helpers import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHARED_FOLDERS = ("workflows", "schemas", "examples")
HOW_TO_FIX = (
    "Every shell and Python block of the docs is run by tests/test_docs.py, in a fresh folder "
    "holding workflows/, schemas/ and examples/, with OPENAI_BASE_URL set to a loopback server "
    "(answering like --mock) and flowrun on PATH. Make the block run there, or put "
    "'<!-- not-run: why it cannot run -->' on the line before its fence "
    "('<!-- file: PATH -->' writes a block to PATH for the blocks after it)."
)


def run_document(doc: Path, root: Path, folder: Path, server: LoopbackServer) -> str | None:
    """Run a document's snippets as one session; ``None`` if all passed, else what failed."""
    found = snippets(doc, root)
    for name in SHARED_FOLDERS:
        if (root / name).is_dir():
            shutil.copytree(root / name, folder / name)
    script = session_script(found, folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FLOWRUN_"))}
    env.update(server.env())
    env.update(
        FLOWRUN_HOME=str(folder / ".flowrun-home"),
        FLOWRUN_DOC_PYTHON=sys.executable,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        NO_COLOR="1",
        COLUMNS="100",
    )
    log = folder / "_session.log"
    with log.open("w", encoding="utf-8") as out:  # a file: a leftover `&` job cannot hang us
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # what the snippets left running
    output = log.read_text(encoding="utf-8", errors="replace")
    failed = re.search(r"^@@ failed (\d+) (\d+)$", output, re.M)
    if code == 0 and not failed:
        return None
    if not failed:
        return f"{doc.relative_to(root)}: the session failed:\n{output[-3000:]}"
    line, code = int(failed[1]), failed[2]
    block = next(s for s in found if s.line == line)
    start = output.rfind(f"@@ {line}\n")
    said = output[start + len(f"@@ {line}\n") : failed.start()].rstrip()
    tail = "\n".join(said.splitlines()[-40:]) or "(no output)"
    return (
        f"{block.where}: this ```{block.lang} block exited {code}:\n"
        f"{textwrap.indent(block.text.rstrip(), '    ')}\n"
        f"its output (last 40 lines):\n{textwrap.indent(tail, '    ')}\n\n{HOW_TO_FIX}"
    )


def as_mock(req: RecordedRequest) -> Reply:
    """What ``--mock`` answers: the prompt echoed; for structured output, a valid instance."""
    return Reply(content=mock_text(req.body))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_snippet_in_the_docs_runs(doc, server, tmp_path):
    server.default = as_mock  # structured output gets a valid instance
    failure = run_document(doc, REPO, tmp_path, server)
    if failure:
        pytest.fail(failure, pytrace=False)


def test_every_marker_says_what_it_means():
    problems = marker_problems([s for doc in DOCS for s in snippets(doc, REPO)])
    assert problems == [], "\n".join(problems)


def test_a_broken_snippet_is_reported_with_its_place_and_the_fix(server, tmp_path):
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "guide.md").write_text(
        "# Guide\n\n```bash\necho fine\n```\n\n<!-- not-run: needs a GPU -->\n```bash\nexit 7\n```\n\n"
        "<!-- file: notes.txt -->\n```text\nsome notes\n```\n\n"
        "```python\nfrom pathlib import Path\nassert Path('notes.txt').read_text() == 'some notes\\n'\n"
        "result = await __import__('asyncio').sleep(0, 'awaited')\nprint(result)\n```\n\n"
        "```console\n$ flowrun validate no-such.yaml\nno-such.yaml: ...\n```\n",
        encoding="utf-8",
    )
    (tmp_path / "run").mkdir()
    failure = run_document(root / "docs" / "guide.md", root, tmp_path / "run", server)
    assert failure is not None
    lines = failure.splitlines()
    assert lines[:4] == [
        "docs/guide.md:24: this ```console block exited 2:",
        "    $ flowrun validate no-such.yaml",
        "    no-such.yaml: ...",
        "its output (last 40 lines):",
    ]
    assert lines[4] == "    no-such.yaml:1:1: no such file"
    assert failure.endswith(HOW_TO_FIX)
    assert "awaited" not in failure  # the blocks before it passed; their output is not shown
