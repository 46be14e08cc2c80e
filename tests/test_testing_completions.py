"""The loopback server's older API shapes, through the OpenAI SDK, that promptflow flows' own
Python uses: the legacy completions endpoint (``/v1/completions``, ``standard/basic``), legacy
``function_call`` replies, and ``n`` choices (``eval-summarization``'s G-Eval asks for 20)."""

from __future__ import annotations

import json

import httpx2
import openai
import pytest
from openai import OpenAI

from flowrun.testing import LoopbackServer, OpenAPIValidator, Reply, ToolCall

MODEL = "gpt-3.5-turbo-instruct"


def test_default_reply_echoes_the_prompt(server: LoopbackServer, client: OpenAI) -> None:
    resp = client.completions.create(model=MODEL, prompt="Say hello twice", max_tokens=20)
    assert resp.object == "text_completion"
    assert resp.model == MODEL
    assert [(c.index, c.text, c.finish_reason) for c in resp.choices] == [
        (0, "echo: Say hello twice", "stop")
    ]
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (3, 4)
    assert resp.usage.total_tokens == 7
    [request] = server.requests
    assert request.path == "/completions"
    assert request.body == {"model": MODEL, "prompt": "Say hello twice", "max_tokens": 20}


def test_scripted_replies_match_the_prompt_and_stay_on_their_endpoint(
    server: LoopbackServer, client: OpenAI
) -> None:
    server.add(Reply(content="for the chat endpoint"))  # the default endpoint: chat
    server.add(Reply(content="tides"), match="harbour", endpoint="/completions")
    server.add(Reply(content="first", finish_reason="length"), endpoint="/completions")
    first = client.completions.create(model=MODEL, prompt="anything")
    assert (first.choices[0].text, first.choices[0].finish_reason) == ("first", "length")
    second = client.completions.create(model=MODEL, prompt="the harbour at dawn")
    assert second.choices[0].text == "tides"
    assert client.completions.create(model=MODEL, prompt="x", echo=True).choices[0].text == (
        "xecho: x"
    )
    assert server.pending == 1  # the chat reply is still waiting for a chat request
    messages = [{"role": "user", "content": "hi"}]
    chat = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert chat.choices[0].message.content == "for the chat endpoint"


def test_streamed_completion(server: LoopbackServer, client: OpenAI) -> None:
    server.add(Reply(content="a streamed answer"), endpoint="/completions")
    stream = client.completions.create(
        model=MODEL, prompt="go", stream=True, stream_options={"include_usage": True}
    )
    events = list(stream)
    assert "".join(e.choices[0].text for e in events if e.choices) == "a streamed answer"
    assert [e.choices[0].finish_reason for e in events if e.choices][-1] == "stop"
    assert events[-1].choices == [] and events[-1].usage is not None
    assert events[-1].usage.completion_tokens == 3


def test_errors_and_replies_conform_to_the_spec(openapi_validator: OpenAPIValidator) -> None:
    with LoopbackServer(validator=openapi_validator) as srv:
        client = OpenAI(base_url=srv.url, api_key="sk-test", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="best_of"):
            client.completions.create(model=MODEL, prompt="x", best_of=50)
        no_prompt = httpx2.post(srv.url + "/completions", json={"model": MODEL})
        assert no_prompt.status_code == 400
        assert "'prompt' is a required property" in no_prompt.json()["error"]["message"]
        assert srv.spec_violations[0] == (
            "POST /completions: CreateCompletionRequest $.best_of: 50 is greater than the"
            " maximum of 20"
        )
        srv.add(Reply(status=429, error="slow down"), endpoint="/completions")
        with pytest.raises(openai.RateLimitError, match="slow down"):
            client.completions.create(model=MODEL, prompt="x")

        body = {"model": MODEL, "prompt": ["one", "two"], "max_tokens": 5}
        whole = httpx2.post(srv.url + "/completions", json=body).json()
        assert whole["choices"][0]["text"] == "echo: one\ntwo"
        assert openapi_validator.validate_schema("CreateCompletionResponse", whole) == []
        stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        with httpx2.stream("POST", srv.url + "/completions", json=stream_body) as resp:
            events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(event) for event in events[:-1]]
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-2:] == [
            None,
            "stop",
        ]
        for chunk in chunks:
            # the API streams `"finish_reason": null` until the last piece, which the spec's
            # schema (shared by both shapes) does not allow: checked with the final reason
            for choice in chunk["choices"]:
                choice["finish_reason"] = choice["finish_reason"] or "stop"
            assert openapi_validator.validate_schema("CreateCompletionResponse", chunk) == []


def test_a_legacy_function_call_reply(server: LoopbackServer, client: OpenAI) -> None:
    """A model given ``functions`` (the deprecated form of tools) answers with
    ``function_call``: promptflow's chat/use_functions_with_chat_models reads it."""
    server.add(Reply(function_call=ToolCall("get_weather", {"location": "Boston"})), times=2)
    functions = [{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
    messages = [{"role": "user", "content": "Weather?"}]
    resp = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, functions=functions, function_call="auto"
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.function_call is not None
    assert (choice.message.function_call.name, choice.message.function_call.arguments) == (
        "get_weather",
        '{"location": "Boston"}',
    )
    assert choice.message.tool_calls is None
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, functions=functions, stream=True
    )
    calls = [c.choices[0].delta.function_call for c in stream if c.choices]
    assert [(f.name, f.arguments) for f in calls if f] == [
        ("get_weather", '{"location": "Boston"}')
    ]


def test_n_choices_repeat_the_reply(server: LoopbackServer, client: OpenAI) -> None:
    server.add(Reply(content="4", usage={"prompt_tokens": 9}))
    messages = [{"role": "user", "content": "Score it"}]
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=messages, n=3)
    assert [(c.index, c.message.content) for c in resp.choices] == [(0, "4"), (1, "4"), (2, "4")]
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (9, 3)
