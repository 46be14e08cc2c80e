"""Shared fixtures: an offline OpenAI-compatible server validated against the OpenAPI spec.

The suite needs nothing outside the repository: the request schemas are the subset of the
official spec vendored in ``flowrun/testing/data/openai-openapi`` and the tiktoken encodings
are test data in ``tests/data/tiktoken-cache`` (tiktoken's own cache layout and file names;
tiktoken checks each file's sha256), so token counts never need the network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from flowrun.testing import LoopbackServer, OpenAPIValidator, validate_every_server

REPO = Path(__file__).resolve().parent.parent
TIKTOKEN_CACHE = REPO / "tests" / "data" / "tiktoken-cache"
# Set (not defaulted) so every run, and every CLI subprocess a test starts, counts with these.
os.environ["TIKTOKEN_CACHE_DIR"] = str(TIKTOKEN_CACHE)


@pytest.fixture(scope="session", autouse=True)
def openapi_validator() -> Iterator[OpenAPIValidator]:
    """The vendored subset of the official OpenAI OpenAPI spec, loaded once per session.

    Every loopback server of the session checks its requests with it, including those the
    tests do not create themselves (``--mock`` runs, the ``flowrun_server`` fixture).
    """
    validator = OpenAPIValidator()
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
    """Never let tests touch the real ``FLOWRUN_HOME`` or the user's config file."""
    home = tmp_path_factory.mktemp("flowrun-home")
    monkeypatch.setenv("FLOWRUN_HOME", str(home))
    monkeypatch.delenv("FLOWRUN_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    return home


# The plugin users get on install; registered here too so the suite runs from a plain checkout.
pytest_plugins = ["flowrun.pytest_plugin"]


@pytest.fixture
def client(server: LoopbackServer) -> openai.OpenAI:
    """The openai SDK's own client on the test's loopback server (the ``server`` fixture sets
    OPENAI_BASE_URL and OPENAI_API_KEY)."""
    return openai.OpenAI()
