"""Building the chat messages of a chat or extract step: system, messages, prompt, images."""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path
from typing import Any

from flowrun.engine.steps.base import StepEnv, StepError
from flowrun.errors import ImageFileError as ImageFileError
from flowrun.format.templating import render, render_text
from flowrun.provider.images import sniff_mime


def build_messages(env: StepEnv) -> list[dict[str, Any]]:
    """The rendered messages: system, messages_template, messages, then prompt (+ images)."""
    step, scope = env.step, env.scope
    messages: list[dict[str, Any]] = []
    if step.system:
        messages.append({"role": "system", "content": render_text(step.system, scope)})
    if step.messages_template is not None:
        messages.extend(template_messages(step.messages_template, scope))
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
    images = (
        [image_part(url, step.image_detail, env) for url in _image_sources(step.images, scope)]
        if step.images
        else None
    )
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


# A role line of promptflow's chat prompt format: '# system:', 'user:', '#Assistant :' ...
_ROLES = "system|user|assistant|function|tool"
_ROLE_SPLIT = re.compile(rf"^\s*#?\s*({_ROLES})\s*:\s*\n", re.IGNORECASE | re.MULTILINE)
_ROLE_ESCAPE = re.compile(
    rf"^(\s*#{{0,2}}\s*(?:{_ROLES}|name|content)\s*)(:\s*\n)", re.IGNORECASE | re.MULTILINE
)
# A message's '## name:' / '## content:' lines (promptflow's format for a message with a name:
# required in a 'function:' message, the name of the function whose result is the content).
_NAME_CONTENT = r"\n*#{0,2}\s*name\s*:\s*\n+\s*(\S+)\s*\n*#{0,2}\s*content\s*:\s*\n?(.*)"
_FUNCTION_RESULT = re.compile(_NAME_CONTENT, re.DOTALL)  # anywhere in it, as promptflow
_NAMED = re.compile(r"\A\s*" + _NAME_CONTENT, re.DOTALL)  # other roles: first lines only


def template_messages(template: str, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """``messages_template``: render the text, then split it into messages at role lines.

    Each message's content is stripped; text before the first role line is a user message.
    A ``function:`` message (the result of a function the model called) gives the function's
    name and its result on ``## name:`` and ``## content:`` lines, as in promptflow; another
    message may start with them too (a message with a ``name``). Role, name and content lines
    inside input values are escaped while rendering, so an input cannot start a message of
    its own or name one (promptflow escapes flow inputs the same way).
    """
    nonce = f"\u2063{secrets.token_hex(4)}\u2063"
    text = render_text(template, {**scope, "inputs": _escape_roles(scope.get("inputs"), nonce)})
    parts = _ROLE_SPLIT.split(text)
    messages = [{"role": "user", "content": parts[0]}] if parts[0].strip() else []
    for role, content in zip(parts[1::2], parts[2::2], strict=True):
        messages.append(_message(role.lower(), content))
    for message in messages:
        message["content"] = message["content"].replace(nonce, "").strip()
        if "name" in message:
            message["name"] = message["name"].replace(nonce, "")
    return messages


def _message(role: str, content: str) -> dict[str, Any]:
    if role == "tool":
        raise StepError(
            "messages_template: 'tool:' messages are not supported (a model's tool calls and "
            "their results come from the step's tools:)"
        )
    found = (_FUNCTION_RESULT.search if role == "function" else _NAMED.match)(content)
    if found is None:
        if role == "function":
            raise StepError(
                "messages_template: a 'function:' message needs the function's name and its "
                "result on '## name:' and '## content:' lines"
            )
        return {"role": role, "content": content}
    return {"role": role, "name": found.group(1), "content": found.group(2)}


def _escape_roles(value: Any, nonce: str) -> Any:
    if isinstance(value, str):
        return _ROLE_ESCAPE.sub(lambda m: m.group(1) + nonce + m.group(2), value)
    if isinstance(value, dict):
        return {k: _escape_roles(v, nonce) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_roles(v, nonce) for v in value]
    return value


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
        if "\0" in source:  # (no file name has one; the OS would refuse it)
            raise ImageFileError(f"image not found: {source!r} has a NUL character")
        path = Path(source).expanduser()
        if not path.is_absolute() and not path.exists():
            path = env.workflow.base_dir / path  # relative to the workflow file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if env.services.dry_run and ("<steps." in source or "<item" in source):
                return _part(source, detail)  # estimate: a path only a run will know
            raise ImageFileError(f"image not found: {source}") from None
        except OSError as exc:
            raise ImageFileError(f"cannot read image {source}: {exc.strerror}") from None
        mime = sniff_mime(data)
        if mime is None:
            raise ImageFileError(f"{source} is not an image (PNG, JPEG, GIF or WEBP)")
        url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return _part(url, detail)


def _part(url: str, detail: str | None) -> dict[str, Any]:
    image: dict[str, Any] = {"url": url}
    if detail:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}
