"""The viewer's page frame (inline CSS), escaping, and a step's transcript as HTML."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from flowrun.redaction import redact
from flowrun.results import seconds_text
from flowrun.results import usd_text as usd

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#23272f;color:#fff;padding:10px 24px;display:flex;gap:18px;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}
header .muted{color:#aab}
main{padding:16px 24px;max-width:1400px}
h1{font-size:20px;margin:4px 0 10px}h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid #e6e6e6;vertical-align:top}
th{background:#f0f0f2;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
a{color:#0b63c5}
.muted{color:#777}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.s-succeeded{background:#dcf5e3;color:#1d6b38}.s-failed{background:#fde0df;color:#a3221c}
.s-running{background:#fff1cc;color:#8a6100}.s-interrupted{background:#ffe4cc;color:#8a4100}
.s-skipped,.s-not_run,.s-waiting{background:#eee;color:#555}
.facts{display:grid;grid-template-columns:max-content auto;gap:3px 14px;margin:6px 0 12px}
.facts dt{color:#666}.facts dd{margin:0}
form.filters{display:flex;gap:10px;flex-wrap:wrap;align-items:end;margin:0 0 12px}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#555}
input,select,button{font:inherit;padding:3px 6px}
.dag{background:#fff;border:1px solid #e2e2e2;border-radius:8px;max-width:100%;height:auto}
.dag .step-id{font-weight:600;font-size:13px}.dag .step-label{font-size:12px;fill:#444}
.dag a.step:hover rect{stroke-width:3}
.panel{background:#fff;border:1px solid #e2e2e2;border-radius:8px;padding:12px 16px;margin-top:14px}
.msg{border-left:4px solid #ccc;padding:4px 10px;margin:8px 0;background:#fcfcfc}
.msg .role{font-size:12px;font-weight:700;text-transform:uppercase;color:#555}
.msg.system{border-color:#8e7cc3}.msg.user{border-color:#3d85c6}.msg.assistant,.msg.reply{border-color:#2f9e55}
.msg.tool{border-color:#e69138}.msg.error{border-color:#d23c35}
pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace}
.bar{height:12px;background:#eee;border-radius:6px;overflow:hidden;max-width:480px}
.bar span{display:block;height:100%;background:#2f9e55}
.pager{margin:8px 0;display:flex;gap:14px}
"""


def esc(value: Any) -> str:
    return escape("" if value is None else str(value))


def page(title: str, body: str, *, refresh: bool = False) -> str:
    """A whole HTML document (the API key redacted from all of it)."""
    meta = '<meta http-equiv="refresh" content="2">' if refresh else ""
    return redact(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"{meta}<title>{esc(title)} · flowrun</title><style>{CSS}</style></head><body>"
        '<header><a href="/">flowrun</a><span class="muted">run viewer (read-only)</span>'
        f"</header><main>{body}</main></body></html>"
    )


def badge(status: str) -> str:
    return f'<span class="badge s-{esc(status.replace(" ", "_"))}">{esc(status)}</span>'


def seconds(value: float | None) -> str:
    return seconds_text(value, unknown="–")


def pretty(value: Any) -> str:
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    )
    return f"<pre>{esc(text)}</pre>"


def facts(pairs: list[tuple[str, str]]) -> str:
    """A definition list; values are HTML already."""
    return (
        '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"
    )


def step_panel(step_id: str, step: dict[str, Any], transcript: list[dict[str, Any]]) -> str:
    """A step's transcript (messages, reply, tool calls, usage), its output and its error."""
    out = [
        f'<section class="panel" id="step"><h2>Step {esc(step_id)} {badge(step.get("status", "-"))}</h2>'
    ]
    out.append(
        facts(
            [
                ("model", esc(step.get("model") or "–")),
                ("time", esc(seconds(step.get("duration_s")))),
                ("cost", esc(usd(step.get("cost_usd")))),
                ("calls", esc(step.get("calls", 0))),
                ("retries", esc(step.get("retries", 0))),
            ]
        )
    )
    if step.get("error"):
        out.append(f'<h3>Error</h3><div class="msg error">{pretty(step["error"])}</div>')
    out.append('<h3>Transcript</h3><div class="transcript">')
    for number, call in enumerate(transcript, start=1):
        out.append(_call(number, len(transcript), call))
    for tool in step.get("tool_calls") or []:
        out.append(
            f'<div class="msg tool"><div class="role">tool {esc(tool.get("name"))}</div>'
            f"arguments{pretty(tool.get('arguments'))}"
            + (
                f"error{pretty(tool['error'])}"
                if "error" in tool
                else f"result{pretty(tool.get('result'))}"
            )
            + "</div>"
        )
    if not transcript and not step.get("tool_calls"):
        out.append(
            '<p class="muted">No transcript: the step made no model call, or transcripts were off.</p>'
        )
    out.append("</div>")
    if "output" in step and step.get("status") == "succeeded":
        out.append(f"<h3>Output</h3>{pretty(step['output'])}")
    out.append("</section>")
    return "".join(out)


def _call(number: int, total: int, call: dict[str, Any]) -> str:
    request = call.get("request") or {}
    params = {k: v for k, v in request.items() if k not in ("messages", "tools", "input")}
    head = (
        f"Call {number} of {total} ({esc(call.get('kind', 'chat'))}) · "
        f"{call.get('latency_s', 0):.2f}s · {esc(call.get('retries', 0))} retries"
        + (" · from the cache" if call.get("cached") else "")
    )
    out = [
        f'<div class="call"><h4>{head}</h4><div class="muted">parameters {esc(json.dumps(params, default=str))}</div>'
    ]
    if call.get("truncated"):
        t = call["truncated"]
        out.append(
            f'<p class="muted">Cut: the call was {t.get("original_bytes", 0):,} bytes, over the '
            f"{t.get('cap_bytes', 0):,}-byte cap; its longest texts are shortened.</p>"
        )
    tools = [(t.get("function") or {}).get("name") for t in request.get("tools") or []]
    if tools:
        out.append(f'<div class="muted">tools offered: {esc(", ".join(map(str, tools)))}</div>')
    for message in request.get("messages") or []:
        role = str(message.get("role"))
        body = _content(message.get("content"))
        for tc in message.get("tool_calls") or []:
            fn = tc.get("function") or {}
            body += f"<pre>→ {esc(fn.get('name'))}({esc(fn.get('arguments'))})</pre>"
        out.append(f'<div class="msg {esc(role)}"><div class="role">{esc(role)}</div>{body}</div>')
    if "input" in request:
        out.append(
            f'<div class="msg user"><div class="role">input</div>{pretty(request["input"])}</div>'
        )
    reply = call.get("reply")
    if reply is not None:
        body = ""
        if reply.get("content") is not None:
            body += f"<pre>{esc(reply['content'])}</pre>"
        if reply.get("refusal"):
            body += f"<pre>refusal: {esc(reply['refusal'])}</pre>"
        for tc in reply.get("tool_calls") or []:
            fn = tc.get("function") or {}
            body += f"<pre>→ {esc(fn.get('name'))}({esc(fn.get('arguments'))})</pre>"
        if "vectors" in reply:
            body += f"<pre>{esc(reply['vectors'])} vectors of {esc(reply.get('dimensions'))} dimensions</pre>"
        usage = reply.get("usage") or {}
        body += (
            f'<div class="muted">finish_reason {esc(reply.get("finish_reason"))} · '
            f"{esc(usage.get('prompt_tokens', 0))} prompt + "
            f"{esc(usage.get('completion_tokens', 0))} completion tokens</div>"
        )
        out.append(f'<div class="msg reply"><div class="role">reply</div>{body}</div>')
    if call.get("error"):
        out.append(
            f'<div class="msg error"><div class="role">error</div>{pretty(call["error"])}</div>'
        )
    out.append("</div>")
    return "".join(out)


def _content(content: Any) -> str:
    if isinstance(content, str) or content is None:
        return f"<pre>{esc(content or '')}</pre>"
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append(f"<pre>{esc(part.get('text', ''))}</pre>")
        elif isinstance(part, dict) and part.get("type") == "image_url":
            image = part.get("image") or {}
            what = image.get("url") or f"{image.get('media_type')}, {image.get('bytes', 0):,} bytes"
            parts.append(f'<div class="muted">[image: {esc(what)}]</div>')
        else:
            parts.append(pretty(part))
    return "".join(parts)
