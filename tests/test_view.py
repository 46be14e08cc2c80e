"""`flowrun view`: the read-only viewer, over HTTP and in a real (headless Chromium) browser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowrun.store.runs import RunStore
from flowrun.testing import Reply
from flowrun.view.server import ViewServer
from tests.flow_files import make_flow
from tests.helpers import REPO, flowrun, flowrun_process
from tests.run_helpers import TWO_STEPS, write

CHROMIUM = next(
    (p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and os.path.exists(p)), None
)


@pytest.fixture
def viewer() -> Iterator[ViewServer]:
    """The viewer on a free port of 127.0.0.1, serving this test's run store."""
    server = ViewServer(RunStore(), port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        server.store.close()


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Chromium from the system (Debian's `chromium`) driven by Playwright."""
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; .ci/run does it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-extensions",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_runs_list_to_a_run_to_a_steps_transcript_in_a_browser(server, tmp_path, viewer, browser):
    server.add(Reply(content="Paris is the capital."), match="first step")
    wf = write(tmp_path, TWO_STEPS)
    run_id = json.loads(flowrun("run", wf, "--json").stdout)["run_id"]
    page = browser.new_page()
    page.goto(viewer.url)
    row = page.locator("#runs tr", has_text=run_id)
    assert "two-steps" in row.inner_text() and "succeeded" in row.inner_text()
    row.get_by_role("link", name=run_id).click()
    page.wait_for_url(f"**/run/{run_id}")
    # the DAG: both steps drawn, coloured by status, labelled with time and cost
    steps = page.locator("svg.dag a.step")
    assert steps.count() == 2
    assert page.locator('svg.dag a.step[data-step="first"]').get_attribute("data-status") == (
        "succeeded"
    )
    assert "$" in page.locator('svg.dag a.step[data-step="second"]').text_content()
    page.locator('svg.dag a.step[data-step="second"]').click()
    page.wait_for_selector("#step")
    panel = page.locator("#step").inner_text()
    # what the second step sent (the first step's reply inside its prompt) and what came back
    assert "second after Paris is the capital." in panel
    assert "REPLY" in panel.upper() and "finish_reason stop" in panel
    assert panel.index("second after") < panel.index("finish_reason stop")
    assert os.environ["OPENAI_API_KEY"] not in page.content()
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)


def test_a_batch_page_shows_progress_counts_records_and_a_records_steps(
    server, tmp_path, viewer, browser
):
    wf = make_flow(
        tmp_path,
        """
        version: 1
        name: per-record
        inputs: {x: {type: integer}}
        defaults: {model: gpt-4o-mini}
        steps:
          ask:
            type: chat
            prompt: "record {{ inputs.x }}"
        """,
    )
    server.add(Reply(status=400, error="bad record"), match="record 3")
    records = tmp_path / "in.jsonl"
    records.write_text("".join(json.dumps({"x": i}) + "\n" for i in range(60)))
    # (in a subprocess: Playwright's sync API keeps an event loop running in this thread)
    res = flowrun_process("run", wf, "--batch", records, "-o", tmp_path / "out.jsonl", "--json")
    batch_id = json.loads(res.stdout)["batch_id"]
    page = browser.new_page()
    page.goto(viewer.url + "?kind=batch")
    page.get_by_role("link", name=batch_id).click()
    page.wait_for_url(f"**/batch/{batch_id}")
    text = page.locator("main").inner_text()
    assert "60 of 60 records" in text
    assert "succeeded 59" in text and "failed 1" in text
    assert page.locator("#records tr").count() == 51  # header + the first page of 50
    page.get_by_role("link", name="later records").click()
    assert page.locator("#records tr").count() == 11
    page.goto(f"{viewer.url}batch/{batch_id}")
    page.locator("#records tr", has_text="bad record").get_by_role("link", name="3").click()
    page.wait_for_selector("#record")
    page.locator('#record svg.dag a.step[data-step="ask"]').click()
    page.wait_for_selector("#step")
    panel = page.locator("#step").inner_text()
    assert "record 3" in panel and "API error 400: bad record" in panel
    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)


def test_unknown_pages_are_404_and_only_get_is_served(server, tmp_path, viewer):
    wf = write(tmp_path, TWO_STEPS)
    run_id = json.loads(flowrun("run", wf, "--json").stdout)["run_id"]
    assert _get(viewer.url)[0] == 200
    assert _get(f"{viewer.url}run/{run_id}?step=first")[0] == 200
    for path in ("run/nope", f"run/{run_id}?step=third", "batch/batch-x", "elsewhere"):
        status, body = _get(viewer.url + path)
        assert status == 404 and "Not found" in body, path
    request = urllib.request.Request(viewer.url, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 405
    assert viewer.server_address[0] == "127.0.0.1"
    for path in ("", f"run/{run_id}", f"run/{run_id}?step=first"):
        assert os.environ["OPENAI_API_KEY"] not in _get(viewer.url + path)[1]


def test_the_view_command_prints_its_url_and_serves_until_stopped(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowrun", "view", "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("flowrun view: http://127.0.0.1:"), line
        url = line.split()[2]
        status, body = _get(url)
        assert status == 200 and "No runs match" in body
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    busy = ViewServer(RunStore(Path(os.environ["FLOWRUN_HOME"]) / "runs.db"), port=0)
    try:
        res = flowrun("view", "--port", str(busy.server_address[1]), "--no-browser")
        assert res.code == 2 and "is in use; choose another with --port N" in res.stderr
    finally:
        busy.server_close()
        busy.store.close()
