"""The run store's schema as an append-only list of numbered migrations.

Never edit a migration that has shipped: add a new one at the end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def m001_runs_and_steps(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            workflow_name TEXT NOT NULL,
            workflow_path TEXT,
            workflow_hash TEXT NOT NULL,
            workflow_text TEXT NOT NULL,
            inputs TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            cost_usd REAL NOT NULL DEFAULT 0,
            outputs TEXT,
            error TEXT,
            failed_step TEXT,
            options TEXT,
            pid INTEGER
        );
        CREATE INDEX runs_started ON runs(started_at);
        CREATE TABLE steps (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            step_id TEXT NOT NULL,
            status TEXT NOT NULL,
            cost_usd REAL NOT NULL DEFAULT 0,
            record TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            PRIMARY KEY (run_id, step_id)
        );
        """
    )


def m002_cache(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE cache (
            key TEXT PRIMARY KEY,
            model TEXT,
            reply TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        """
    )


def m003_threads(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE thread_messages (
            thread TEXT NOT NULL,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            run_id TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (thread, seq)
        );
        """
    )


def m004_batches(db: sqlite3.Connection) -> None:
    """Batch runs, and the completed steps of records whose output line is not written yet."""
    db.executescript(
        """
        CREATE TABLE batches (
            id TEXT PRIMARY KEY,
            workflow_name TEXT NOT NULL,
            workflow_path TEXT,
            workflow_hash TEXT NOT NULL,
            workflow_text TEXT NOT NULL,
            records_path TEXT,
            output_path TEXT,
            options TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            summary TEXT,
            pid INTEGER
        );
        CREATE INDEX batches_output ON batches(output_path, started_at);
        CREATE TABLE batch_steps (
            batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
            record_index INTEGER NOT NULL,
            step_id TEXT NOT NULL,
            cost_usd REAL NOT NULL DEFAULT 0,
            record TEXT NOT NULL,
            PRIMARY KEY (batch_id, record_index, step_id)
        ) WITHOUT ROWID;
        """
    )


def m005_batch_api(db: sqlite3.Connection) -> None:
    """Batch API input files and their batches, the requests in them, and their results."""
    db.executescript(
        """
        CREATE TABLE batch_api_files (
            file_id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            wave INTEGER NOT NULL,
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            requests INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            batch_id TEXT,
            status TEXT NOT NULL,
            completed INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            submitted_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            collected INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX batch_api_files_run ON batch_api_files(run_id, submitted_at);
        CREATE TABLE batch_api_requests (
            run_id TEXT NOT NULL,
            custom_id TEXT NOT NULL,
            file_id TEXT NOT NULL,
            result TEXT,
            PRIMARY KEY (run_id, custom_id)
        ) WITHOUT ROWID;
        CREATE TABLE batch_api_runs (
            run_id TEXT PRIMARY KEY,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        """
    )


def m006_history_and_transcripts(db: sqlite3.Connection) -> None:
    """Step transcripts, every batch record's outcome (with its steps), history indexes."""
    db.executescript(
        """
        ALTER TABLE steps ADD COLUMN transcript TEXT;
        CREATE TABLE batch_records (
            batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
            record_index INTEGER NOT NULL,
            status TEXT NOT NULL,
            cost_usd REAL,
            duration_s REAL NOT NULL DEFAULT 0,
            line INTEGER,
            error TEXT,
            steps TEXT NOT NULL,
            PRIMARY KEY (batch_id, record_index)
        ) WITHOUT ROWID;
        CREATE INDEX runs_workflow ON runs(workflow_name, started_at);
        CREATE INDEX runs_status ON runs(status, started_at);
        CREATE INDEX batches_started ON batches(started_at);
        """
    )


def m007_metrics(db: sqlite3.Connection) -> None:
    """The metrics a run's aggregate steps logged (flowrun.log_metric): one row per name.
    ``owner`` is a run id (a single run) or a batch id; ``value`` is JSON."""
    db.executescript(
        """
        CREATE TABLE metrics (
            owner TEXT NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            logged_at TEXT NOT NULL,
            PRIMARY KEY (owner, name)
        ) WITHOUT ROWID;
        """
    )


def m008_batch_records_counts(db: sqlite3.Connection) -> None:
    """A covering index for a batch's counts and cost (the records' rows hold their steps)."""
    db.executescript(
        "CREATE INDEX batch_records_status ON batch_records(batch_id, status, cost_usd);"
    )


def m009_run_cost_note(db: sqlite3.Connection) -> None:
    """Why a run's cost is no dollar figure: 'mock' (``--mock``) or 'unpriced' (a model with no
    price); NULL when ``cost_usd`` is the whole cost."""
    db.executescript("ALTER TABLE runs ADD COLUMN cost_note TEXT;")


def m010_step_items(db: sqlite3.Connection) -> None:
    """The finished items of a ``foreach`` step that has not finished yet (each committed as
    it completes), so a resume runs only the rest; a step's rows go when it succeeds."""
    db.executescript(
        """
        CREATE TABLE step_items (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            step_id TEXT NOT NULL,
            item_index INTEGER NOT NULL,
            item_key TEXT NOT NULL,
            cost_usd REAL NOT NULL DEFAULT 0,
            record TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            PRIMARY KEY (run_id, step_id, item_index)
        );
        """
    )


def m011_earlier_attempts(db: sqlite3.Connection) -> None:
    """What a run paid for steps that a resume ran again (a failed step's calls, a foreach
    item asked afresh): part of the run's cost, though no step row holds it any more."""
    db.executescript("ALTER TABLE runs ADD COLUMN earlier_cost_usd REAL NOT NULL DEFAULT 0;")


def m012_batch_items(db: sqlite3.Connection) -> None:
    """The finished items of a ``foreach`` step of a batch record whose line is not written
    yet (each committed as it is paid for), so a resumed batch asks only the rest."""
    db.executescript(
        """
        CREATE TABLE batch_items (
            batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
            record_index INTEGER NOT NULL,
            step_id TEXT NOT NULL,
            item_index INTEGER NOT NULL,
            item_key TEXT NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (batch_id, record_index, step_id, item_index)
        ) WITHOUT ROWID;
        """
    )


def m013_rowid_batch_tables(db: sqlite3.Connection) -> None:
    """The batch tables whose rows are large (step records, result lines, record histories)
    as ordinary rowid tables, their key a unique index: SQLite's WITHOUT ROWID layout suits
    rows under about 200 bytes, and for these it took 2.3 times the space and about twice the
    writes. ``batch_steps`` also keeps each step's transcript, so a record's history shows the
    transcripts of steps completed in an earlier run of it (a Batch API wave, a resume)."""
    tables = {
        "batch_steps": (
            "batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,"
            " record_index INTEGER NOT NULL, step_id TEXT NOT NULL,"
            " cost_usd REAL NOT NULL DEFAULT 0, record TEXT NOT NULL, transcript TEXT,"
            " PRIMARY KEY (batch_id, record_index, step_id)",
            "batch_id, record_index, step_id, cost_usd, record",
        ),
        "batch_items": (
            "batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,"
            " record_index INTEGER NOT NULL, step_id TEXT NOT NULL, item_index INTEGER NOT NULL,"
            " item_key TEXT NOT NULL, record TEXT NOT NULL,"
            " PRIMARY KEY (batch_id, record_index, step_id, item_index)",
            "batch_id, record_index, step_id, item_index, item_key, record",
        ),
        "batch_records": (
            "batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,"
            " record_index INTEGER NOT NULL, status TEXT NOT NULL, cost_usd REAL,"
            " duration_s REAL NOT NULL DEFAULT 0, line INTEGER, error TEXT, steps TEXT NOT NULL,"
            " PRIMARY KEY (batch_id, record_index)",
            "batch_id, record_index, status, cost_usd, duration_s, line, error, steps",
        ),
        "batch_api_requests": (
            "run_id TEXT NOT NULL, custom_id TEXT NOT NULL, file_id TEXT NOT NULL, result TEXT,"
            " PRIMARY KEY (run_id, custom_id)",
            "run_id, custom_id, file_id, result",
        ),
    }
    for table, (columns, copied) in tables.items():
        db.executescript(
            f"""
            CREATE TABLE {table}_m013 ({columns});
            INSERT INTO {table}_m013 ({copied}) SELECT {copied} FROM {table};
            DROP TABLE {table};
            ALTER TABLE {table}_m013 RENAME TO {table};
            """
        )
    db.executescript(
        "CREATE INDEX batch_records_status ON batch_records(batch_id, status, cost_usd);"
    )


def m014_batch_api_results(db: sqlite3.Connection) -> None:
    """Batch API result lines in their own table, inserted as they are downloaded: a request
    row that grew in place by its result line (about 900 bytes) cost twice the CPU time of an
    insert. Both tables are keyed by the record's index too, so the requests and results of a
    range of records are read and deleted by one statement instead of one per record."""
    record = "CAST(substr(custom_id, 2, instr(custom_id, '.') - 2) AS INTEGER)"  # r17.x -> 17
    db.executescript(
        f"""
        CREATE TABLE batch_api_requests_m014 (
            run_id TEXT NOT NULL,
            record INTEGER NOT NULL,
            custom_id TEXT NOT NULL,
            file_id TEXT NOT NULL,
            PRIMARY KEY (run_id, record, custom_id)
        ) WITHOUT ROWID;
        CREATE TABLE batch_api_results (
            run_id TEXT NOT NULL,
            record INTEGER NOT NULL,
            custom_id TEXT NOT NULL,
            result TEXT NOT NULL,
            PRIMARY KEY (run_id, record, custom_id)
        );
        INSERT INTO batch_api_requests_m014 (run_id, record, custom_id, file_id)
            SELECT run_id, {record}, custom_id, file_id FROM batch_api_requests;
        INSERT INTO batch_api_results (run_id, record, custom_id, result)
            SELECT run_id, {record}, custom_id, result FROM batch_api_requests
            WHERE result IS NOT NULL;
        DROP TABLE batch_api_requests;
        ALTER TABLE batch_api_requests_m014 RENAME TO batch_api_requests;
        """
    )


MIGRATIONS: list[Migration] = [
    m001_runs_and_steps,
    m002_cache,
    m003_threads,
    m004_batches,
    m005_batch_api,
    m006_history_and_transcripts,
    m007_metrics,
    m008_batch_records_counts,
    m009_run_cost_note,
    m010_step_items,
    m011_earlier_attempts,
    m012_batch_items,
    m013_rowid_batch_tables,
    m014_batch_api_results,
]


def migrate(db: sqlite3.Connection) -> None:
    """Apply every migration not yet recorded in ``_migrations``, in order, in one transaction.

    ``BEGIN IMMEDIATE`` makes processes that open a new store at the same moment (two cron
    jobs, a batch) take turns: the second sees the first's migrations done and applies none.
    A migration that fails leaves the schema as it was.
    """
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    if _applied(db) >= set(range(1, len(MIGRATIONS) + 1)):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        done = _applied(db)
        for number, migration in enumerate(MIGRATIONS, start=1):
            if number in done:
                continue
            migration(_InTransaction(db))  # type: ignore[arg-type]
            db.execute(
                "INSERT INTO _migrations (id, name) VALUES (?, ?)", (number, migration.__name__)
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _applied(db: sqlite3.Connection) -> set[int]:
    return {row[0] for row in db.execute("SELECT id FROM _migrations")}


class _InTransaction:
    """The connection, with ``executescript`` running statement by statement.

    (``sqlite3.Connection.executescript`` would COMMIT the open transaction first.)
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def executescript(self, script: str) -> None:
        statement = ""
        for piece in script.split(";"):
            statement += piece + ";"
            if sqlite3.complete_statement(statement):
                if statement.strip(" \n;"):
                    self._db.execute(statement)
                statement = ""

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)
