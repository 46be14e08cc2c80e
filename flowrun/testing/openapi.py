"""Validate request/response bodies against the official OpenAI OpenAPI 3.1 spec.

flowrun ships the part of the spec it needs (``data/openai-openapi/openapi-subset.json``: the
request schemas of the endpoints flowrun calls and the replies the loopback server sends, with
every schema they reference), generated from the official spec by
``scripts/vendor_openapi.py``; the spec's LICENSE and SOURCE (upstream commit) sit beside it.
``OpenAPIValidator()`` loads that subset; give it a path to check against a whole spec.

``jsonschema`` and ``referencing`` are imported lazily so that importing
:mod:`flowrun.testing` stays stdlib-only.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

__all__ = ["OpenAPIValidator", "REQUEST_SCHEMAS", "VENDORED_SPEC"]

#: The vendored subset of the official spec (see the module docstring).
VENDORED_SPEC = Path(__file__).resolve().parent / "data" / "openai-openapi" / "openapi-subset.json"

#: Request path (after ``/v1``) -> component schema validating its JSON body.
REQUEST_SCHEMAS: dict[str, str] = {
    "/chat/completions": "CreateChatCompletionRequest",
    "/completions": "CreateCompletionRequest",
    "/embeddings": "CreateEmbeddingRequest",
    "/batches": "CreateBatchRequest",
}

_SPEC_URI = "urn:openai:openapi.json"
_MAX_MESSAGE = 400


def _normalize(node: Any) -> Any:
    """Rewrite OpenAPI-3.0 leftovers in the spec into their JSON Schema 2020-12 meaning.

    The published spec still uses ``nullable: true`` (ignored by 2020-12, so real
    API-accepted ``null`` values would be rejected) and boolean ``exclusiveMinimum``.
    """
    if isinstance(node, list):
        return [_normalize(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _normalize(value) for key, value in node.items()}
    if out.get("exclusiveMinimum") is True and "minimum" in out:
        out["exclusiveMinimum"] = out.pop("minimum")
    elif isinstance(out.get("exclusiveMinimum"), bool):
        out.pop("exclusiveMinimum")
    all_of = out.get("allOf")
    if isinstance(all_of, list) and any(
        isinstance(s, dict) and s.get("nullable") is True and set(s) <= {"nullable", "description"}
        for s in all_of
    ):
        out["nullable"] = True
    if out.pop("nullable", None) is not True:
        return out
    kind = out.get("type")
    if isinstance(kind, str) and not any(k in out for k in ("$ref", "anyOf", "oneOf", "allOf")):
        out["type"] = [kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [{"type": "null"}, out]}


class OpenAPIValidator:
    """Validates JSON bodies against component schemas of an OpenAI OpenAPI spec file.

    The spec (default: the vendored subset, :data:`VENDORED_SPEC`) is loaded once; one
    validator per component is built lazily and cached.
    """

    def __init__(self, spec_path: str | Path = VENDORED_SPEC) -> None:
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012

        self.spec_path = Path(spec_path)
        with self.spec_path.open(encoding="utf-8") as fh:
            self.spec: dict[str, Any] = _normalize(json.load(fh))
        resource = DRAFT202012.create_resource(self.spec)
        self._registry = Registry().with_resource(_SPEC_URI, resource).crawl()
        self._validators: dict[str, Any] = {}
        self._lock = threading.Lock()

    def schema_validator(self, component: str) -> Any:
        """Return the cached ``Draft202012Validator`` for ``#/components/schemas/<component>``."""
        with self._lock:
            validator = self._validators.get(component)
            if validator is None:
                from jsonschema import Draft202012Validator

                if component not in self.spec.get("components", {}).get("schemas", {}):
                    raise KeyError(f"no component schema {component!r} in {self.spec_path}")
                ref = {"$ref": f"{_SPEC_URI}#/components/schemas/{component}"}
                validator = Draft202012Validator(ref, registry=self._registry)
                self._validators[component] = validator
            return validator

    def validate_schema(self, component: str, instance: Any) -> list[str]:
        """Validate ``instance`` against a component schema; return error messages (empty = OK)."""
        from jsonschema.exceptions import best_match

        messages = []
        errors = sorted(
            self.schema_validator(component).iter_errors(instance), key=lambda e: list(e.path)
        )
        for error in errors:
            location = error.json_path
            message = error.message
            if error.context:  # anyOf/oneOf: point at the most relevant sub-error
                deepest = best_match(error.context)
                location, message = deepest.json_path, deepest.message
            if len(message) > _MAX_MESSAGE:
                message = message[:_MAX_MESSAGE] + "..."
            messages.append(f"{component} {location}: {message}")
        return messages

    def validate(self, path: str, body: Any) -> list[str]:
        """Validate a request body sent to ``path`` (e.g. ``"/chat/completions"``).

        Paths without a known request schema are not validated.
        """
        component = REQUEST_SCHEMAS.get(path)
        if component is None:
            return []
        return self.validate_schema(component, body)
