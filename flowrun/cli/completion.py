"""``flowrun completion SHELL``: the shell completion script (click's), to source or install."""

from __future__ import annotations

import click

from flowrun.cli.common import CONTEXT, Command

SHELLS = ("bash", "zsh", "fish")


# Hidden from the command list (its name would widen the column and wrap three summaries);
# `flowrun --help`'s epilog and docs/cli.md name it.
@click.command(cls=Command, context_settings=CONTEXT, hidden=True)
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    Completes commands, options, and file names where a command takes a file.

    \b
    Examples:
      flowrun completion fish > ~/.config/fish/completions/flowrun.fish
      eval "$(flowrun completion bash)"        # add to ~/.bashrc
      eval "$(flowrun completion zsh)"         # add to ~/.zshrc
    """
    from click.shell_completion import get_completion_class

    make = get_completion_class(shell)
    assert make is not None  # every choice is one of click's shells
    root = click.get_current_context().find_root().command
    click.echo(make(root, {}, "flowrun", "_FLOWRUN_COMPLETE").source())
