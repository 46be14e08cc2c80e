"""The stand-in ``promptflow.tools.common``: promptflow-tools' prompt helpers that flows' own
Python imports (``render_jinja_template``, ``parse_chat``, ``build_messages``), written for
flowrun to behave as promptflow-tools 1.6.1 does, so a python node that renders a prompt and
splits it into messages sends what it sent under promptflow.

* ``render_jinja_template(prompt, trim_blocks=True, keep_trailing_newline=True, **values)``:
  Jinja's sandbox with those two options and Jinja's own undefined (a missing value renders
  as nothing), as promptflow-tools does;
* ``parse_chat(text, images=None, valid_roles=None, image_detail="auto")``: the text split at
  its role lines (``# system:``, ``user:`` ...; roles ``system``, ``user``, ``assistant``,
  ``function``, ``tool``), each message's content stripped; ``name:`` / ``content:`` lines,
  a ``function`` message's ``name``, a ``tool`` message's ``tool_call_id`` and an assistant's
  ``tool_calls:`` list are read as promptflow reads them; a line that is exactly an image's
  text (``str(image)``) becomes an ``image_url`` part;
* ``build_messages(prompt, images=None, image_detail="auto", **values)``: the two together.

Text before the first role line, or a role promptflow does not know, is refused with the
message promptflow gives (``ChatAPIInvalidRole``).

"""

from __future__ import annotations

import ast
import re
from typing import Any

from flowrun.errors import PromptflowToolError

__all__ = [
    "VALID_ROLES",
    "ChatAPIInvalidRole",
    "ChatInputList",
    "JinjaTemplateError",
    "build_messages",
    "convert_to_chat_list",
    "parse_chat",
    "render_jinja_template",
    "to_bool",
]

VALID_ROLES = ["system", "user", "assistant", "function", "tool"]


#: promptflow-tools' names for what it refuses: one class here
JinjaTemplateError = ChatAPIInvalidRole = PromptflowToolError
ChatAPIFunctionRoleInvalidFormat = ChatAPIToolRoleInvalidFormat = PromptflowToolError


class ChatInputList(list):  # type: ignore[type-arg]
    """A list whose text is its items' texts, one a line (the aoai tool renders lists so)."""

    def __str__(self) -> str:
        return "\n".join(map(str, self))


def convert_to_chat_list(value: Any) -> Any:
    """Lists (also inside dicts) as ``ChatInputList``: what the aoai tools do to their values."""
    if isinstance(value, dict):
        return {k: convert_to_chat_list(v) for k, v in value.items()}
    if isinstance(value, list):
        return ChatInputList(convert_to_chat_list(v) for v in value)
    return value


def to_bool(value: Any) -> bool:
    """promptflow-tools' reading of a flag: only ``True`` and the text ``"true"`` (any case)."""
    return str(value).lower() == "true"


def render_jinja_template(
    template_content: str | None = None,
    trim_blocks: bool = True,
    keep_trailing_newline: bool = True,
    escape_dict: dict[str, str] | None = None,
    **kwargs: Any,
) -> str:
    """Render ``template_content`` with ``kwargs`` in Jinja's sandbox, as promptflow-tools does.

    Without ``template_content``, ``prompt=`` is the template: the name promptflow-tools'
    earlier versions gave it, which flows written for them pass (``gen-docstring``); 1.6.1
    refuses that call."""
    from jinja2.sandbox import SandboxedEnvironment

    if template_content is None:
        if "prompt" not in kwargs:
            raise PromptflowToolError("render_jinja_template() needs the template's text")
        template_content = kwargs.pop("prompt")

    try:
        env = SandboxedEnvironment(
            trim_blocks=trim_blocks, keep_trailing_newline=keep_trailing_newline
        )
        return env.from_string(template_content).render(**kwargs)
    except Exception as exc:
        raise JinjaTemplateError(
            f"Failed to render jinja template: {type(exc).__name__}: {exc}. "
            "Please modify your prompt to fix the issue."
        ) from exc


def _labelled(text: str, first: str) -> tuple[str, str] | None:
    """``first:`` and ``content:`` lines (``##`` allowed before each): their two values."""
    pattern = rf"\n*#{{0,2}}\s*{first}\s*:\s*\n+\s*(\S+)\s*\n*#{{0,2}}\s*content\s*:\s*\n?(.*)"
    match = re.search(pattern, text, re.DOTALL)
    return (match.group(1), match.group(2)) if match else None


def _tool_calls(text: str) -> list[Any] | None:
    match = re.search(r"\n*#{0,2}\s*tool_calls\s*:\s*\n+\s*(\[.*?\])", text, re.DOTALL)
    if match is None:
        return None
    try:
        value = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, list) else None


def _content(text: str, images: dict[str, Any], detail: str) -> Any:
    """The message's text, stripped; a list of parts when a line is one of the images."""
    text = text.strip()
    parts: list[dict[str, Any]] = []
    with_image = False
    for line in text.split("\n"):
        image = images.get(line.strip())
        if image is not None:
            url = getattr(image, "source_url", None) or image.to_base64(with_type=True)
            parts.append({"type": "image_url", "image_url": {"url": url, "detail": detail}})
            with_image = True
        elif line.strip():
            parts.append({"type": "text", "text": line})
    return parts if with_image else text


def _role(chunk: str, valid: list[str]) -> str:
    role = chunk.strip().lower()
    if role not in valid:
        roles = ",".join(f"'{r}:\\n'" for r in valid)
        raise ChatAPIInvalidRole(
            "The Chat API requires a specific format for prompt definition, and the prompt "
            f"should include separate lines as role delimiters: {roles}. Current parsed role "
            f"'{chunk.strip()}' does not meet the requirement."
        )
    return role


def parse_chat(
    chat_str: str,
    images: list[Any] | None = None,
    valid_roles: list[str] | None = None,
    image_detail: str = "auto",
    escape_dict: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The messages of a rendered chat prompt, as promptflow-tools splits them."""
    valid = valid_roles or VALID_ROLES
    separator = r"(?i)^\s*#?\s*(" + "|".join(valid) + r")\s*:\s*\n"
    by_text = {str(image): image for image in images or []}
    messages: list[dict[str, Any]] = []
    for chunk in re.split(separator, chat_str, flags=re.MULTILINE):
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "tool" and "content" not in last:
            found = _labelled(chunk, "tool_call_id")
            if found is None:
                raise ChatAPIToolRoleInvalidFormat(
                    "Failed to parse tool role prompt: write 'tool_call_id:' and 'content:' lines"
                )
            last["tool_call_id"], text = found
            last["content"] = _content(text, by_text, image_detail)
            continue
        if last is not None and last["role"] == "assistant" and "content" not in last:
            calls = _tool_calls(chunk)
            if calls is not None:
                last["tool_calls"] = calls
                continue
        if last is not None and "content" not in last and "tool_calls" not in last:
            found = _labelled(chunk, "name")
            if found is not None:
                last["name"], text = found
                last["content"] = _content(text, by_text, image_detail)
            elif last["role"] == "function":
                raise ChatAPIFunctionRoleInvalidFormat(
                    "Failed to parse function role prompt: write 'name:' and 'content:' lines"
                )
            else:
                last["content"] = _content(chunk, by_text, image_detail)
        elif chunk.strip():
            messages.append({"role": _role(chunk, valid)})
    return messages


def build_messages(
    prompt: str, images: list[Any] | None = None, image_detail: str = "auto", **kwargs: Any
) -> list[dict[str, Any]]:
    """Render the prompt with ``kwargs`` and split it into messages (promptflow-tools' chat)."""
    kwargs.pop("_inputs_to_escape", None)
    text = render_jinja_template(prompt, trim_blocks=True, keep_trailing_newline=True, **kwargs)
    return parse_chat(text, images=images, image_detail=image_detail)
