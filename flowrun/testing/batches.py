"""The Files and Batches endpoints of the loopback server: the OpenAI Batch API, offline.

``LoopbackServer.batch_api`` holds the state; each line of a batch goes through the same
responders as live requests (scripted ``Reply``, ``match=``, callables, the default)::

    server.batch_api.completion_delay = 0.2      # seconds from create to completed
    server.batch_api.fail(match="ticket 7", status=500)            # one line fails
    server.batch_api.fail(match="ticket 8", code="batch_expired")   # one line expires
    server.batch_api.fail_batch("failed")        # the next batch fails: enqueued-token limit
    server.batch_api.create_latency = 5          # POST /batches answers late (to test crashes)
    server.batch_api.fail_after_create = 1       # the next create makes the batch, answers 500
    server.batch_api.batches[0].custom_ids       # what each created batch contained
    server.batch_api.max_embedding_inputs = 10   # per-batch limits (also max_requests, max_bytes)

Lifecycle: ``validating`` -> ``in_progress`` (first retrieve) -> ``completed`` after
``completion_delay`` (lines run then, lazily); ``cancelling`` -> ``cancelled``. Output lines
come shuffled, as the real API's may. ``hold`` and ``events``: see ``batch_holds``.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from flowrun.testing.batch_holds import BatchHolds
from flowrun.testing.http_server import parse_multipart
from flowrun.testing.replies import EMBEDDINGS, RecordedRequest, Reply, _Entry, _error_body


class Server(Protocol):
    """What the Batch API needs of the server it belongs to (``loopback.LoopbackServer``)."""

    _lock: Any
    validator: Any
    spec_violations: list[str]
    errors: list[str]

    def _respond(self, req: RecordedRequest) -> Reply | None: ...

    def _chat(self, req: RecordedRequest, reply: Reply) -> tuple[dict[str, Any], list[dict]]: ...

    def _embeddings(self, req: RecordedRequest, reply: Reply | None) -> dict[str, Any]: ...


__all__ = ["BatchAPI", "BatchFailure", "BatchRecord", "StoredFile"]

#: Batch endpoint -> the server path whose responders answer its lines.
LINE_PATHS = {"/v1/chat/completions": "/chat/completions", "/v1/embeddings": "/embeddings"}
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
MAX_EMBEDDING_INPUTS = 50_000  # embedding inputs across all requests of one batch
_ERROR_MESSAGES = {
    "batch_expired": "This request could not be executed before the completion window expired.",
    "batch_cancelled": "This request could not be executed because the batch was cancelled.",
}


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class BatchFailure:
    """An injected failure for batch lines that fit ``match`` (as in ``LoopbackServer.add``)."""

    match: Any
    status: int = 500
    code: str | None = None  #: e.g. ``batch_expired``: an ``error`` line instead of a response
    message: str | None = None
    times: int | None = 1


@dataclass
class BatchRecord:
    """One created batch, with everything a test may want to assert."""

    id: str
    endpoint: str
    input_file_id: str
    metadata: dict[str, str] | None
    created_at: float
    status: str = "validating"
    model: str | None = None
    custom_ids: list[str] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    times: dict[str, int] = field(default_factory=dict)
    forced: str | None = None  #: a whole-batch outcome injected with ``fail_batch``
    forced_error: tuple[str, str] | None = None  #: its (code, message) when it fails

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_at),
            "expires_at": int(self.created_at) + 24 * 3600,
            "request_counts": {
                "total": len(self.custom_ids),
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }
        if self.model:
            data["model"] = self.model
        for name, at in self.times.items():
            data[f"{name}_at"] = at
        return data


class BatchAPI(BatchHolds):
    """State and request handling of ``/v1/files`` and ``/v1/batches`` for one server."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.completion_delay = 0.0
        #: seconds ``POST /batches`` waits after creating the batch, before it answers
        self.create_latency = 0.0
        #: the next N ``POST /batches`` create the batch, then answer 500 (a lost answer)
        self.fail_after_create = 0
        self.max_requests = MAX_REQUESTS
        self.max_bytes = MAX_BYTES
        self.max_embedding_inputs = MAX_EMBEDDING_INPUTS
        self.files: dict[str, StoredFile] = {}
        self.batches: list[BatchRecord] = []
        self.requests: list[RecordedRequest] = []  #: every batch line processed, in order
        self._failures: list[BatchFailure] = []
        self._batch_failures: list[tuple[str, str, str]] = []
        self._ids = itertools.count(1)
        # ids unique across server starts, as the real service's are: a store that kept the ids
        # of an earlier server's files (an earlier ``--mock --via batch-api`` run) never clashes
        self._run_tag = f"{random.getrandbits(32):08x}"
        self._init_holds()
        self.available = True  #: False: a server without the Files and Batches APIs

    # -- scripting -----------------------------------------------------------------
    def fail(
        self,
        match: Any = None,
        *,
        status: int = 500,
        code: str | None = None,
        message: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Make batch lines that fit ``match`` fail: an error response, or an ``error`` line."""
        with self.server._lock:
            self._failures.append(BatchFailure(match, status, code, message, times))

    def fail_batch(
        self,
        outcome: str = "failed",
        times: int = 1,
        *,
        code: str = "token_limit_exceeded",
        message: str = "Enqueued token limit reached.",
    ) -> None:
        """The next ``times`` batches end ``failed`` (by default as over the enqueued-token
        limit; ``code``/``message`` give another reason) or ``expired`` as a whole."""
        if outcome not in ("failed", "expired"):
            raise ValueError(f"outcome must be 'failed' or 'expired', not {outcome!r}")
        with self.server._lock:
            self._batch_failures.extend([(outcome, code, message)] * times)

    # -- routing ---------------------------------------------------------------------
    def dispatch(self, req: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        """Answer a request under ``/files`` or ``/batches`` (404 when not ``available``)."""
        if not self.available:  # a server without these APIs, as llama.cpp's answers
            return 404, {"detail": "Not Found"}, {}
        answer = self._dispatch(req)
        if req.method == "POST" and req.path.rstrip("/") == "/batches":
            if self.create_latency:
                time.sleep(self.create_latency)  # the batch exists; the client does not know yet
            with self.server._lock:
                if self.fail_after_create > 0 and answer[0] == 200:
                    self.fail_after_create -= 1
                    return 500, _error_body(500, "the server failed after creating the batch"), {}
        return answer

    def _dispatch(self, req: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        path, method = req.path.rstrip("/"), req.method
        with self.server._lock:
            if method == "POST" and path == "/files":
                return self._upload(req)
            if method == "GET" and path == "/files":
                data = [f.to_json() for f in self.files.values()]
                return 200, {"object": "list", "data": data, "has_more": False}, {}
            if m := re.fullmatch(r"/files/([^/]+)(/content)?", path):
                stored = self.files.get(m[1])
                if method != "GET" or stored is None:
                    return _not_found(req, "file", m[1])
                return 200, (stored.data if m[2] else stored.to_json()), {}
            if method == "POST" and path == "/batches":
                return self._create(req.body)
            if method == "GET" and path == "/batches":
                return 200, self._list(req.query), {}
            if m := re.fullmatch(r"/batches/([^/]+)(/cancel)?", path):
                batch = self._find(m[1])
                if batch is None or (method == "POST") != bool(m[2]):
                    return _not_found(req, "batch", m[1])
                if m[2]:
                    return self._cancel(batch)
                self._advance(batch)
                return 200, batch.to_json(), {}
        return _not_found(req, "endpoint", path)

    # -- files -------------------------------------------------------------------------
    def _upload(self, req: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        fields, files = parse_multipart(req.headers.get("content-type", ""), req.raw)
        purpose = fields.get("purpose")
        if self.server.validator is not None:
            form = {"purpose": purpose, **({"file": "<binary>"} if files else {})}
            errors = self.server.validator.validate_schema("CreateFileRequest", form)
            if errors:
                self.server.spec_violations.extend(f"POST /files: {e}" for e in errors)
                return 400, _error_body(400, "; ".join(errors)), {}
        if not files or purpose is None:
            return 400, _error_body(400, "Upload needs a 'file' part and a 'purpose' field."), {}
        filename, data = files[0]
        if purpose == "batch" and not filename.endswith(".jsonl"):
            return 400, _error_body(400, f"Batch input files must be .jsonl, got '{filename}'."), {}
        stored = self._store(filename, purpose, data)
        return 200, stored.to_json(), {}

    def _store(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        stored = StoredFile(
            f"file-loopback{self._run_tag}-{next(self._ids)}", filename, purpose, data, _now()
        )
        self.files[stored.id] = stored
        return stored

    # -- batches -----------------------------------------------------------------------
    def _create(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict):
            return 400, _error_body(400, "The request body is not a JSON object."), {}
        endpoint, file_id = body.get("endpoint"), body.get("input_file_id")
        if endpoint not in LINE_PATHS:
            return 400, _error_body(400, f"The loopback server does not batch {endpoint!r}."), {}
        stored = self.files.get(file_id or "")
        if stored is None or stored.purpose != "batch":
            return 400, _error_body(400, f"No file with id '{file_id}' and purpose 'batch'."), {}
        batch = BatchRecord(
            f"batch_loopback{self._run_tag}-{next(self._ids)}",
            endpoint,
            stored.id,
            body.get("metadata"),
            time.time(),
        )
        batch.times["created"] = int(batch.created_at)
        self._check_file(batch, stored.data)
        if self._batch_failures and batch.status != "failed":
            batch.forced, *error = self._batch_failures.pop(0)
            batch.forced_error = (error[0], error[1])
        self.batches.append(batch)
        self._event("created", batch.id)
        return 200, batch.to_json(), {}

    def _check_file(self, batch: BatchRecord, data: bytes) -> None:
        """Parse and check the input file as the API does; problems fail the batch."""
        problems: list[dict[str, Any]] = []
        if len(data) > self.max_bytes:
            problems.append(_problem("file_too_large", f"over {self.max_bytes} bytes", None))
        models: set[str] = set()
        seen: set[str] = set()
        inputs = 0
        for number, raw in enumerate(data.splitlines(), start=1):
            try:
                line = json.loads(raw)
            except ValueError:
                problems.append(_problem("invalid_json_line", "not valid JSON", number))
                continue
            cid, body = line.get("custom_id"), line.get("body")
            if not isinstance(cid, str) or cid in seen:
                problems.append(_problem("duplicate_custom_id", f"custom_id {cid!r}", number))
            if line.get("method") != "POST" or line.get("url") != batch.endpoint:
                problems.append(_problem("invalid_url", "method/url do not fit", number))
            if not isinstance(body, dict):
                problems.append(_problem("invalid_body", "body is not an object", number))
                continue
            seen.add(cid)
            models.add(str(body.get("model")))
            if batch.endpoint == "/v1/embeddings":
                given = body.get("input")
                inputs += (
                    len(given)
                    if isinstance(given, list) and given and not isinstance(given[0], int)
                    else 1
                )
            batch.custom_ids.append(cid)
            batch.lines.append(line)
        if len(batch.lines) > self.max_requests:
            message = f"{len(batch.lines)} requests, more than {self.max_requests}"
            problems.append(_problem("too_many_requests", message, None))
        if inputs > self.max_embedding_inputs:
            message = f"{inputs} embedding inputs, more than {self.max_embedding_inputs}"
            problems.append(_problem("too_many_embedding_inputs", message, None))
        if len(models) > 1:
            message = f"all requests of a batch must use one model, got {sorted(models)}"
            problems.append(_problem("mixed_models", message, None))
        batch.model = next(iter(models), None)
        if problems:
            batch.status, batch.errors = "failed", problems[:20]
            batch.times["failed"] = _now()

    def _find(self, batch_id: str) -> BatchRecord | None:
        return next((b for b in self.batches if b.id == batch_id), None)

    def _list(self, query: str) -> dict[str, Any]:
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        newest = list(reversed(self.batches))
        if after := params.get("after"):
            ids = [b.id for b in newest]
            newest = newest[ids.index(after) + 1 :] if after in ids else []
        limit = int(params.get("limit") or 20)
        page = newest[:limit]
        for batch in page:
            self._advance(batch)
        data = [b.to_json() for b in page]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(newest) > limit,
        }

    def _cancel(self, batch: BatchRecord) -> tuple[int, Any, dict[str, str]]:
        if batch.status in TERMINAL:
            message = f"Cannot cancel a batch with status '{batch.status}'."
            return 409, _error_body(409, message), {}
        batch.status = "cancelling"
        batch.times["cancelling"] = _now()
        return 200, batch.to_json(), {}

    def _advance(self, batch: BatchRecord) -> None:
        """Move a batch along its lifecycle (called on retrieve and list)."""
        if batch.status in TERMINAL:
            return
        if batch.status == "cancelling":
            self._finish(batch, "cancelled", "batch_cancelled")
            return
        if batch.status == "validating":
            batch.status = "in_progress"
            batch.times["in_progress"] = _now()
        if time.time() - batch.created_at < self.completion_delay or self._held(batch):
            return
        if batch.forced == "failed":
            batch.status, batch.lines = "failed", []
            code, message = batch.forced_error or ("token_limit_exceeded", "")
            batch.errors = [_problem(code, message, None)]  # no line was run
            batch.times["failed"] = _now()
            self._event("failed", batch.id)
        elif batch.forced == "expired":
            self._finish(batch, "expired", "batch_expired")
        else:
            self._finish(batch, "completed", None)

    def _finish(self, batch: BatchRecord, status: str, unrun: str | None) -> None:
        """Run (or, with ``unrun`` as error code, skip) every line; write the result files."""
        outputs: list[bytes] = []
        errors: list[bytes] = []
        for n, line in enumerate(batch.lines):
            if unrun is None:
                response, error = self._run_line(batch.endpoint, line)
            else:
                response, error = None, {"code": unrun, "message": _ERROR_MESSAGES[unrun]}
            out = {
                "id": f"batch_req_{batch.id}_{n}",
                "custom_id": line["custom_id"],
                "response": response,
                "error": error,
            }
            ok = response is not None and response["status_code"] == 200
            (outputs if ok else errors).append(json.dumps(out).encode("utf-8"))
        ordered = list(outputs)
        random.Random(batch.id).shuffle(outputs)  # the API does not keep the input order
        if outputs == ordered:
            outputs = outputs[1:] + outputs[:1]
        batch.completed, batch.failed = len(outputs), len(errors)
        name = f"{batch.id}_{{}}.jsonl"
        if outputs:
            stored = self._store(name.format("output"), "batch_output", b"\n".join(outputs) + b"\n")
            batch.output_file_id = stored.id
        if errors:
            stored = self._store(name.format("error"), "batch_output", b"\n".join(errors) + b"\n")
            batch.error_file_id = stored.id
        if status == "completed":
            batch.times["finalizing"] = _now()
        batch.status = status
        batch.times[status] = _now()
        batch.lines = []
        self._event(status, batch.id)

    def _run_line(
        self, endpoint: str, line: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """One line through the server's responders: ``(response, error)`` as in the output file."""
        server, body = self.server, line["body"]
        path = LINE_PATHS[endpoint]
        raw = json.dumps(body).encode("utf-8")
        req = RecordedRequest("POST", path, {}, body, raw, "", time.monotonic())
        self.requests.append(req)
        request_id = f"req_loopback_{next(self._ids)}"

        def answer(status: int, payload: Any) -> tuple[dict[str, Any], None]:
            return {"status_code": status, "request_id": request_id, "body": payload}, None

        failure = self._take_failure(req)
        if failure is not None:
            if failure.code:
                message = failure.message or _ERROR_MESSAGES.get(failure.code, failure.code)
                return None, {"code": failure.code, "message": message}
            return answer(failure.status, _error_body(failure.status, failure.message))
        if server.validator is not None:
            problems = server.validator.validate(path, body)
            if problems:
                cid = line["custom_id"]
                server.spec_violations.extend(f"batch line {cid} {path}: {e}" for e in problems)
                return answer(400, _error_body(400, "; ".join(problems)))
        try:
            reply = server._respond(req)
            if reply is not None and reply.status != 200:
                return answer(reply.status, _error_body(reply.status, reply.error))
            if path == EMBEDDINGS:
                payload = server._embeddings(req, reply)
            else:
                assert reply is not None
                payload = server._chat(req, reply)[0]
            if reply is not None and reply.no_usage:  # as some compatible servers answer
                payload.pop("usage", None)
            return answer(200, payload)
        except Exception as exc:
            server.errors.append(f"batch line {line['custom_id']}: {exc!r}")
            return answer(500, _error_body(500, f"Loopback responder failed: {exc!r}"))

    def _take_failure(self, req: RecordedRequest) -> BatchFailure | None:
        for i, failure in enumerate(self._failures):
            if _Entry(failure, failure.match, None, None).fits(req):
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        del self._failures[i]
                return failure
        return None


def _problem(code: str, message: str, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


def _not_found(req: RecordedRequest, kind: str, name: str) -> tuple[int, Any, dict[str, str]]:
    return 404, _error_body(404, f"No {kind} '{name}' ({req.method} /v1{req.path})."), {}


def _now() -> int:
    return int(time.time())
