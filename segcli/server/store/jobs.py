"""Signed uploads (async request bodies) and the jobs that apply them."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segcli.server.store.base import Database, new_id


def _token_hash(token: str) -> str:
    # Only hashes are stored: a copy of the database hands out no upload rights.
    return hashlib.sha256(token.encode()).hexdigest()


class Jobs(Database):
    # -- signed uploads -----------------------------------------------------

    def create_signed_upload(self, dataset_id: str, request_id: str) -> str:
        token = secrets.token_urlsafe(32)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO signed_uploads (token_hash, dataset_id, request_id, created)"
                " VALUES (?, ?, ?, ?)",
                (_token_hash(token), dataset_id, request_id, time.time()),
            )
        return token

    def claim_signed_upload(self, token: str) -> bool:
        """Take the token for one PUT; False if it is unknown or already used."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE signed_uploads SET used = ? WHERE token_hash = ? AND used IS NULL",
                (time.time(), _token_hash(token)),
            )
            return cur.rowcount == 1

    def release_signed_upload(self, token: str) -> None:
        """Give the token back after a PUT that stored nothing."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE signed_uploads SET used = NULL WHERE token_hash = ? AND body_file IS NULL",
                (_token_hash(token),),
            )

    def complete_signed_upload(self, token: str, body_file: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE signed_uploads SET body_file = ? WHERE token_hash = ?",
                (body_file, _token_hash(token)),
            )

    def uploaded_body(self, dataset_id: str, request_id: str) -> Path | None:
        """The newest body PUT for this request, or None."""
        row = self._row(
            "SELECT body_file FROM signed_uploads WHERE dataset_id = ? AND request_id = ?"
            " AND body_file IS NOT NULL ORDER BY used DESC LIMIT 1",
            (dataset_id, request_id),
        )
        return self.uploads_dir / row["body_file"] if row else None

    # -- jobs ---------------------------------------------------------------

    def create_job(
        self,
        *,
        kind: str,
        job_type: str,
        dataset_id: str,
        input_file: str,
        total_steps: int,
        update: bool,
        target: str | None = None,
        model_run_id: str | None = None,
        status: str,
    ) -> dict[str, Any]:
        job_id = new_id("job")
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, kind, job_type, dataset_id, target, model_run_id,"
                " do_update, input_file, status, total_steps, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    kind,
                    job_type,
                    dataset_id,
                    target,
                    model_run_id,
                    int(update),
                    input_file,
                    status,
                    total_steps,
                    now,
                    now,
                ),
            )
        job = self.job(job_id)
        assert job is not None
        return job

    def job(self, job_id: str) -> dict[str, Any] | None:
        row = self._row("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return dict(row) if row else None

    def job_errors(self, job_id: str, limit: int = 10_000) -> list[str]:
        rows = self._rows(
            "SELECT error FROM job_errors WHERE job_id = ? ORDER BY seq DESC LIMIT ?",
            (job_id, limit),
        )
        return [r["error"] for r in reversed(rows)]

    def unfinished_jobs(self) -> list[str]:
        rows = self._rows(
            "SELECT id FROM jobs WHERE status IN ('Queued', 'Running') ORDER BY created, id"
        )
        return [r["id"] for r in rows]

    def record_job_step(
        self,
        conn: sqlite3.Connection,
        job_id: str,
        *,
        completed_steps: int,
        processed: int,
        ignored: int,
        errors: Sequence[str],
    ) -> None:
        """Progress of a job, written in the same transaction as the step's data,
        so a restarted server resumes exactly where the last commit left off."""
        conn.execute(
            "UPDATE jobs SET completed_steps = ?, processed = processed + ?,"
            " ignored = ignored + ?, errors = errors + ?, updated = ? WHERE id = ?",
            (completed_steps, processed, ignored, len(errors), time.time(), job_id),
        )
        conn.executemany(
            "INSERT INTO job_errors (job_id, error) VALUES (?, ?)", [(job_id, e) for e in errors]
        )

    def set_job_status(self, job_id: str, status: str, message: str = "") -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, message = ?, updated = ? WHERE id = ?",
                (status, message, time.time(), job_id),
            )
