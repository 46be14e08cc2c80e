"""The suite needs nothing beside the repository: the spec subset and the encodings are in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flowrun.testing.openapi import REQUEST_SCHEMAS, VENDORED_SPEC, OpenAPIValidator

REPO = Path(__file__).resolve().parent.parent


def test_the_vendored_spec_has_every_request_schema_and_its_licence() -> None:
    spec = json.loads(VENDORED_SPEC.read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    for component in [*REQUEST_SCHEMAS.values(), "CreateFileRequest"]:
        assert component in schemas
    text = VENDORED_SPEC.read_text(encoding="utf-8")
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        kind, name = ref.removeprefix("#/components/").split("/", 1)
        assert name in spec["components"][kind], f"dangling {ref}"
    assert "MIT License" in (VENDORED_SPEC.parent / "LICENSE").read_text(encoding="utf-8")
    assert (VENDORED_SPEC.parent / "SOURCE").read_text(encoding="utf-8").strip()


def test_the_vendored_spec_rejects_a_request_the_api_would() -> None:
    validator = OpenAPIValidator()
    ok = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert validator.validate("/chat/completions", ok) == []
    assert validator.validate("/chat/completions", {"model": "gpt-4o-mini"}) != []


def test_the_regeneration_script_keeps_roots_and_their_references(tmp_path: Path) -> None:
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "components": {
            "schemas": {
                "CreateChatCompletionRequest": {"$ref": "#/components/schemas/A"},
                "A": {"properties": {"b": {"$ref": "#/components/schemas/B"}}},
                "B": {"type": "string"},
                "Unused": {"type": "integer"},
            }
        },
    }
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import vendor_openapi
    finally:
        sys.path.pop(0)
    reduced = vendor_openapi.subset(spec, ("CreateChatCompletionRequest",))
    assert sorted(reduced["components"]["schemas"]) == ["A", "B", "CreateChatCompletionRequest"]


def test_token_counts_need_no_network() -> None:
    """The encodings come from the repo's test data, not a download or ../shared."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_PROXY")}
    env["HTTPS_PROXY"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"  # any download would fail
    code = (
        "from flowrun.provider.tokens import count_text, _encoding\n"
        "assert _encoding('o200k_base') is not None and _encoding('cl100k_base') is not None\n"
        "print(count_text('hello world', 'gpt-4o'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "2"
    assert "approximate" not in out.stderr
    assert Path(env["TIKTOKEN_CACHE_DIR"]).resolve().is_relative_to(REPO)
