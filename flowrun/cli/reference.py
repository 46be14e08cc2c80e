"""docs/cli.md, generated from the commands themselves.

    python -m flowrun.cli.reference > docs/cli.md

A test fails when the committed file differs from what this prints, so the reference can
never drift from ``flowrun --help``.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

WIDTH = 100  # a fixed width: the text must not depend on the terminal that generated it

INTRO = """\
# CLI reference

Generated from the commands themselves by `python -m flowrun.cli.reference > docs/cli.md`;
a test fails when this file and `flowrun --help` disagree.

Exit codes, for every command: **0** success, **1** the run failed (a step failed, the budget
stopped it, a record of a batch failed, or Ctrl-C/SIGTERM interrupted it: its completed steps
are saved for `flowrun resume`), **2** invalid files, inputs or options. Errors are one line
each on stderr, followed by a `hint:` line saying what to do next where there is one;
`--debug` (anywhere on the command line) or `FLOWRUN_DEBUG=1` adds the Python traceback.

Environment: `OPENAI_API_KEY`, `OPENAI_BASE_URL` (read by the openai SDK, so any
OpenAI-compatible server works), `FLOWRUN_HOME` (run store, cache and locks; default: the
per-user state directory: `~/.local/state/flowrun` on Linux, `~/Library/Application
Support/flowrun` on macOS, `%LOCALAPPDATA%\\flowrun` on Windows), `TIKTOKEN_CACHE_DIR` (token encodings, for machines offline).

Shell completion: `flowrun completion bash|zsh|fish` prints the script; add
`eval "$(flowrun completion bash)"` to `~/.bashrc` (zsh likewise; for fish,
`flowrun completion fish > ~/.config/fish/completions/flowrun.fish`).
"""


def iter_commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    """Every command and group under ``command``, depth first, with the context its help uses."""
    settings = {**command.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    ctx = click.Context(command, info_name=" ".join(("flowrun", *path)), **settings)
    yield path, command, ctx
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from iter_commands(sub, (*path, name))


def help_text(command: click.Command, ctx: click.Context) -> str:
    """What ``--help`` prints for ``command`` at the reference's fixed width."""
    formatter = click.HelpFormatter(width=WIDTH, max_width=WIDTH)
    command.format_help(ctx, formatter)
    return formatter.getvalue().rstrip() + "\n"


def cli_reference() -> str:
    """The whole reference: every command's help, in command order."""
    from flowrun.cli.app import cli

    parts = [INTRO]
    for path, command, ctx in iter_commands(cli):
        title = " ".join(("flowrun", *path))
        parts.append(f"\n## `{title}`\n\n```text\n{help_text(command, ctx)}```\n")
    return "".join(parts)


if __name__ == "__main__":
    print(cli_reference(), end="")
