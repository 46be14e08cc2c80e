"""``flowrun run --mock``: run a workflow against an in-process fake model, offline and free.

Text replies echo the prompt; JSON-schema requests get a minimal valid instance of the
schema; JSON mode gets a small object. Useful to try a workflow's wiring before paying.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from .testing import LoopbackServer, RecordedRequest, Reply


def example_instance(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A small value that satisfies ``schema`` (enough for wiring tests, not realistic data)."""
    root = root or schema
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        return example_instance(
            (root.get("$defs") or root.get("definitions") or {}).get(ref, {}), root
        )
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"] or schema["anyOf"]
        return example_instance(options[0], root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {
            name: example_instance(props[name], root)
            for name in schema.get("required", props)
            if name in props
        }
    if kind == "array":
        return [
            example_instance(schema.get("items", {}), root)
            for _ in range(schema.get("minItems", 1))
        ]
    if kind == "string":
        return "example" if schema.get("minLength", 0) <= 7 else "x" * schema["minLength"]
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


def mock_reply(req: RecordedRequest) -> Reply:
    """The fake model's answer to any request."""
    body = req.body or {}
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return Reply(json=example_instance(fmt["json_schema"].get("schema", {})))
    if fmt.get("type") == "json_object":
        return Reply(json={"echo": req.last_user_text})
    return Reply(content=f"echo: {req.last_user_text}")


@contextlib.contextmanager
def mock_openai() -> Iterator[LoopbackServer]:
    """Point the openai SDK at a fresh in-process fake server for the duration of the block."""
    saved = {k: os.environ.get(k) for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    with LoopbackServer() as server:
        server.default = mock_reply
        os.environ.update(server.env())
        try:
            yield server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


__all__ = ["example_instance", "mock_openai", "mock_reply"]
