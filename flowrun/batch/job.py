"""A batch from a records file to an output file: stored, resumable, one line per record.

The output file is written in input order, one JSON line per record, line-buffered so each
finished record reaches the file at once. ``--resume`` (or ``flowrun resume BATCH_ID``) reads
the existing output, skips records whose line says they succeeded, runs the others (reusing
the completed steps the batch store kept for them), and writes the merged result: the old
lines of finished records and the new lines, in input order (``flowrun.batch.output_file``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowrun.batch.collector import BATCH_API_YOUNG, YOUNG, batch_collector
from flowrun.batch.modes import LIVE, BatchMode
from flowrun.batch.output_file import OutputWriter, previous_output
from flowrun.batch.progress import Progress
from flowrun.batch.records import ColumnMapping, RecordFile
from flowrun.batch.run import make_batch_services
from flowrun.batch.runner import DEFAULT_CONCURRENCY
from flowrun.batch.summary import BatchResult, BatchSummary, new_batch_id
from flowrun.engine.run_options import RunOptions
from flowrun.errors import UsageError
from flowrun.format.loader import LoadedWorkflow
from flowrun.provider.interface import ModelClient
from flowrun.results import StepResult
from flowrun.store.batches import BatchStore
from flowrun.store.locking import output_lock

FAILURES_SHOWN = 5


# --- the job -----------------------------------------------------------------------------


@dataclass
class BatchJob:
    """Everything a batch command needs (what ``flowrun resume BATCH_ID`` reloads)."""

    wf: LoadedWorkflow
    records: str
    output: str | None
    mapping: list[str] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    concurrency: int = DEFAULT_CONCURRENCY
    rpm: int | None = None
    tpm: int | None = None
    max_cost: float | None = None
    prices: str | None = None
    cache: bool = False
    resume: bool = False
    batch_id: str | None = None
    mode: BatchMode = LIVE  # live calls or the Batch API, chosen once
    transcripts: bool = True  # keep what each model call sent and got
    client: ModelClient | None = field(default=None, repr=False)  # default: OpenAIClient()

    def run_options(self) -> RunOptions:
        """The options every record's run shares."""
        return RunOptions(
            client=self.client,
            prices=self.prices,
            max_cost=self.max_cost,
            cache=self.cache,
            transcripts=self.transcripts,
        )

    def options(self) -> dict[str, Any]:
        """What the batch row keeps, so ``flowrun resume BATCH_ID`` can run it again."""
        return {
            "mapping": self.mapping,
            "constants": self.constants,
            "concurrency": self.concurrency,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "max_cost": self.max_cost,
            "prices": str(Path(self.prices).resolve()) if self.prices else None,
            "cache": self.cache,
            "via": self.mode.name,
            "transcripts": self.transcripts,
        }


async def run_job(job: BatchJob, progress: Progress, summary: BatchSummary) -> BatchSummary:
    """Run (or continue) a batch into its output file; ``summary`` is filled as it goes."""
    source = RecordFile(job.records)
    mapping = ColumnMapping(job.wf.spec, job.mapping, job.constants, file=source.name)
    mapping.check_file(source)
    out = Path(job.output) if job.output else None
    options = job.run_options().ready(job.wf)  # a missing key or price: exit 2, nothing stored
    with output_lock(out) as name_holder:  # one process writes an output (and its batch)
        return await _run_locked(job, progress, summary, source, mapping, out, options, name_holder)


async def _run_locked(
    job: BatchJob,
    progress: Progress,
    summary: BatchSummary,
    source: RecordFile,
    mapping: ColumnMapping,
    out: Path | None,
    options: RunOptions,
    name_holder: Any,
) -> BatchSummary:
    previous = previous_output(out, job.resume)
    with BatchStore() as store:
        batch_id, changed = _open_batch(store, job, source, out)
        name_holder(f"batch {batch_id}")
        summary.batch_id = batch_id
        summary.output = str(out) if out else None
        stored = store.stored_records(batch_id)
        if previous is not None:
            summary.skipped = previous.succeeded_count
            summary.earlier_cost_usd = previous.cost_usd
            store.drop_records(batch_id, [i for i in stored if previous.is_done(i)])
            stored = {i for i in stored if not previous.is_done(i)}
        count = source.count()
        summary.total = None if count is None else max(0, count - summary.skipped)

        def reuse(index: int) -> dict[str, StepResult]:
            if index not in stored:
                return {}
            steps = store.load_steps(batch_id, index)
            return {
                sid: r
                for sid, r in steps.items()
                if sid in job.wf.spec.steps and sid not in changed
            }

        services = make_batch_services(
            job.wf,
            options,
            mode=job.mode,
            rpm=job.rpm,
            tpm=job.tpm,
            spent=summary.earlier_cost_usd,  # the budget counts what earlier invocations spent
        )
        state = {}
        if job.mode.batch_api:
            from flowrun.store.batch_api_state import BatchState

            state = {"state": BatchState(store.path)}
        runner = job.mode.runner(
            job.wf,
            source.read(skip=previous.is_done if previous else None),
            mapping,
            services,
            concurrency=job.concurrency,
            store=store,
            batch_id=batch_id,
            reuse=reuse,
            summary=summary,
            progress=progress,
            check_first=previous is None,  # a resume must not stop at a bad line it reached
            **state,
        )
        rows = getattr(runner, "rows", None)
        if previous is not None and rows is not None:  # the aggregation covers every record
            _keep_earlier_records(rows, store.succeeded_steps(batch_id), source, mapping, previous)
        writer = OutputWriter(out, previous)
        ran = False
        results = runner.results()
        try:
            progress.start(summary)
            shown = 0
            with batch_collector(BATCH_API_YOUNG if job.mode.batch_api else YOUNG):
                async for result in results:
                    ran = True
                    try:
                        writer.write(result)
                    except OSError as exc:  # a full disk: the record's steps stay in the store
                        summary.write_error = writer.error_text(exc)
                        break
                    store.record_done(batch_id, result)
                    if not result.ok:
                        shown += 1
                        if shown <= FAILURES_SHOWN:
                            progress.note(_failure_line(result))
                        elif shown == FAILURES_SHOWN + 1:
                            progress.note("(further failures are only in the output file)")
            ran = True
        except (asyncio.CancelledError, KeyboardInterrupt):
            summary.interrupted = True
            raise
        finally:
            # first the runner stops its records and commits the steps they completed (the
            # records not written to OUT), while the store is still open
            await results.aclose()
            progress.close()
            if summary.write_error:
                writer.abandon()  # no more writes: a resume finishes OUT from the store
            else:
                try:
                    writer.close(ran=ran or summary.interrupted)
                except OSError as exc:
                    summary.write_error = writer.error_text(exc)
                    writer.abandon()
            if summary.metrics:
                store.save_metrics(batch_id, summary.metrics)
            store.finish(batch_id, summary.status if ran else "failed", summary.to_json())
            await services.aclose()
            if services.threads is not None:
                services.threads.close()
    return summary


def _keep_earlier_records(
    rows: Any, stored: dict[int, dict[str, Any]], source: RecordFile, mapping: Any, previous: Any
) -> None:
    """Give the aggregate steps the records a resume keeps: each one's inputs (read again from
    the records file) and steps (from the run store)."""
    for rec in source.read(skip=lambda i: not previous.is_done(i) or i not in stored):
        try:
            inputs, _extra = mapping.inputs_for(rec)
        except Exception:  # noqa: BLE001 - it succeeded before; a line changed since is left out
            continue
        rows.add_kept(rec.index, inputs, stored[rec.index])


def _failure_line(result: BatchResult) -> str:
    where = f" (line {result.line})" if result.line is not None else ""
    return f"record {result.index}{where} failed: {result.error}"


def _open_batch(
    store: BatchStore, job: BatchJob, source: RecordFile, out: Path | None
) -> tuple[str, set[str]]:
    """The batch id (an earlier one when resuming) and the steps whose stored results are stale."""
    from flowrun.engine.resume import changed_completed_steps

    output = str(out.resolve()) if out else None
    row = None
    if job.batch_id:
        row = store.get(job.batch_id)
    elif job.resume and output:
        row = store.latest_for_output(output)
    records = None if source.stdin else str(source.path.resolve())
    if row is None:
        batch_id = job.batch_id or new_batch_id()
        store.create(batch_id, job.wf, records, output, job.options())
        return batch_id, set()
    if row.running_elsewhere:
        raise UsageError(
            f"batch {row.id} is still running (pid {row.pid}); wait for it, or stop it first"
        )
    changed: set[str] = set()
    if row.workflow_hash != job.wf.content_hash:
        everything = {sid: None for sid in job.wf.spec.steps}
        changed = set(changed_completed_steps(row.workflow_text, job.wf, everything))  # type: ignore[arg-type]
    store.restart(row.id, job.wf, records, job.options())
    return row.id, changed
