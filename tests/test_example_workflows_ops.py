"""The nightly-report, semantic-dedup and reasoning-review examples, run on the loopback server."""

from __future__ import annotations

import json
import re

import pytest

from flowrun.testing import RecordedRequest, Reply
from tests.helpers import WORKFLOWS, flowrun

EVENTS = WORKFLOWS / "data" / "shop-events.jsonl"
TICKETS = WORKFLOWS / "data" / "tickets.json"
DIFF = WORKFLOWS / "data" / "change.diff"


# --- nightly-report: tool -> chat (+ a `when` page) -> tool, under a budget, for cron ----------


def run_report(tmp_path, *extra: str):
    return flowrun(
        "run",
        WORKFLOWS / "nightly-report.yaml",
        "-i",
        f"events={EVENTS}",
        "-i",
        "day=2026-12-02",
        "-i",
        f"out_dir={tmp_path / 'reports'}",
        *extra,
    )


def test_nightly_report_writes_the_report_and_pages_on_a_bad_day(server, tmp_path):
    server.add(Reply(content="- Orders fell 20% to 32.\n- Checkout failures: 6."), match="bullet")
    server.add(Reply(content="PAGE: 15.8% of checkouts failed"), match="one-line page")
    res = run_report(tmp_path, "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    report = tmp_path / "reports" / "report-2026-12-02.md"
    assert doc["outputs"] == {"report": str(report), "paged": True, "orders": 32}
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Shop report for 2026-12-02\n\n**Paged on-call:** PAGE: 15.8%")
    assert "- Orders fell 20% to 32." in text
    assert "| orders | 32 | -20.0% |" in text and "| revenue | 1768.00 | -19.3% |" in text

    bullets, page = (server.requests_to("/chat/completions")[i] for i in (0, 1))
    if "one-line page" in bullets.last_user_text:  # the two run concurrently
        bullets, page = page, bullets
    numbers = json.loads(bullets.last_user_text.split("The numbers:\n", 1)[1])
    assert numbers["checkout_errors"] == 6 and numbers["orders_change_pct"] == -20.0
    assert "6\ncheckouts failed on 2026-12-02 (15.8%)" in page.last_user_text
    assert '"payment_timeout": 3' in page.last_user_text
    assert page.body["max_completion_tokens"] == 60 and bullets.body["max_completion_tokens"] == 400


def test_nightly_report_skips_the_page_on_a_calm_day_and_is_quiet_for_cron(server, tmp_path):
    server.add(Reply(content="- A calm day."), match="bullet")
    res = run_report(tmp_path, "-i", "page_above=0.5", "--quiet")
    assert (res.code, res.stdout, res.stderr) == (0, "", "")
    assert len(server.requests_to("/chat/completions")) == 1  # no page was asked for
    text = (tmp_path / "reports" / "report-2026-12-02.md").read_text(encoding="utf-8")
    assert "Paged" not in text and "- A calm day." in text


def test_nightly_report_with_a_missing_log_fails_with_exit_1_and_calls_no_model(server, tmp_path):
    res = flowrun(
        "run", WORKFLOWS / "nightly-report.yaml", "-i", f"events={tmp_path / 'nope.jsonl'}"
    )
    assert res.code == 1
    assert re.search(r"step 'metrics'.*No such file or directory", res.stderr), res.stderr
    assert server.requests_to("/chat/completions") == []


# --- semantic-dedup: embed a list -> group in Python -> label each group (foreach) ----------


def run_dedup(*extra: str):
    res = flowrun(
        "run", WORKFLOWS / "semantic-dedup.yaml", "-i", f"texts=@{TICKETS}", *extra, "--json"
    )
    assert res.code == 0, res.stderr
    return json.loads(res.stdout)


def label_from_first_line(req: RecordedRequest) -> Reply:
    return Reply(content=f"about: {req.last_user_text.splitlines()[0]}")


def test_semantic_dedup_keeps_one_of_each_and_labels_the_groups(server):
    server.add(label_from_first_line, times=None)
    texts = json.loads(TICKETS.read_text(encoding="utf-8"))
    doc = run_dedup()
    assert doc["outputs"]["duplicates"] == [
        {
            "indexes": [0, 2, 4],
            "texts": [texts[0], texts[2], texts[4]],
            "label": "about: My order never arrived.",
        }
    ]
    assert doc["outputs"]["unique"] == [texts[i] for i in (0, 1, 3, 5, 6)]
    assert doc["outputs"]["removed"] == 2
    (embeddings,) = server.requests_to("/embeddings")
    assert embeddings.body["input"] == texts  # one request, in input order
    (label,) = server.requests_to("/chat/completions")
    assert label.last_user_text == "\n".join(texts[i] for i in (0, 2, 4))


def test_semantic_dedup_threshold_decides_what_counts_as_a_duplicate(server):
    server.add(label_from_first_line, times=None)
    loose = run_dedup("-i", "threshold=0.7")
    assert [g["indexes"] for g in loose["outputs"]["duplicates"]] == [[0, 2, 4], [1, 5]]
    assert [g["label"] for g in loose["outputs"]["duplicates"]] == [
        "about: My order never arrived.",
        "about: How do I change my delivery address?",
    ]
    assert len(server.requests_to("/chat/completions")) == 2

    server.reset()
    strict = run_dedup("-i", "threshold=0.99")
    assert strict["outputs"]["duplicates"] == [] and strict["outputs"]["removed"] == 0
    assert server.requests_to("/chat/completions") == []  # nothing to label, nothing paid


# --- reasoning-review: an o-series step, then an extract -----------------------------------

FINDINGS = {
    "summary": "Discounts of 100% or more are not applied.",
    "findings": [
        {
            "severity": "blocker",
            "file": "billing/invoice.py",
            "line": 15,
            "problem": "A 100% discount charges the full subtotal.",
            "fix": "Clamp the discount: min(discount_pct, 100).",
        },
        {
            "severity": "minor",
            "file": "billing/invoice.py",
            "line": 11,
            "problem": "The loop replaces a clearer sum().",
            "fix": "Keep sum().",
        },
    ],
}


def test_reasoning_review_sends_o_series_parameters_and_costs_reasoning_tokens(server):
    usage = {"prompt_tokens": 400, "completion_tokens": 3000, "reasoning_tokens": 2600}
    server.add(Reply(content="1. billing/invoice.py:15 ...", usage=usage), match="```diff")
    server.add(Reply(json=FINDINGS), match="File this code review")
    res = flowrun("run", WORKFLOWS / "reasoning-review.yaml", "-i", f"diff=@{DIFF}", "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["outputs"]["blockers"] == 1
    assert doc["outputs"]["findings"] == FINDINGS["findings"]

    review, findings = server.requests_to("/chat/completions")
    assert review.body["model"] == "o4-mini"
    assert review.body["reasoning_effort"] == "high"
    assert review.body["max_completion_tokens"] == 16000
    assert "temperature" not in review.body and "top_p" not in review.body
    assert "+    discount = subtotal * discount_pct / 100" in review.last_user_text
    assert findings.body["model"] == "gpt-4o-mini" and findings.body["temperature"] == 0
    assert findings.body["response_format"]["type"] == "json_schema"

    step = doc["steps"]["review"]
    assert step["usage"]["reasoning_tokens"] == 2600
    # o4-mini: $1.10 per 1M input, $4.40 per 1M output; reasoning tokens are output tokens
    assert step["cost_usd"] == pytest.approx(400 * 1.10e-6 + 3000 * 4.40e-6)


def test_reasoning_review_rejects_temperature_on_the_reasoning_model(tmp_path):
    text = (WORKFLOWS / "reasoning-review.yaml").read_text(encoding="utf-8")
    changed = tmp_path / "review.yaml"
    changed.write_text(
        text.replace(
            "    reasoning_effort: high\n", "    reasoning_effort: high\n    temperature: 0.2\n"
        ),
        encoding="utf-8",
    )
    res = flowrun("validate", changed)
    assert res.code == 2
    assert re.search(r"review\.yaml:\d+:\d+: .*o4-mini.*temperature", res.stderr), res.stderr
