"""What the local server keeps: SQLite in ``data_dir/nucleus.db`` plus mask files.

One connection, shared by the server's event loop, its worker threads and
tests that read it, guarded by a lock: SQLite serialises writers anyway, and
one connection keeps every write of a request in one transaction.

Mask files live in ``data_dir/masks/`` under random names the server makes.
No name that reaches the disk is ever derived from what a client sent, so a
reference_id or filename like ``../x`` cannot escape the data dir.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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


def _token_hash(token: str) -> str:
    # Only hashes are stored: a copy of the database hands out no upload rights.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewSegmentation:
    """One checked segmentation, ready to store. ``raw`` is what the client sent."""

    reference_id: str
    annotation_id: str | None
    mask_url: str
    annotations: list[dict[str, Any]]
    raw: Any
    mask_file: str | None = None  # a name in masks/, made by the server
    width: int | None = None
    height: int | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "type": "mask",
            "mask_url": self.mask_url,
            "annotations": self.annotations,
            "annotation_id": self.annotation_id,
            "reference_id": self.reference_id,
        }


@dataclass
class ApplyResult:
    """What one write did. Files are names in masks/, removed by the caller."""

    processed: int = 0
    ignored: int = 0
    errors: list[tuple[Any, str]] = field(default_factory=list)
    unused_files: list[str] = field(default_factory=list)
    replaced_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NewItem:
    reference_id: str
    image_url: str
    metadata: dict[str, Any]
    width: int | None = None
    height: int | None = None


@dataclass
class AppendResult:
    new_items: int = 0
    updated_items: int = 0
    ignored_items: int = 0


class Store:
    """The server's database and mask files under one data dir."""

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

    def __enter__(self) -> Store:
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

    def mask_path(self, name: str) -> Path:
        return self.masks_dir / name

    def new_mask_name(self) -> str:
        return secrets.token_hex(16) + ".png"

    def remove_masks(self, names: Sequence[str]) -> None:
        for name in names:
            self.mask_path(name).unlink(missing_ok=True)

    # -- datasets and items -------------------------------------------------

    def create_dataset(
        self,
        name: str,
        *,
        dataset_id: str | None = None,
        is_scene: bool = False,
        use_privacy_mode: bool = False,
    ) -> str:
        dataset_id = dataset_id or new_id("ds")
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO datasets (id, name, is_scene, use_privacy_mode, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (dataset_id, name, int(is_scene), int(use_privacy_mode), time.time()),
            )
        return dataset_id

    def dataset(self, dataset_id: str) -> dict[str, Any] | None:
        row = self._row("SELECT * FROM datasets WHERE id = ?", (dataset_id,))
        return dict(row) if row else None

    def datasets(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows("SELECT * FROM datasets ORDER BY created, id")]

    def dataset_length(self, dataset_id: str) -> int:
        row = self._row("SELECT COUNT(*) FROM items WHERE dataset_id = ?", (dataset_id,))
        return int(row[0]) if row else 0

    def item(self, dataset_id: str, reference_id: str) -> dict[str, Any] | None:
        row = self._row(
            "SELECT * FROM items WHERE dataset_id = ? AND reference_id = ?",
            (dataset_id, reference_id),
        )
        return _item_dict(row) if row else None

    def items(self, dataset_id: str) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT * FROM items WHERE dataset_id = ? ORDER BY created, reference_id",
            (dataset_id,),
        )
        return [_item_dict(r) for r in rows]

    def item_by_id(self, item_id: str) -> dict[str, Any] | None:
        """An item by the ``di_`` id the server gave it, with its dataset_id."""
        row = self._row("SELECT * FROM items WHERE item_id = ?", (item_id,))
        return _item_dict(row) if row else None

    def append_items(
        self, conn: sqlite3.Connection, dataset_id: str, items: Sequence[NewItem], update: bool
    ) -> AppendResult:
        """Add items; an existing reference_id is ignored, or replaced when ``update``."""
        result = AppendResult()
        now = time.time()
        for item in items:
            old = conn.execute(
                "SELECT 1 FROM items WHERE dataset_id = ? AND reference_id = ?",
                (dataset_id, item.reference_id),
            ).fetchone()
            if old is None:
                _insert_item(conn, dataset_id, item, now)
                result.new_items += 1
            elif update:
                conn.execute(
                    "UPDATE items SET image_url = ?, metadata = ?, width = ?, height = ?,"
                    " updated = ? WHERE dataset_id = ? AND reference_id = ?",
                    (
                        item.image_url,
                        json.dumps(item.metadata),
                        item.width,
                        item.height,
                        now,
                        dataset_id,
                        item.reference_id,
                    ),
                )
                result.updated_items += 1
            else:
                result.ignored_items += 1
        return result

    # -- models and runs ----------------------------------------------------

    def create_model(self, name: str, reference_id: str | None, metadata: dict[str, Any]) -> str:
        model_id = new_id("prj")
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO models (id, name, reference_id, metadata, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (model_id, name, reference_id, json.dumps(metadata), time.time()),
            )
        return model_id

    def model(self, model_id: str) -> dict[str, Any] | None:
        row = self._row("SELECT * FROM models WHERE id = ?", (model_id,))
        if row is None:
            return None
        out = dict(row)
        out["metadata"] = json.loads(out["metadata"])
        return out

    def models(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT id FROM models ORDER BY created, id")
        return [m for m in (self.model(r["id"]) for r in rows) if m is not None]

    def model_by_reference(self, reference_id: str) -> dict[str, Any] | None:
        """The oldest model with this reference_id (how a client names its own model)."""
        row = self._row(
            "SELECT id FROM models WHERE reference_id = ? ORDER BY created, id LIMIT 1",
            (reference_id,),
        )
        return self.model(row["id"]) if row else None

    def delete_model(self, model_id: str) -> list[str]:
        """Remove a model, its runs and its predictions; returns their mask files to remove."""
        with self.transaction() as conn:
            files = [
                r["mask_file"]
                for r in conn.execute(
                    "SELECT mask_file FROM segmentations"
                    " WHERE target = ? AND mask_file IS NOT NULL",
                    (model_id,),
                )
            ]
            conn.execute("DELETE FROM segmentations WHERE target = ?", (model_id,))
            conn.execute("DELETE FROM model_runs WHERE model_id = ?", (model_id,))
            conn.execute("DELETE FROM models WHERE id = ?", (model_id,))
        return files

    def model_run(self, run_id: str) -> dict[str, Any] | None:
        row = self._row("SELECT * FROM model_runs WHERE id = ?", (run_id,))
        return dict(row) if row else None

    def model_runs(self, dataset_id: str) -> list[str]:
        rows = self._rows(
            "SELECT id FROM model_runs WHERE dataset_id = ? ORDER BY created, id", (dataset_id,)
        )
        return [r["id"] for r in rows]

    def create_model_run(self, dataset_id: str | None, model_id: str, name: str | None) -> str:
        run_id = new_id("run")
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO model_runs (id, model_id, dataset_id, name, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, model_id, dataset_id, name, time.time()),
            )
        return run_id

    def run_for_model(self, conn: sqlite3.Connection, dataset_id: str, model_id: str) -> str:
        """The model's run on this dataset, made on first use (as the service does)."""
        row = conn.execute(
            "SELECT id FROM model_runs WHERE dataset_id = ? AND model_id = ?"
            " ORDER BY created, id LIMIT 1",
            (dataset_id, model_id),
        ).fetchone()
        if row is not None:
            return str(row["id"])
        run_id = new_id("run")
        conn.execute(
            "INSERT INTO model_runs (id, model_id, dataset_id, name, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (run_id, model_id, dataset_id, None, time.time()),
        )
        return run_id

    # -- segmentations ------------------------------------------------------

    def apply_segmentations(
        self,
        conn: sqlite3.Connection,
        dataset_id: str,
        target: str,
        segmentations: Sequence[NewSegmentation],
        *,
        update: bool,
        auto_items: bool,
        model_run_id: str | None = None,
    ) -> ApplyResult:
        """Store segmentations, in order, inside the caller's transaction.

        One per item and target: a second is ignored unless ``update``, then
        it replaces the first. A reference_id that is not an item is an error
        (or, with ``auto_items``, makes the item).
        """
        result = ApplyResult()
        now = time.time()
        refs = list(dict.fromkeys(seg.reference_id for seg in segmentations))
        # One query each for the items and the segmentations already held,
        # rather than two per segmentation; ``held`` then follows the writes
        # of this call, so a reference_id sent twice sees its first copy.
        sizes: dict[str, tuple[int | None, int | None]] = {
            row[0]: (row[1], row[2])
            for row in _select_in(
                conn,
                "SELECT reference_id, width, height FROM items"
                " WHERE dataset_id = ? AND reference_id IN ({})",
                (dataset_id,),
                refs,
            )
        }
        # reference_id -> (mask_file, created) of the segmentation held for it
        held: dict[str, tuple[str | None, float]] = {
            row[0]: (row[1], row[2])
            for row in _select_in(
                conn,
                "SELECT reference_id, mask_file, created FROM segmentations"
                " WHERE dataset_id = ? AND target = ? AND reference_id IN ({})",
                (dataset_id, target),
                refs,
            )
        }
        texts: dict[int, tuple[list[dict[str, Any]], str]] = {}
        rows: list[tuple[Any, ...]] = []
        for seg in segmentations:
            size = sizes.get(seg.reference_id)
            if size is None and auto_items:
                _insert_item(
                    conn,
                    dataset_id,
                    NewItem(seg.reference_id, placeholder_image_url(seg.reference_id), {}),
                    now,
                )
                sizes[seg.reference_id] = (None, None)
            elif size is None:
                # The service's words: its clients match on them
                # ("Item with id fake_garbage doesn" in the official tests).
                result.errors.append((seg.raw, f"Item with id {seg.reference_id} doesn't exist."))
                _collect(result.unused_files, seg.mask_file)
                continue
            elif (
                seg.width is not None
                and size[0] is not None
                and size[1] is not None
                and (seg.width, seg.height) != size
            ):
                result.errors.append(
                    (
                        seg.raw,
                        f"Mask is {seg.width}x{seg.height} but item {seg.reference_id!r}"
                        f" is {size[0]}x{size[1]}.",
                    )
                )
                _collect(result.unused_files, seg.mask_file)
                continue
            created = now
            if seg.reference_id in held:
                if not update:
                    result.ignored += 1
                    _collect(result.unused_files, seg.mask_file)
                    continue
                replaced, created = held[seg.reference_id]  # a replacement keeps its creation
                _collect(result.replaced_files, replaced)
            held[seg.reference_id] = (seg.mask_file, created)
            rows.append(
                (
                    dataset_id,
                    seg.reference_id,
                    target,
                    seg.annotation_id,
                    seg.mask_url,
                    seg.mask_file,
                    _annotations_text(seg.annotations, texts),
                    model_run_id,
                    seg.width,
                    seg.height,
                    created,
                    now,
                )
            )
            result.processed += 1
        # In order: a reference_id written twice keeps the later row.
        conn.executemany(
            "INSERT OR REPLACE INTO segmentations (dataset_id, reference_id, target,"
            " annotation_id, mask_url, mask_file, annotations, model_run_id, width, height,"
            " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return result

    def segmentations(
        self, dataset_id: str, target: str = GROUND_TRUTH, reference_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored rows, oldest first; ``mask_file`` is an absolute path or None."""
        sql = "SELECT * FROM segmentations WHERE dataset_id = ? AND target = ?"
        params: list[Any] = [dataset_id, target]
        if reference_id is not None:
            sql += " AND reference_id = ?"
            params.append(reference_id)
        rows = self._rows(sql + " ORDER BY created, reference_id", params)
        out = []
        for row in rows:
            seg = dict(row)
            seg["annotations"] = json.loads(seg["annotations"])
            if seg["mask_file"] is not None:
                seg["mask_file"] = str(self.mask_path(seg["mask_file"]))
            out.append(seg)
        return out

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

    # -- taxonomies ---------------------------------------------------------

    def add_taxonomy(
        self, dataset_id: str, name: str, kind: str, labels: Sequence[str], update: bool
    ) -> str:
        """The service's status: created, already exists, or updated (labels only grow)."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT labels FROM taxonomies WHERE dataset_id = ? AND name = ?",
                (dataset_id, name),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO taxonomies (dataset_id, name, type, labels, created)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (dataset_id, name, kind, json.dumps(list(labels)), time.time()),
                )
                return "Taxonomy created"
            if not update:
                return "Taxonomy already exists"
            merged = list(dict.fromkeys([*json.loads(row["labels"]), *labels]))
            conn.execute(
                "UPDATE taxonomies SET labels = ? WHERE dataset_id = ? AND name = ?",
                (json.dumps(merged), dataset_id, name),
            )
            return "Taxonomy updated"

    def delete_taxonomy(self, dataset_id: str, name: str) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM taxonomies WHERE dataset_id = ? AND name = ?", (dataset_id, name)
            )
            return cur.rowcount == 1

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
_IN_CHUNK = 900


def _select_in(
    conn: sqlite3.Connection, sql: str, fixed: tuple[Any, ...], values: Sequence[str]
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` whose ``IN ({})`` takes ``values``, a chunk at a time."""
    for start in range(0, len(values), _IN_CHUNK):
        chunk = values[start : start + _IN_CHUNK]
        query = sql.format(", ".join("?" * len(chunk)))
        yield from conn.execute(query, (*fixed, *chunk))


def _annotations_text(
    annotations: list[dict[str, Any]], texts: dict[int, tuple[list[dict[str, Any]], str]]
) -> str:
    """The JSON stored for a segment list, dumped once per list object in a call.

    Segmentations of one request that share a table share the checked list
    (see ``ingest.SegmentsMemo``); the entry keeps the list, so its id stays its own.
    """
    known = texts.get(id(annotations))
    if known is not None and known[0] is annotations:
        return known[1]
    text = json.dumps(annotations)
    texts[id(annotations)] = (annotations, text)
    return text


def _collect(names: list[str], name: str | None) -> None:
    if name is not None:
        names.append(name)


def _insert_item(conn: sqlite3.Connection, dataset_id: str, item: NewItem, now: float) -> None:
    conn.execute(
        "INSERT INTO items (dataset_id, reference_id, item_id, image_url, metadata,"
        " width, height, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            dataset_id,
            item.reference_id,
            new_id("di"),
            item.image_url,
            json.dumps(item.metadata),
            item.width,
            item.height,
            now,
            now,
        ),
    )


def _item_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["metadata"] = json.loads(out["metadata"])
    return out
