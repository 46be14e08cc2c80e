"""A batch refused for the enqueued-token limit is held back and created again on the same
file once the model's other batches leave room: no attempt is used, and it cannot loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flowrun.batch import BatchSummary, make_batch_services
from flowrun.batch.batch_api.coordinator import WaveSettings
from flowrun.batch.modes import BATCH_API
from flowrun.batch.records import ColumnMapping, records_from
from flowrun.format.loader import load_workflow
from flowrun.testing import LoopbackServer
from tests.flow_files import make_flow
from tests.helpers import flowrun
from tests.test_batch_api import DIAMOND, read_lines, write_records


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.01,0.03")
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")


def test_a_batch_over_the_token_limit_is_created_again_without_an_attempt(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_LIMITS", "6")  # wave 1: two files of 6 requests
    server.batch_api.fail_batch("failed")  # the first batch: enqueued-token limit reached
    # the refused file, created again (a third batch), stays in progress until the other
    # file's records have sent their joins: they must not wait for it (without the hold,
    # a quick server could answer it before those joins leave, and both groups would share
    # one file)
    server.batch_api.hold(
        r"\.(a|b)\.",
        until=lambda batches: (
            len(batches) < 3 or any(".join." in c for b in batches for c in b.custom_ids)
        ),
    )
    wf = make_flow(tmp_path, DIAMOND)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"ticket {i}"} for i in range(6)])
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api")
    assert result.code == 0, result.output
    assert {x["status"] for x in read_lines(out)} == {"succeeded"}
    batches = server.batch_api.batches
    refused = batches[0]
    assert refused.status == "failed" and refused.errors[0]["code"] == "token_limit_exceeded"
    again = [b for b in batches[1:] if b.input_file_id == refused.input_file_id]
    assert len(again) == 1 and again[0].status == "completed"
    # created after the wave's other batch was done, with the same requests: no new attempt
    other = next(b for b in batches[1:3] if b.input_file_id != refused.input_file_id)
    assert batches.index(other) < batches.index(again[0])
    assert again[0].custom_ids == refused.custom_ids
    assert not [c for c in server.batch_api.submitted_custom_ids() if not c.endswith(".a0")]
    # the other file's records went on without waiting for the held one: their joins, then
    # the held records' joins, each in their own file
    assert len([f for f in server.batch_api.files.values() if f.purpose == "batch"]) == 4


def test_holding_back_is_bounded(server: LoopbackServer, tmp_path: Path) -> None:
    server.batch_api.fail_batch("failed", times=50)
    no_retries = DIAMOND.replace(
        "max_completion_tokens: 60", "max_completion_tokens: 60\n  max_retries: 0"
    )
    wf = load_workflow(make_flow(tmp_path, no_retries))
    services = make_batch_services(wf, mode=BATCH_API)
    settings = WaveSettings(poll_initial=0.01, poll_max=0.02, token_limit_holds=2)
    runner = BATCH_API.runner(
        wf, records_from([{"text": "ticket 1"}]), ColumnMapping(wf.spec), services,
        summary=BatchSummary(), settings=settings,
    )  # fmt: skip

    async def run() -> list:
        try:
            return [r async for r in runner.results()]
        finally:
            await services.client.aclose()

    results = asyncio.run(run())
    assert [b.status for b in server.batch_api.batches] == ["failed"] * 3  # 1 + 2 holds
    assert len({b.input_file_id for b in server.batch_api.batches}) == 1
    assert results[0].status == "failed"
    assert "token_limit_exceeded: Enqueued token limit reached." in results[0].error
