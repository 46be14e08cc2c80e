"""One model client per named server, made on first use and closed together.

A server with ``rpm``/``tpm`` gets a rate-limited client (``flowrun.provider.ratelimit``) of
its own: each server's limits are its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowrun.provider.servers import ServerSettings


class ServerClients:
    """The model client of each named server, made on first use."""

    def __init__(
        self,
        settings: dict[str, ServerSettings],
        make: Callable[[ServerSettings], Any] | None = None,
    ) -> None:
        self.settings = settings
        self._make = make or _default_client
        self._clients: dict[str, Any] = {}

    def client(self, name: str) -> Any:
        if name not in self._clients:
            self._clients[name] = self._make(self.settings[name])
        return self._clients[name]

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def _default_client(settings: ServerSettings) -> Any:
    from flowrun.provider.client import OpenAIClient

    client: Any = OpenAIClient(server=settings)
    if settings.rpm or settings.tpm:
        from flowrun.provider.ratelimit import RateLimitedClient, RateLimiter

        client = RateLimitedClient(client, RateLimiter(settings.rpm, settings.tpm))
    return client
