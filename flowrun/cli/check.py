"""``flowrun validate``, ``graph`` and ``schema``: the file checked, drawn and described."""

from __future__ import annotations

import click

from flowrun.cli import startup
from flowrun.cli.common import CONTEXT, Command, emit_json
from flowrun.errors import WorkflowInvalid


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path())
def validate(files: tuple[str, ...]) -> None:
    """Check workflow files without running them; exit 2 on any problem.

    Checks the YAML, keys, templates, references, tools, schemas and model parameters,
    and that every named server exists and its key variable (api_key_env) is set.

    Prints FILE:LINE:COL: message for every problem and exits 2 if any file is invalid.

    \b
    Example:
      flowrun validate workflows/*.yaml
    """
    from flowrun.format.loader import load_workflow

    problems = []
    for file in files:
        try:
            wf = load_workflow(file, check_budget=True, check_env=True)
        except WorkflowInvalid as exc:
            problems.extend(exc.problems)
            continue
        finally:
            startup.collector_on()  # the first file read: start-up is over (cli.startup)
        count = len(wf.spec.steps)
        click.echo(f"{file}: ok ({count} step{'' if count == 1 else 's'})")
    if problems:
        raise WorkflowInvalid(problems)


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Output format.",
)
def graph(file: str, fmt: str) -> None:
    """Print the step graph as Mermaid or Graphviz DOT.

    \b
    Example:
      flowrun graph workflows/support-triage.yaml --format dot | dot -Tpng > dag.png
    """
    from flowrun.format.graph import to_dot, to_mermaid
    from flowrun.format.loader import load_workflow

    wf = load_workflow(file)
    labels = {sid: f"{sid} ({step.type})" for sid, step in wf.spec.steps.items()}
    text = to_mermaid(wf.graph, labels) if fmt == "mermaid" else to_dot(wf.graph, labels, wf.name)
    click.echo(text, nl=False)


@click.command(cls=Command, context_settings=CONTEXT)
def schema() -> None:
    """Print the JSON schema of the workflow file format.

    \b
    Example:
      flowrun schema > schemas/workflow.schema.json

    \b
    Then, for completion and checks in editors, start a workflow with this modeline:
      # yaml-language-server: $schema=../schemas/workflow.schema.json
    """
    from flowrun.format.spec import workflow_json_schema

    emit_json(workflow_json_schema())
