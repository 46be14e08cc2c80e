"""The viewer's HTTP server: standard library, 127.0.0.1 only, GET only, read-only.

Routes: ``/`` (runs list), ``/run/<id>`` (``?step=``), ``/batch/<id>`` (``?from=``,
``?record=``, ``&step=``). Anything else, or an unknown run, step or record, is a 404 page;
other methods than GET and HEAD are 405.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from flowrun.errors import UsageError
from flowrun.store.runs import RunStore
from flowrun.view import pages

HOST = "127.0.0.1"
DEFAULT_PORT = 8321


class ViewServer(ThreadingHTTPServer):
    """A threading server that owns one read connection to the run store."""

    daemon_threads = True

    def __init__(self, store: RunStore, port: int = DEFAULT_PORT) -> None:
        self.store = store
        super().__init__((HOST, port), Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"


class Handler(BaseHTTPRequestHandler):
    server: ViewServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def _refuse(self) -> None:
        self._send(
            405,
            "<h1>405</h1><p>The viewer is read-only: GET only.</p>",
            True,
            {"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def _answer(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=False))
        route = url.path.rstrip("/") or "/"
        store = self.server.store
        try:
            if route == "/":
                status, body = 200, pages.runs_page(store, query)
            elif route.startswith("/run/"):
                status, body = 200, pages.run_page(store, unquote(route[5:]), query)
            elif route.startswith("/batch/"):
                status, body = 200, pages.batch_page(store, unquote(route[7:]), query)
            elif route == "/favicon.ico":
                status, body = 404, ""
            else:
                raise UsageError(f"no page {url.path}")
        except UsageError as exc:
            status, body = 404, pages.not_found(exc.message)
        self._send(status, body, send_body)

    def _send(
        self, status: int, body: str, send_body: bool, headers: dict[str, str] | None = None
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'",
        )
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return  # quiet: the terminal shows only the URL


def serve(store_path: Path | None = None, port: int = DEFAULT_PORT) -> ViewServer:
    """A started server (not yet serving: call ``serve_forever``)."""
    return ViewServer(RunStore(store_path), port)


def main_loop(server: ViewServer) -> None:
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
        server.store.close()
