"""The one way flowrun opens the run store's SQLite file.

Every table family (runs and steps, batches, Batch API state, the history) goes through a
``Database``: the same connection settings (autocommit, WAL, ``synchronous=NORMAL``, foreign
keys, ``secure_delete=FAST``, the busy timeout from ``FLOWRUN_STORE_TIMEOUT``, default 10 s),
the schema migrated on open, one lock per connection (a connection is shared by the threads
of a run), rows that decode by column name (``sqlite3.Row``: ``row["status"]``, and still
``row[0]`` or tuple unpacking), and every SQLite error mapped to ``StoreError`` /
``StoreLocked`` with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flowrun.errors import StoreError, StoreLocked, UsageError
from flowrun.store.migrations import migrate

TIMEOUT_ENV = "FLOWRUN_STORE_TIMEOUT"  # seconds to wait for another process's lock (default 10)
#: The write-ahead log's size (in pages) before a connection that writes a batch's rows folds
#: it back into the file (SQLite's default is 1,000 pages, 4 MB): a Batch API run commits tens
#: of megabytes of result lines, and with the default the same pages were copied again and
#: again; the log is still folded back and removed when the run's connections close.
BATCH_CHECKPOINT_PAGES = 10_000

Row = sqlite3.Row


class Database:
    """One connection to the SQLite file at ``path``, with flowrun's settings (see the module)."""

    def __init__(self, path: str | Path, *, checkpoint_pages: int | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        timeout = busy_timeout()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the run store at {self.path}: {exc.strerror}"
            ) from None
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from None
        try:
            _enable_wal(self._db, timeout)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # deleted rows are zeroed in the pages a delete writes anyway, but a page that
            # becomes free is not written again only to be zeroed (Debian's SQLite builds
            # default to secure_delete=ON, which did: a Batch API run deletes every result
            # line it stored)
            self._db.execute("PRAGMA secure_delete=FAST")
            if checkpoint_pages is not None:
                self._db.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
            migrate(self._db)
        except sqlite3.Error as exc:
            self._db.close()
            raise store_error(exc, self.path) from None
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        """Close the connection (do it: a connection left to the garbage collector keeps its locks)."""
        with self._lock:
            self._db.close()

    def read(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """The rows of one query."""
        with self._errors():
            return self._db.execute(sql, tuple(params)).fetchall()

    def write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """One statement, committed at once; returns how many rows it changed."""
        with self._errors():
            return self._db.execute(sql, tuple(params)).rowcount

    def write_many(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """One statement over many rows (``executemany``), committed at once."""
        with self._errors():
            self._db.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): what the block executes is committed
        together, or not at all if it raises."""
        with self._errors(), self._db:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Hold the connection's lock; SQLite errors become ``StoreError`` / ``StoreLocked``."""
        with self._lock:
            try:
                yield
            except sqlite3.DatabaseError as exc:
                raise store_error(exc, self.path) from None

    def compact(self) -> None:
        """VACUUM, then fold the write-ahead log back so the file on disk shrinks."""
        with self._errors():
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def utc_now() -> str:
    """The time every table stores: UTC, ISO 8601, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def busy_timeout() -> float:
    """Seconds to wait for another process's lock: ``FLOWRUN_STORE_TIMEOUT``, default 10."""
    try:
        return float(os.environ.get(TIMEOUT_ENV) or 10.0)
    except ValueError:
        raise UsageError(f"{TIMEOUT_ENV} must be a number of seconds") from None


def store_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """A SQLite error as what the user reads: locked, corrupted, or the error itself."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreLocked(
            f"the run store {path} is locked by another process; try again, or set "
            "FLOWRUN_HOME to another folder"
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(
            f"the run store {path} is corrupted ({text}); move it aside (a new one is created) "
            "or set FLOWRUN_HOME"
        )
    return StoreError(f"run store {path}: {text}")


def _enable_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL mode (it stays so); retried, since SQLite does not wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            (mode,) = db.execute("PRAGMA journal_mode").fetchone()
            if mode.lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
