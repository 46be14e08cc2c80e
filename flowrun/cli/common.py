"""What every command module shares: context settings, ``--json`` output, input options, and
the command and group classes (whole one-line summaries; subcommands imported on first use).
"""

from __future__ import annotations

from typing import Any

import click

from flowrun.redaction import redact

# The largest count an option takes (--limit, --concurrency, --rpm, ...): past it a number is
# a typo, and 10**20 would reach SQLite (whose integers stop at 2**63) as an internal error.
MAX_COUNT = 1_000_000_000

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def emit_json(data: Any) -> None:
    """Print one JSON document on stdout (secrets redacted): every command's ``--json``."""
    import json

    click.echo(redact(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


def input_options(f: Any) -> Any:
    """``-i KEY=VALUE`` (repeatable) and ``--inputs-file``: the inputs of run and estimate."""
    f = click.option(
        "--inputs-file",
        type=click.Path(dir_okay=False, allow_dash=True),
        help="A JSON or YAML file of inputs; - reads them from standard input.",
    )(f)
    return click.option(
        "-i",
        "--input",
        "pairs",
        multiple=True,
        metavar="KEY=VALUE",
        help="An input value; repeat for more. KEY=@path reads the value from a file, KEY=@- from "
        "standard input.",
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
    """A group whose commands and subgroups list their summaries whole.

    ``lazy`` names commands defined elsewhere as ``"module:attribute"``; a command's module is
    imported only when the command is asked for, so command modules never import the group.
    """

    command_class = Command

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            from importlib import import_module

            module, _, attribute = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or _summary(self.help)


Group.group_class = Group
