"""``flowrun batches list`` and ``flowrun batches cancel RUN_ID``, as Python functions."""

from __future__ import annotations

from dataclasses import dataclass

from flowrun.batch.batch_api.transport import BatchTransport
from flowrun.errors import UsageError
from flowrun.provider.client import ModelCallError, OpenAIClient
from flowrun.store.batch_api_state import TERMINAL, BatchState, FileRow


@dataclass
class Listing:
    rows: list[FileRow]
    warning: str | None = None  # why the statuses could not be refreshed


async def find_lost_batches(
    transport: BatchTransport, state: BatchState, rows: list[FileRow]
) -> None:
    """Rows uploaded but without a batch id (the process died while create was answering):
    find each one's batch by its input file, and store it (``rows`` are updated too)."""
    lost = [r for r in rows if r.batch_id is None and r.status == "uploaded"]
    if not lost:
        return
    since = min(r.submitted_ts for r in lost) - 600
    found = await transport.find({r.file_id for r in lost}, since)
    for row in lost:
        batch = found.get(row.file_id)
        if batch is not None:
            state.batch_status(row.file_id, batch.status, batch_id=batch.id)
            row.batch_id, row.status = batch.id, batch.status


async def list_batches(
    run_id: str | None = None, *, limit: int = 50, refresh: bool = True
) -> Listing:
    """Submitted batches, newest first; unfinished ones are refreshed from the API."""
    with BatchState() as state:
        rows = state.files(run_id, limit=limit)
        if run_id and not rows:
            raise UsageError(f"no Batch API batches for run '{run_id}' (see: flowrun batches list)")
        stale = [r for r in rows if r.status not in TERMINAL]
        if not (refresh and stale):
            return Listing(rows)
        client = OpenAIClient()
        transport = BatchTransport(client)
        try:
            await find_lost_batches(transport, state, stale)
            for row in (r for r in stale if r.batch_id):
                snap = await transport.retrieve(row.batch_id)  # type: ignore[arg-type]
                state.batch_status(
                    row.file_id, snap.status, completed=snap.completed, failed=snap.failed
                )
        except ModelCallError as exc:
            return Listing(rows, f"statuses as last seen; could not refresh them: {exc}")
        finally:
            await client.aclose()
        return Listing(state.files(run_id, limit=limit))


async def cancel_run(run_id: str) -> tuple[str, list[tuple[str, str]]]:
    """Cancel the run's unfinished batches; ``(run_id, [(batch_id, status), ...])``.

    The run is marked cancelled first, so its process (if still running) submits no new
    wave and does not retry the cancelled requests; ``flowrun resume`` lifts the mark.
    """
    with BatchState() as state:
        rows = state.files(run_id, limit=1_000_000)
        runs = {r.run_id for r in rows}
        if not runs:
            raise UsageError(f"no Batch API batches for run '{run_id}' (see: flowrun batches list)")
        if len(runs) > 1:
            raise UsageError(f"'{run_id}' matches several runs: {', '.join(sorted(runs))}")
        full = runs.pop()
        state.request_cancel(full)
        live = [r for r in rows if r.status not in TERMINAL]
        if not live:
            return full, []
        client = OpenAIClient()
        transport = BatchTransport(client)
        cancelled: list[tuple[str, str]] = []
        try:
            await find_lost_batches(transport, state, live)
            for row in (r for r in live if r.batch_id and r.status not in TERMINAL):
                try:
                    snap = await transport.cancel(row.batch_id)  # type: ignore[arg-type]
                except ModelCallError as exc:
                    if exc.status != 409:  # 409: it finished meanwhile
                        raise UsageError(f"cancelling {row.batch_id} failed: {exc}") from None
                    snap = await transport.retrieve(row.batch_id)  # type: ignore[arg-type]
                state.batch_status(
                    row.file_id, snap.status, completed=snap.completed, failed=snap.failed
                )
                cancelled.append((snap.id, snap.status))
        finally:
            await client.aclose()
        return full, cancelled
