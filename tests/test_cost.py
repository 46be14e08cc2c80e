"""Usage and cost: recorded per step, priced from the shipped table or a user's file, reported."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from flowrun import load_workflow, run_workflow
from flowrun.provider.catalog import load_data_file
from flowrun.testing import Reply
from tests.helpers import flowrun

PRICES = load_data_file("prices.json")

COSTS = """\
    version: 1
    name: costs
    defaults: {model: gpt-4o-mini, max_completion_tokens: 600}
    steps:
      draft: {type: chat, prompt: "write a draft"}
      polish: {type: chat, model: gpt-4o-2024-08-06, prompt: "polish {{ steps.draft.output }}"}
      local: {type: chat, model: llama3, prompt: "local model"}
      think: {type: chat, model: o3-mini, prompt: "think hard", reasoning_effort: low}
    outputs:
      polished: "{{ steps.polish.output }}"
      answer: "{{ steps.think.output }}"
"""


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def script_costs(server) -> None:
    usage = {"prompt_tokens": 1200, "completion_tokens": 80, "cached_tokens": 1024}
    server.add(Reply(content="Draft text", usage=usage), match="write a draft")
    usage = {"prompt_tokens": 300, "completion_tokens": 50}
    server.add(Reply(content="Polished text", usage=usage), match="polish")
    usage = {"prompt_tokens": 10, "completion_tokens": 4}
    server.add(Reply(content="llama says hi", usage=usage, model="llama3"), match="local model")
    usage = {"prompt_tokens": 20, "completion_tokens": 500, "reasoning_tokens": 448}
    server.add(Reply(content="42", usage=usage), match="think hard")


def per_million(tokens: int, usd: float) -> float:
    return tokens * usd / 1e6


def test_usage_is_recorded_per_step_with_cached_and_reasoning_tokens(server, tmp_path):
    script_costs(server)
    result = run_workflow(load_workflow(write(tmp_path, COSTS)), store=False)
    assert result.status == "succeeded"
    usage = {sid: step.usage.to_dict() for sid, step in result.steps.items()}
    assert usage == {
        "draft": {
            "prompt_tokens": 1200,
            "completion_tokens": 80,
            "cached_tokens": 1024,
            "reasoning_tokens": 0,
        },
        "polish": {
            "prompt_tokens": 300,
            "completion_tokens": 50,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
        },
        "local": {
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
        },
        "think": {
            "prompt_tokens": 20,
            "completion_tokens": 500,
            "cached_tokens": 0,
            "reasoning_tokens": 448,
        },
    }
    assert (result.cost.cached_tokens, result.cost.reasoning_tokens) == (1024, 448)


def test_prices_come_from_the_table_with_cached_input_and_dated_snapshots(server, tmp_path):
    script_costs(server)
    result = run_workflow(load_workflow(write(tmp_path, COSTS)), store=False)
    mini, gpt4o, o3mini = PRICES["gpt-4o-mini"], PRICES["gpt-4o"], PRICES["o3-mini"]
    draft = (
        per_million(1200 - 1024, mini["input"])
        + per_million(1024, mini["cached_input"])
        + per_million(80, mini["output"])
    )
    assert result.steps["draft"].cost_usd == pytest.approx(draft, abs=1e-12)
    assert draft == pytest.approx(0.0001512)  # the table's gpt-4o-mini: $0.15 / $0.075 / $0.60
    polish = per_million(300, gpt4o["input"]) + per_million(50, gpt4o["output"])
    assert result.steps["polish"].cost_usd == pytest.approx(polish, abs=1e-12)  # priced as gpt-4o
    think = per_million(20, o3mini["input"]) + per_million(500, o3mini["output"])
    assert result.steps["think"].cost_usd == pytest.approx(think, abs=1e-12)
    assert result.cost.total_usd == pytest.approx(draft + polish + think, abs=1e-12)


SNAPSHOTS = """\
    version: 1
    name: snapshots
    defaults: {max_completion_tokens: 100}
    steps:
      may: {type: chat, model: gpt-4o-2024-05-13, prompt: "may snapshot"}
      old: {type: chat, model: gpt-3.5-turbo-1106, prompt: "old snapshot"}
"""


def test_dated_snapshots_with_their_own_price_are_not_priced_as_the_base_model(server, tmp_path):
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "cached_tokens": 500}
    server.add(Reply(content="a", usage=usage), match="may snapshot")
    server.add(Reply(content="b", usage=usage), match="old snapshot")
    result = run_workflow(load_workflow(write(tmp_path, SNAPSHOTS)), store=False)
    # gpt-4o-2024-05-13: $5 in / $15 out, no cached price (gpt-4o is $2.50 / $1.25 / $10)
    may = per_million(1000, 5.00) + per_million(100, 15.00)
    assert result.steps["may"].cost_usd == pytest.approx(may, abs=1e-12)
    # gpt-3.5-turbo-1106: $1 in / $2 out (gpt-3.5-turbo is $0.50 / $1.50)
    old = per_million(1000, 1.00) + per_million(100, 2.00)
    assert result.steps["old"].cost_usd == pytest.approx(old, abs=1e-12)


def test_an_unpriced_model_is_listed_and_never_counted_as_zero(server, tmp_path):
    script_costs(server)
    res = flowrun("run", write(tmp_path, COSTS), "--json")
    assert res.code == 0, res.stderr
    cost = json.loads(res.stdout)["cost"]
    assert cost["unpriced_models"] == ["llama3"]
    assert cost["by_model"]["llama3"] == {
        "calls": 1,
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "usd": None,
    }
    assert json.loads(res.stdout)["steps"]["local"]["cost_usd"] is None
    priced = [m["usd"] for name, m in cost["by_model"].items() if name != "llama3"]
    assert cost["total_usd"] is None  # a total that includes an unpriced call is unknown
    assert cost["priced_usd"] == pytest.approx(sum(priced))


REPORT = """\
step    status     model              calls  prompt  completion       cost   time
draft   succeeded  gpt-4o-mini            1    1200          80  $0.000151  0.00s
polish  succeeded  gpt-4o-2024-08-06      1     300          50  $0.001250  0.00s
local   succeeded  llama3                 1      10           4   unpriced  0.00s
think   succeeded  o3-mini                1      20         500  $0.002222  0.00s
total: 4 calls, 1530 prompt + 634 completion tokens (1024 prompt-cached, 448 reasoning), unpriced ($0.003623 for the priced calls)
unpriced models (not counted in the total): llama3
run RUN_ID succeeded in 0.00s
"""


def normalized(text: str) -> str:
    text = re.sub(r"\b\d+\.\d\ds\b", "0.00s", text)
    return re.sub(r"run \S+ (succeeded|failed)", r"run RUN_ID \1", text)


def test_the_human_cost_report_snapshot(server, tmp_path):
    script_costs(server)
    res = flowrun("run", write(tmp_path, COSTS))
    assert res.code == 0
    assert res.stdout == "polished: Polished text\nanswer: 42\n"
    assert normalized(res.stderr) == REPORT


def test_a_user_price_file_prices_an_unknown_model_and_overrides_one(server, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "_comment": "my prices",
                "llama3": {"input": 1.0, "output": 2.0},
                "gpt-4o-mini": {"input": 10.0, "output": 20.0},
            }
        )
    )
    script_costs(server)
    doc = json.loads(flowrun("run", write(tmp_path, COSTS), "--json", "--prices", prices).stdout)
    cost = doc["cost"]
    assert cost["unpriced_models"] == []
    assert cost["by_model"]["llama3"]["usd"] == pytest.approx((10 * 1.0 + 4 * 2.0) / 1e6)
    # no cached_input in the override: cached tokens cost the full input price
    assert cost["by_model"]["gpt-4o-mini"]["usd"] == pytest.approx((1200 * 10.0 + 80 * 20.0) / 1e6)
    gpt4o = PRICES["gpt-4o"]
    assert cost["by_model"]["gpt-4o-2024-08-06"]["usd"] == pytest.approx(
        (300 * gpt4o["input"] + 50 * gpt4o["output"]) / 1e6
    )


def test_flowrun_prices_env_var_overrides_the_table(server, tmp_path, monkeypatch):
    prices = tmp_path / "env-prices.json"
    prices.write_text(json.dumps({"llama3": {"input": 3.0, "output": 5.0}}))
    monkeypatch.setenv("FLOWRUN_PRICES", str(prices))
    script_costs(server)
    result = run_workflow(load_workflow(write(tmp_path, COSTS)), store=False)
    assert result.cost.unpriced_models == []
    assert result.steps["local"].cost_usd == pytest.approx((10 * 3.0 + 4 * 5.0) / 1e6)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the price file {p}: No such file or directory"),
        ("{not json", "the price file {p} is not valid JSON: "),
        ("[1, 2]", "the price file {p} must map model names to prices"),
        ('{"m": {"input": 1}}', "{p}: price of 'm' needs input and output (USD per 1M tokens)"),
        ('{"m": {"input": "cheap", "output": 1}}', "{p}: price of 'm': input must be a number"),
        ('{"m": {"input": -1, "output": 1}}', "{p}: price of 'm': input must be a number >= 0"),
        (
            '{"m": {"input": 1, "output": 1, "cache": 1}}',
            "{p}: price of 'm' has unknown key 'cache'",
        ),
    ],
    ids=["missing", "not-json", "not-a-mapping", "no-output", "text", "negative", "unknown-key"],
)
def test_a_bad_price_file_is_exit_2_with_a_clear_message(server, tmp_path, content, message):
    prices = tmp_path / "bad-prices.json"
    if content is not None:
        prices.write_text(content)
    res = flowrun("run", write(tmp_path, COSTS), "--prices", prices)
    assert res.code == 2
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert lines[0].startswith("error: " + message.format(p=prices))
    assert server.requests == []
    assert flowrun("runs", "list").stdout.startswith("no runs yet")  # nothing half-recorded


# The --json example of the spec (workflow-format.md, "--json output shape"), verbatim.
SPEC_JSON_EXAMPLE = """
{"run_id": "…", "status": "succeeded",
 "outputs": {"reply": "…"},
 "steps": {"draft": {"status": "succeeded", "output": "…", "model": "gpt-4o",
                     "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0},
                     "cost_usd": 0.0, "duration_s": 0.0}},
 "cost": {"total_usd": 0.0, "prompt_tokens": 0, "completion_tokens": 0, "calls": 0,
          "by_model": {"gpt-4o": {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "usd": 0.0}},
          "unpriced_models": []}}
"""


def assert_shape(doc, example, where="$"):
    """Every key of ``example`` is in ``doc`` with a value of the same JSON type."""
    if isinstance(example, dict):
        assert isinstance(doc, dict), f"{where}: expected an object, got {doc!r}"
        for key, value in example.items():
            assert key in doc, f"{where}: missing key {key!r}"
            assert_shape(doc[key], value, f"{where}.{key}")
    elif isinstance(example, list):
        assert isinstance(doc, list), f"{where}: expected a list, got {doc!r}"
    elif isinstance(example, float):
        assert isinstance(doc, (int, float)) and not isinstance(doc, bool), f"{where}: {doc!r}"
    elif isinstance(example, int):
        assert isinstance(doc, int) and not isinstance(doc, bool), f"{where}: {doc!r}"
    else:
        assert isinstance(doc, type(example)), f"{where}: expected {type(example)}, got {doc!r}"


def test_json_output_has_exactly_the_spec_document_shape(server, tmp_path):
    path = write(
        tmp_path,
        """\
        version: 1
        name: shape
        steps:
          draft: {type: chat, model: gpt-4o, prompt: "write"}
        outputs:
          reply: "{{ steps.draft.output }}"
        """,
    )
    server.add(Reply(content="Dear customer", usage={"prompt_tokens": 9, "completion_tokens": 2}))
    res = flowrun("run", path, "--json")
    assert res.code == 0
    assert res.stderr == ""  # nothing but the one JSON document, on stdout
    doc = json.loads(res.stdout)
    assert_shape(doc, json.loads(SPEC_JSON_EXAMPLE))
    assert doc["status"] == "succeeded"
    assert doc["outputs"] == {"reply": "Dear customer"}
    step = doc["steps"]["draft"]
    assert (step["status"], step["output"], step["model"]) == (
        "succeeded",
        "Dear customer",
        "gpt-4o",
    )
    assert step["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
    }
    usd = (9 * PRICES["gpt-4o"]["input"] + 2 * PRICES["gpt-4o"]["output"]) / 1e6
    assert step["cost_usd"] == pytest.approx(usd)
    entry = doc["cost"]["by_model"]["gpt-4o"]
    assert (entry["calls"], entry["prompt_tokens"], entry["completion_tokens"]) == (1, 9, 2)
    assert entry["usd"] == pytest.approx(usd)
    assert doc["cost"]["total_usd"] == pytest.approx(usd)
    assert (doc["cost"]["calls"], doc["cost"]["unpriced_models"]) == (1, [])
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", doc["run_id"])


def test_json_shape_of_a_failed_run(server, tmp_path):
    path = write(
        tmp_path,
        """\
        version: 1
        name: shape
        defaults: {max_retries: 0}
        steps:
          draft: {type: chat, model: gpt-4o, prompt: "write"}
        outputs:
          reply: "{{ steps.draft.output }}"
        """,
    )
    server.add(Reply(status=503, error="overloaded"))
    res = flowrun("run", path, "--json")
    assert res.code == 1
    doc = json.loads(res.stdout)
    example = json.loads(SPEC_JSON_EXAMPLE)
    example["outputs"] = {}
    example["steps"]["draft"]["output"] = None  # a failed step has no output
    example["cost"]["by_model"] = {}  # and no call that returned usage
    assert_shape(doc, example)
    assert (doc["status"], doc["failed_step"], doc["outputs"]) == ("failed", "draft", {})
    assert doc["error"] == "step 'draft' failed: API error 503: overloaded"
    assert doc["steps"]["draft"]["status"] == "failed"
