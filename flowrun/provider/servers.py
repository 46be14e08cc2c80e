"""A named server's settings: what the provider needs of it.

The engine builds ``ServerSettings`` from the workflow's ``servers:`` (or the user config);
``flowrun.provider.client.ModelClient(server=...)`` calls it, and
``flowrun.provider.server_clients.ServerClients`` keeps one client per server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPENAI_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class ServerSettings:
    """One server: where it is, how to authenticate, and how it differs from OpenAI."""

    name: str
    base_url: str | None = None
    api_key_env: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    organization: str | None = None
    project: str | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    azure_endpoint: str | None = None
    azure_api_version: str | None = None
    deployments: dict[str, str] = field(default_factory=dict)
    max_tokens_param: str = "max_completion_tokens"
    tool_call_content: str | None = None  # "null", "empty", or None: null until refused

    @property
    def url(self) -> str:
        """Where requests go, for messages."""
        if self.azure_endpoint:
            return self.azure_endpoint
        return self.base_url or OPENAI_URL
