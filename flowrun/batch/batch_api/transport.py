"""The Files and Batches API calls, through the openai SDK client of ``flowrun.provider.client``.

Errors come back as ``ModelCallError`` (with a message safe to show and ``retryable``);
the SDK's own retries (429, 5xx, connection errors) have been taken by then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from flowrun.errors import BatchAPIMissing, ModelCallError
from flowrun.provider.client import OpenAIClient, api_error

DOWNLOAD_CHUNK = 1 << 20  # bytes read from the response at a time


def _default_url() -> str:
    import os

    return os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"


@dataclass
class BatchSnapshot:
    """What ``GET /batches/{id}`` said."""

    id: str
    status: str
    input_file_id: str
    endpoint: str = ""
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    created_at: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_sdk(cls, batch: Any) -> BatchSnapshot:
        counts = batch.request_counts
        errors = getattr(batch.errors, "data", None) or []
        return cls(
            id=batch.id,
            status=batch.status,
            input_file_id=batch.input_file_id,
            endpoint=batch.endpoint,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            total=counts.total if counts else 0,
            completed=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            errors=[
                f"{e.code or 'error'}: {e.message}" + (f" (line {e.line})" if e.line else "")
                for e in errors
            ],
            created_at=batch.created_at,
            metadata=dict(batch.metadata or {}),
        )


class BatchTransport:
    """Upload, create, retrieve, cancel, list and download; ``seconds`` sums the time spent."""

    def __init__(self, client: OpenAIClient) -> None:
        self.client = client
        self.seconds = 0.0  # time spent waiting on the API (for the local-overhead figure)

    async def _call(self, call: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call
        except Exception as exc:
            raise api_error(exc) from None
        finally:
            self.seconds += time.perf_counter() - started

    async def upload(self, filename: str, data: bytes) -> str:
        """Upload a batch input file; a server without the Files API (404) is a
        ``BatchAPIMissing``: the run cannot go this way at all."""
        files = self.client.sdk().files
        try:
            created = await self._call(
                files.create(file=(filename, data, "application/jsonl"), purpose="batch")
            )
        except ModelCallError as exc:
            if exc.status in (404, 405, 501):
                raise self._missing("/files", exc) from None
            raise
        return str(created.id)

    def _missing(self, path: str, exc: ModelCallError) -> BatchAPIMissing:
        server = getattr(self.client, "server", None)
        url = server.url if server is not None else _default_url()
        who = f"server '{server.name}'" if server is not None else "the server"
        return BatchAPIMissing(
            f"{who} has no Batch API: POST {url.rstrip('/')}{path} answered {exc.status}; "
            'run with via="live" instead'
        )

    async def create(self, file_id: str, endpoint: str, metadata: dict[str, str]) -> BatchSnapshot:
        """One attempt: the SDK must not retry it (a retry could create a second batch)."""
        batches = self.client.sdk(max_retries=0).batches
        batch = await self._call(
            batches.create(
                input_file_id=file_id,
                endpoint=endpoint,
                completion_window="24h",
                metadata=metadata,
            )
        )
        return BatchSnapshot.from_sdk(batch)

    async def retrieve(self, batch_id: str) -> BatchSnapshot:
        return BatchSnapshot.from_sdk(
            await self._call(self.client.sdk().batches.retrieve(batch_id))
        )

    async def cancel(self, batch_id: str) -> BatchSnapshot:
        return BatchSnapshot.from_sdk(await self._call(self.client.sdk().batches.cancel(batch_id)))

    async def recent(self, since: float, limit: int = 100) -> list[BatchSnapshot]:
        """Batches created at or after ``since`` (unix seconds), newest first."""
        found: list[BatchSnapshot] = []
        after: str | None = None
        batches = self.client.sdk().batches
        while True:
            options = {"limit": limit, **({"after": after} if after else {})}
            page = await self._call(batches.list(**options))
            items = [BatchSnapshot.from_sdk(b) for b in page.data]
            found += [b for b in items if b.created_at >= since]
            if not items or not page.has_more or items[-1].created_at < since:
                return found
            after = items[-1].id

    async def find(
        self, file_ids: set[str], since: float, exclude: frozenset[str] = frozenset()
    ) -> dict[str, BatchSnapshot]:
        """The newest batch created on each of ``file_ids`` since ``since`` (unix seconds),
        not counting the batches in ``exclude``: how a batch whose id never reached the run
        store (a crash while create was answering) is found."""
        found: dict[str, BatchSnapshot] = {}
        for batch in await self.recent(since):  # newest first
            if batch.input_file_id in file_ids and batch.id not in exclude:
                found.setdefault(batch.input_file_id, batch)
        return found

    async def download(self, file_id: str, into: BinaryIO) -> int:
        """Stream a file's content into ``into`` a chunk at a time (an output file can be
        a gigabyte: it is never held whole); its size in bytes."""
        started = time.perf_counter()
        size = 0
        try:
            files = self.client.sdk().files
            async with files.with_streaming_response.content(file_id) as response:
                async for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                    into.write(chunk)
                    size += len(chunk)
        except Exception as exc:
            raise api_error(exc) from None
        finally:
            self.seconds += time.perf_counter() - started
        return size
