"""The journal's record of async jobs: each chunk's request id, its job id, its items.

An ``--async`` upload writes a chunk here (its request id and each item's
fingerprint) before the chunk's NDJSON leaves, and the job id the service
answers in the moment the answer arrives, one transaction each. A run killed
while its jobs run leaves their ids behind, so the next run polls those jobs
instead of submitting their items again. A chunk whose job id never got here
(killed before the job was started, or between the start and its answer)
is dropped by the next run and its items are sent again.

The tables are made when a journal is first opened for writing by a segcli
that knows them; the journal's schema version stays 2: a journal without
them simply has no jobs, and a segcli that does not know them ignores them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

JOBS_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    scope_id INTEGER NOT NULL REFERENCES scopes (id),
    request_id TEXT NOT NULL,
    job_id TEXT,
    items INTEGER NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    collected_at REAL
);
CREATE TABLE IF NOT EXISTS job_items (
    job INTEGER NOT NULL REFERENCES jobs (id),
    reference_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (job, reference_id)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class JournalJob:
    """A chunk the journal holds that no run has collected yet."""

    row: int
    request_id: str
    job_id: str | None  # None: the job may never have started
    #: reference_id -> fingerprint of the version the chunk carries
    items: dict[str, str] = field(default_factory=dict)


def add_job(
    conn: sqlite3.Connection, scope_id: int, request_id: str, items: Sequence[tuple[str, str]]
) -> int:
    """Inside the caller's transaction: a new chunk and its items; its row id."""
    cursor = conn.execute(
        "INSERT INTO jobs (scope_id, request_id, items, created_at) VALUES (?, ?, ?, ?)",
        (scope_id, request_id, len(items), time.time()),
    )
    assert cursor.lastrowid is not None
    row = cursor.lastrowid
    conn.executemany(
        "INSERT OR REPLACE INTO job_items (job, reference_id, fingerprint) VALUES (?, ?, ?)",
        [(row, ref, fp) for ref, fp in items],
    )
    return row


def unfinished(conn: sqlite3.Connection, scope_id: int) -> list[JournalJob]:
    jobs = []
    for row, request_id, job_id in conn.execute(
        "SELECT id, request_id, job_id FROM jobs WHERE scope_id = ? AND collected_at IS NULL "
        "ORDER BY id",
        (scope_id,),
    ).fetchall():
        items = dict(
            conn.execute(
                "SELECT reference_id, fingerprint FROM job_items WHERE job = ?", (row,)
            ).fetchall()
        )
        jobs.append(JournalJob(row, request_id, job_id, items))
    return jobs


def collected(conn: sqlite3.Connection, row: int) -> None:
    """Inside the caller's transaction: the job's items are recorded; its rows can go."""
    conn.execute("UPDATE jobs SET collected_at = ? WHERE id = ?", (time.time(), row))
    conn.execute("DELETE FROM job_items WHERE job = ?", (row,))


def dropped(conn: sqlite3.Connection, row: int) -> None:
    """Inside the caller's transaction: forget a chunk whose job never (knowably) started."""
    conn.execute("DELETE FROM job_items WHERE job = ?", (row,))
    conn.execute("DELETE FROM jobs WHERE id = ?", (row,))
