"""The HTTP side of the loopback server: a threaded stdlib server and its request handler.

The handler reads a request, has the ``LoopbackServer`` record and answer it, and writes the
answer as JSON or as server-sent events (chunked, so connections stay alive).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


class App(Protocol):
    """What the handler needs of the server behind it (``loopback.LoopbackServer``)."""

    _lock: Any
    errors: list[str]

    def record(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Any: ...

    def _dispatch(self, req: Any) -> tuple[int, Any, dict[str, str]]: ...


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many concurrent connects must not overflow the listen backlog
    app: App

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout, a cancelled run) is normal; anything else is kept.

        Nothing is printed: stderr belongs to the code under test.
        """
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        with self.app._lock:
            self.app.errors.append(traceback.format_exc())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HTTPServer

    disable_nagle_algorithm = True  # small header/body writes must not wait for delayed ACKs

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        app = self.server.app
        raw = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = app.record(self.command, self.path, headers, raw)
        status, payload, headers = app._dispatch(req)
        if isinstance(payload, list):
            self._send_stream(payload, headers)
        else:
            self._send_json(status, payload, headers)
        req.replied_at = time.monotonic()

    def _start(self, status: int, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("x-request-id", f"req_loopback_{id(self):x}_{time.monotonic_ns()}")
        for key, value in headers.items():
            self.send_header(key, value)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        kind = "application/octet-stream" if isinstance(payload, bytes) else "application/json"
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self._start(status, kind, headers or {})
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, chunks: list[dict[str, Any]], headers: dict[str, str]) -> None:
        """Send server-sent events with chunked transfer encoding (keeps the connection alive)."""
        self._start(200, "text/event-stream; charset=utf-8", headers)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        events = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def parse_multipart(
    content_type: str, raw: bytes
) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    """Form fields and ``(filename, data)`` file parts of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields: dict[str, str] = {}
    files: list[tuple[str, bytes]] = []
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files.append((filename, data))
        elif name:
            fields[str(name)] = data.decode("utf-8")
    return fields, files
