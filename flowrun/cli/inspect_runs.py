"""Commands that look without running anything: ``estimate``, ``runs list`` and ``runs show``."""

from __future__ import annotations

import click

from flowrun.cli.common import CONTEXT, Command, Group, emit_json, input_options
from flowrun.redaction import redact


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False))
@input_options
@click.option(
    "--prices",
    type=click.Path(dir_okay=False),
    help="A JSON price file that overrides the shipped prices.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as JSON.")
def estimate(
    file: str, pairs: tuple[str, ...], inputs_file: str | None, prices: str | None, as_json: bool
) -> None:
    """Worst-case tokens and dollars per step, without calling a model.

    Renders every prompt and counts its tokens with tiktoken.

    \b
    Example:
      flowrun estimate workflows/summarize.yaml -i text=@article.txt
    """
    from flowrun.cli.text import format_estimate
    from flowrun.engine.estimate import estimate_workflow
    from flowrun.format.inputs import check_one_stdin, parse_cli_inputs, read_inputs_file
    from flowrun.format.loader import load_workflow
    from flowrun.provider.pricing import load_price_table

    check_one_stdin(pairs, inputs_file)
    wf = load_workflow(file)
    inputs = read_inputs_file(inputs_file) if inputs_file else {}
    inputs.update(parse_cli_inputs(wf.spec, pairs))
    report = estimate_workflow(wf, inputs, prices=load_price_table(prices))
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(format_estimate(report))


@click.group(cls=Group, context_settings=CONTEXT)
def runs() -> None:
    """Past runs in the run store (FLOWRUN_HOME).

    \b
    Examples:
      flowrun runs list --limit 10
      flowrun runs show 20261125-061502-a1b2c3 --json
    """


@runs.command("list", context_settings=CONTEXT)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many runs, newest first.",
)
@click.option(
    "--status",
    type=click.Choice(["running", "succeeded", "failed", "interrupted"]),
    help="Only runs with this status.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs_list(limit: int, status: str | None, as_json: bool) -> None:
    """List recent runs, newest first.

    \b
    Examples:
      flowrun runs list --limit 5
      flowrun runs list --status failed --json
    """
    from flowrun.cli.text import table
    from flowrun.store.runs import RunStore

    with RunStore() as store:
        rows = store.list_runs(limit, status)
    if as_json:
        emit_json([r.summary() for r in rows])
        return
    if not rows:
        click.echo("no runs yet (flowrun run FILE records one)")
        return
    lines = [["run id", "workflow", "status", "started", "cost"]]
    lines += [
        [r.id, r.workflow_name, r.status, r.started_at[:19].replace("T", " "), f"${r.cost_usd:.6f}"]
        for r in rows
    ]
    click.echo(table(lines, right={4}))


@runs.command("show", context_settings=CONTEXT)
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs_show(run_id: str, as_json: bool) -> None:
    """Show one run: its steps, outputs, errors and cost.

    \b
    Example:
      flowrun runs show 20261125-061502-a1b2c3 --json
    """
    from flowrun.cli.text import format_run_row
    from flowrun.store.runs import RunStore

    with RunStore() as store:
        row = store.get_run(run_id)
        steps = store.load_steps(row.id)
    if as_json:
        data = row.summary()
        data.update(
            inputs=row.inputs,
            outputs=row.outputs,
            failed_step=row.failed_step,
            steps={sid: s.to_json() for sid, s in steps.items()},
        )
        emit_json(data)
    else:
        click.echo(redact(format_run_row(row, steps)))
