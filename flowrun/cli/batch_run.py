"""``flowrun run FILE --batch RECORDS`` and ``flowrun resume BATCH_ID``: parse, run, report.

Exit codes: 0 every record succeeded; 1 a record failed, the budget stopped the batch, or it
was interrupted; 2 the files or options are invalid (nothing was run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from flowrun.cli.common import MAX_COUNT, emit_json
from flowrun.errors import RunFailed, RunInterrupted, UsageError

WARNINGS_SHOWN = 5  # distinct warnings in the closing lines (every one is in --json)

if TYPE_CHECKING:  # the batch modules load only when a batch runs (keeps --help quick)
    from flowrun.batch.job import BatchJob
    from flowrun.batch.modes import BatchMode
    from flowrun.batch.summary import BatchSummary
    from flowrun.format.loader import LoadedWorkflow


def resume_limit_options(f: Any) -> Any:
    """``--concurrency``/``--rpm``/``--tpm`` for ``flowrun resume BATCH_ID`` (override the
    stored ones)."""
    f = click.option(
        "--tpm",
        type=click.IntRange(min=1, max=MAX_COUNT),
        metavar="N",
        help="A batch: tokens per minute.",
    )(f)
    f = click.option(
        "--rpm",
        type=click.IntRange(min=1, max=MAX_COUNT),
        metavar="N",
        help="A batch: requests per minute.",
    )(f)
    return click.option(
        "--concurrency",
        type=click.IntRange(min=1, max=MAX_COUNT),
        metavar="N",
        help="A batch: records in flight (these three override the stored values).",
    )(f)


def check_no_limits(**limits: int | None) -> None:
    """A run (not a batch) takes no ``--concurrency``/``--rpm``/``--tpm``."""
    for name, value in limits.items():
        if value is not None:
            raise UsageError(f"--{name} goes with a batch id (batch-...)")


def run_batch_command(
    wf: LoadedWorkflow,
    records: str,
    output: str | None,
    *,
    pairs: tuple[str, ...] = (),
    inputs_file: str | None = None,
    concurrency: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    mapping: tuple[str, ...] = (),
    resume: bool = False,
    via: str | BatchMode = "live",
    as_json: bool = False,
    quiet: bool = False,
    max_cost: float | None = None,
    prices: str | None = None,
    cache: bool = False,
    transcripts: bool = True,
    client: Any = None,
) -> None:
    """``run --batch``: constants from ``-i``/``--inputs-file``, then the job, then the report."""
    from flowrun.batch.job import BatchJob
    from flowrun.batch.modes import batch_mode
    from flowrun.format.inputs import parse_cli_inputs, read_inputs_file

    mode = batch_mode(via)
    if not mode.rate_limited and (rpm or tpm):
        raise UsageError(
            "--rpm/--tpm do not apply to --via batch-api: the Batch API has its own, separate limits"
        )
    if output is None and as_json:
        raise UsageError("--json with --batch needs --output (the result lines would share stdout)")
    constants = read_inputs_file(inputs_file) if inputs_file else {}
    constants.update(parse_cli_inputs(wf.spec, pairs))
    job = BatchJob(
        wf=wf,
        records=records,
        output=output,
        mapping=list(mapping),
        constants=constants,
        concurrency=concurrency or mode.default_concurrency,
        rpm=rpm,
        tpm=tpm,
        max_cost=max_cost,
        prices=prices,
        cache=cache,
        resume=resume,
        mode=mode,
        transcripts=transcripts,
        client=client,
    )
    _run(job, as_json=as_json, quiet=quiet)


def resume_batch_command(
    batch_id: str,
    *,
    as_json: bool = False,
    quiet: bool = False,
    max_cost: float | None = None,
    prices: str | None = None,
    cache: bool = False,
    concurrency: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
) -> None:
    """``flowrun resume BATCH_ID``: the stored command again, with ``--resume``; the budget,
    prices, concurrency and rate limits given here override the stored ones."""
    from pathlib import Path

    from flowrun.batch.job import BatchJob
    from flowrun.batch.modes import batch_mode
    from flowrun.format.loader import load_workflow
    from flowrun.store.batches import BatchStore

    with BatchStore() as store:
        row = store.get(batch_id)
    if not row.workflow_path or not Path(row.workflow_path).exists():
        raise UsageError(f"the workflow file of {row.id} ({row.workflow_path}) no longer exists")
    if not row.records_path:
        raise UsageError(f"{row.id} read its records from stdin; run the command again instead")
    if not row.output_path:
        raise UsageError(f"{row.id} wrote its results to stdout, so there is nothing to continue")
    opts = row.options
    mode = batch_mode(opts.get("via"))
    if not mode.rate_limited and (rpm or tpm):
        raise UsageError("--rpm/--tpm do not apply to a --via batch-api run")
    job = BatchJob(
        wf=load_workflow(row.workflow_path),
        records=row.records_path,
        output=row.output_path,
        mapping=list(opts.get("mapping") or []),
        constants=dict(opts.get("constants") or {}),
        concurrency=concurrency or int(opts.get("concurrency") or mode.default_concurrency),
        rpm=rpm or opts.get("rpm"),
        tpm=tpm or opts.get("tpm"),
        max_cost=max_cost if max_cost is not None else opts.get("max_cost"),
        prices=prices or opts.get("prices"),
        cache=bool(cache) or bool(opts.get("cache")),
        resume=True,
        batch_id=row.id,
        mode=mode,
        transcripts=opts.get("transcripts", True) is not False,
    )
    _run(job, as_json=as_json, quiet=quiet)


def _run(job: BatchJob, *, as_json: bool, quiet: bool) -> None:
    import gc

    from flowrun.batch.job import run_job
    from flowrun.batch.progress import make_progress
    from flowrun.batch.summary import BatchSummary

    # Modules, the workflow and the client live as long as this process: move them out of the
    # collector's sight, so its full collections during a long batch do not rescan them all.
    gc.freeze()
    summary = BatchSummary()
    if job.mode.batch_api:
        from flowrun.batch.batch_api.progress import make_wave_progress

        make_progress = make_wave_progress
    progress = make_progress(quiet)
    try:
        import asyncio

        asyncio.run(run_job(job, progress, summary))
    except KeyboardInterrupt:
        if summary.batch_id is None:  # before anything started: nothing to report
            raise
        summary.interrupted = True
    if as_json:
        emit_json(summary.to_json())
    elif not quiet:
        click.echo(format_summary(summary), err=True)
    resume = f"flowrun resume {summary.batch_id}"
    if summary.write_error:
        raise RunFailed(
            summary.write_error,
            hint="the finished records are kept in the run store and are not asked again; "
            f"make room and continue with: {resume}",
        )
    if summary.interrupted:
        pending = "" if not summary.pending else f"; {summary.pending:,} pending records"
        waiting = (
            " (requests already submitted are collected, not sent again)"
            if job.mode.batch_api
            else ""
        )
        raise RunInterrupted(
            f"interrupted; finished records are in the output{pending}",
            hint=f"continue with: {resume}{waiting}",
        )
    if summary.stopped:
        raise RunFailed(
            f"batch stopped: {summary.stopped}",
            hint=f"raise --max-cost and continue with: {resume} --max-cost USD",
        )
    if summary.aggregate_error:
        raise RunFailed(f"aggregate {summary.aggregate_error}")
    if summary.failed:
        raise RunFailed(
            f"{summary.failed:,} of {summary.done:,} records failed (see {summary.output or 'the output'})",
            hint=f"fix the cause and retry only them with: {resume}",
        )


def format_summary(summary: BatchSummary) -> str:
    """The batch's closing lines on stderr."""
    cost = summary.cost
    rate = summary.done / summary.duration_s if summary.duration_s > 0 else 0.0
    head = f"batch {summary.batch_id}: {summary.succeeded:,} succeeded, {summary.failed:,} failed"
    if summary.skipped:
        head += f", {summary.skipped:,} already done"
    if summary.not_run:
        head += f", {summary.not_run:,} not run"
    if summary.interrupted or summary.write_error:
        pending = summary.pending
        head += f", {pending:,} pending" if pending is not None else ", the rest pending"
    head += f" in {summary.duration_s:.2f}s ({rate:,.1f} records/s)"
    dollars = f"${cost.total_usd:.6f}"
    if cost.mock_calls:
        dollars = "no dollars (mock run)"
    elif cost.unpriced_models:
        dollars += f" + unpriced calls to {', '.join(cost.unpriced_models)}"
    tokens = (
        f"tokens: {cost.prompt_tokens:,} prompt + {cost.completion_tokens:,} completion "
        f"in {cost.calls:,} calls · cost {dollars}"
    )
    if summary.earlier_cost_usd:
        tokens += f" (earlier runs: ${summary.earlier_cost_usd:.6f})"
    if cost.batch_discount:
        tokens += " · Batch API price: 50% off"
    lines = [head, tokens]
    if cost.approximate_calls:
        n = cost.approximate_calls
        lines.append(
            f"~: approximate: {n:,} call{'' if n == 1 else 's'} came back without usage; "
            "counted locally with tiktoken"
        )
    if summary.metrics:
        from flowrun.cli.text import metric_text

        over = f"over {summary.metrics_records:,} records"
        lines.append(f"metrics ({over}): {metric_text(summary.metrics)}")
    for message, count in list(summary.warnings.items())[:WARNINGS_SHOWN]:
        records = f"{count:,} record{'s' if count != 1 else ''}"
        lines.append(f"warning ({records}): {message}")
    if len(summary.warnings) > WARNINGS_SHOWN:
        more = len(summary.warnings) - WARNINGS_SHOWN
        lines.append(f'(and {more:,} other warnings: see "warnings" in the output lines)')
    if summary.output:
        lines.append(f"output: {summary.output}")
    return "\n".join(lines)
