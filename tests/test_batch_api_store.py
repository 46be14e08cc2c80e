"""What a Batch API run leaves in the run store: request rows and result lines go once their
records are written (succeeded); those of failed records stay for the resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowrun.testing import LoopbackServer
from tests.flow_files import make_flow
from tests.helpers import flowrun
from tests.run_helpers import query
from tests.test_batch_api import DIAMOND, read_lines, write_records


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.01,0.05")
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")


def request_rows(run_id: str) -> list[str]:
    return [
        r[0] for r in query("SELECT custom_id FROM batch_api_requests WHERE run_id=?", (run_id,))
    ]


def test_request_rows_go_once_their_records_are_written(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.batch_api.fail(match="keywords ticket 3", status=400)
    wf = make_flow(tmp_path, DIAMOND)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"ticket {i}"} for i in range(12)])
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api",
                     "--json")  # fmt: skip
    assert result.code == 1
    run_id = json.loads(result.stdout)["batch_id"]
    assert [x["status"] for x in read_lines(out)].count("failed") == 1
    # only record 3's requests (and results) are kept, for its resume
    left = request_rows(run_id)
    assert left and {cid.split(".")[0] for cid in left} == {"r3"}
    assert query("SELECT COUNT(*) FROM batch_api_files WHERE run_id=?", (run_id,))[0][0] == 2

    again = flowrun("resume", run_id)
    assert again.code == 0, again.output
    assert request_rows(run_id) == []  # complete: nothing left to resume
    assert {x["status"] for x in read_lines(out)} == {"succeeded"}
