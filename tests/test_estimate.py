"""``flowrun estimate``: rendered prompts counted with tiktoken, worst-case cost, no model calls."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest
import tiktoken

from flowrun.provider.catalog import load_data_file
from tests.helpers import WORKFLOWS, flowrun, flowrun_process
from tests.imagefiles import jpeg_bytes, png_bytes

PRICES = load_data_file("prices.json")
ENC = tiktoken.get_encoding("o200k_base")  # gpt-4o / gpt-4o-mini


def tokens(text: str) -> int:
    return len(ENC.encode(text))


def chat_tokens(*texts: str) -> int:
    """OpenAI's cookbook count: 3 per message + its text, plus 3 priming the reply."""
    return 3 + sum(3 + tokens(t) for t in texts)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def estimate_json(*args) -> dict:
    res = flowrun("estimate", *args, "--json")
    assert res.code == 0, res.stderr
    return json.loads(res.stdout)


def test_estimate_counts_rendered_prompts_with_tiktoken_and_calls_nothing(server):
    text = "Owls are birds of prey. They hunt at night, mostly small mammals."
    doc = estimate_json(WORKFLOWS / "summarize.yaml", "-i", f"text={text}")
    assert server.requests == []
    summary = doc["steps"]["summary"]
    assert summary["prompt_tokens"] == chat_tokens("Summarize in one sentence.", text)
    assert summary["max_completion_tokens"] == 200
    mini = PRICES["gpt-4o-mini"]
    worst = (summary["prompt_tokens"] * mini["input"] + 200 * mini["output"]) / 1e6
    assert summary["worst_case_usd"] == pytest.approx(worst)
    title = doc["steps"]["title"]
    # the summary is unknown before a run: the title's count is a lower bound
    assert title["lower_bound"] is True and summary["lower_bound"] is False
    assert title["prompt_tokens"] == chat_tokens("Title for: <steps.summary.output>")
    assert doc["total_worst_case_usd"] == pytest.approx(
        summary["worst_case_usd"] + title["worst_case_usd"]
    )
    assert doc["exact_tokens"] is True
    assert doc["unpriced_models"] == []


ESTIMATE_TABLE = """\
step     type  model        calls  prompt  max output  worst case  note
summary  chat  gpt-4o-mini      1      {s:>2}         200   ${su:.6f}
title    chat  gpt-4o-mini      1     ≥{t}         200   ${tu:.6f}
total worst case: ${total:.6f}
≥: the prompt includes earlier steps' outputs, unknown before a run
"""


def test_estimate_table_snapshot(server):
    res = flowrun("estimate", WORKFLOWS / "summarize.yaml", "-i", "text=Hello there.")
    assert res.code == 0
    mini = PRICES["gpt-4o-mini"]
    s = chat_tokens("Summarize in one sentence.", "Hello there.")
    t = chat_tokens("Title for: <steps.summary.output>")
    su, tu = ((n * mini["input"] + 200 * mini["output"]) / 1e6 for n in (s, t))
    assert res.stdout == ESTIMATE_TABLE.format(s=s, t=t, su=su, tu=tu, total=su + tu)
    assert res.stderr == ""
    assert server.requests == []


def test_images_are_counted_by_detail_size_and_model(server, tmp_path):
    (tmp_path / "small.png").write_bytes(png_bytes(100, 60))
    (tmp_path / "wide.png").write_bytes(png_bytes(3000, 1000))
    (tmp_path / "tall.png").write_bytes(png_bytes(1800, 2400))
    (tmp_path / "photo.jpg").write_bytes(jpeg_bytes(1024, 1024))
    path = write(
        tmp_path,
        """\
        version: 1
        name: pictures
        steps:
          url_low: {type: chat, model: gpt-4o, prompt: look, images: [https://x.test/a.png], image_detail: low}
          url_high: {type: chat, model: gpt-4o, prompt: look, images: [https://x.test/a.png], image_detail: high}
          jpeg_high: {type: chat, model: gpt-4o, prompt: look, images: [photo.jpg], image_detail: high}
          small_high: {type: chat, model: gpt-4o, prompt: look, images: [small.png], image_detail: high}
          wide_auto: {type: chat, model: gpt-4o, prompt: look, images: [wide.png]}
          mini_low: {type: chat, model: gpt-4o-mini, prompt: look, images: [small.png], image_detail: low}
          mini_high: {type: chat, model: gpt-4o-mini, prompt: look, images: [wide.png], image_detail: high}
          patches: {type: chat, model: gpt-4.1-mini, prompt: look, images: [tall.png]}
        """,
    )
    doc = estimate_json(path)
    assert server.requests == []
    text = chat_tokens("look")
    image = {sid: s["prompt_tokens"] - text for sid, s in doc["steps"].items()}
    # gpt-4o: 85 + 170 per 512px tile after scaling to fit 2048x2048 and shortest side <= 768;
    # an URL's size is unknown before the call, so it counts as the largest (4x2 tiles)
    wide_tiles = math.ceil(2048 / 512) * math.ceil((1000 * 2048 / 3000) / 512)  # 2048x683
    assert image == {
        "url_low": 85,
        "url_high": 85 + 170 * 8,
        "jpeg_high": 765,  # 1024x1024 -> 768x768 -> 4 tiles, the vision guide's example
        "small_high": 85 + 170 * 1,
        "wide_auto": 85 + 170 * wide_tiles,
        "mini_low": 2833,  # gpt-4o-mini bills images at many more (cheaper) tokens
        "mini_high": 2833 + 5667 * wide_tiles,
        # 32px patches, scaled to at most 1536 (1800x2400 -> 1452, the vision guide's example),
        # times 1.62 for gpt-4.1-mini
        "patches": math.ceil(1452 * 1.62),
    }


def test_worst_case_uses_the_models_max_output_when_max_completion_tokens_is_unset(
    server, tmp_path
):
    path = write(
        tmp_path,
        """\
        version: 1
        name: w
        steps:
          a: {type: chat, model: gpt-4o, prompt: hi}
          b: {type: chat, model: llama3, prompt: hi, max_completion_tokens: 50}
          t: {type: embed, input: some words to embed}
        """,
    )
    doc = estimate_json(path)
    a, b, t = doc["steps"]["a"], doc["steps"]["b"], doc["steps"]["t"]
    assert a["max_completion_tokens"] == 16384  # gpt-4o's max output, from the model table
    gpt4o = PRICES["gpt-4o"]
    assert a["worst_case_usd"] == pytest.approx(
        (chat_tokens("hi") * gpt4o["input"] + 16384 * gpt4o["output"]) / 1e6
    )
    assert b["worst_case_usd"] is None
    assert doc["unpriced_models"] == ["llama3"]
    cl100k = tiktoken.get_encoding("cl100k_base")
    assert t["prompt_tokens"] == len(cl100k.encode("some words to embed"))
    assert t["model"] == "text-embedding-3-small"
    assert doc["total_worst_case_usd"] == pytest.approx(a["worst_case_usd"] + t["worst_case_usd"])
    human = flowrun("estimate", path).stdout
    assert "unpriced models (not counted in the total): llama3" in human


def test_estimate_checks_inputs_like_run(server):
    res = flowrun("estimate", WORKFLOWS / "summarize.yaml")
    assert res.code == 2
    assert (
        res.stderr
        == "error: missing required input 'text' (give it with -i text=VALUE or --inputs-file)\n"
    )


def test_estimate_of_the_vision_example_reads_the_image_size(server):
    doc = estimate_json(WORKFLOWS / "vision-receipt.yaml")
    receipt = doc["steps"]["receipt"]
    # one 512px tile at high detail on gpt-4o-mini, plus the text and the repairs note
    assert receipt["prompt_tokens"] > 2833 + 5667
    assert "repair" in receipt["note"]
    assert server.requests == []


def test_without_tiktoken_encodings_or_network_it_warns_once_and_approximates(tmp_path):
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    closed = "http://127.0.0.1:9"  # nothing listens there: every download fails at once
    env = {
        "TIKTOKEN_CACHE_DIR": str(empty),
        "HTTPS_PROXY": closed,
        "HTTP_PROXY": closed,
        "https_proxy": closed,
        "http_proxy": closed,
        "NO_PROXY": "",
        "no_proxy": "",
    }
    res = flowrun_process(
        "estimate", WORKFLOWS / "summarize.yaml", "-i", "text=" + "word " * 40, env=env
    )
    assert res.code == 0, res.stderr
    assert "Traceback" not in res.stderr
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "tiktoken" in warnings[0] and "approximate" in warnings[0]
    assert "~: approximate counts" in res.stdout
    assert list(empty.iterdir()) == []

    res = flowrun_process(
        "estimate", WORKFLOWS / "summarize.yaml", "-i", "text=" + "word " * 40, "--json", env=env
    )
    doc = json.loads(res.stdout)
    assert doc["exact_tokens"] is False
    assert doc["steps"]["summary"]["prompt_tokens"] > 40  # ~4 characters per token


def test_a_structured_output_schema_counts_as_prompt(server, tmp_path):
    from flowrun.provider.strict_schema import to_strict

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city"],
    }
    path = write(
        tmp_path,
        f"""\
        version: 1
        name: x
        steps:
          where:
            type: extract
            model: gpt-4o
            prompt: Paris has 2 million people.
            schema: {json.dumps(schema)}
            max_repairs: 0
        """,
    )
    step = estimate_json(path)["steps"]["where"]
    sent = {"name": "where", "schema": to_strict(schema), "strict": True}
    assert step["prompt_tokens"] == chat_tokens("Paris has 2 million people.") + tokens(
        json.dumps(sent)
    )


def test_an_image_path_from_an_earlier_step_counts_as_unknown_size(server, tmp_path):
    path = write(
        tmp_path,
        """\
        version: 1
        name: x
        defaults: {model: gpt-4o}
        steps:
          find: {type: chat, prompt: "give a path"}
          look: {type: chat, prompt: "look", images: ["{{ steps.find.output }}"]}
          typo: {type: chat, prompt: "look", images: [no-such-file.png]}
        """,
    )
    res = flowrun("estimate", path)
    assert res.code == 2  # a literal path that does not exist is an invalid argument
    assert res.stderr == "error: step 'typo' failed: image not found: no-such-file.png\n"
    path.write_text(path.read_text().replace("  typo:", "  # typo:"))
    look = estimate_json(path)["steps"]["look"]
    assert look["lower_bound"] is True
    assert look["prompt_tokens"] == chat_tokens("look") + 85 + 170 * 8  # the largest image


def test_a_file_that_is_not_an_image_is_an_invalid_argument(server, tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture")
    path = write(
        tmp_path,
        """\
        version: 1
        name: x
        steps:
          look: {type: chat, model: gpt-4o, prompt: "look", images: [notes.txt]}
        """,
    )
    res = flowrun("estimate", path)
    assert res.code == 2
    assert res.stderr == (
        "error: step 'look' failed: notes.txt is not an image (PNG, JPEG, GIF or WEBP)\n"
    )


WINDOW = """\
    version: 1
    name: big
    inputs: {text: {type: string}}
    steps:
      fits: {type: chat, model: gpt-4o-mini, prompt: "{{ inputs.text }}", max_completion_tokens: 100}
      over: {type: chat, model: gpt-4o-mini, prompt: "{{ inputs.text }}", max_completion_tokens: 16000}
"""


def test_a_prompt_that_run_would_refuse_is_flagged(server, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("understanding " * 120_000)  # 120,000 tokens + 16,000 > 128,000
    path = write(tmp_path, WINDOW)
    doc = estimate_json(path, "-i", f"text=@{text}")
    fits, over = doc["steps"]["fits"], doc["steps"]["over"]
    assert (fits["over_context_window"], fits["note"]) == (False, "")
    assert over["over_context_window"] is True
    assert (
        over["note"] == "over gpt-4o-mini's context window of 128,000 tokens: run would refuse it"
    )
    human = flowrun("estimate", path, "-i", f"text=@{text}").stdout
    assert "over gpt-4o-mini's context window of 128,000 tokens: run would refuse it" in human
    run = flowrun("run", path, "-i", f"text=@{text}")
    assert run.code == 1 and "context window of 128,000 tokens" in run.stderr
    assert [r.last_user_text[:13] for r in server.requests] == ["understanding"]  # only 'fits'


def test_a_model_without_a_known_output_limit_is_unbounded_not_zero(server, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"llama3": {"input": 1.0, "output": 2.0}}))
    path = write(
        tmp_path,
        """\
        version: 1
        name: u
        steps:
          local: {type: chat, model: llama3, prompt: hi}
          capped: {type: chat, model: llama3, prompt: hi, max_completion_tokens: 10}
        """,
    )
    doc = estimate_json(path, "--prices", prices)
    local, capped = doc["steps"]["local"], doc["steps"]["capped"]
    assert local["unbounded"] is True
    assert local["max_completion_tokens"] is None and local["worst_case_usd"] is None
    assert "unbounded" in local["note"] and "max_completion_tokens" in local["note"]
    assert capped["unbounded"] is False
    assert capped["worst_case_usd"] == pytest.approx((chat_tokens("hi") * 1.0 + 10 * 2.0) / 1e6)
    assert doc["total_worst_case_usd"] is None
    assert doc["unbounded_steps"] == ["local"]
    assert doc["unpriced_models"] == []
    lines = flowrun("estimate", path, "--prices", prices).stdout.splitlines()
    assert "total worst case: unbounded (no output limit known for: local)" in lines
    assert not any(line.startswith("total worst case: $") for line in lines)


SAMPLE_INPUTS = {"string": "A customer writes: order A1001 is late.", "integer": 3, "number": 0.5}


@pytest.mark.parametrize(
    "path", sorted(WORKFLOWS.glob("*.yaml")), ids=lambda p: p.name if isinstance(p, Path) else p
)
def test_estimate_prices_every_example_workflow(path, tmp_path, server):
    """Every shipped example estimates, including prompts reading fields of earlier outputs."""
    from flowrun import load_workflow

    spec = load_workflow(path).spec
    inputs = {
        name: ["first text", "second text"] if item.type == "array" else SAMPLE_INPUTS[item.type]
        for name, item in spec.inputs.items()
        if item.required
    }
    (tmp_path / "inputs.json").write_text(json.dumps(inputs), encoding="utf-8")
    doc = estimate_json(path, "--inputs-file", tmp_path / "inputs.json")
    assert set(doc["steps"]) == set(spec.steps)
    assert doc["total_worst_case_usd"] is None or doc["total_worst_case_usd"] > 0
    assert server.requests == []  # no model was called


def test_estimate_renders_a_field_of_an_earlier_steps_output(tmp_path, server):
    path = write(
        tmp_path,
        """\
        version: 1
        name: t
        defaults: {model: gpt-4o-mini, max_completion_tokens: 10}
        steps:
          classify:
            type: extract
            prompt: Classify it.
            schema: {type: object, properties: {category: {type: string}}}
          answer:
            type: chat
            prompt: "Answer as {{ steps.classify.output.category }} would: {{ steps.classify.output['tone'] }}"
        """,
    )
    step = estimate_json(path)["steps"]["answer"]
    rendered = "Answer as <steps.classify.output.category> would: <steps.classify.output['tone']>"
    assert step["prompt_tokens"] == chat_tokens(rendered) and step["lower_bound"] is True
