"""The output file of a batch: one JSON line per record, in input order; merged on resume.

``--resume`` reads the existing OUT (``scan_output``), and ``OutputWriter`` writes the merge
of its old lines and the new ones to ``OUT.partial``, which replaces OUT at the end. A resume
killed hard (``kill -9``) leaves OUT as it was and ``OUT.partial`` holding, in order, the
lines it had merged so far; the next resume first finishes that merge (``recover_partial``),
so the records it completed are never run (and paid) again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from flowrun.batch.summary import BatchResult
from flowrun.errors import UsageError
from flowrun.json_text import json_encoder

_INDEX_PREFIX = re.compile(rb'^\{"index": (\d+)')


def partial_path(out: Path) -> Path:
    """Where a resume writes the merged output before it replaces ``out``."""
    return out.with_name(out.name + ".partial")


@dataclass
class PreviousOutput:
    """What an existing output file says: which records are done, and what they cost."""

    path: Path
    succeeded: bytearray = field(default_factory=bytearray)  # bitmap by record index
    succeeded_count: int = 0
    lines: int = 0
    cost_usd: float = 0.0

    def is_done(self, index: int) -> bool:
        byte = index >> 3
        return byte < len(self.succeeded) and bool(self.succeeded[byte] & (1 << (index & 7)))

    def _mark(self, index: int) -> None:
        byte = index >> 3
        if byte >= len(self.succeeded):
            self.succeeded.extend(bytes(byte + 1 - len(self.succeeded)))
        self.succeeded[byte] |= 1 << (index & 7)
        self.succeeded_count += 1


def scan_output(path: Path) -> PreviousOutput:
    """Read an output file written by an earlier run (a cut-off last line is ignored)."""
    previous = PreviousOutput(path)
    last = -1
    pending_error: str | None = None
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            if pending_error:
                raise UsageError(pending_error, hint="it is not a flowrun batch output file")
            try:
                data = json.loads(raw)
                index, status = data["index"], data["status"]
                if not isinstance(index, int) or index < 0:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                # only the very last line may be broken: a crash cut it off
                pending_error = (
                    f"{path}:{lineno}: not a result line, so resume=True cannot continue it"
                )
                continue
            if index <= last:
                raise UsageError(
                    f"{path}:{lineno}: record {index} is out of order; resume=True needs the output "
                    "as flowrun wrote it (in input order)"
                )
            last = index
            previous.lines += 1
            previous.cost_usd += float(data.get("cost_usd") or 0.0)
            if status == "succeeded":
                previous._mark(index)
    return previous


def _previous_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(index, raw line) of every well-formed line of an earlier output, in order."""
    with path.open("rb") as f:
        for raw in f:
            match = _INDEX_PREFIX.match(raw)
            if match and raw.endswith(b"\n"):
                yield int(match.group(1)), raw
                continue
            try:
                data = json.loads(raw)
                yield int(data["index"]), raw.rstrip(b"\n") + b"\n"
            except (ValueError, KeyError, TypeError):
                continue


#: a result line's encoder (``json.dumps(..., ensure_ascii=False, default=str)``, made once)
_LINE = json_encoder(ensure_ascii=False, default=str)


class OutputWriter:
    """Writes result lines in order; on resume, merges them with the earlier output's lines.

    The file is opened on the first line, so a batch refused before any record ran leaves
    no (or the old) output behind.
    """

    def __init__(self, path: Path | None, previous: PreviousOutput | None = None) -> None:
        self.path = path
        self.previous = previous
        self._old: Iterator[tuple[int, bytes]] | None = None
        self._held: tuple[int, bytes] | None = None
        self.f: TextIO | None = sys.stdout if path is None else None
        self.target = path
        if path is not None and previous is not None:
            self.target = partial_path(path)
            self._old = _previous_lines(previous.path)

    def _open(self) -> TextIO:
        if self.f is None:
            assert self.target is not None
            try:
                self.f = self.target.open("w", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise UsageError(f"cannot write the output {self.target}: {exc.strerror}") from None
        return self.f

    def write(self, result: BatchResult) -> None:
        f = self._open()
        self._copy_old(f, before=result.index)
        f.write(_LINE(result.to_json()) + "\n")

    def _copy_old(self, f: TextIO, before: int | None) -> None:
        """Copy earlier lines with an index below ``before`` (all when None); drop ``before``'s."""
        if self._old is None:
            return
        while True:
            item = self._held or next(self._old, None)
            self._held = None
            if item is None:
                self._old = None
                return
            index, raw = item
            if before is not None and index >= before:
                if index > before:
                    self._held = item
                return
            f.write(raw.decode("utf-8"))

    def error_text(self, exc: OSError) -> str:
        """What a failed write of the output says (one line)."""
        return f"cannot write the output {self.target}: {exc.strerror or exc}"

    def abandon(self) -> None:
        """Close the file after a failed write, writing nothing more (OUT is left as it is,
        with at most a cut-off last line, which a resume ignores; a resume's ``OUT.partial``
        is finished by the next resume)."""
        if self.f is not None and self.path is not None:
            with contextlib.suppress(OSError):
                self.f.close()
        self._old = None

    def close(self, ran: bool = True) -> None:
        """Finish the file: the rest of the earlier lines, then (resume) replace the output.

        ``ran=False`` (the batch was refused before running): leave everything as it was.
        """
        if self.path is None:
            if self.f is not None:
                self.f.flush()
            return
        if self.f is None and (self.previous is not None or not ran):
            return  # nothing new: the earlier output (if any) is already complete
        f = self._open()
        self._copy_old(f, before=None)
        f.close()
        if self.target != self.path:
            os.replace(self.target, self.path)


def previous_output(out: Path | None, resume: bool) -> PreviousOutput | None:
    """What an existing OUT says (None for a fresh output); finishes a killed resume's merge."""
    if out is None:
        if resume:
            raise UsageError("resume=True needs an output= file (the file it continues)")
        return None
    if out.is_dir():
        raise UsageError(f"output= {out} is a directory")
    partial = partial_path(out)
    if not resume:
        if out.exists() and out.stat().st_size > 0:
            raise UsageError(
                f"the output {out} already exists",
                hint="continue it with resume=True (only records not yet succeeded are run), "
                "or choose another output=",
            )
        if partial.exists():
            raise UsageError(
                f"{partial} holds the results of a resume that was cut off",
                hint="continue it with resume=True, or delete it to start afresh",
            )
        return None
    if partial.exists():
        recover_partial(partial, out)
    if not out.exists() or out.stat().st_size == 0:
        return None
    return scan_output(out)


def recover_partial(partial: Path, out: Path) -> None:
    """Finish the merge a killed resume left in ``partial``: its complete lines, then the lines
    of ``out`` after them; the result replaces ``out``. Safe to repeat if killed again."""
    last, keep = -1, 0
    with partial.open("rb") as f:
        for index, end in _indexed_lines(f, partial):
            last, keep = index, end
    with partial.open("r+b") as f:
        f.truncate(keep)  # a line cut off by the kill
        f.seek(keep)
        if out.exists():
            for index, raw in _previous_lines(out):
                if index > last:
                    f.write(raw)
    os.replace(partial, out)


def _indexed_lines(f: Iterator[bytes], path: Path) -> Iterator[tuple[int, int]]:
    """(index, end offset) of each complete line; only the very last line may be cut off."""
    offset, last, broken = 0, -1, False
    for raw in f:
        if broken:
            raise UsageError(
                f"{path} is damaged, so resume=True cannot finish it",
                hint="delete it: the records it finished then run again",
            )
        offset += len(raw)
        if not raw.strip():
            continue
        try:
            index = int(json.loads(raw)["index"])
        except (ValueError, KeyError, TypeError):
            broken = True
            continue
        if not raw.endswith(b"\n") or index <= last:
            broken = True
            continue
        last = index
        yield index, offset
