"""Shared fixtures: an offline OpenAI-compatible server validated against the OpenAPI spec."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowrun.testing import LoopbackServer, OpenAPIValidator

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SPEC_PATH = SHARED / "openai-openapi" / "openapi.json"

if (SHARED / "tiktoken-cache").is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken-cache"))


@pytest.fixture(scope="session")
def openapi_validator() -> OpenAPIValidator | None:
    """The official OpenAI OpenAPI spec, loaded once per session (``None`` if absent)."""
    if not SPEC_PATH.is_file():
        warnings.warn(
            f"{SPEC_PATH} not found: requests are not validated against the OpenAPI spec",
            pytest.PytestWarning,
            stacklevel=1,
        )
        return None
    return OpenAPIValidator(SPEC_PATH)


@pytest.fixture
def server(
    openapi_validator: OpenAPIValidator | None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LoopbackServer]:
    """A running loopback server that OPENAI_BASE_URL/OPENAI_API_KEY point at.

    The test fails if any request it received violated the OpenAPI spec.
    """
    with LoopbackServer(validator=openapi_validator) as srv:
        for key, value in srv.env().items():
            monkeypatch.setenv(key, value)
        yield srv
    if srv.spec_violations:
        pytest.fail("requests violated the OpenAI OpenAPI spec:\n" + "\n".join(srv.spec_violations))


@pytest.fixture(autouse=True)
def _flowrun_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Never let tests touch the real ``FLOWRUN_HOME``."""
    home = tmp_path_factory.mktemp("flowrun-home")
    monkeypatch.setenv("FLOWRUN_HOME", str(home))
    return home


# The plugin users get on install; registered here too so the suite runs from a plain checkout.
pytest_plugins = ["flowrun.pytest_plugin"]
