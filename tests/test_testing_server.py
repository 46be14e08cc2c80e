"""The loopback OpenAI-compatible server, exercised through the real openai SDK."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import time

import httpx2
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from flowrun.testing import LoopbackServer, OpenAPIValidator, RecordedRequest, Reply, ToolCall

MODEL = "gpt-4o-mini"
EMBED = "text-embedding-3-small"


def ask(client: OpenAI, text: str, **kwargs):
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], **kwargs
    )


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_default_echo_and_usage(server: LoopbackServer, client: OpenAI) -> None:
    resp = ask(client, "hello there world")
    assert resp.choices[0].message.content == "echo: hello there world"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == MODEL
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 3 + 3
    assert resp.usage.completion_tokens == 4
    assert resp.usage.total_tokens == 10
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v1")
    assert server.env()["OPENAI_BASE_URL"] == server.url


def test_scripted_replies_fifo_match_and_times(server: LoopbackServer, client: OpenAI) -> None:
    server.add(Reply(content="first"))
    server.add(Reply(content="classified"), match="Classify")
    server.add(Reply(content="second"))
    server.add(Reply(content="again"), times=2)
    server.add(Reply(content="by callable match"), match=lambda r: r.body.get("temperature") == 0.5)
    server.add(Reply(content="multi-line"), match='line one\n"two"')

    assert ask(client, "Classify this").choices[0].message.content == "first"
    assert ask(client, "Classify this").choices[0].message.content == "classified"
    assert ask(client, "x", temperature=0.5).choices[0].message.content == "second"
    assert [ask(client, "x").choices[0].message.content for _ in range(2)] == ["again"] * 2
    assert ask(client, "x", temperature=0.5).choices[0].message.content == "by callable match"
    assert ask(client, 'line one\n"two"').choices[0].message.content == "multi-line"
    assert server.pending == 0
    assert ask(client, "done").choices[0].message.content == "echo: done"

    recorded = server.requests_to("/chat/completions")
    assert len(recorded) == len(server.requests) == 8
    assert recorded[0].method == "POST" and recorded[0].path == "/chat/completions"
    assert recorded[0].headers["authorization"] == "Bearer sk-test-loopback"
    assert json.loads(recorded[0].raw) == recorded[0].body

    server.add(Reply(content="left over"))
    server.reset()
    assert server.requests == [] and server.pending == 0
    assert ask(client, "fresh").choices[0].message.content == "echo: fresh"


def test_default_override_and_string_responder(server: LoopbackServer, client: OpenAI) -> None:
    server.default = Reply(content="fallback")
    assert ask(client, "a").choices[0].message.content == "fallback"
    server.add(lambda req: req.last_user_text.upper())
    assert ask(client, "shout").choices[0].message.content == "SHOUT"


def test_tool_calls_and_callable_responder_reading_results(
    server: LoopbackServer, client: OpenAI
) -> None:
    server.add(
        Reply(
            tool_calls=[
                ToolCall("lookup", {"id": 1}),
                ToolCall("other", {"q": "x"}, id="call_custom"),
                ToolCall("broken", '{"oops": '),
            ]
        )
    )

    def answer(req: RecordedRequest) -> Reply:
        results = {
            m["tool_call_id"]: m["content"] for m in req.body["messages"] if m["role"] == "tool"
        }
        return Reply(content=json.dumps(results, sort_keys=True))

    server.add(answer)
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("lookup", "other", "broken")
    ]
    messages: list = [{"role": "user", "content": [{"type": "text", "text": "find it"}]}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["lookup", "other", "broken"]
    assert calls[0].id.startswith("call_") and calls[1].id == "call_custom"
    assert len({c.id for c in calls}) == 3
    assert json.loads(calls[0].function.arguments) == {"id": 1}
    assert calls[2].function.arguments == '{"oops": '
    assert server.requests[0].last_user_text == "find it"

    messages.append(choice.message.model_dump(exclude_none=True))
    messages += [
        {"role": "tool", "tool_call_id": c.id, "content": f"r-{c.function.name}"} for c in calls
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    assert json.loads(second.choices[0].message.content) == {
        calls[0].id: "r-lookup",
        "call_custom": "r-other",
        calls[2].id: "r-broken",
    }


def test_json_refusal_and_usage_override(server: LoopbackServer, client: OpenAI) -> None:
    server.add(Reply(json={"label": "spam", "score": 0.9}, model="gpt-4o-2024-08-06"))
    server.add(
        Reply(
            content="ok",
            usage={
                "prompt_tokens": 100,
                "completion_tokens": 50,
                "cached_tokens": 64,
                "reasoning_tokens": 30,
            },
        )
    )
    server.add(Reply(refusal="I can't help with that."))
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "label", "schema": {"type": "object"}, "strict": False},
    }
    resp = ask(client, "Classify", response_format=fmt)
    assert json.loads(resp.choices[0].message.content) == {"label": "spam", "score": 0.9}
    assert resp.model == "gpt-4o-2024-08-06"

    usage = ask(client, "x").usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (100, 50, 150)
    assert usage.prompt_tokens_details.cached_tokens == 64
    assert usage.completion_tokens_details.reasoning_tokens == 30

    message = ask(client, "x").choices[0].message
    assert message.refusal == "I can't help with that." and message.content is None
    with pytest.raises(ValueError, match="unknown usage keys"):
        Reply(usage={"input_tokens": 1})


def test_streaming_text_with_usage(server: LoopbackServer) -> None:
    server.add(Reply(content="The quick brown fox jumps over the lazy dog"))

    async def run() -> tuple[list, str]:
        async with AsyncOpenAI() as client:
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "tell me"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return chunks, text

    chunks, text = asyncio.run(run())
    assert text == "The quick brown fox jumps over the lazy dog"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 9
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_usage(server: LoopbackServer, client: OpenAI) -> None:
    chunks = list(ask(client, "hi", stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hi"


def test_streaming_tool_calls_reassembled(server: LoopbackServer, client: OpenAI) -> None:
    args = {"query": "weather in Paris", "days": [1, 2, 3], "units": "metric"}
    server.add(Reply(tool_calls=[ToolCall("forecast", args), ToolCall("clock", {"tz": "CET"})]))
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("forecast", "clock")
    ]
    with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "plan"}], tools=tools
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["forecast", "clock"]
    assert json.loads(calls[0].function.arguments) == args
    assert json.loads(calls[1].function.arguments) == {"tz": "CET"}
    assert final.choices[0].finish_reason == "tool_calls"

    # Raw chunks: first delta per call carries id/type/name, later ones only argument pieces.
    server.add(Reply(tool_calls=[ToolCall("forecast", args, id="call_x")]))
    deltas = [
        tc
        for chunk in ask(client, "plan", stream=True, tools=tools)
        for tc in (chunk.choices[0].delta.tool_calls or [])
    ]
    assert deltas[0].id == "call_x" and deltas[0].function.name == "forecast"
    assert deltas[0].function.arguments == "" and len(deltas) > 2
    assert all(d.id is None and d.function.name is None for d in deltas[1:])
    assert "".join(d.function.arguments for d in deltas) == json.dumps(args)


def test_rate_limit_then_success_is_retried(server: LoopbackServer, client: OpenAI) -> None:
    server.add(Reply(status=429, retry_after=0.01))
    assert ask(client, "retry me").choices[0].message.content == "echo: retry me"
    assert len(server.requests) == 2
    assert server.requests[1].headers["x-stainless-retry-count"] == "1"


def test_server_error_then_success_and_final_errors(server: LoopbackServer, client: OpenAI) -> None:
    server.add(Reply(status=500, retry_after=0.01))
    assert ask(client, "x").choices[0].message.content == "echo: x"
    assert len(server.requests) == 2

    server.add(Reply(status=429, retry_after=0.01, error="slow down"), times=None)
    with pytest.raises(openai.RateLimitError, match="slow down") as info:
        ask(client, "x", timeout=5)
    assert info.value.code == "rate_limit_exceeded"
    assert len(server.requests) == 2 + 3  # first try + 2 SDK retries
    server.reset()

    server.add(Reply(status=400, error="bad thing"))
    with pytest.raises(openai.BadRequestError, match="bad thing"):
        ask(client, "x")
    assert len(server.requests) == 1


def test_responder_exception_becomes_500(server: LoopbackServer, client: OpenAI) -> None:
    server.add(lambda req: 1 / 0)
    with pytest.raises(openai.InternalServerError, match="ZeroDivisionError"):
        ask(client, "x")
    assert len(server.requests) == 1  # x-should-retry: false
    assert "ZeroDivisionError" in server.errors[0]


def test_embeddings(server: LoopbackServer, client: OpenAI) -> None:
    single = client.embeddings.create(model=EMBED, input="hello world")
    assert server.requests[-1].body["encoding_format"] == "base64"  # the SDK's default
    vec = single.data[0].embedding
    assert len(vec) == 1536 and math.isclose(sum(v * v for v in vec), 1.0, rel_tol=1e-5)
    assert single.usage.prompt_tokens == 2

    texts = [
        "The cat sat on the mat.",
        "The cat sat on the mat!",
        "Quarterly revenue grew by twelve percent.",
    ]
    floats = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    a, b, c = (d.embedding for d in floats.data)
    assert [d.index for d in floats.data] == [0, 1, 2]
    assert cosine(a, b) > 0.9
    assert cosine(a, c) < 0.3
    # float and (SDK-decoded) base64 responses agree, and are deterministic
    decoded = client.embeddings.create(model=EMBED, input=texts).data[0].embedding
    assert max(abs(x - y) for x, y in zip(a, decoded, strict=True)) < 1e-6

    raw = client.embeddings.create(model=EMBED, input="hi", encoding_format="base64", dimensions=8)
    packed = base64.b64decode(raw.data[0].embedding)
    assert len(struct.unpack("<8f", packed)) == 8

    small = client.embeddings.create(model=EMBED, input=["a b", "c"], dimensions=64)
    assert [len(d.embedding) for d in small.data] == [64, 64]
    tokens = client.embeddings.create(model=EMBED, input=[[1, 2, 3], [4]], encoding_format="float")
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 4

    server.add(Reply(embedding=[1.0, 0.0]), endpoint="/embeddings")
    server.add(Reply(status=429, retry_after=0.01), endpoint="/embeddings")
    assert client.embeddings.create(model=EMBED, input="x").data[0].embedding == [1.0, 0.0]
    assert client.embeddings.create(model=EMBED, input="x").data[0].embedding != [1.0, 0.0]
    assert len(server.requests_to("/embeddings")) == 9  # the 429 was retried


def test_latency(server: LoopbackServer, client: OpenAI) -> None:
    server.add(Reply(content="slow", latency=0.3))
    start = time.perf_counter()
    assert ask(client, "x").choices[0].message.content == "slow"
    assert time.perf_counter() - start >= 0.3
    server.latency = 0.2
    start = time.perf_counter()
    ask(client, "x")
    assert time.perf_counter() - start >= 0.2


def test_concurrent_requests_run_in_parallel(server: LoopbackServer) -> None:
    server.latency = 0.2

    async def run() -> list[str]:
        async with AsyncOpenAI() as client:
            calls = [
                client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"n{i}"}]
                )
                for i in range(20)
            ]
            return [r.choices[0].message.content for r in await asyncio.gather(*calls)]

    answers = asyncio.run(run())
    assert answers == [f"echo: n{i}" for i in range(20)]
    assert len(server.requests) == 20
    # causality, not wall time: a second request arrived while the first was still held
    first_reply = min(r.replied_at for r in server.requests)
    assert sum(r.received_at < first_reply for r in server.requests) >= 2


def test_models_and_unknown_path(server: LoopbackServer, client: OpenAI) -> None:
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]
    resp = httpx2.post(server.url + "/nope", json={})
    assert resp.status_code == 404
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}


def test_responses_conform_to_openapi_spec(
    server: LoopbackServer, openapi_validator: OpenAPIValidator
) -> None:
    server.add(Reply(content="hi", tool_calls=[ToolCall("f", {"a": 1})]), times=2)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    completion = httpx2.post(server.url + "/chat/completions", json=body).json()
    assert openapi_validator.validate_schema("CreateChatCompletionResponse", completion) == []

    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with httpx2.stream("POST", server.url + "/chat/completions", json=stream_body) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        assert (
            openapi_validator.validate_schema(
                "CreateChatCompletionStreamResponse", json.loads(event)
            )
            == []
        )

    # (the spec types `embedding` as a number array only, so check the float form)
    emb_body = {"model": EMBED, "input": ["a", "b"], "encoding_format": "float"}
    embeddings = httpx2.post(server.url + "/embeddings", json=emb_body).json()
    assert openapi_validator.validate_schema("CreateEmbeddingResponse", embeddings) == []
    error = httpx2.post(server.url + "/nope", json={}).json()
    assert openapi_validator.validate_schema("ErrorResponse", error) == []


def test_spec_violations_rejected_and_recorded(openapi_validator: OpenAPIValidator) -> None:
    with LoopbackServer(validator=openapi_validator) as srv:
        resp = httpx2.post(srv.url + "/chat/completions", json={"model": MODEL})
        assert resp.status_code == 400
        assert "'messages' is a required property" in resp.json()["error"]["message"]
        assert srv.spec_violations == [
            "POST /chat/completions: CreateChatCompletionRequest $: 'messages' is a required property"
        ]

        client = OpenAI(base_url=srv.url, api_key="sk-test", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="temperature"):
            ask(client, "x", extra_body={"temperature": "hot"})
        with pytest.raises(openai.BadRequestError, match="Additional properties"):
            client.embeddings.create(model=EMBED, input="x", extra_body={"bogus": 1})
        assert len(srv.spec_violations) == 3
        assert len(srv.requests) == 3

        # valid requests, including nulls the spec marks ``nullable``, pass
        assert ask(client, "fine", max_tokens=None, stop=None).choices[0].message.content
        assert len(srv.spec_violations) == 3


def test_servers_the_suite_does_not_create_check_requests_too() -> None:
    """--mock runs and the flowrun_server fixture make their own model: the session's spec
    validator (conftest) reaches them, so their requests are checked as well."""
    from flowrun.errors import ModelCallError
    from flowrun.provider.mock import MockClient

    mock = MockClient()  # the in-process model of --mock: no server
    assert mock.check is not None
    with pytest.raises(ModelCallError) as caught:
        asyncio.run(mock.chat({"model": MODEL}))
    assert caught.value.status == 400
    assert mock.spec_violations == [
        "POST /chat/completions: CreateChatCompletionRequest $: 'messages' is a required property"
    ]
    with LoopbackServer() as srv:  # a server the test did not give a validator
        assert srv.validator is not None
        resp = httpx2.post(srv.url + "/chat/completions", json={"model": MODEL})
        assert resp.status_code == 400
        assert srv.spec_violations == [
            "POST /chat/completions: CreateChatCompletionRequest $: 'messages' is a required property"
        ]
