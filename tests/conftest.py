"""Shared fixtures: an offline OpenAI-compatible server validated against the OpenAPI spec."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowrun.testing import LoopbackServer, OpenAPIValidator, validate_every_server

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SPEC_PATH = SHARED / "openai-openapi" / "openapi.json"

if (SHARED / "tiktoken-cache").is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken-cache"))


@pytest.fixture(scope="session", autouse=True)
def openapi_validator() -> Iterator[OpenAPIValidator | None]:
    """The official OpenAI OpenAPI spec, loaded once per session.

    Every loopback server of the session checks its requests with it, including those the
    tests do not create themselves (``--mock`` runs, the ``flowrun_server`` fixture). Without
    the spec the suite does not run (set FLOWRUN_TESTS_WITHOUT_OPENAPI=1 to run it unchecked).
    """
    if not SPEC_PATH.is_file():
        if os.environ.get("FLOWRUN_TESTS_WITHOUT_OPENAPI") != "1":
            pytest.exit(
                f"{SPEC_PATH} not found: the tests check every request against the OpenAI "
                "OpenAPI spec (set FLOWRUN_TESTS_WITHOUT_OPENAPI=1 to run them unchecked)",
                returncode=1,
            )
        yield None
        return
    validator = OpenAPIValidator(SPEC_PATH)
    validate_every_server(validator)
    yield validator
    validate_every_server(None)


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
