"""``flowrun threads``: the conversation threads of chat steps with ``thread:``."""

from __future__ import annotations

from typing import Any

import click

from flowrun.cli.common import CONTEXT, Group, emit_json
from flowrun.errors import UsageError


@click.group(cls=Group, context_settings=CONTEXT)
def threads() -> None:
    """Conversations kept by chat steps with thread: (in the run store).

    \b
    Examples:
      flowrun threads list
      flowrun threads show support:c42
      flowrun threads clear support:c42
    """


@threads.command("list", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def threads_list(as_json: bool) -> None:
    """List threads, most recently updated first.

    \b
    Example:
      flowrun threads list --json
    """
    from flowrun.cli.text import table
    from flowrun.store.runs import RunStore

    with RunStore() as store:
        found = store.list_threads()
    if as_json:
        emit_json(found)
        return
    if not found:
        click.echo("no threads yet (a chat step with thread: starts one)")
        return
    rows = [["thread", "messages", "updated"]]
    rows += [
        [t["thread"], str(t["messages"]), t["updated_at"][:19].replace("T", " ")] for t in found
    ]
    click.echo(table(rows, right={1}))


@threads.command("show", context_settings=CONTEXT)
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def threads_show(key: str, as_json: bool) -> None:
    """Show every message of thread KEY, oldest first.

    \b
    Example:
      flowrun threads show support:c42
    """
    from flowrun.store.runs import RunStore

    with RunStore() as store:
        messages = store.thread_messages(key)
    if not messages:
        raise UsageError(f"no thread '{key}' (see: flowrun threads list)")
    if as_json:
        emit_json({"thread": key, "messages": messages})
        return
    for message in messages:
        click.echo(f"[{message['role']}] {_text(message['content'])}")


@threads.command("clear", context_settings=CONTEXT)
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
def threads_clear(keys: tuple[str, ...]) -> None:
    """Forget threads: the next run with the same key starts afresh.

    \b
    Example:
      flowrun threads clear support:c42 support:c43
    """
    from flowrun.store.runs import RunStore

    with RunStore() as store:
        counts = {key: store.clear_thread(key) for key in keys}
    unknown = [key for key, n in counts.items() if n == 0]
    for key, n in counts.items():
        if n:
            click.echo(f"cleared thread '{key}' ({n} messages)")
    if unknown:
        raise UsageError(
            f"no thread {', '.join(repr(k) for k in unknown)} (see: flowrun threads list)"
        )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append(part.get("text", ""))
        elif isinstance(part, dict):
            parts.append(f"<{part.get('type', 'part')}>")
    return " ".join(parts)
