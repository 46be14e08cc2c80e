"""The ``flowrun`` group and ``main``, the console script.

Errors are handled in one place (``main``): a ``FlowrunError`` prints its lines to stderr and
exits with its code; tracebacks appear only with ``--debug`` (anywhere on the line) or
``FLOWRUN_DEBUG=1``. Commands live in their own modules and are imported on first use.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import click

from flowrun import __version__
from flowrun.cli.common import CONTEXT, Group
from flowrun.errors import FlowrunError, MissingInput, UnknownRun
from flowrun.redaction import redact

COMMANDS = {
    "validate": "flowrun.cli.check:validate",
    "graph": "flowrun.cli.check:graph",
    "schema": "flowrun.cli.check:schema",
    "init": "flowrun.cli.init:init",
    "run": "flowrun.cli.run:run",
    "resume": "flowrun.cli.run:resume",
    "estimate": "flowrun.cli.inspect_runs:estimate",
    "runs": "flowrun.cli.history:runs",
    "batches": "flowrun.cli.batches:batches",
    "threads": "flowrun.cli.threads:threads",
    "convert": "flowrun.cli.convert:convert",
    "view": "flowrun.cli.view:view",
    "completion": "flowrun.cli.completion:completion",
}

EPILOG = """\b
Run store (runs, cache, threads, locks): $FLOWRUN_HOME, default the per-user state
directory: ~/.local/state/flowrun (Linux), ~/Library/Application Support/flowrun (macOS),
%LOCALAPPDATA%\\flowrun (Windows).
Shell completion: eval "$(flowrun completion bash)" (or zsh, fish).
Docs: README.md and docs/ in the repository; every option: docs/cli.md."""


@click.group(cls=Group, context_settings=CONTEXT, lazy=COMMANDS, epilog=EPILOG)
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


# The Python API's words for a setting (in core messages) -> the CLI's flag for it, in order.
CLI_WORDS = (
    ("resume=True needs an output= file", "--resume needs --output"),
    ("or choose another output=", "or choose another --output"),
    ("output= ", "--output "),
    ("resume=True", "--resume"),
    ("the run's max_cost", "--max-cost"),
    ("max_cost=", "--max-cost "),
    ("the run's prices", "--prices"),
    ("force=True", "--force"),
    ('via="live"', "--via live"),
    ('via="batch-api"', "--via batch-api"),
    ("client=MockClient() (flowrun.provider.mock)", "--mock"),
    ("both by mapping and by inputs", "both by --map and by -i/--inputs-file"),
    ("; a mapping takes a column", "; --map takes a column"),
    ("the column mapping", "--map"),
    ("mapping value ", "--map value "),
    ("a records file is JSON Lines", "--batch reads JSON Lines"),
)
# ... and patterns: ``mapping[q]`` -> ``--map q``
CLI_PATTERNS = ((re.compile(r"\bmapping\[([^\]]*)\]"), r"--map \1"),)
# What the CLI adds to an error's first line: the command that shows what exists.
CLI_HINTS: dict[type[FlowrunError], Callable[[Any], str]] = {
    UnknownRun: lambda exc: " (see: flowrun runs list)",
    MissingInput: lambda exc: f" (give it with -i {exc.name}=VALUE or --inputs-file)",
}


def cli_text(text: str) -> str:
    """A core message in the CLI's words: ``the run's max_cost`` -> ``--max-cost``."""
    for api, flag in CLI_WORDS:
        text = text.replace(api, flag)
    for pattern, flags in CLI_PATTERNS:
        text = pattern.sub(flags, text)
    return text


def cli_lines(exc: FlowrunError) -> list[str]:
    """The lines the CLI prints for ``exc``: its own, in CLI words, with the CLI's hint."""
    lines = [cli_text(line) for line in exc.lines()]
    suffix = next((s(exc) for kind, s in CLI_HINTS.items() if isinstance(exc, kind)), "")
    if lines and suffix:
        lines[0] += suffix
    return lines


def _print_traceback() -> None:
    """``--debug``: the traceback being handled, redacted like every other line we print
    (an exception message, or a local in a chained one, may hold the API key)."""
    sys.stderr.write(redact(traceback.format_exc()))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``flowrun`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("FLOWRUN_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        code = cli.main(args, prog_name="flowrun", standalone_mode=False)
    except FlowrunError as exc:
        if debug:
            _print_traceback()
        for line in cli_lines(exc):
            click.echo(redact(line), err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:  # `flowrun`, `flowrun runs`: plain help
        click.echo(exc.ctx.get_help())
        sys.exit(0)
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
            _print_traceback()
        click.echo(
            redact(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
            ),
            err=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
