"""``flowrun batches list`` and ``flowrun batches cancel RUN_ID``: the Batch API's batches."""

from __future__ import annotations

import click

from flowrun.cli.common import CONTEXT, MAX_COUNT, Group, emit_json


@click.group(cls=Group, context_settings=CONTEXT)
def batches() -> None:
    """Batches sent to the OpenAI Batch API (runs with --via batch-api).

    \b
    Examples:
      flowrun batches list
      flowrun batches list --run batch-20261125-061502-a1b2c3 --json
      flowrun batches cancel batch-20261125-061502-a1b2c3
    """


@batches.command("list", context_settings=CONTEXT)
@click.option("--run", "run_id", metavar="RUN_ID", help="Only the batches of this run.")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=MAX_COUNT),
    default=50,
    show_default=True,
    help="How many.",
)
@click.option("--no-refresh", is_flag=True, help="Show the statuses last seen; do not ask the API.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def batches_list(run_id: str | None, limit: int, no_refresh: bool, as_json: bool) -> None:
    """List submitted batches, newest first, with status and counts.

    \b
    Examples:
      flowrun batches list
      flowrun batches list --run batch-20261125-061502-a1b2c3 --json
    """
    from flowrun.api import run_sync
    from flowrun.batch.batch_api.manage import list_batches
    from flowrun.cli.text import table

    listing = run_sync(list_batches(run_id, limit=limit, refresh=not no_refresh))
    if listing.warning:
        click.echo(f"warning: {listing.warning}", err=True)
    if as_json:
        emit_json([r.to_json() for r in listing.rows])
        return
    if not listing.rows:
        click.echo("no batches yet (flowrun run FILE --batch RECORDS --via batch-api submits some)")
        return
    lines = [["run", "wave", "batch", "endpoint", "model", "status", "done", "failed", "total"]]
    lines += [
        [
            r.run_id,
            str(r.wave),
            r.batch_id or f"({r.file_id})",
            r.endpoint.removeprefix("/v1/"),
            r.model,
            r.status,
            f"{r.completed:,}",
            f"{r.failed:,}",
            f"{r.requests:,}",
        ]
        for r in listing.rows
    ]
    click.echo(table(lines, right={1, 6, 7, 8}))


@batches.command("cancel", context_settings=CONTEXT)
@click.argument("run_id")
def batches_cancel(run_id: str) -> None:
    """Cancel a run's unfinished batches; its process submits nothing more.

    Requests already answered keep their results; `flowrun resume RUN_ID` goes on later.

    \b
    Example:
      flowrun batches cancel batch-20261125-061502-a1b2c3
    """
    from flowrun.api import run_sync
    from flowrun.batch.batch_api.manage import cancel_run

    full, cancelled = run_sync(cancel_run(run_id))
    if not cancelled:
        click.echo(f"run {full}: no batch in flight; it will submit no more")
        return
    for batch_id, status in cancelled:
        click.echo(f"{batch_id}: {status}")
    click.echo(
        f"run {full}: {len(cancelled)} batch(es) cancelled; resume with: flowrun resume {full}"
    )
