"""The loopback server's Files and Batches endpoints, exercised through the real openai SDK."""

from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI

from flowrun.testing import LoopbackServer, Reply

MODEL = "gpt-4o-mini"


def line(cid: str, text: str, model: str = MODEL, url: str = "/v1/chat/completions") -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": cid, "method": "POST", "url": url, "body": body}


def upload(client: OpenAI, lines: list[dict], name: str = "in.jsonl") -> str:
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    return client.files.create(file=(name, data, "application/jsonl"), purpose="batch").id


def submit(client: OpenAI, lines: list[dict], endpoint: str = "/v1/chat/completions"):
    file_id = upload(client, lines)
    return client.batches.create(
        input_file_id=file_id,
        endpoint=endpoint,
        completion_window="24h",
        metadata={"purpose": "test"},
    )


def results(client: OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def test_lifecycle_output_matched_by_custom_id(server: LoopbackServer, client: OpenAI) -> None:
    server.add(Reply(content="scripted"), match="two")
    server.batch_api.completion_delay = 3600  # completes only when the test says so
    created = submit(client, [line(f"c{i}", w) for i, w in enumerate(["one", "two", "three"])])
    assert created.status == "validating"
    assert created.completion_window == "24h" and created.metadata == {"purpose": "test"}

    running = client.batches.retrieve(created.id)
    assert running.status == "in_progress" and running.output_file_id is None
    assert server.batch_api.requests == []  # nothing is processed before the delay
    server.batch_api.completion_delay = 0
    done = client.batches.retrieve(created.id)
    assert done.status == "completed"
    assert (done.request_counts.total, done.request_counts.completed) == (3, 3)
    assert done.error_file_id is None
    assert done.completed_at and done.in_progress_at and done.finalizing_at

    out = results(client, done.output_file_id)
    by_id = {x["custom_id"]: x for x in out}
    assert [x["custom_id"] for x in out] != ["c0", "c1", "c2"]  # not in input order
    assert by_id["c1"]["response"]["body"]["choices"][0]["message"]["content"] == "scripted"
    assert by_id["c0"]["response"]["body"]["choices"][0]["message"]["content"] == "echo: one"
    assert all(x["response"]["status_code"] == 200 and x["error"] is None for x in out)
    assert server.batch_api.batches[0].custom_ids == ["c0", "c1", "c2"]
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"


def test_injected_failures_go_to_the_error_file(server: LoopbackServer, client: OpenAI) -> None:
    server.batch_api.fail(match="boom", status=500, message="kaput")
    server.batch_api.fail(match="late", code="batch_expired")
    server.add(Reply(status=400, error="bad prompt"), match="invalid")
    texts = ["fine", "boom", "late", "invalid", "boom"]
    batch = submit(client, [line(f"c{i}", t) for i, t in enumerate(texts)])
    done = client.batches.retrieve(batch.id)
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 3)
    errors = {x["custom_id"]: x for x in results(client, done.error_file_id)}
    assert errors["c1"]["response"]["status_code"] == 500
    assert errors["c1"]["response"]["body"]["error"]["message"] == "kaput"
    assert errors["c2"]["response"] is None and errors["c2"]["error"]["code"] == "batch_expired"
    assert errors["c3"]["response"]["status_code"] == 400
    ok = {x["custom_id"] for x in results(client, done.output_file_id)}
    assert ok == {"c0", "c4"}  # times=1: the second "boom" line succeeded


def test_whole_batch_failed_or_expired(server: LoopbackServer, client: OpenAI) -> None:
    server.batch_api.fail_batch("failed")
    server.batch_api.fail_batch("expired")
    failed = client.batches.retrieve(submit(client, [line("a", "x")]).id)
    assert failed.status == "failed" and failed.output_file_id is None
    assert failed.errors.data[0].code == "token_limit_exceeded"
    expired = client.batches.retrieve(submit(client, [line("b", "y")]).id)
    assert expired.status == "expired"
    assert results(client, expired.error_file_id)[0]["error"]["code"] == "batch_expired"
    assert client.batches.retrieve(submit(client, [line("c", "z")]).id).status == "completed"


def test_input_file_checks_fail_the_batch(server: LoopbackServer, client: OpenAI) -> None:
    mixed = client.batches.retrieve(
        submit(client, [line("a", "x"), line("b", "y", model="gpt-4o")]).id
    )
    assert mixed.status == "failed" and "one model" in mixed.errors.data[0].message
    dup = client.batches.retrieve(submit(client, [line("a", "x"), line("a", "y")]).id)
    assert dup.status == "failed" and dup.errors.data[0].code == "duplicate_custom_id"
    server.batch_api.max_requests = 2
    many = client.batches.retrieve(submit(client, [line(f"c{i}", "x") for i in range(3)]).id)
    assert many.status == "failed" and many.errors.data[0].code == "too_many_requests"
    server.batch_api.max_bytes = 100
    big = client.batches.retrieve(submit(client, [line("a", "x" * 200)]).id)
    assert big.status == "failed" and big.errors.data[0].code == "file_too_large"
    with pytest.raises(openai.BadRequestError, match="must be .jsonl"):
        client.files.create(file=("in.txt", b"{}", "text/plain"), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="No file"):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )


def test_cancel_and_list(server: LoopbackServer, client: OpenAI) -> None:
    server.batch_api.completion_delay = 60
    first = submit(client, [line("a", "x"), line("b", "y")])
    second = submit(client, [line("c", "z")])
    cancelling = client.batches.cancel(first.id)
    assert cancelling.status == "cancelling"
    cancelled = client.batches.retrieve(first.id)
    assert cancelled.status == "cancelled" and cancelled.request_counts.failed == 2
    assert {x["error"]["code"] for x in results(client, cancelled.error_file_id)} == {
        "batch_cancelled"
    }
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(first.id)
    page = client.batches.list(limit=1)
    assert [b.id for b in page.data] == [second.id] and page.has_more
    assert [b.id for b in client.batches.list(limit=10)] == [second.id, first.id]
    assert server.batch_api.submitted_custom_ids() == ["a", "b", "c"]
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def test_embeddings_batch(server: LoopbackServer, client: OpenAI) -> None:
    body = {"model": "text-embedding-3-small", "input": ["a b", "c d"], "dimensions": 8}
    row = {"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": body}
    done = client.batches.retrieve(submit(client, [row], endpoint="/v1/embeddings").id)
    out = results(client, done.output_file_id)[0]["response"]["body"]
    assert [len(d["embedding"]) for d in out["data"]] == [8, 8]
    assert server.batch_api.batches_for("/v1/embeddings")[0].model == "text-embedding-3-small"


def test_lines_are_validated_against_the_openapi_spec(openapi_validator) -> None:
    if openapi_validator is None:
        pytest.skip("OpenAPI spec not available")
    with LoopbackServer(validator=openapi_validator) as server:
        client = OpenAI(base_url=server.url, api_key="sk-test")
        bad = {"custom_id": "x", "method": "POST", "url": "/v1/chat/completions"}
        bad["body"] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": "two"}
        done = client.batches.retrieve(submit(client, [bad]).id)
        assert done.request_counts.failed == 1
        assert any("batch line x" in v for v in server.spec_violations)
        with pytest.raises(openai.BadRequestError):
            client.batches.create(
                input_file_id="file-x", endpoint="/v1/chat/completions", completion_window="1h"
            )
        assert any("CreateBatchRequest" in v for v in server.spec_violations)


def test_an_embeddings_batch_over_the_input_limit_fails(
    server: LoopbackServer, client: OpenAI
) -> None:
    server.batch_api.max_embedding_inputs = 3

    def row(cid: str, texts: list[str]) -> dict:
        body = {"model": "text-embedding-3-small", "input": texts, "dimensions": 4}
        return {"custom_id": cid, "method": "POST", "url": "/v1/embeddings", "body": body}

    over = submit(client, [row("a", ["x", "y"]), row("b", ["z", "w"])], "/v1/embeddings")
    done = client.batches.retrieve(over.id)
    assert done.status == "failed"
    assert done.errors.data[0].code == "too_many_embedding_inputs"
    assert "4 embedding inputs, more than 3" in done.errors.data[0].message
    fits = submit(client, [row("c", ["x", "y"]), row("d", ["z"])], "/v1/embeddings")
    assert client.batches.retrieve(fits.id).status == "completed"
