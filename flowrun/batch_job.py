"""A batch from a records file to an output file: stored, resumable, one line per record.

The output file is written in input order, one JSON line per record, line-buffered so each
finished record reaches the file at once. ``--resume`` (or ``flowrun resume BATCH_ID``) reads
the existing output, skips records whose line says they succeeded, runs the others (reusing
the completed steps the batch store kept for them), and writes the merged result: the old
lines of finished records and the new lines, in input order, via ``OUT.partial`` replaced
atomically at the end (Ctrl-C finishes the merge; a resume killed hard leaves the old
output as it was).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from .batch import (
    DEFAULT_CONCURRENCY,
    BatchResult,
    BatchRunner,
    BatchSummary,
    make_batch_services,
)
from .batch_store import BatchStore
from .errors import UsageError
from .loader import LoadedWorkflow
from .progress import Progress
from .records import ColumnMapping, RecordFile
from .results import StepResult

_INDEX_PREFIX = re.compile(rb'^\{"index": (\d+)')
FAILURES_SHOWN = 5


def new_batch_id() -> str:
    """``batch-`` + UTC timestamp + random suffix (``flowrun resume`` tells batches by it)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"batch-{stamp}-{secrets.token_hex(3)}"


# --- the output file ---------------------------------------------------------------------


@dataclass
class PreviousOutput:
    """What an existing output file says: which records are done, and what they cost."""

    path: Path
    succeeded: bytearray = field(default_factory=bytearray)  # bitmap by record index
    succeeded_count: int = 0
    lines: int = 0
    cost_usd: float = 0.0

    def is_done(self, index: int) -> bool:
        byte = index >> 3
        return byte < len(self.succeeded) and bool(self.succeeded[byte] & (1 << (index & 7)))

    def _mark(self, index: int) -> None:
        byte = index >> 3
        if byte >= len(self.succeeded):
            self.succeeded.extend(bytes(byte + 1 - len(self.succeeded)))
        self.succeeded[byte] |= 1 << (index & 7)
        self.succeeded_count += 1


def scan_output(path: Path) -> PreviousOutput:
    """Read an output file written by an earlier run (a cut-off last line is ignored)."""
    previous = PreviousOutput(path)
    last = -1
    pending_error: str | None = None
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            if pending_error:
                raise UsageError(pending_error, hint="it is not a flowrun batch output file")
            try:
                data = json.loads(raw)
                index, status = data["index"], data["status"]
                if not isinstance(index, int) or index < 0:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                # only the very last line may be broken: a crash cut it off
                pending_error = (
                    f"{path}:{lineno}: not a result line, so --resume cannot continue it"
                )
                continue
            if index <= last:
                raise UsageError(
                    f"{path}:{lineno}: record {index} is out of order; --resume needs the output "
                    "as flowrun wrote it (in input order)"
                )
            last = index
            previous.lines += 1
            previous.cost_usd += float(data.get("cost_usd") or 0.0)
            if status == "succeeded":
                previous._mark(index)
    return previous


def _previous_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(index, raw line) of every well-formed line of an earlier output, in order."""
    with path.open("rb") as f:
        for raw in f:
            match = _INDEX_PREFIX.match(raw)
            if match and raw.endswith(b"\n"):
                yield int(match.group(1)), raw
                continue
            try:
                data = json.loads(raw)
                yield int(data["index"]), raw.rstrip(b"\n") + b"\n"
            except (ValueError, KeyError, TypeError):
                continue


class OutputWriter:
    """Writes result lines in order; on resume, merges them with the earlier output's lines.

    The file is opened on the first line, so a batch refused before any record ran leaves
    no (or the old) output behind.
    """

    def __init__(self, path: Path | None, previous: PreviousOutput | None = None) -> None:
        self.path = path
        self.previous = previous
        self._old: Iterator[tuple[int, bytes]] | None = None
        self._held: tuple[int, bytes] | None = None
        self.f: TextIO | None = sys.stdout if path is None else None
        self.target = path
        if path is not None and previous is not None:
            self.target = path.with_name(path.name + ".partial")
            self._old = _previous_lines(previous.path)

    def _open(self) -> TextIO:
        if self.f is None:
            assert self.target is not None
            try:
                self.f = self.target.open("w", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise UsageError(f"cannot write the output {self.target}: {exc.strerror}") from None
        return self.f

    def write(self, result: BatchResult) -> None:
        f = self._open()
        self._copy_old(f, before=result.index)
        f.write(json.dumps(result.to_json(), ensure_ascii=False, default=str) + "\n")

    def _copy_old(self, f: TextIO, before: int | None) -> None:
        """Copy earlier lines with an index below ``before`` (all when None); drop ``before``'s."""
        if self._old is None:
            return
        while True:
            item = self._held or next(self._old, None)
            self._held = None
            if item is None:
                self._old = None
                return
            index, raw = item
            if before is not None and index >= before:
                if index > before:
                    self._held = item
                return
            f.write(raw.decode("utf-8"))

    def close(self, ran: bool = True) -> None:
        """Finish the file: the rest of the earlier lines, then (resume) replace the output.

        ``ran=False`` (the batch was refused before running): leave everything as it was.
        """
        if self.path is None:
            if self.f is not None:
                self.f.flush()
            return
        if self.f is None and (self.previous is not None or not ran):
            return  # nothing new: the earlier output (if any) is already complete
        f = self._open()
        self._copy_old(f, before=None)
        f.close()
        if self.target != self.path:
            os.replace(self.target, self.path)


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
    via: str = "live"

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
            "via": self.via,
        }


async def run_job(job: BatchJob, progress: Progress, summary: BatchSummary) -> BatchSummary:
    """Run (or continue) a batch into its output file; ``summary`` is filled as it goes."""
    source = RecordFile(job.records)
    mapping = ColumnMapping(job.wf.spec, job.mapping, job.constants, file=source.name)
    mapping.check_file(source)
    out = Path(job.output) if job.output else None
    previous = _previous_output(out, job.resume)
    with BatchStore() as store:
        batch_id, changed = _open_batch(store, job, source, out)
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
            prices=job.prices,
            max_cost=job.max_cost,
            cache=True if job.cache else None,
            rpm=job.rpm,
            tpm=job.tpm,
        )
        if services.budget is not None:
            services.budget.spent += summary.earlier_cost_usd
        runner_class = BatchRunner
        extra: dict[str, Any] = {}
        if job.via == "batch-api":
            from .batch_api.runner import WaveBatchRunner
            from .batch_api.state import BatchState

            runner_class, extra = WaveBatchRunner, {"state": BatchState(store.path)}
        runner = runner_class(
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
            **extra,
        )
        writer = OutputWriter(out, previous)
        ran = False
        try:
            progress.start(summary)
            shown = 0
            async for result in runner.results():
                ran = True
                writer.write(result)
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
            progress.close()
            writer.close(ran=ran or summary.interrupted)
            store.finish(batch_id, summary.status if ran else "failed", summary.to_json())
            await services.client.aclose()
            if services.threads is not None:
                services.threads.close()
    return summary


def _failure_line(result: BatchResult) -> str:
    where = f" (line {result.line})" if result.line is not None else ""
    return f"record {result.index}{where} failed: {result.error}"


def _previous_output(out: Path | None, resume: bool) -> PreviousOutput | None:
    if out is None:
        if resume:
            raise UsageError("--resume needs --output (the file it continues)")
        return None
    if out.is_dir():
        raise UsageError(f"--output {out} is a directory")
    if not out.exists() or out.stat().st_size == 0:
        return None
    if not resume:
        raise UsageError(
            f"the output {out} already exists",
            hint="continue it with --resume (only records not yet succeeded are run), "
            "or choose another --output",
        )
    return scan_output(out)


def _open_batch(
    store: BatchStore, job: BatchJob, source: RecordFile, out: Path | None
) -> tuple[str, set[str]]:
    """The batch id (an earlier one when resuming) and the steps whose stored results are stale."""
    from .resume import changed_completed_steps

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
