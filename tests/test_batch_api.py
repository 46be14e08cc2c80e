"""``flowrun run --batch --via batch-api`` end to end against the loopback Batch API."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from flowrun.testing import LoopbackServer, RecordedRequest, Reply, ToolCall
from tests.flow_files import make_flow
from tests.helpers import flowrun

DIAMOND = """\
version: 1
name: diamond
inputs:
  text: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 60
steps:
  a:
    type: chat
    prompt: "summarize {{ inputs.text }}"
  b:
    type: chat
    prompt: "keywords {{ inputs.text }}"
  join:
    type: chat
    prompt: "combine {{ steps.a.output }} | {{ steps.b.output }}"
outputs:
  result: "{{ steps.join.output }}"
"""

TRIAGE = """\
version: 1
name: triage
inputs:
  ticket: {type: string}
  customer: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 100
tools:
  order_status:
    function: TOOLS:order_status
steps:
  classify:
    type: extract
    prompt: "Classify: {{ inputs.ticket }}"
    schema:
      type: object
      properties:
        category: {type: string, enum: [billing, bug, other]}
        urgent: {type: boolean}
      required: [category, urgent]
      additionalProperties: false
  customer:
    type: tool
    function: TOOLS:get_customer
    args: {customer_id: "{{ inputs.customer }}"}
  vector:
    type: embed
    input: "{{ inputs.ticket }}"
    dimensions: 8
  draft:
    type: chat
    prompt: "Draft for {{ steps.customer.output.name }} about {{ steps.classify.output.category }}: {{ inputs.ticket }}"
    tools: [order_status]
  page:
    type: chat
    when: "{{ steps.classify.output.urgent }}"
    prompt: "Page on-call: {{ inputs.ticket }}"
  tags:
    type: chat
    foreach: "{{ [inputs.ticket, steps.customer.output.name] }}"
    prompt: "Tag {{ item }}"
outputs:
  category: "{{ steps.classify.output.category }}"
  reply: "{{ steps.draft.output }}"
  page: "{{ steps.page.output }}"
  dims: "{{ steps.vector.output | length }}"
  tags: "{{ steps.tags.output }}"
"""

TOOLS = """\
import time


def get_customer(customer_id: str) -> dict:
    time.sleep(0.001)  # a sync tool in a thread: the wave must wait for it
    return {"name": "Cust " + customer_id}


def order_status(order: str) -> dict:
    return {"order": order, "status": "shipped"}
"""

CUSTOM_ID = re.compile(r"^r(\d+)\.([a-z_\[\]0-9]+)\.[0-9a-f]{8}\.a(\d+)$")


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.01,0.05")
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")


def write_records(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def number(req: RecordedRequest) -> int:
    return int(re.search(r"ticket (\d+)", req.text)[1])  # type: ignore[index]


def uploaded_lines(server: LoopbackServer) -> list[dict]:
    inputs = [f for f in server.batch_api.files.values() if f.purpose == "batch"]
    return [json.loads(x) for f in inputs for x in f.data.splitlines()]


def test_diamond_takes_exactly_two_chat_batches(
    server: LoopbackServer, tmp_path: Path, openapi_validator
) -> None:
    wf = make_flow(tmp_path, DIAMOND)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"ticket {i}"} for i in range(300)])
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api")
    assert result.code == 0, result.output

    batches = server.batch_api.batches
    assert [(b.endpoint, len(b.custom_ids), b.status) for b in batches] == [
        ("/v1/chat/completions", 600, "completed"),
        ("/v1/chat/completions", 300, "completed"),
    ]
    ids = [CUSTOM_ID.match(c) for c in server.batch_api.submitted_custom_ids()]
    assert all(ids)
    assert sorted((int(m[1]), m[2]) for m in ids) == sorted(
        (i, s) for i in range(300) for s in ("a", "b", "join")
    )
    assert {m[3] for m in ids} == {"0"}
    assert not server.requests_to("/chat/completions")  # no live call at all

    names = [f.filename for f in server.batch_api.files.values() if f.purpose == "batch"]
    assert len(names) == 2 and all(n.endswith(".jsonl") for n in names)
    for line in uploaded_lines(server):
        assert (line["method"], line["url"]) == ("POST", "/v1/chat/completions")
        assert "stream" not in line["body"]
        if openapi_validator is not None:
            assert (
                openapi_validator.validate_schema("CreateChatCompletionRequest", line["body"]) == []
            )

    lines = read_lines(out)
    assert [x["index"] for x in lines] == list(range(300))
    assert lines[7]["outputs"] == {
        "result": "echo: combine echo: summarize ticket 7 | echo: keywords ticket 7"
    }
    assert set(lines[7]) == {
        "index",
        "line",
        "status",
        "outputs",
        "cost_usd",
        "usage",
        "duration_s",
    }
    assert "batch api: wave 2 · " in result.stderr
    assert "300/300 requests · collected" in result.stderr
    assert "Batch API price: 50% off" in result.stderr


def test_a_custom_id_names_the_digest_of_the_body_it_sends(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """A request's id holds a hash of its body as the line carries it (compact JSON, text as
    is), so a record run again, in this process or after a resume, asks under the same id."""
    flow = DIAMOND.replace(
        "max_completion_tokens: 60", "max_completion_tokens: 60\n  temperature: 0.25"
    )
    wf = make_flow(tmp_path, flow)
    texts = ['café 1 \u2603 "quoted"\n', "ticket 2 \\ tab\there", "日本語 3"]
    records = write_records(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api")
    assert result.code == 0, result.output

    lines = uploaded_lines(server)
    assert len(lines) == 9
    for line in lines:
        body = json.dumps(line["body"], ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.blake2b(body.encode("utf-8"), digest_size=4).hexdigest()
        assert line["custom_id"].split(".")[2] == digest, line
        assert line["body"]["temperature"] == 0.25
    sent = {m["content"] for line in lines for m in line["body"]["messages"]}
    assert {f"summarize {t}" for t in texts} <= sent
    assert [x["status"] for x in read_lines(out)] == ["succeeded"] * 3


def test_multi_wave_workflow_matches_a_live_run(server: LoopbackServer, tmp_path: Path) -> None:
    """Tool steps, when, foreach, extract repairs and tool-calling rounds all advance in waves,
    and the output is what a live run of the same records gives."""

    def classify(req: RecordedRequest) -> Reply:
        n = number(req)
        if n % 7 == 3 and "does not match" not in req.text:
            return Reply(json={"category": "weird", "urgent": False})  # repaired next wave
        return Reply(json={"category": ["billing", "bug", "other"][n % 3], "urgent": n % 5 == 0})

    def draft(req: RecordedRequest) -> Reply:
        n = number(req)
        tool_results = [m["content"] for m in req.messages if m.get("role") == "tool"]
        if n % 4 == 0 and not tool_results:
            return Reply(tool_calls=[ToolCall("order_status", {"order": f"o{n}"})])
        return Reply(content=f"reply {n} " + " ".join(tool_results))

    server.add(classify, match="Classify:", times=None)
    server.add(draft, match="Draft for", times=None)
    wf = make_flow(tmp_path, TRIAGE, TOOLS)
    rows = [{"ticket": f"ticket {i} help", "customer": f"c{i % 9}"} for i in range(200)]
    records = write_records(tmp_path / "in.jsonl", rows)

    live_out, batch_out = tmp_path / "live.jsonl", tmp_path / "batch.jsonl"
    live_records = write_records(tmp_path / "live-in.jsonl", rows[:30])  # every case, fast
    live = flowrun("run", wf, "--batch", live_records, "--output", live_out, "--json")
    assert live.code == 0, live.output
    server.reset()
    server.add(classify, match="Classify:", times=None)
    server.add(draft, match="Draft for", times=None)
    batch = flowrun(
        "run", wf, "--batch", records, "--output", batch_out, "--json", "--via", "batch-api"
    )
    assert batch.code == 0, batch.output

    def comparable(path: Path) -> list[tuple]:
        return [(x["index"], x["status"], x["outputs"], x["usage"]) for x in read_lines(path)]

    assert comparable(batch_out)[:30] == comparable(live_out)
    assert len(comparable(batch_out)) == 200
    first = read_lines(batch_out)[24]["outputs"]  # repaired, then a tool-calling round
    assert first["category"] == "billing" and first["page"] is None
    assert first["reply"] == 'reply 24 {"order": "o24", "status": "shipped"}'
    assert first["dims"] == 8 and first["tags"] == ["echo: Tag ticket 24 help", "echo: Tag Cust c6"]

    chat = server.batch_api.batches_for("/v1/chat/completions")
    embeddings = server.batch_api.batches_for("/v1/embeddings")
    assert len(embeddings) == 1 and len(embeddings[0].custom_ids) == 200
    # wave 1: classify + tags; 2: repairs, drafts, pages; 3: repaired records' drafts and
    # pages, tool rounds; 4: the tool round of records that were repaired first
    assert len(chat) == 4
    assert len(chat[0].custom_ids) == 200 * 3
    assert not server.requests_to("/chat/completions") and not server.requests_to("/embeddings")
    assert len(set(server.batch_api.submitted_custom_ids())) == len(
        server.batch_api.submitted_custom_ids()
    )

    live_cost = json.loads(live.stdout)["cost"]
    batch_cost = json.loads(batch.stdout)["cost"]
    assert batch_cost["batch_discount"] is True and live_cost["batch_discount"] is False
    live_usd = [x["cost_usd"] for x in read_lines(live_out)]
    batch_usd = [x["cost_usd"] for x in read_lines(batch_out)][:30]
    assert batch_usd == pytest.approx([usd / 2 for usd in live_usd], abs=2e-8)  # batch price
    assert batch_cost["total_usd"] == pytest.approx(
        sum(x["cost_usd"] for x in read_lines(batch_out)), abs=1e-7
    )


def test_failed_requests_are_retried_in_the_next_wave(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.batch_api.fail(match="ticket 7", status=500)
    server.batch_api.fail(match="ticket 9", code="batch_expired")
    server.batch_api.fail(match="ticket 13", status=503, times=None)
    server.add(Reply(status=400, error="the prompt is not allowed"), match="ticket 11")
    wf = make_flow(
        tmp_path,
        DIAMOND.replace("max_completion_tokens: 60", "max_retries: 1").replace(
            '"keywords {{ inputs.text }}"', '"keywords"'
        ),
    )
    records = write_records(tmp_path / "in.jsonl", [{"text": f"ticket {i}"} for i in range(20)])
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api")
    assert result.code == 1
    assert "2 of 20 records failed" in result.stderr

    lines = read_lines(out)
    failed = {x["index"]: x for x in lines if x["status"] == "failed"}
    assert sorted(failed) == [11, 13]
    assert "API error 400: the prompt is not allowed" in failed[11]["error"]
    assert "API error 503" in failed[13]["error"] and "after 2 attempts" in failed[13]["error"]
    assert lines[7]["outputs"]["result"].startswith("echo: combine echo: summarize ticket 7")
    assert lines[9]["status"] == "succeeded"

    chat = server.batch_api.batches
    retried = sorted(c for c in chat[1].custom_ids if c.endswith(".a1"))
    assert [c.split(".")[0] for c in retried] == ["r13", "r7", "r9"]  # 11 (400) is not retried
    assert not any(c.endswith(".a2") for b in chat for c in b.custom_ids)
    assert sum(len(b.custom_ids) for b in chat) == 20 * 3 - 2 * 1 + 3  # 11, 13: no join


def test_a_failed_batch_is_retried_whole(server: LoopbackServer, tmp_path: Path) -> None:
    # (a batch refused for the enqueued-token limit is created again instead: see
    # test_batch_api_token_limit.py)
    server.batch_api.fail_batch("failed", code="invalid_request", message="Server trouble.")
    wf = make_flow(tmp_path, DIAMOND)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"ticket {i}"} for i in range(5)])
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api")
    assert result.code == 0, result.output
    assert [b.status for b in server.batch_api.batches] == ["failed", "completed", "completed"]
    assert [c[-2:] for c in server.batch_api.batches[1].custom_ids] == ["a1"] * 10


def test_files_are_split_at_the_size_limits(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.batch_api.max_requests = 250
    server.batch_api.max_bytes = 40_000
    monkeypatch.setenv("FLOWRUN_BATCH_LIMITS", "250,40000")
    wf = make_flow(tmp_path, DIAMOND)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"ticket {i}"} for i in range(300)])
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api")
    assert result.code == 0, result.output
    batches = server.batch_api.batches
    inputs = {b.input_file_id: server.batch_api.files[b.input_file_id] for b in batches}
    assert all(b.status == "completed" for b in batches)
    assert all(len(b.custom_ids) <= 250 for b in batches)
    assert all(len(f.data) <= 40_000 for f in inputs.values())
    assert max(len(f.data) for f in inputs.values()) > 30_000  # filled up to the limit
    assert sum(len(b.custom_ids) for b in batches) == 900
    assert len(batches) >= 5 and len(read_lines(out)) == 300


def test_budget_refuses_a_wave_before_submitting(server: LoopbackServer, tmp_path: Path) -> None:
    wf = make_flow(tmp_path, DIAMOND)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"ticket {i}"} for i in range(50)])
    out = tmp_path / "out.jsonl"
    result = flowrun(
        "run", wf, "--batch", records, "--output", out, "--via", "batch-api", "--max-cost", "0.001"
    )
    assert result.code == 1
    assert "budget: wave 1 (100 requests) could cost up to $" in result.stderr
    assert "nothing was submitted" in result.stderr
    assert server.batch_api.files == {} and server.batch_api.batches == []
    assert {x["status"] for x in read_lines(out)} == {"failed"}


def test_python_api(server: LoopbackServer, tmp_path: Path) -> None:
    from flowrun.batch import BatchSummary, run_batch

    wf = make_flow(tmp_path, DIAMOND)
    summary = BatchSummary()
    rows = [{"text": f"ticket {i}"} for i in range(10)]
    results = list(run_batch(wf, rows, via="batch-api", summary=summary))
    assert [r.index for r in results] == list(range(10)) and all(r.ok for r in results)
    assert (
        results[3].outputs["result"]
        == "echo: combine echo: summarize ticket 3 | echo: keywords ticket 3"
    )
    assert summary.cost.batch_discount and summary.batch_id.startswith("batch-")
    assert len(server.batch_api.batches) == 2
    assert server.batch_api.batches[0].metadata["flowrun_run_id"] == summary.batch_id


def test_rate_limits_do_not_apply(server: LoopbackServer, tmp_path: Path) -> None:
    wf = make_flow(tmp_path, DIAMOND)
    records = write_records(tmp_path / "in.jsonl", [{"text": "x"}])
    result = flowrun("run", wf, "--batch", records, "--via", "batch-api", "--rpm", "10")
    assert result.code == 2 and "--rpm/--tpm do not apply to --via batch-api" in result.stderr
