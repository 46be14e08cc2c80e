"""The opt-in response cache: identical requests are answered from the run store for $0."""

from __future__ import annotations

import json

from flowrun import load_workflow, run_workflow
from flowrun.testing import LoopbackServer, Reply
from tests.helpers import flowrun
from tests.run_helpers import TWO_STEPS, write


def _run_json(*args):
    res = flowrun("run", *args, "--json")
    assert res.code == 0, res.stderr
    return json.loads(res.stdout)


def test_cache_flag_makes_a_second_identical_run_free(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    server.add(Reply(content="one of a kind"), match="first step")
    first = _run_json(wf, "--cache")
    assert len(server.requests) == 2 and first["cost"]["total_usd"] > 0

    second = _run_json(wf, "--cache")
    assert len(server.requests) == 2  # nothing new was sent
    assert second["outputs"] == first["outputs"]
    assert second["outputs"]["a"] == "one of a kind"
    assert second["cost"]["total_usd"] == 0
    for step in second["steps"].values():
        assert step["cost_usd"] == 0
        assert step["cached"] is True
    assert all(s.get("cached") is not True for s in first["steps"].values())

    text = flowrun("run", wf, "--cache")
    assert text.code == 0
    assert text.stderr.count("$0 (cache hit)") == 2 and "$0.000000" in text.stderr
    assert len(server.requests) == 2


def test_without_the_flag_the_cache_is_not_used(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    _run_json(wf, "--cache")
    _run_json(wf)
    assert len(server.requests) == 4


def test_a_changed_prompt_misses_the_cache(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    _run_json(wf, "--cache")
    wf.write_text(TWO_STEPS.replace("second after", "then after"))
    doc = _run_json(wf, "--cache")
    assert len(server.requests) == 3  # first from the cache, the changed second sent
    assert doc["steps"]["first"]["cost_usd"] == 0
    assert doc["steps"]["second"]["cost_usd"] > 0
    assert server.requests[-1].last_user_text.startswith("then after")


def test_a_changed_parameter_misses_the_cache(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    _run_json(wf, "--cache")
    wf.write_text(TWO_STEPS.replace("max_completion_tokens: 50", "max_completion_tokens: 60"))
    _run_json(wf, "--cache")
    assert len(server.requests) == 4


def test_cache_true_on_one_step(server, tmp_path):
    text = TWO_STEPS.replace(
        '    prompt: "first step"\n', '    prompt: "first step"\n    cache: true\n'
    )
    wf = write(tmp_path, text)
    first = run_workflow(load_workflow(wf))
    second = run_workflow(load_workflow(wf))
    assert second.outputs == first.outputs
    firsts = [r for r in server.requests if r.last_user_text == "first step"]
    assert len(firsts) == 1  # the cached step was sent once
    assert len(server.requests) == 3  # the uncached second step was sent twice
    assert second.steps["first"].cost_usd == 0 and second.steps["second"].cost_usd > 0


def test_errors_are_not_cached(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    server.add(Reply(status=400, error="nope"), match="first step")
    assert flowrun("run", wf, "--cache").code == 1
    doc = _run_json(wf, "--cache")
    assert doc["outputs"]["a"] == "echo: first step"
    assert len(server.requests) == 3


def test_the_cache_is_per_server(server, tmp_path, monkeypatch):
    wf = write(tmp_path, TWO_STEPS)
    _run_json(wf, "--cache")
    with LoopbackServer() as other:
        monkeypatch.setenv("OPENAI_BASE_URL", other.url)
        _run_json(wf, "--cache")
        assert len(other.requests) == 2


EMBED = """\
version: 1
name: vectors
steps:
  one: {type: embed, input: "a single text"}
  many: {type: embed, input: ["first text", "second text"], dimensions: 8}
outputs:
  one: "{{ steps.one.output }}"
  many: "{{ steps.many.output }}"
"""


def test_embeddings_are_cached_like_chat_replies(server, tmp_path):
    wf = write(tmp_path, EMBED)
    first = _run_json(wf, "--cache")
    assert len(server.requests_to("/embeddings")) == 2 and first["cost"]["total_usd"] > 0
    second = _run_json(wf, "--cache")
    assert len(server.requests_to("/embeddings")) == 2  # nothing new was sent
    assert second["outputs"] == first["outputs"]
    assert len(second["outputs"]["many"]) == 2 and len(second["outputs"]["many"][0]) == 8
    assert second["cost"]["total_usd"] == 0
    assert all(step["cached"] is True for step in second["steps"].values())

    wf.write_text(EMBED.replace("  one: {type: embed,", "  one: {type: embed, cache: true,"))
    run_workflow(load_workflow(wf))  # cache: true on the step: 'one' from the cache
    assert [r.body["input"] for r in server.requests_to("/embeddings")[2:]] == [
        ["first text", "second text"]
    ]
