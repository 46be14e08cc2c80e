"""Text for ``flowrun runs``: the history table, a batch's summary, a step's transcript."""

from __future__ import annotations

import json
from typing import Any

from flowrun.cli.text import format_value, table
from flowrun.results import seconds_text
from flowrun.results import usd_text as usd


def duration(seconds: float | None) -> str:
    return seconds_text(seconds)


def format_history(rows: list[Any]) -> str:
    lines = [["id", "kind", "workflow", "status", "started", "duration", "records", "cost"]]
    for r in rows:
        lines.append(
            [
                r.id,
                r.kind,
                r.workflow,
                r.status,
                r.started_at[:19].replace("T", " "),
                duration(r.duration_s),
                "-" if r.records is None else f"{r.records:,}",
                usd(r.cost_usd, r.cost_note),
            ]
        )
    return table(lines, right={5, 6, 7})


def format_batch(row: Any, item: Any, counts: dict[str, Any]) -> str:
    """``runs show BATCH``: header, counts by status, cost, metrics."""
    summary = row.summary or {}
    lines = [
        f"{item.kind} {row.id}: {row.workflow_name} ({row.workflow_path or 'inline'})",
        f"status: {item.status}   started {row.started_at}   ended {row.ended_at or '-'}"
        f"   duration {duration(item.duration_s)}",
        f"records: {row.records_path or 'stdin'} -> {row.output_path or 'stdout'}",
    ]
    by_status = counts["by_status"] or {
        k: summary[k] for k in ("succeeded", "failed") if summary.get(k)
    }
    shown = ", ".join(f"{n:,} {status}" for status, n in sorted(by_status.items())) or "none yet"
    lines.append(f"records with an outcome: {shown}")
    lines.append(f"cost: {usd(item.cost_usd, item.cost_note)}")
    metrics = summary.get("metrics")
    if metrics:
        lines.append("metrics:")
        lines += [f"  {name}: {format_value(value)}" for name, value in metrics.items()]
    failures = summary.get("failures") or []
    if failures:
        lines.append("first failures:")
        lines += [f"  record {f['index']}: {f.get('error')}" for f in failures[:5]]
    lines.append(f"one record's steps: flowrun runs show {row.id} --record N")
    return "\n".join(lines)


def format_record(batch_id: str, record: dict[str, Any]) -> str:
    """``runs show BATCH --record N``: the record's outcome and its steps."""
    where = f" (line {record['line']})" if record.get("line") is not None else ""
    lines = [
        f"batch {batch_id} record {record['index']}{where}: {record['status']}"
        f"   cost {usd(record['cost_usd'])}   {duration(record['duration_s'])}"
    ]
    if record.get("error"):
        lines.append(f"error: {record['error']}")
    rows = [["step", "status", "model", "calls", "cost", "time", "error"]]
    for sid, s in record["steps"].items():
        rows.append(
            [
                sid,
                s.get("status", "-"),
                s.get("model") or "-",
                str(s.get("calls", 0)),
                usd(s.get("cost_usd")),
                duration(s.get("duration_s")),
                (s.get("error") or "")[:80],
            ]
        )
    lines.append(table(rows, right={3, 4, 5}))
    return "\n".join(lines)


def format_transcript(step_id: str, step: dict[str, Any], transcript: list[dict[str, Any]]) -> str:
    """A step's calls, readably: each message by role, then the reply (and tool calls)."""
    lines = [f"step {step_id}: {step.get('status', '-')}"]
    if step.get("error"):
        lines.append(f"error: {step['error']}")
    for number, call in enumerate(transcript, start=1):
        lines += _call(number, len(transcript), call)
    for tool in step.get("tool_calls") or []:
        lines.append(f"── tool {tool.get('name')} ──")
        lines.append(f"arguments: {_json(tool.get('arguments'))}")
        if "error" in tool:
            lines.append(f"error: {tool['error']}")
        else:
            lines.append(f"result: {_json(tool.get('result'))}")
    if not transcript and not step.get("tool_calls"):
        lines.append("(no transcript: the step made no model call, or transcripts were off)")
    if step.get("status") == "succeeded" and "output" in step:
        lines.append("── output ──")
        lines.append(format_value(step["output"]))
    return "\n".join(lines)


def _call(number: int, total: int, call: dict[str, Any]) -> list[str]:
    request = call.get("request") or {}
    params = {k: v for k, v in request.items() if k not in ("messages", "tools", "input")}
    head = f"── call {number}/{total} ({call.get('kind', 'chat')}) "
    head += f"{call.get('latency_s', 0):.2f}s, {call.get('retries', 0)} retries"
    if call.get("cached"):
        head += ", from the cache"
    lines = [head + " ──", f"parameters: {_json(params)}"]
    if call.get("truncated"):
        t = call["truncated"]
        lines.append(
            f"(cut: the call was {t.get('original_bytes', 0):,} bytes, over the "
            f"{t.get('cap_bytes', 0):,}-byte cap; its longest texts are shortened)"
        )
    for tool in request.get("tools") or []:
        fn = tool.get("function") or {}
        lines.append(f"tool offered: {fn.get('name')}  {fn.get('description') or ''}".rstrip())
    for message in request.get("messages") or []:
        lines.append(f"[{message.get('role')}]")
        lines.append(_content(message.get("content")))
        for tc in message.get("tool_calls") or []:
            fn = tc.get("function") or {}
            lines.append(f"  -> {fn.get('name')}({fn.get('arguments')})")
    if "input" in request:
        lines.append(f"[input] {_json(request['input'])}")
    reply = call.get("reply")
    if reply is not None:
        lines.append(f"[reply] finish_reason={reply.get('finish_reason')}")
        if reply.get("content") is not None:
            lines.append(str(reply["content"]))
        if reply.get("refusal"):
            lines.append(f"refusal: {reply['refusal']}")
        for tc in reply.get("tool_calls") or []:
            fn = tc.get("function") or {}
            lines.append(f"  -> {fn.get('name')}({fn.get('arguments')})")
        if "vectors" in reply:
            lines.append(f"{reply['vectors']} vectors of {reply.get('dimensions')} dimensions")
        usage = reply.get("usage") or {}
        lines.append(
            f"usage: {usage.get('prompt_tokens', 0)} prompt + "
            f"{usage.get('completion_tokens', 0)} completion tokens"
        )
    if call.get("error"):
        lines.append(f"[error] {call['error']}")
    return lines


def _content(content: Any) -> str:
    if isinstance(content, str) or content is None:
        return str(content or "")
    parts = []
    for part in content:
        if not isinstance(part, dict):
            parts.append(str(part))
        elif part.get("type") == "text":
            parts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            image = part.get("image") or {}
            if "url" in image:
                parts.append(f"<image {image['url']}>")
            else:
                parts.append(f"<image {image.get('media_type')}, {image.get('bytes', 0):,} bytes>")
        else:
            parts.append(_json(part))
    return "\n".join(parts)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
