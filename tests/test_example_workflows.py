"""The example workflows with tools, extraction, foreach and embeddings, run on the loopback server."""

from __future__ import annotations

import json
import math

import pytest

from flowrun import load_workflow, run_workflow
from flowrun.testing import RecordedRequest, Reply, ToolCall, embed_text
from tests.helpers import WORKFLOWS, flowrun


def tool_results(req: RecordedRequest) -> dict[str, object]:
    return {
        m["tool_call_id"]: json.loads(m["content"]) for m in req.messages if m["role"] == "tool"
    }


# --- support-triage: extract + tool + chat with two tools + when + embed -------------------

TICKET = "My headphones (order A1001) never arrived and I leave tomorrow!"


def script_triage(server, urgent: bool) -> None:
    server.add(
        Reply(json={"category": "shipping", "urgent": urgent, "order_id": "A1001"}),
        match="Classify this ticket",
    )
    server.add(
        Reply(
            tool_calls=[
                ToolCall("lookup_order", {"order_id": "A1001"}, id="call_order"),
                ToolCall("shipping_status", {"order_id": "A1001"}, id="call_ship"),
            ]
        ),
        match="concise support agent",
    )

    def answer(req: RecordedRequest) -> Reply:
        results = tool_results(req)
        order, ship = results["call_order"], results["call_ship"]
        return Reply(
            content=f"Your {order['item']} is with {ship['carrier']}, arriving {ship['eta']}."
        )

    server.add(answer, match="concise support agent")
    server.add(Reply(content="PAGE: customer blocked on A1001"), match="one-line page")


def test_support_triage_runs_end_to_end(server):
    script_triage(server, urgent=True)
    res = flowrun(
        "run",
        WORKFLOWS / "support-triage.yaml",
        "-i",
        f"ticket={TICKET}",
        "-i",
        "customer_id=c1",
        "--json",
    )
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["outputs"] == {
        "reply": "Your Noise-cancelling headphones is with UPS, arriving 2025-03-14.",
        "category": "shipping",
        "page": "PAGE: customer blocked on A1001",
    }
    steps = doc["steps"]
    assert steps["customer"]["output"] == {
        "id": "c1",
        "name": "Ada Lovelace",
        "plan": "pro",
        "open_orders": ["A1001", "A1002"],
    }
    assert len(steps["ticket_vector"]["output"]) == 256
    assert [(c["name"], c["round"]) for c in steps["draft"]["tool_calls"]] == [
        ("lookup_order", 1),
        ("shipping_status", 1),
    ]
    assert steps["draft"]["model"] == "gpt-4o" and steps["draft"]["calls"] == 2

    chats = server.requests_to("/chat/completions")
    classify = next(r for r in chats if "Classify" in r.last_user_text)
    schema = classify.body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["category", "urgent", "order_id", "sentiment"]
    assert schema["additionalProperties"] is False
    draft = [r for r in chats if r.body["model"] == "gpt-4o"]
    assert len(draft) == 2 and all(r.body["stream"] for r in draft)
    assert [t["function"]["name"] for t in draft[0].body["tools"]] == [
        "lookup_order",
        "shipping_status",
    ]
    assert draft[0].body["tools"][0]["function"]["description"] == "Find an order by id"
    category, customer, ticket, limit, end = draft[0].last_user_text.split("\n")
    assert (category, ticket, limit, end) == (
        "Category: shipping",
        f"Ticket: {TICKET}",
        "Answer in at most 120 words.",
        "",
    )
    assert customer.startswith("Customer: ")
    assert json.loads(customer.removeprefix("Customer: ")) == steps["customer"]["output"]
    assert isinstance(draft[0].messages[-1]["content"], str)  # the null screenshot was dropped
    (embedding,) = server.requests_to("/embeddings")
    assert embedding.body["dimensions"] == 256
    assert doc["cost"]["calls"] == 5
    assert 0 < doc["cost"]["total_usd"] < 0.25


def test_support_triage_skips_the_page_when_not_urgent(server):
    script_triage(server, urgent=False)
    result = run_workflow(
        load_workflow(WORKFLOWS / "support-triage.yaml"),
        {"ticket": TICKET, "customer_id": "c1"},
        store=False,
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["page"] is None
    assert result.steps["escalate"].skipped
    assert not any("one-line page" in r.last_user_text for r in server.requests)


# --- invoice-extract: extraction into schemas/invoice.json with a repair -------------------

INVOICE_TEXT = """ACME Tools SARL - Invoice F-2025-0042
2 x Hammer @ 12.50 = 25.00 EUR
1 x Saw @ 30.00 = 30.00 EUR
VAT 11.00 EUR - Total 66.00 EUR"""

INVOICE = {
    "invoice_number": "F-2025-0042",
    "vendor": "ACME Tools SARL",
    "currency": "EUR",
    "lines": [
        {"description": "Hammer", "quantity": 2, "unit_price": 12.5, "amount": 25.0},
        {"description": "Saw", "quantity": 1, "unit_price": 30.0, "amount": 30.0},
    ],
    "tax": 11.0,
    "total": 66.0,
}


def test_invoice_extract_repairs_a_bad_reply_then_checks_the_totals(server):
    bad = {**INVOICE, "currency": "€", "total": "66.00 EUR", "issue_date": None, "due_date": None}
    server.add(Reply(json=bad))
    server.add(Reply(json={**INVOICE, "issue_date": None, "due_date": None}))
    res = flowrun("run", WORKFLOWS / "invoice-extract.yaml", "-i", f"text={INVOICE_TEXT}", "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["outputs"] == {"invoice": INVOICE, "totals_ok": True, "difference": 0.0}
    assert doc["steps"]["totals"]["output"] == {
        "ok": True,
        "lines_total": 55.0,
        "expected_total": 66.0,
        "difference": 0.0,
    }
    first, second = server.requests_to("/chat/completions")
    assert first.body["response_format"]["json_schema"]["strict"] is True
    assert second.messages[-1]["content"] == (
        "Your reply does not match the required JSON schema:\n"
        "- /currency: '€' is not one of ['EUR', 'USD', 'GBP']\n"
        "- /total: '66.00 EUR' is not of type 'number'\n"
        "Reply again with the corrected JSON only."
    )


def test_invoice_extract_gives_up_after_max_repairs(server):
    server.add(Reply(json={"vendor": "ACME"}), times=None)
    res = flowrun("run", WORKFLOWS / "invoice-extract.yaml", "-i", "text=x", "--json")
    assert res.code == 1
    assert len(server.requests_to("/chat/completions")) == 3  # max_repairs: 2
    error = json.loads(res.stdout)["steps"]["invoice"]["error"]
    assert error.startswith(
        "the reply did not match the schema after 2 repair(s): replies 1-3: (root): "
    )
    assert "'invoice_number' is a required property" in error


# --- map-reduce-summary: tool split + foreach map + reduce --------------------------------


def test_map_reduce_summary_maps_parts_concurrently_and_reduces_in_order(server):
    paragraphs = [f"Paragraph {i} talks about topic {i}. " * 3 for i in range(6)]
    text = "\n\n".join(p.strip() for p in paragraphs)

    def summarize(req: RecordedRequest) -> Reply:
        first_line = req.last_user_text.splitlines()[0]  # "Part N of M:"
        return Reply(content=f"summary of {first_line.rstrip(':').lower()}", latency=0.05)

    server.add(summarize, match="Summarize this part", times=None)
    server.add(Reply(content="The whole story."), match="Combine the summaries")
    result = run_workflow(
        load_workflow(WORKFLOWS / "map-reduce-summary.yaml"),
        {"text": text, "part_chars": 150},
        store=False,
    )
    assert result.status == "succeeded", result.error
    parts = result.steps["parts"].output
    assert len(parts) == 6 and all(len(p) <= 150 for p in parts)
    assert result.outputs == {"summary": "The whole story.", "parts": 6}
    assert result.steps["summaries"].output == [f"summary of part {i} of 6" for i in range(1, 7)]
    reduce_request = next(
        r for r in server.requests if "Combine the summaries" in json.dumps(r.body)
    )
    assert reduce_request.last_user_text == (
        "Write one summary of at most 5 sentences from these part summaries:\n"
        + "".join(f"{i}. summary of part {i} of 6\n" for i in range(1, 7))
    )


# --- semantic-similarity: embed a query and a list, rank with a tool -----------------------


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_semantic_similarity_ranks_documents_by_embedding_similarity(server):
    documents = [
        "Shipping times to Canada",
        "How to get a refund for a broken phone",
        "Reset your password",
        "Refund policy for damaged phones",
    ]
    query = "refund for my broken phone"
    res = flowrun(
        "run",
        WORKFLOWS / "semantic-similarity.yaml",
        "-i",
        f"query={query}",
        "-i",
        f"documents={json.dumps(documents)}",
        "-i",
        "top_k=2",
        "--json",
    )
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    q = embed_text(query, 512)
    expected = sorted(
        ((cosine(q, embed_text(d, 512)), i) for i, d in enumerate(documents)), reverse=True
    )[:2]
    assert [m["index"] for m in doc["outputs"]["ranking"]] == [i for _, i in expected] == [1, 3]
    assert [m["score"] for m in doc["outputs"]["ranking"]] == [
        pytest.approx(s, abs=1e-6) for s, _ in expected
    ]
    assert doc["outputs"]["best"] == "How to get a refund for a broken phone"
    requests = server.requests_to("/embeddings")
    assert sorted(len(r.body["input"]) for r in requests) == [1, 4]
    assert all(r.body["dimensions"] == 512 for r in requests)
    assert doc["cost"]["by_model"]["text-embedding-3-small"]["calls"] == 2
