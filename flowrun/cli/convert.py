"""``flowrun convert``: turn flows written for other tools into flowrun workflows."""

from __future__ import annotations

from pathlib import Path

import click

from flowrun.cli.common import CONTEXT, Group, emit_json
from flowrun.errors import UsageError


@click.group(cls=Group, context_settings=CONTEXT)
def convert() -> None:
    """Convert flows written for other tools into flowrun workflows.

    \b
    Example:
      flowrun convert promptflow examples/promptflow/ticket-triage
    """


@convert.command("promptflow", context_settings=CONTEXT)
@click.argument("flow_dir", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the workflow (default: FLOW_DIR/flowrun.yaml, next to the flow's files).",
)
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NODE.VARIANT",
    help="Convert this variant of a node instead of its default (repeatable); "
    "'${node.variant_1}' as in a promptflow run.yml works too.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite the output even if flowrun convert did not write it, or it was edited since.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
def promptflow(
    flow_dir: Path, out: Path | None, variants: tuple[str, ...], force: bool, as_json: bool
) -> None:
    """Convert a promptflow flow folder (flow.dag.yaml) to a workflow.

    Prints each node and what it became, and everything that could not be converted.
    The flow's own files are not modified. Exit 0 when the workflow is runnable, 1 when
    something could not be converted, 2 when FLOW_DIR is not a promptflow flow.

    \b
    Examples:
      flowrun convert promptflow examples/promptflow/ticket-triage
      flowrun run examples/promptflow/ticket-triage/flowrun.yaml -i ticket="I was charged twice"
      flowrun run examples/promptflow/ticket-triage/flowrun.yaml \\
          --batch examples/promptflow/ticket-triage/data.jsonl --output results.jsonl
    """
    from flowrun.convert import NotRunnable, check_overwrite, convert_promptflow, write_conversion

    conversion = convert_promptflow(flow_dir, out, variants=_variants(variants))
    target = conversion.out_path
    if not force:
        check_overwrite(target)
    report = write_conversion(conversion)
    if as_json:
        emit_json(report.to_json())
    else:
        for line in report.lines():
            click.echo(line)
    if not report.runnable:
        raise NotRunnable(
            f"{target} was written, but it does not run as the flow did (see the report)"
        )


def _variants(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        text = value.strip()
        if text.startswith("${") and text.endswith("}"):
            text = text[2:-1]
        node, sep, variant = text.partition(".")
        if not sep or not node or not variant:
            raise UsageError(
                f"--variant {value!r}: expected NODE.VARIANT, e.g. summarize.variant_1"
            )
        out[node] = variant
    return out
