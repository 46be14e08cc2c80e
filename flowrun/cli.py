"""The ``flowrun`` command line: parse arguments, call the Python API, render the result.

Errors are handled in one place (``main``): a ``FlowrunError`` prints its lines to stderr and
exits with its code; tracebacks appear only with ``--debug`` (anywhere on the line) or
``FLOWRUN_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from . import __version__
from .errors import FlowrunError, WorkflowInvalid
from .secrets import redact

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def emit_json(data: Any) -> None:
    """Print one JSON document on stdout (secrets redacted): every command's ``--json``."""
    import json

    click.echo(redact(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


def input_options(f: Any) -> Any:
    """``-i KEY=VALUE`` (repeatable) and ``--inputs-file``: the inputs of run and estimate."""
    f = click.option(
        "--inputs-file", type=click.Path(dir_okay=False), help="A JSON or YAML file of inputs."
    )(f)
    return click.option(
        "-i",
        "--input",
        "pairs",
        multiple=True,
        metavar="KEY=VALUE",
        help="An input value; repeat for more. KEY=@path reads the value from a file.",
    )(f)


def _summary(help_text: str | None) -> str:
    """The first sentence of a command's help, whole (click would cut it at 45 characters)."""
    first = (help_text or "").strip().split("\n\n")[0]
    return " ".join(first.split())


class Command(click.Command):
    """A command whose one-line summary in ``flowrun --help`` is never cut short."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or _summary(self.help)


class Group(click.Group):
    """A group whose commands and subgroups list their summaries whole."""

    command_class = Command

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or _summary(self.help)


Group.group_class = Group


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="flowrun")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def cli(debug: bool) -> None:
    """Run declarative YAML prompt-and-workflow files against the OpenAI API.

    \b
    Examples:
      flowrun validate workflows/*.yaml
      flowrun run workflows/summarize.yaml -i text="Long text..."
      flowrun graph workflows/support-triage.yaml --format mermaid
    """


@cli.command(context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path())
def validate(files: tuple[str, ...]) -> None:
    """Check workflow files without running them; exit 2 on any problem.

    Checks the YAML, keys, templates, references, tools, schemas and model parameters.

    Prints FILE:LINE:COL: message for every problem and exits 2 if any file is invalid.

    \b
    Example:
      flowrun validate workflows/*.yaml
    """
    from .loader import load_workflow

    problems = []
    for file in files:
        try:
            wf = load_workflow(file, check_budget=True)
        except WorkflowInvalid as exc:
            problems.extend(exc.problems)
            continue
        count = len(wf.spec.steps)
        click.echo(f"{file}: ok ({count} step{'' if count == 1 else 's'})")
    if problems:
        raise WorkflowInvalid(problems)


@cli.command(context_settings=CONTEXT)
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
    from .graph import to_dot, to_mermaid
    from .loader import load_workflow

    wf = load_workflow(file)
    labels = {sid: f"{sid} ({step.type})" for sid, step in wf.spec.steps.items()}
    text = to_mermaid(wf.graph, labels) if fmt == "mermaid" else to_dot(wf.graph, labels, wf.name)
    click.echo(text, nl=False)


@cli.command(context_settings=CONTEXT)
def schema() -> None:
    """Print the JSON schema of the workflow file format.

    \b
    Example:
      flowrun schema > schemas/workflow.schema.json

    \b
    Then, for completion and checks in editors, start a workflow with this modeline:
      # yaml-language-server: $schema=../schemas/workflow.schema.json
    """
    from .model import workflow_json_schema

    emit_json(workflow_json_schema())


def _commands_modules() -> None:
    """Attach commands defined in other modules (kept out of this file to keep it thin)."""
    from . import cli_batches, cli_convert, cli_init, cli_inspect, cli_run, cli_threads  # noqa: F401


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``flowrun`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("FLOWRUN_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        _commands_modules()
        code = cli.main(args, prog_name="flowrun", standalone_mode=False)
    except FlowrunError as exc:
        if debug:
            traceback.print_exc()
        for line in exc.lines():
            click.echo(redact(line), err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            click.echo(f"hint: see '{exc.ctx.command_path} --help'", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug in flowrun: say so plainly
        if debug:
            traceback.print_exc()
        click.echo(
            redact(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
            ),
            err=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
