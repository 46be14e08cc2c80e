"""Batch API cost: the discount is reported only when Batch API prices were really used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowrun.testing import LoopbackServer
from tests.flow_files import make_flow
from tests.helpers import flowrun
from tests.test_batch_api import DIAMOND, read_lines, write_records


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.01,0.05")
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")


def run(tmp_path: Path, *extra: str) -> tuple[dict, list[dict], str]:
    wf = make_flow(tmp_path, DIAMOND)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"ticket {i}"} for i in range(3)])
    out = tmp_path / "out.jsonl"
    out.unlink(missing_ok=True)
    result = flowrun(
        "run", wf, "--batch", records, "--output", out, "--via", "batch-api", "--json", *extra
    )
    assert result.code == 0, result.output
    return json.loads(result.stdout), read_lines(out), result.stderr


def test_no_discount_is_claimed_without_batch_prices(
    server: LoopbackServer, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"gpt-4o-mini": {"input": 0.15, "output": 0.6}}))
    summary, lines, _ = run(tmp_path, "--prices", prices)
    assert summary["cost"]["batch_discount"] is False
    usage = lines[0]["usage"]
    live_price = (usage["prompt_tokens"] * 0.15 + usage["completion_tokens"] * 0.6) / 1e6
    assert lines[0]["cost_usd"] == pytest.approx(live_price, abs=1e-8)

    text = flowrun("run", tmp_path / "wf.yaml", "--batch", tmp_path / "in.jsonl", "--output",
                   tmp_path / "out2.jsonl", "--via", "batch-api", "--prices", prices)  # fmt: skip
    assert text.code == 0, text.output
    assert "cost $" in text.stderr and "50% off" not in text.stderr


def test_the_discount_is_reported_with_batch_prices(server: LoopbackServer, tmp_path: Path) -> None:
    summary, lines, _ = run(tmp_path)
    assert summary["cost"]["batch_discount"] is True
    usage = lines[0]["usage"]
    batch_price = (usage["prompt_tokens"] * 0.075 + usage["completion_tokens"] * 0.3) / 1e6
    assert lines[0]["cost_usd"] == pytest.approx(batch_price, abs=1e-8)


def test_output_lines_without_usage_are_counted_locally_not_free(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """A Batch API output line without ``usage`` is counted with tiktoken and marked
    approximate, as a live reply without usage is; never $0."""
    from flowrun.testing import Reply

    server.add(Reply(content="a short answer", no_usage=True), times=None)
    summary, lines, _ = run(tmp_path)
    assert summary["cost"]["approximate_calls"] == 9
    for line in lines:
        assert line["usage"]["prompt_tokens"] > 0 and line["usage"]["completion_tokens"] > 0
        assert line["cost_usd"] > 0
    text = flowrun("run", tmp_path / "wf.yaml", "--batch", tmp_path / "in.jsonl", "--output",
                   tmp_path / "out2.jsonl", "--via", "batch-api")  # fmt: skip
    assert text.code == 0, text.output
    assert "~: approximate: 9 calls came back without usage" in text.stderr
