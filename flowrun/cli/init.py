"""``flowrun init NAME``: write a starter workflow with the editor schema modeline."""

from __future__ import annotations

import re
from pathlib import Path

import click

from flowrun.cli.common import CONTEXT, Command
from flowrun.errors import UsageError

STARTER = """\
{modeline}
# {name}: a starter workflow written by `flowrun init`.
# Try it offline:   flowrun run {file} --mock -i topic="tide pools"
# Run it for real:  OPENAI_API_KEY=sk-... flowrun run {file} -i topic="tide pools"
version: 1
name: {name}
description: Draft a short explainer, then list its key terms.

inputs:
  topic: {{type: string, description: What to explain}}
  words: {{type: integer, default: 120}}

defaults:
  model: gpt-4o-mini
  temperature: 0.3
  max_completion_tokens: 400

budget:
  max_cost_usd: 0.05

steps:
  draft:
    type: chat
    system: You explain things clearly to a curious teenager.
    prompt: "Explain {{{{ inputs.topic }}}} in at most {{{{ inputs.words }}}} words."

  terms:
    type: extract
    prompt: "List the key terms used in this text: {{{{ steps.draft.output }}}}"
    schema:
      type: object
      properties:
        terms: {{type: array, items: {{type: string}}}}
      required: [terms]

outputs:
  explainer: "{{{{ steps.draft.output }}}}"
  terms: "{{{{ steps.terms.output.terms }}}}"
"""


def starter_text(name: str, file: Path, schema_file: Path) -> str:
    """The starter workflow for ``name`` written at ``file`` (the modeline points at the schema)."""
    from flowrun.format.schema_file import modeline

    return STARTER.format(name=name, file=file, modeline=modeline(file, schema_file))


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("name")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where to write NAME.yaml.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(name: str, folder: str, force: bool) -> None:
    """Write a starter workflow NAME.yaml, ready to run.

    The file starts with the editor schema modeline (completion and checks in VS Code),
    pointing at the nearest schemas/workflow.schema.json; with none in the folder or its
    parents, that file is written too.

    \b
    Example:
      flowrun init explain && flowrun run explain.yaml --mock -i topic="tide pools"
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UsageError(
            f"'{name}' is not a usable workflow name: use letters, digits, '-', '_' or '.'"
        )
    path = Path(folder) / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    from flowrun.format.schema_file import find_schema_file, write_schema_file

    try:
        if path.exists() and not force:
            raise UsageError(f"{path} already exists (use --force to overwrite)")
        path.parent.mkdir(parents=True, exist_ok=True)
        schema_file = find_schema_file(path.parent)
        if schema_file is None:
            schema_file = write_schema_file(path.parent)
            click.echo(f"wrote {schema_file} (the file format, for completion in editors)")
        path.write_text(starter_text(path.stem, path, schema_file), encoding="utf-8")
    except OSError as exc:  # a name too long, a read-only folder, a file where a folder goes
        raise UsageError(f"cannot write {exc.filename or path}: {exc.strerror}") from None
    click.echo(f'wrote {path}\nnext: flowrun run {path} --mock -i topic="tide pools"')
