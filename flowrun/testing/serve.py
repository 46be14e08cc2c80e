"""``python -m flowrun.testing``: a loopback server to point ``OPENAI_BASE_URL`` at, from a
terminal, until Ctrl-C. Scripted replies come from a YAML or JSON file (a list of entries, each
a ``Reply``'s fields plus ``match``, ``times`` and ``endpoint``); ``--latency`` delays every
reply; ``--fail-every N`` answers every Nth model request with an error status; ``--mock``
answers unscripted requests as ``flowrun run --mock`` does instead of echoing them.

May import: ``errors``, ``provider``, ``testing``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any

from flowrun.errors import did_you_mean
from flowrun.testing.loopback import LoopbackServer
from flowrun.testing.replies import RecordedRequest, Reply, ToolCall

_REPLY_KEYS = {f.name for f in fields(Reply)}
_ENTRY_KEYS = {"match", "times", "endpoint"}
_ENDPOINTS = {"chat": "/chat/completions", "embeddings": "/embeddings", "any": None}
_ENDPOINTS["completions"] = "/completions"  # legacy: promptflow flows' own Python calls it
_MODEL_PATHS = ("/chat/completions", "/completions", "/embeddings")


class BadArguments(Exception):
    """A bad option or replies file: one line, exit 2."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m flowrun.testing",
        description="Serve an offline OpenAI-compatible API on 127.0.0.1 until Ctrl-C. Point "
        "flowrun (or any OpenAI SDK) at it with the OPENAI_BASE_URL it prints.",
        epilog="Unscripted chat requests get an echo of the prompt ('echo: ...'); with --mock, "
        "the answers of `flowrun run --mock` (structured output gets a valid instance of its "
        "schema). Docs: docs/testing.md.",
    )
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    p.add_argument(
        "--replies",
        metavar="FILE",
        help="YAML or JSON list of scripted replies, used in order (see docs/testing.md)",
    )
    p.add_argument(
        "--latency", type=float, default=0.0, metavar="SECONDS", help="delay every reply"
    )
    p.add_argument(
        "--fail-every",
        type=int,
        default=0,
        metavar="N",
        help="answer every Nth chat or embeddings request with an error (see --fail-status)",
    )
    p.add_argument(
        "--fail-status",
        type=int,
        default=500,
        metavar="CODE",
        help="the status of those errors: 500 (default), 429 (with Retry-After), 503...",
    )
    p.add_argument(
        "--mock", action="store_true", help="answer unscripted requests as `flowrun run --mock`"
    )
    return p


def load_replies(path: str) -> list[tuple[Reply, dict[str, Any]]]:
    """The entries of a replies file as ``(Reply, add() keywords)``; bad ones raise BadArguments."""
    import yaml

    hint = "each entry holds Reply fields (content, json, status...) and match, times, endpoint"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))  # JSON is YAML too
    except OSError as exc:
        raise BadArguments(f"cannot read the replies file {path}: {exc.strerror}", hint) from None
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise BadArguments(f"{path}: not valid YAML or JSON: {message}", hint) from None
    if not isinstance(data, list):
        raise BadArguments(f"{path}: the replies file must hold a list of entries", hint)
    entries = []
    for number, item in enumerate(data, 1):
        where = f"{path}: entry {number}"
        if not isinstance(item, dict):
            raise BadArguments(f"{where}: an entry is a mapping, got {item!r}", hint)
        for key in item:
            if key not in _REPLY_KEYS | _ENTRY_KEYS:
                close = did_you_mean(str(key), _REPLY_KEYS | _ENTRY_KEYS)
                raise BadArguments(f"{where}: unknown key '{key}'{close}", hint)
        reply_fields = {k: v for k, v in item.items() if k in _REPLY_KEYS}
        if "tool_calls" in reply_fields:
            calls = reply_fields["tool_calls"] or []
            reply_fields["tool_calls"] = [ToolCall(**call) for call in calls]
        times = item.get("times", 1)
        endpoint = item.get("endpoint", "chat")
        if endpoint not in _ENDPOINTS:
            raise BadArguments(f"{where}: endpoint must be one of {sorted(_ENDPOINTS)}", hint)
        if times not in (None, "forever") and (not isinstance(times, int) or times < 1):
            raise BadArguments(f"{where}: times must be a whole number >= 1 or forever", hint)
        try:
            reply = Reply(**reply_fields)
        except (TypeError, ValueError) as exc:
            raise BadArguments(f"{where}: {exc}", hint) from None
        entries.append(
            (
                reply,
                {
                    "match": item.get("match"),
                    "times": None if times == "forever" else times,
                    "endpoint": _ENDPOINTS[endpoint],
                },
            )
        )
    return entries


def build_server(args: argparse.Namespace) -> tuple[LoopbackServer, list[str]]:
    """The server the options describe, and their description for the banner."""
    if args.latency < 0 or args.fail_every < 0 or not 0 <= args.port <= 65535:
        raise BadArguments(
            "--latency and --fail-every cannot be negative; --port is 0-65535",
            "see python -m flowrun.testing --help",
        )
    server = LoopbackServer(latency=args.latency, port=args.port)
    said = ["unscripted requests: " + ("--mock answers" if args.mock else "echo")]
    if args.fail_every:
        counter = {"n": 0}
        lock = threading.Lock()

        def every_nth(req: RecordedRequest) -> bool:
            if req.path not in _MODEL_PATHS:
                return False
            with lock:
                counter["n"] += 1
                return counter["n"] % args.fail_every == 0

        failure = Reply(
            status=args.fail_status,
            error="injected failure (python -m flowrun.testing --fail-every)",
            retry_after=0.5 if args.fail_status == 429 else None,
        )
        server.add(failure, match=every_nth, times=None, endpoint=None)
        nth = {1: "", 2: "2nd ", 3: "3rd "}.get(args.fail_every, f"{args.fail_every}th ")
        said.append(f"every {nth}model request fails with {args.fail_status}")
    if args.replies:
        entries = load_replies(args.replies)
        for reply, options in entries:
            server.add(reply, **options)
        said.append(f"{len(entries)} scripted replies from {args.replies}")
    if args.latency:
        said.append(f"{args.latency:g} s latency")
    if args.mock:
        from flowrun.provider.mock import mock_text
        from flowrun.testing.replies import echo

        server.default = lambda req: (
            Reply(content=mock_text(req.body)) if req.path == "/chat/completions" else echo(req)
        )
    return server, said


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        server, said = build_server(args)
        server.start()
    except BadArguments as exc:
        print(f"error: {exc}\nhint: {exc.hint}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        print(f"error: cannot listen on port {args.port}: {exc.strerror}", file=sys.stderr)
        print("hint: choose another --port, or leave it out for a free one", file=sys.stderr)
        sys.exit(2)
    for key, value in server.env().items():
        print(f"export {key}={value}")
    sys.stdout.flush()
    print(f"flowrun loopback server at {server.url} ({'; '.join(said)})", file=sys.stderr)
    print("export the lines above in another shell; Ctrl-C stops the server", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with `&`
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        served = len(server.requests)
        print(f"stopped after {served} request{'s' * (served != 1)}", file=sys.stderr)
