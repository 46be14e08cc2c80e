"""Building the chat messages of a chat or extract step: system, messages, prompt, images."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ..templating import render, render_text
from .base import StepEnv, StepError

_MAGIC = {
    b"\x89PNG": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF8": "image/gif",
    b"RIFF": "image/webp",
}


def build_messages(env: StepEnv) -> list[dict[str, Any]]:
    """The rendered messages: ``system`` first, then ``messages``, then ``prompt`` (+ images)."""
    step, scope = env.step, env.scope
    messages: list[dict[str, Any]] = []
    if step.system:
        messages.append({"role": "system", "content": render_text(step.system, scope)})
    for message in step.messages or []:
        entry: dict[str, Any] = {
            "role": message.role,
            "content": _render_content(message.content, scope),
        }
        if message.name:
            entry["name"] = message.name
        messages.append(entry)
    if step.prompt is not None:
        messages.append({"role": "user", "content": render_text(step.prompt, scope)})
    images = [image_part(url, step.image_detail, env) for url in _image_sources(step.images, scope)]
    if images:
        last_user = next((m for m in reversed(messages) if m["role"] == "user"), None)
        if last_user is None:
            last_user = {"role": "user", "content": []}
            messages.append(last_user)
        content = last_user["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        last_user["content"] = parts + images
    if not messages:
        raise StepError("the step has no prompt, system or messages")
    return messages


def message_text(message: dict[str, Any]) -> str:
    """The text of a message: its string content or its text parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _render_content(content: str | list[dict[str, Any]], scope: dict[str, Any]) -> Any:
    if isinstance(content, str):
        return render_text(content, scope)
    return [render(part, scope) for part in content]


def _image_sources(images: list[str | None] | None, scope: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for source in images or []:
        value = render(source, scope) if source is not None else None
        values = value if isinstance(value, list) else [value]
        out.extend(str(v) for v in values if v not in (None, ""))
    return out


def image_part(source: str, detail: str | None, env: StepEnv) -> dict[str, Any]:
    """An ``image_url`` content part: URLs pass through, local files become base64 data URLs."""
    if source.startswith(("http://", "https://", "data:")):
        url = source
    else:
        path = Path(source)
        if not path.is_absolute():
            path = env.workflow.base_dir / path if not path.exists() else path
        try:
            data = path.read_bytes()
        except OSError:
            raise StepError(f"image not found: {source}") from None
        mime = _sniff(data)
        if mime is None:
            raise StepError(f"{source} is not an image (PNG, JPEG, GIF or WEBP)")
        url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    image: dict[str, Any] = {"url": url}
    if detail:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _sniff(data: bytes) -> str | None:
    for magic, mime in _MAGIC.items():
        if data.startswith(magic):
            if mime == "image/webp" and data[8:12] != b"WEBP":
                return None
            return mime
    return None
