"""The server's database: one SQLite file in ``data_dir/nucleus.db``, and its schema.

One connection, shared by the server's event loop, its worker threads and
tests that read it, guarded by a lock: SQLite serialises writers anyway, and
one connection keeps every write of a request in one transaction. What is
stored is split by kind over the modules of this package (``catalog``:
datasets, items, models, runs, taxonomies; ``segmentations``: masks and their
rows; ``jobs``: signed uploads and async jobs); ``Store`` joins them.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

DB_NAME = "nucleus.db"
BUSY_TIMEOUT_MS = 10_000
GROUND_TRUTH = "gt"

_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    is_scene INTEGER NOT NULL DEFAULT 0,
    use_privacy_mode INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    dataset_id TEXT NOT NULL REFERENCES datasets(id),
    reference_id TEXT NOT NULL,
    item_id TEXT NOT NULL UNIQUE,
    image_url TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    width INTEGER,
    height INTEGER,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (dataset_id, reference_id)
);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    reference_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS model_runs (
    id TEXT PRIMARY KEY,
    model_id TEXT NOT NULL REFERENCES models(id),
    dataset_id TEXT REFERENCES datasets(id),  -- NULL: a run made from its model alone
    name TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS model_runs_by_pair ON model_runs (dataset_id, model_id);
CREATE TABLE IF NOT EXISTS taxonomies (
    dataset_id TEXT NOT NULL REFERENCES datasets(id),
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    labels TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (dataset_id, name)
);
CREATE TABLE IF NOT EXISTS segmentations (
    dataset_id TEXT NOT NULL,
    reference_id TEXT NOT NULL,
    target TEXT NOT NULL,
    annotation_id TEXT,
    mask_url TEXT NOT NULL,
    mask_file TEXT,
    annotations TEXT NOT NULL,
    model_run_id TEXT,
    width INTEGER,
    height INTEGER,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (dataset_id, reference_id, target)
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    job_type TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    target TEXT,
    model_run_id TEXT,
    do_update INTEGER NOT NULL,
    input_file TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    total_steps INTEGER NOT NULL,
    completed_steps INTEGER NOT NULL DEFAULT 0,
    processed INTEGER NOT NULL DEFAULT 0,
    ignored INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS job_errors (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    error TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_errors_by_job ON job_errors (job_id, seq);
CREATE TABLE IF NOT EXISTS signed_uploads (
    token_hash TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    body_file TEXT,
    created REAL NOT NULL,
    used REAL
);
CREATE INDEX IF NOT EXISTS signed_uploads_by_request ON signed_uploads (dataset_id, request_id);
"""

#: Tables ``Store.count`` may name (it builds SQL from the name).
TABLES = (
    "datasets",
    "items",
    "models",
    "model_runs",
    "taxonomies",
    "segmentations",
    "jobs",
    "job_errors",
    "signed_uploads",
)


def new_id(prefix: str) -> str:
    """An id shaped like Nucleus ids (``ds_``, ``prj_``, ``run_``...), unguessable."""
    return prefix + "_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))


def placeholder_image_url(reference_id: str) -> str:
    """The image URL of an item made without one (seeded or ``auto_items``)."""
    return "placeholder://" + quote(reference_id, safe="")


class Database:
    """The connection, its lock and transactions; the parts of ``Store`` build on it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.masks_dir = self.data_dir / "masks"
        self.uploads_dir = self.data_dir / "uploads"
        for folder in (self.data_dir, self.masks_dir, self.uploads_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.data_dir / DB_NAME, check_same_thread=False, isolation_level=None
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        with self.transaction() as conn:
            _allow_runs_without_a_dataset(conn)
            # executescript() would commit on its own; run statements one by one.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All writes of one request: committed together or not at all."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _row(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def count(self, table: str, **where: Any) -> int:
        """Rows in ``table`` matching ``column=value`` pairs (for tests and checks)."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        sql = f"SELECT COUNT(*) FROM {table}"
        if where:
            for column in where:
                if not column.isidentifier():
                    raise ValueError(f"bad column {column!r}")
            sql += " WHERE " + " AND ".join(f"{c} = ?" for c in where)
        row = self._row(sql, list(where.values()))
        return int(row[0]) if row else 0


def _allow_runs_without_a_dataset(conn: sqlite3.Connection) -> None:
    """Data dirs made before model runs could stand alone held ``dataset_id NOT NULL``."""
    columns = {r["name"]: r for r in conn.execute("PRAGMA table_info(model_runs)")}
    if not columns or not columns["dataset_id"]["notnull"]:
        return
    conn.execute("ALTER TABLE model_runs RENAME TO model_runs_before")
    conn.execute("DROP INDEX IF EXISTS model_runs_by_pair")
    schema = _SCHEMA.split("CREATE TABLE IF NOT EXISTS model_runs", 1)[1].split(";", 1)[0]
    conn.execute("CREATE TABLE model_runs" + schema)
    conn.execute(
        "INSERT INTO model_runs (id, model_id, dataset_id, name, created)"
        " SELECT id, model_id, dataset_id, name, created FROM model_runs_before"
    )
    conn.execute("DROP TABLE model_runs_before")


# SQLite before 3.32 allows 999 parameters in one statement.
IN_CHUNK = 900


def select_in(
    conn: sqlite3.Connection, sql: str, fixed: tuple[Any, ...], values: Sequence[str]
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` whose ``IN ({})`` takes ``values``, a chunk at a time."""
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        query = sql.format(", ".join("?" * len(chunk)))
        yield from conn.execute(query, (*fixed, *chunk))
