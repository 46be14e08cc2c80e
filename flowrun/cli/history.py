"""``flowrun runs``: one history of single runs, live batches and Batch API batches.

``list`` (filters, ``--json``), ``show`` (a run, a batch, ``--record N``, ``--step ID`` with
its transcript) and ``prune`` (delete old runs and shrink the store).
"""

from __future__ import annotations

from typing import Any

import click

from flowrun.cli.common import CONTEXT, MAX_COUNT, Group, emit_json
from flowrun.redaction import redact

KINDS = ("run", "batch", "batch-api")
STATUSES = ("running", "succeeded", "failed", "interrupted")


@click.group(cls=Group, context_settings=CONTEXT)
def runs() -> None:
    """Past runs and batches in the run store (FLOWRUN_HOME).

    \b
    Examples:
      flowrun runs list --kind batch --since 7d
      flowrun runs show 20261125-061502-a1b2c3 --step summarize
      flowrun runs prune --older-than 30d
    """


@runs.command("list", context_settings=CONTEXT)
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=MAX_COUNT),
    default=20,
    show_default=True,
    help="How many runs, newest first.",
)
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    help="Only single runs, live batches or Batch API batches.",
)
@click.option("--workflow", metavar="NAME", help="Only runs of this workflow (its name).")
@click.option(
    "--since", metavar="AGE|DATE", help="Only runs started since: 7d, 12h, or 2026-12-01."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs_list(
    limit: int,
    status: str | None,
    kind: str | None,
    workflow: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """List runs and batches, newest first.

    \b
    Examples:
      flowrun runs list --limit 5
      flowrun runs list --status failed --kind run --json
      flowrun runs list --workflow summarize --since 2026-12-01
    """
    from flowrun.cli.history_text import format_history
    from flowrun.store.history import list_history, parse_since
    from flowrun.store.runs import RunStore

    after = parse_since(since) if since else None
    with RunStore() as store:
        rows = list_history(
            store, limit=limit, status=status, kind=kind, workflow=workflow, since=after
        )
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    if not rows:
        filtered = any((status, kind, workflow, since))
        click.echo("no runs match" if filtered else "no runs yet (flowrun run FILE records one)")
        return
    click.echo(redact(format_history(rows)))


@runs.command("show", context_settings=CONTEXT)
@click.argument("run_id")
@click.option("--step", "step_id", metavar="ID", help="One step: its transcript and output.")
@click.option(
    "--record",
    type=click.IntRange(min=0, max=MAX_COUNT),
    metavar="N",
    help="A batch's record N (from 0).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with transcripts).")
def runs_show(run_id: str, step_id: str | None, record: int | None, as_json: bool) -> None:
    """Show a run or a batch: steps, outputs, errors, cost; a step's transcript.

    \b
    Examples:
      flowrun runs show 20261125-061502-a1b2c3 --json
      flowrun runs show 20261125-061502-a1b2c3 --step summarize
      flowrun runs show batch-20261125-061502-d4e5f6 --record 12 --step classify
    """
    from flowrun.errors import UsageError
    from flowrun.store.history import find
    from flowrun.store.runs import RunStore

    with RunStore() as store:
        kind, full_id = find(store, run_id)
        if kind == "run":
            if record is not None:
                raise UsageError(f"--record goes with a batch; {full_id} is a single run")
            _show_run(store, full_id, step_id, as_json)
        elif record is None:
            if step_id is not None:
                raise UsageError("--step goes with --record N for a batch")
            _show_batch(store, full_id, as_json)
        else:
            _show_record(store, full_id, record, step_id, as_json)


def _show_run(store: Any, run_id: str, step_id: str | None, as_json: bool) -> None:
    from flowrun.cli.history_text import format_transcript
    from flowrun.cli.text import format_run_row
    from flowrun.errors import UsageError

    row = store.get_run(run_id)
    steps = store.load_steps(row.id)
    if step_id is not None:
        if step_id not in steps:
            known = ", ".join(steps) or "none yet"
            raise UsageError(f"run {row.id} has no step '{step_id}' (its steps: {known})")
        data = steps[step_id].to_json()
        transcript = store.load_transcript(row.id, step_id)
        if as_json:
            emit_json({"run_id": row.id, "step": step_id, **data, "transcript": transcript})
        else:
            click.echo(redact(format_transcript(step_id, data, transcript)))
        return
    if as_json:
        data = row.summary()
        data.update(
            kind="run",
            inputs=row.inputs,
            outputs=row.outputs,
            failed_step=row.failed_step,
            steps={
                sid: {**s.to_json(), "transcript": store.load_transcript(row.id, sid)}
                for sid, s in steps.items()
            },
        )
        emit_json(data)
    else:
        click.echo(redact(format_run_row(row, steps)))
        if steps:
            click.echo(f"a step's transcript: flowrun runs show {row.id} --step ID")


def _show_batch(store: Any, batch_id: str, as_json: bool) -> None:
    from flowrun.cli.history_text import format_batch
    from flowrun.store.batches import BatchStore
    from flowrun.store.history import batch_counts, get_item

    with BatchStore(store.path) as batches:
        row = batches.get(batch_id)
    item = get_item(store, batch_id)
    assert item is not None  # (find() found it)
    counts = batch_counts(store, batch_id)
    if as_json:
        emit_json(
            {
                **item.to_json(),
                "path": row.workflow_path,
                "records_path": row.records_path,
                "output_path": row.output_path,
                "by_status": counts["by_status"],
                "summary": row.summary,
                "metrics": (row.summary or {}).get("metrics"),
            }
        )
    else:
        click.echo(redact(format_batch(row, item, counts)))


def _show_record(store: Any, batch_id: str, index: int, step_id: str | None, as_json: bool) -> None:
    from flowrun.cli.history_text import format_record, format_transcript
    from flowrun.errors import UsageError
    from flowrun.store.history import batch_record

    data = batch_record(store, batch_id, index)
    if step_id is not None:
        step = data["steps"].get(step_id)
        if step is None:
            known = ", ".join(data["steps"]) or "none"
            raise UsageError(f"record {index} has no step '{step_id}' (its steps: {known})")
        if as_json:
            emit_json({"batch_id": batch_id, "record": index, "step": step_id, **step})
        else:
            click.echo(redact(format_transcript(step_id, step, step.get("transcript") or [])))
        return
    if as_json:
        emit_json({"batch_id": batch_id, **data})
    else:
        click.echo(redact(format_record(batch_id, data)))


@runs.command("prune", context_settings=CONTEXT)
@click.option("--older-than", metavar="AGE", help="Delete runs started longer ago: 30d, 12h, 2w.")
@click.option(
    "--keep", type=click.IntRange(min=0, max=MAX_COUNT), metavar="N", help="Keep the newest N runs."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs_prune(older_than: str | None, keep: int | None, as_json: bool) -> None:
    """Delete old runs and batches with what they hold; the store file shrinks.

    Runs still running are kept; conversation threads and the response cache stay.

    \b
    Examples:
      flowrun runs prune --older-than 30d
      flowrun runs prune --keep 100
    """
    from flowrun.errors import UsageError
    from flowrun.store.history import parse_age
    from flowrun.store.prune import prune
    from flowrun.store.runs import RunStore

    if older_than is None and keep is None:
        raise UsageError("say what to delete: --older-than AGE and/or --keep N")
    age = parse_age(older_than) if older_than is not None else None
    with RunStore() as store:
        report = prune(store, older_than=age, keep=keep)
    if as_json:
        emit_json(report.to_json())
        return
    click.echo(
        f"deleted {report.runs} run(s) and {report.batches} batch(es); the store went from "
        f"{report.bytes_before / 1e6:.1f} MB to {report.bytes_after / 1e6:.1f} MB"
    )
