"""``estimate``: a look at a workflow's cost without running anything (``runs``: history.py)."""

from __future__ import annotations

import click

from flowrun.cli.common import CONTEXT, Command, emit_json, input_options


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
