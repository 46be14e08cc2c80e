"""``flowrun view``: the local, read-only run viewer in a browser."""

from __future__ import annotations

import click

from flowrun.cli.common import CONTEXT, Command


@click.command(cls=Command, context_settings=CONTEXT)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8321,
    show_default=True,
    help="The port on 127.0.0.1 (0: any free port).",
)
@click.option("--no-browser", is_flag=True, help="Print the URL without opening a browser.")
def view(port: int, no_browser: bool) -> None:
    """Browse runs and transcripts in a local read-only web page.

    Serves the run store (FLOWRUN_HOME) on 127.0.0.1 until Ctrl-C. Pages: the runs list,
    a run with its step graph (click a step for its transcript), a batch with its records.

    \b
    Examples:
      flowrun view
      flowrun view --port 9000 --no-browser
    """
    import errno
    import threading
    import webbrowser

    from flowrun.errors import UsageError
    from flowrun.view.server import main_loop, serve

    try:
        server = serve(port=port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} is in use; choose another with --port N") from None
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    click.echo(f"flowrun view: {server.url}  (Ctrl-C stops it)")
    if not no_browser:
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    main_loop(server)
