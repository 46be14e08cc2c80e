"""The chat step end to end: the request the server receives, and the output/report the user sees."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path

import pytest

from flowrun import load_workflow, run_workflow
from flowrun.testing import Reply
from tests.helpers import flowrun, flowrun_process
from tests.imagefiles import jpeg_bytes, png_bytes


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def one_step(tmp_path: Path, step: str, *, inputs: str = "{}", defaults: str = "{}") -> Path:
    """A workflow with one step ``s`` (its body given as indented YAML) and output ``out``."""
    body = textwrap.indent(textwrap.dedent(step).strip(), "    ")
    text = (
        f"version: 1\nname: t\ninputs: {inputs}\ndefaults: {defaults}\n"
        f'steps:\n  s:\n{body}\noutputs:\n  out: "{{{{ steps.s.output }}}}"\n'
    )
    path = tmp_path / "wf.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run(path: Path, inputs: dict | None = None):
    return run_workflow(load_workflow(path), inputs or {}, store=False)


def only_request(server):
    requests = server.requests_to("/chat/completions")
    assert len(requests) == 1
    return requests[0].body


# --- messages ------------------------------------------------------------------


def test_system_messages_and_prompt_are_sent_in_order(server, tmp_path):
    path = one_step(
        tmp_path,
        """
        type: chat
        model: gpt-4o-mini
        system: "You answer about {{ inputs.topic }}."
        messages:
          - {role: user, content: "What is {{ inputs.topic }}?"}
          - {role: assistant, content: "A thing."}
          - role: user
            content:
              - {type: text, text: "Part one about {{ inputs.topic }}"}
              - {type: text, text: "Part two"}
        prompt: "And finally {{ inputs.topic }}"
        """,
        inputs="{topic: {type: string}}",
    )
    result = run(path, {"topic": "owls"})
    assert result.status == "succeeded"
    assert result.outputs == {"out": "echo: And finally owls"}
    assert only_request(server)["messages"] == [
        {"role": "system", "content": "You answer about owls."},
        {"role": "user", "content": "What is owls?"},
        {"role": "assistant", "content": "A thing."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Part one about owls"},
                {"type": "text", "text": "Part two"},
            ],
        },
        {"role": "user", "content": "And finally owls"},
    ]


def test_every_model_parameter_lands_in_the_request_body(server, tmp_path):
    path = one_step(
        tmp_path,
        """
        type: chat
        model: gpt-4o
        prompt: hi
        temperature: 0.3
        top_p: 0.9
        max_completion_tokens: 77
        seed: 42
        stop: ["END", "STOP"]
        extra: {presence_penalty: 0.5, user: user-123}
        """,
        defaults="{model: gpt-4o-mini, temperature: 1.0, extra: {frequency_penalty: 0.25}}",
    )
    assert run(path).status == "succeeded"
    body = only_request(server)
    assert body == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.3,
        "top_p": 0.9,
        "max_completion_tokens": 77,
        "seed": 42,
        "stop": ["END", "STOP"],
        "presence_penalty": 0.5,
        "user": "user-123",
        "frequency_penalty": 0.25,
    }


def test_reasoning_effort_is_sent_to_a_reasoning_model(server, tmp_path):
    path = one_step(
        tmp_path,
        "{type: chat, model: o3-mini, prompt: think, reasoning_effort: high, stop: END}",
    )
    assert run(path).status == "succeeded"
    body = only_request(server)
    assert body == {
        "model": "o3-mini",
        "messages": [{"role": "user", "content": "think"}],
        "reasoning_effort": "high",
        "stop": "END",
    }


def test_timeout_s_and_max_retries_reach_the_sdk(server, tmp_path):
    server.add(Reply(content="late", latency=1.0), times=None)
    path = one_step(tmp_path, "{type: chat, model: gpt-4o-mini, prompt: hi, timeout_s: 0.2}")
    path.write_text(path.read_text().replace("defaults: {}", "defaults: {max_retries: 1}"))
    result = run(path)
    assert result.status == "failed"
    assert result.error == "step 's' failed: the request timed out after 0.2s"
    assert len(server.requests_to("/chat/completions")) == 2  # the first try + 1 retry


# --- JSON mode --------------------------------------------------------------------


def test_response_format_json_sends_json_mode_and_outputs_the_parsed_object(server, tmp_path):
    server.add(Reply(json={"name": "Ada", "tags": ["x", 1]}))
    path = one_step(
        tmp_path,
        """
        type: chat
        model: gpt-4o-mini
        prompt: Reply in JSON with name and tags.
        response_format: json
        """,
    )
    path.write_text(
        path.read_text().replace(
            'out: "{{ steps.s.output }}"',
            'out: "{{ steps.s.output.name }}"\n  all: "{{ steps.s.output }}"',
        )
    )
    result = run(path)
    assert only_request(server)["response_format"] == {"type": "json_object"}
    assert result.steps["s"].output == {"name": "Ada", "tags": ["x", 1]}
    assert result.outputs == {"out": "Ada", "all": {"name": "Ada", "tags": ["x", 1]}}


def test_response_format_json_with_an_invalid_reply_fails_clearly(server, tmp_path):
    server.add(Reply(content="Sure! {name: Ada"))
    path = one_step(
        tmp_path, "{type: chat, model: gpt-4o-mini, prompt: JSON please, response_format: json}"
    )
    res = flowrun("run", path)
    assert res.code == 1
    assert "Traceback" not in res.stderr
    assert "error: step 's' failed: the model's reply is not valid JSON" in res.stderr
    assert "Sure! {name: Ada" in res.stderr


def test_response_format_json_cut_off_by_the_token_limit_says_so(server, tmp_path):
    server.add(Reply(content='{"items": ["a", "b', finish_reason="length"))
    path = one_step(
        tmp_path,
        "{type: chat, model: gpt-4o-mini, prompt: List in JSON, response_format: json, "
        "max_completion_tokens: 8}",
    )
    result = run(path)
    assert result.error == (
        "step 's' failed: the reply was cut off at max_completion_tokens (finish_reason: length), "
        "so its JSON is incomplete; raise max_completion_tokens"
    )


def test_response_format_json_without_the_word_json_is_refused_before_the_call(server, tmp_path):
    # the API rejects JSON mode unless a message mentions JSON; say so before paying for a 400
    path = one_step(
        tmp_path, "{type: chat, model: gpt-4o-mini, prompt: give me data, response_format: json}"
    )
    result = run(path)
    assert result.status == "failed"
    assert "response_format: json" in result.error and "JSON" in result.error
    assert server.requests == []


# --- images -----------------------------------------------------------------------


def image_parts(body: dict) -> list[dict]:
    return [p for p in body["messages"][-1]["content"] if p["type"] == "image_url"]


def test_images_urls_pass_through_and_local_files_become_data_urls(server, tmp_path):
    (tmp_path / "pics").mkdir()
    png, jpg = png_bytes(), jpeg_bytes()
    (tmp_path / "pics" / "a.png").write_bytes(png)
    (tmp_path / "photo.jpeg").write_bytes(jpg)
    path = one_step(
        tmp_path,
        """
        type: chat
        model: gpt-4o-mini
        prompt: "Describe these."
        images:
          - "https://example.com/cat.png"
          - pics/a.png
          - "{{ inputs.photo }}"
          - "{{ inputs.none }}"
          - ""
          - null
        image_detail: low
        """,
        inputs="{photo: {type: string}, none: {type: string, default: null}}",
    )
    result = run(path, {"photo": str(tmp_path / "photo.jpeg")})
    assert result.status == "succeeded", result.error
    body = only_request(server)
    assert body["messages"][-1]["content"][0] == {"type": "text", "text": "Describe these."}
    assert image_parts(body) == [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
        {
            "type": "image_url",
            "image_url": {
                "url": "data:image/png;base64," + base64.b64encode(png).decode(),
                "detail": "low",
            },
        },
        {
            "type": "image_url",
            "image_url": {
                "url": "data:image/jpeg;base64," + base64.b64encode(jpg).decode(),
                "detail": "low",
            },
        },
    ]


def test_only_null_images_send_a_plain_text_prompt(server, tmp_path):
    path = one_step(
        tmp_path,
        """
        type: chat
        model: gpt-4o-mini
        prompt: "no pictures"
        images: ["{{ inputs.shot }}"]
        """,
        inputs="{shot: {type: string, default: null}}",
    )
    assert run(path).status == "succeeded"
    assert only_request(server)["messages"] == [{"role": "user", "content": "no pictures"}]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "image not found: {p}"),
        (lambda d: (d / "notes.png").write_text("just text"), "{p} is not an image"),
    ],
    ids=["missing", "not-an-image"],
)
def test_a_missing_or_non_image_file_is_a_clear_step_error(server, tmp_path, make, message):
    make(tmp_path)
    image = tmp_path / "notes.png"
    path = one_step(
        tmp_path,
        f'{{type: chat, model: gpt-4o-mini, prompt: look, images: ["{image}"]}}',
    )
    res = flowrun("run", path)
    assert res.code == 1
    assert "Traceback" not in res.stderr
    assert f"error: step 's' failed: {message.format(p=image)}" in res.stderr
    assert server.requests == []


# --- streaming --------------------------------------------------------------------


def test_stream_true_asks_for_usage_and_records_it(server, tmp_path):
    server.add(
        Reply(
            content="streamed words arrive in pieces",
            usage={"prompt_tokens": 21, "completion_tokens": 5, "cached_tokens": 4},
        )
    )
    path = one_step(tmp_path, "{type: chat, model: gpt-4o-mini, prompt: go, stream: true}")
    pieces: list[tuple[str, str]] = []
    result = run_workflow(
        load_workflow(path), {}, store=False, on_text=lambda step, text: pieces.append((step, text))
    )
    body = only_request(server)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert result.outputs == {"out": "streamed words arrive in pieces"}
    assert "".join(t for _, t in pieces) == "streamed words arrive in pieces"
    assert {s for s, _ in pieces} == {"s"} and len(pieces) > 1
    usage = result.steps["s"].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (21, 5, 4)
    assert result.cost.total_usd == pytest.approx((17 * 0.15 + 4 * 0.075 + 5 * 0.60) / 1e6)


# --- finish_reason: length -------------------------------------------------------


def test_finish_reason_length_is_a_warning_in_the_report_and_the_json(server, tmp_path):
    path = one_step(
        tmp_path, "{type: chat, model: gpt-4o-mini, prompt: long story, max_completion_tokens: 5}"
    )
    warning = "step 's': the reply was cut off at max_completion_tokens (finish_reason: length)"
    server.add(Reply(content="Once upon a time", finish_reason="length"))
    res = flowrun("run", path)
    assert res.code == 0
    assert res.stdout == "out: Once upon a time\n"
    assert f"warning: {warning}" in res.stderr.splitlines()

    server.add(Reply(content="Once upon a time", finish_reason="length"))
    doc = json.loads(flowrun("run", path, "--json").stdout)
    assert doc["warnings"] == [warning]
    assert doc["steps"]["s"]["finish_reason"] == "length"
    assert doc["steps"]["s"]["warnings"] == [warning]


# --- context window -------------------------------------------------------------


def test_a_prompt_that_cannot_fit_the_context_window_is_refused_before_any_request(
    server, tmp_path
):
    big = tmp_path / "big.txt"
    big.write_text("lorem ipsum dolor " * 50_000)  # ~100k+ tokens
    path = one_step(
        tmp_path,
        '{type: chat, model: gpt-4o-mini, prompt: "{{ inputs.text }}", max_completion_tokens: 16000}',
        inputs="{text: {type: string}}",
    )
    res = flowrun("run", path, "-i", f"text=@{big}")
    assert res.code == 1
    assert server.requests == []
    line = next(x for x in res.stderr.splitlines() if x.startswith("error:"))
    assert line.startswith("error: step 's' failed: the prompt has ")
    assert (
        "+ max_completion_tokens 16,000, more than gpt-4o-mini's context window of 128,000" in line
    )


def test_a_large_prompt_that_fits_is_sent(server, tmp_path):
    big = "lorem ipsum dolor " * 20_000  # ~60k tokens: fits 128k
    path = one_step(
        tmp_path,
        '{type: chat, model: gpt-4o-mini, prompt: "{{ inputs.text }}"}',
        inputs="{text: {type: string}}",
    )
    assert run(path, {"text": big}).status == "succeeded"
    assert len(server.requests) == 1


OFFLINE_TIKTOKEN = {  # every download fails at once; the loopback server is still reached
    **{k: "http://127.0.0.1:9" for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")},
    "NO_PROXY": "127.0.0.1",
    "no_proxy": "127.0.0.1",
}


def test_without_tiktoken_an_approximate_count_never_refuses_a_prompt(server, tmp_path):
    """~140k tokens by 4 characters per token, ~40k really: sent, with one warning per step."""
    (tmp_path / "cache").mkdir()
    text = tmp_path / "text.txt"
    text.write_text("understanding " * 40_000)
    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: approx
            inputs: {text: {type: string}, long: {type: string}}
            steps:
              s: {type: chat, model: gpt-4o-mini, prompt: "{{ inputs.text }}"}
              v: {type: embed, input: ["{{ inputs.long }}", "{{ inputs.long }}"]}
            """
        )
    )
    res = flowrun_process(
        "run", path, "-i", f"text=@{text}", "-i", "long=" + "internationalization " * 3000,
        "--json", env={**OFFLINE_TIKTOKEN, "TIKTOKEN_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert sorted(r.path for r in server.requests) == ["/chat/completions", "/embeddings"]
    approximately = "by an approximate count (the tiktoken encodings could not be loaded), so it was sent anyway"
    assert doc["steps"]["s"]["warnings"] == [
        "step 's': the prompt may not fit gpt-4o-mini's context window of 128,000 tokens "
        + approximately
    ]
    assert doc["steps"]["v"]["warnings"] == [
        "step 'v': an input may pass text-embedding-3-small's limit of 8,191 tokens per input "
        + approximately
    ]


def test_an_embedding_input_over_the_models_limit_is_refused_before_any_request(server, tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: e
            inputs: {texts: {type: array}}
            steps:
              v: {type: embed, input: "{{ inputs.texts }}"}
            """
        )
    )
    result = run(path, {"texts": ["short", "lorem ipsum dolor " * 3000]})
    assert result.status == "failed"
    assert result.error.startswith("step 'v' failed: input 1 has ")
    assert result.error.endswith(
        "tokens, more than text-embedding-3-small's limit of 8,191 tokens per input; "
        "split it into chunks"
    )
    assert server.requests == []
