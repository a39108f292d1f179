"""The resume journal: each item's last state per endpoint, dataset and target.

One SQLite file (stdlib ``sqlite3``, WAL mode). Each ``record`` call is one
transaction, so a run killed at any moment leaves every state it recorded
before the kill, and none half-written: SQLite rolls an interrupted
transaction back the next time the file is opened.

Where it lives by default: beside the manifest, as
``<manifest>.segcli-journal`` (``masks.csv`` -> ``masks.csv.segcli-journal``);
for a manifest read from stdin, ``./segcli-stdin.segcli-journal``; shard K of
N of a job array, ``<manifest>.shard-K-of-N.segcli-journal`` (the tasks of an
array run at once, and a journal takes one run at a time). ``--journal``
chooses another path.

One run at a time: the run holds an ``flock`` on the journal file itself.
The OS drops that lock when the process ends, however it ends, so a
SIGKILLed run never leaves the journal locked, and no lock file is left
beside it. SQLite's own locks are POSIX record locks, which do not interact
with ``flock`` on Linux.

An item's ``state`` is its latest outcome: ``skipped`` when the last run
found it already landed, ``failed`` when the last attempt failed, and so on,
so ``segcli status`` always says what the last run that saw the item said.
What "landed" means: the item is on the server (``uploaded``, or ``ignored``
because it already had a mask). The journal remembers the fingerprint of the
last landed version even when a later attempt with changed content failed, so
a re-run skips only items whose manifest entry and mask bytes are exactly
what landed.

A manifest that lists a reference_id twice has its later copies recorded as
duplicate lines (invalid, never sent) beside the item's own row, so the
journal counts every manifest entry the run counted. They are cleared when a
later run records the item without them. Each run that records anything
leaves a row in ``runs`` (pid, start, end, its summary).

The API key is never stored: the scope keeps the endpoint without any
userinfo, query or fragment.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import json
import os
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from segcli import journal_jobs
from segcli.errors import JournalBusyError, JournalError
from segcli.journal_jobs import JOBS_SCHEMA, JournalJob
from segcli.model import ItemState, MaskItem, Segment

JOURNAL_SUFFIX = ".segcli-journal"
STDIN_JOURNAL = "segcli-stdin" + JOURNAL_SUFFIX
# "SEGJ" in the SQLite header tells our journal from any other SQLite file.
APPLICATION_ID = 0x5345474A
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 lacks the runs and duplicate_lines tables
LANDED_STATES = frozenset({ItemState.UPLOADED, ItemState.IGNORED})
BUSY_TIMEOUT_S = 10.0  # a concurrent `segcli status` reader may briefly hold the file
_FETCH_ROWS = 1000

_SCHEMA = """
CREATE TABLE scopes (
    id INTEGER PRIMARY KEY,
    endpoint TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    target TEXT NOT NULL,
    UNIQUE (endpoint, dataset_id, target)
);
CREATE TABLE items (
    scope_id INTEGER NOT NULL REFERENCES scopes (id),
    reference_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT,
    source TEXT,
    landed_fingerprint TEXT,
    landed_state TEXT,
    attempts INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (scope_id, reference_id)
) WITHOUT ROWID;
CREATE INDEX items_by_state ON items (scope_id, state);
"""

# Added in version 2; a version-1 journal gains them when opened for writing.
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    scope_id INTEGER NOT NULL REFERENCES scopes (id),
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS duplicate_lines (
    scope_id INTEGER NOT NULL REFERENCES scopes (id),
    reference_id TEXT NOT NULL,
    source TEXT NOT NULL,
    message TEXT,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (scope_id, reference_id, source)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Scope:
    """What an item was uploaded as: the same reference_id may land once per scope.

    ``target`` is ``"annotations"``, ``"model:<id>"`` or ``"model_run:<id>"``.
    The endpoint is normalised (no userinfo, query, fragment or trailing
    slash) so that a key pasted into a URL is never stored.
    """

    endpoint: str
    dataset_id: str
    target: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", clean_endpoint(self.endpoint))

    def __str__(self) -> str:
        return f"{self.target} of dataset {self.dataset_id} at {self.endpoint}"


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One item's state. ``attempts`` and ``updated_at`` are filled when read back."""

    reference_id: str
    fingerprint: str
    state: ItemState
    message: str | None = None
    source: str | None = None
    attempts: int = 0  # how many outcomes have been recorded for this item
    updated_at: float | None = None  # unix time of the last one
    #: a later copy of a reference_id the manifest already listed (never sent)
    duplicate: bool = False


def clean_endpoint(endpoint: str) -> str:
    """The endpoint without userinfo, query, fragment or trailing slash."""
    parts = urllib.parse.urlsplit(endpoint.strip())
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def fingerprint(
    item: MaskItem, mask_digest: str | None, *, segments_text: str | None = None
) -> str:
    """A digest of everything that makes an upload of ``item`` what it is.

    Covers the mask URI, the mask bytes (``mask_digest``, e.g. a sha256 hex of
    the bytes, when they were read), the segments exactly as sent and the
    annotation_id. A change to any of them makes a re-run send the item
    again. An unread remote mask (``mask_digest=None``) is known by its URI.

    ``segments_text`` is ``segments_json(item.segments)``, for a caller that
    keeps it per segment table rather than encoding the table for each item.
    """
    if segments_text is None:
        segments_text = segments_json(item.segments)
    # The JSON of {"v": 1, "mask", "mask_digest", "segments", "annotation_id"}
    # with sorted keys and no spaces, written out so the table's part can be
    # reused: the same bytes version 1 has always hashed.
    canonical = (
        f'{{"annotation_id":{_canonical(item.annotation_id)},"mask":{_canonical(item.mask)},'
        f'"mask_digest":{_canonical(mask_digest)},"segments":{segments_text},"v":1}}'
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def segments_json(segments: Iterable[Segment]) -> str:
    """The canonical JSON of a segment table, as ``fingerprint`` hashes it."""
    return _canonical([s.payload() for s in segments])


# One encoder for every call: json.dumps with these options builds a new one
# each time, which is most of the cost of fingerprinting an item.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _canonical(value: object) -> str:
    return _CANONICAL.encode(value)


def default_journal_path(manifest: str, shard: tuple[int, int] | None = None) -> Path:
    """Where the journal of ``manifest`` lives unless ``--journal`` says otherwise.

    Beside the manifest: ``<manifest>.segcli-journal``. A manifest read from
    stdin (``-``) gets ``./segcli-stdin.segcli-journal``; a manifest given as
    a URL gets ``./<its file name>.segcli-journal``. Shard K of N has its
    own, ``<manifest>.shard-K-of-N.segcli-journal``: the tasks of a job
    array run at once, and one journal takes one run at a time.
    """
    suffix = JOURNAL_SUFFIX if shard is None else f".shard-{shard[0]}-of-{shard[1]}{JOURNAL_SUFFIX}"
    return Path(_journal_base(manifest) + suffix)


def journals_beside(manifest: str) -> list[Path]:
    """The journals the runs of ``manifest`` left at their default paths, shards included.

    The unsharded one first, then each shard's, by shard count and index.
    """
    base = _journal_base(manifest)
    found = [Path(base + JOURNAL_SUFFIX)] if Path(base + JOURNAL_SUFFIX).is_file() else []
    shards: list[tuple[int, int, Path]] = []
    for name in glob.glob(glob.escape(base) + ".shard-*-of-*" + JOURNAL_SUFFIX):
        match = _SHARD_NAME.search(name)
        if match and Path(name).is_file():
            shards.append((int(match["n"]), int(match["k"]), Path(name)))
    return found + [path for _, _, path in sorted(shards)]


def journal_family(path: Path) -> tuple[str, tuple[int, int] | None] | None:
    """(the manifest, the shard (K, N) or None) a journal's default name says it is of.

    None for a journal named some other way (``--journal shard-2.journal``).
    """
    name = str(path)
    if (match := _SHARD_NAME.search(name)) is not None:
        return name[: match.start()], (int(match["k"]), int(match["n"]))
    if name.endswith(JOURNAL_SUFFIX):
        return name.removesuffix(JOURNAL_SUFFIX), None
    return None


def _journal_base(manifest: str) -> str:
    if manifest in ("", "-"):
        return STDIN_JOURNAL.removesuffix(JOURNAL_SUFFIX)
    if "://" in manifest:
        name = urllib.parse.urlsplit(manifest).path.rstrip("/").rsplit("/", 1)[-1]
        return name or "manifest"
    return manifest


_SHARD_NAME = re.compile(r"\.shard-(?P<k>\d+)-of-(?P<n>\d+)" + re.escape(JOURNAL_SUFFIX) + "$")


class Journal:
    """The journal of one scope, locked for this process while open.

    ``Journal(path, scope)`` opens or creates the file and takes the lock.
    ``Journal(path, readonly=True)`` opens an existing journal without the
    lock, for ``segcli status`` (or a dry run) while a run may be writing (WAL
    lets readers and one writer share the file); every query then needs a
    scope, unless one is given.
    """

    def __init__(
        self, path: str | Path, scope: Scope | None = None, *, readonly: bool = False
    ) -> None:
        if scope is None and not readonly:
            raise ValueError("a journal opened for writing needs a scope")
        self.path = Path(path)
        self.scope = scope
        self.readonly = readonly
        self._lock_fd: int | None = None
        self._scope_ids: dict[Scope, int] = {}
        self._run_id: int | None = None
        self._has_duplicates = False
        #: this open made the file: nothing of an earlier run is in it
        self.created = False
        if readonly:
            if not self.path.is_file():
                raise JournalError(
                    f"no journal at {self.path}; run `segcli upload` first, "
                    "or pass --journal with the path it used"
                )
        else:
            self.created = not self.path.exists()
            self._lock_fd = _lock(self.path)
        try:
            self._conn = self._open()
        except BaseException:
            self._unlock()
            if self.created:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            raise

    # -- opening -----------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a
            # transaction is exactly one record() call.
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {self.path}: {exc}") from None
        try:
            self._prepare(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise JournalError(
                f"{self.path} is not a readable segcli journal ({exc}). Move it aside "
                "or delete it to start a fresh journal (items already on the server are "
                "then sent again and come back as ignored), or pass --journal PATH"
            ) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        if app_id != APPLICATION_ID and (has_tables or app_id != 0 or self.readonly):
            raise JournalError(
                f"{self.path} is an SQLite file but not a segcli journal; "
                "pass --journal with another path"
            )
        if not self.readonly:
            # WAL: a killed writer never corrupts the file, and readers do
            # not block the writer. synchronous=NORMAL is durable against a
            # process crash (the kill that matters here); only an OS crash
            # can lose the last transactions, never consistency.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        if app_id == 0:
            self._create(conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in READABLE_VERSIONS:
            raise JournalError(
                f"{self.path} was written by another version of segcli (journal schema "
                f"{version}, this one reads {SCHEMA_VERSION}); use that version, "
                "or pass --journal with a new path"
            )
        if version < SCHEMA_VERSION and not self.readonly:
            self._migrate(conn)
        if not self.readonly and not self._table_exists(conn, "jobs"):
            _apply(conn, JOBS_SCHEMA)  # async jobs (journal_jobs.py): same schema version
        # Fail now, not on the first query, if the file is damaged inside.
        conn.execute("SELECT count(*) FROM items").fetchone()
        self._has_duplicates = self._table_exists(conn, "duplicate_lines") and bool(
            conn.execute("SELECT 1 FROM duplicate_lines LIMIT 1").fetchone()
        )

    def _create(self, conn: sqlite3.Connection) -> None:
        _apply(conn, _SCHEMA + _SCHEMA_V2, f"PRAGMA application_id={APPLICATION_ID}")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Version 1 -> 2: two new tables; every row of version 1 keeps its meaning."""
        _apply(conn, _SCHEMA_V2)

    @staticmethod
    def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return found is not None

    # -- queries -----------------------------------------------------------

    def landed(self, reference_id: str, *, scope: Scope | None = None) -> str | None:
        """The fingerprint of the version of this item that landed, or None."""
        scope_id = self._scope_id(scope, create=False)
        if scope_id is None:
            return None
        row = self._conn.execute(
            "SELECT landed_fingerprint FROM items WHERE scope_id = ? AND reference_id = ?",
            (scope_id, reference_id),
        ).fetchone()
        return None if row is None else row[0]

    def landed_state(
        self, reference_id: str, fingerprint: str, *, scope: Scope | None = None
    ) -> ItemState | None:
        """How this exact version of the item landed (uploaded or ignored), or None.

        None when it never landed or when what landed had another fingerprint
        (the mask or its segments changed since): the item must be sent again.
        """
        scope_id = self._scope_id(scope, create=False)
        if scope_id is None:
            return None
        row = self._conn.execute(
            "SELECT landed_fingerprint, landed_state FROM items "
            "WHERE scope_id = ? AND reference_id = ?",
            (scope_id, reference_id),
        ).fetchone()
        if row is None or row[0] != fingerprint or row[1] is None:
            return None
        return ItemState(row[1])

    def record(self, rows: Iterable[JournalRow], *, collected_job: int | None = None) -> None:
        """Store these outcomes in one transaction: all of them, or none if killed.

        A ``skipped`` row sets the item's state and keeps what landed before.
        A ``duplicate`` row is a later manifest line of the same reference_id.
        ``collected_job`` (a row of ``add_job``) is marked collected in the
        same transaction: its items' outcomes are these rows.
        """
        items: list[JournalRow] = []
        duplicates: list[JournalRow] = []
        for row in rows:
            (duplicates if row.duplicate else items).append(row)
        now = time.time()

        def change(conn: sqlite3.Connection, scope_id: int) -> None:
            if collected_job is not None:
                journal_jobs.collected(conn, collected_job)
            # One executemany per batch: the same upserts, in order, without
            # a round trip through Python for each row.
            conn.executemany(_UPSERT, _upserts(scope_id, items, now))
            if self._has_duplicates and items:
                # Lines an earlier run found duplicated; this run re-finds its own.
                conn.executemany(
                    "DELETE FROM duplicate_lines "
                    "WHERE scope_id = ? AND reference_id = ? AND run_id < ?",
                    [(scope_id, row.reference_id, self._run_id) for row in items],
                )
            if duplicates:
                conn.executemany(
                    "INSERT OR REPLACE INTO duplicate_lines "
                    "(scope_id, reference_id, source, message, run_id) VALUES (?, ?, ?, ?, ?)",
                    [
                        (scope_id, row.reference_id, row.source or "", row.message, self._run_id)
                        for row in duplicates
                    ],
                )

        self._write(change)
        if duplicates:
            self._has_duplicates = True

    # -- async jobs (journal_jobs.py) ------------------------------------------

    def add_job(self, request_id: str, items: Sequence[tuple[str, str]]) -> int:
        """Record a chunk (its request id, each (reference_id, fingerprint)) before it is sent."""
        row: int = self._write(
            lambda conn, scope_id: journal_jobs.add_job(conn, scope_id, request_id, items)
        )
        return row

    def job_started(self, row: int, job_id: str) -> None:
        """Record the job id the service answered for a chunk, the moment it is known."""
        self._write(
            lambda conn, _: conn.execute(
                "UPDATE jobs SET job_id = ?, started_at = ? WHERE id = ?",
                (job_id, time.time(), row),
            )
        )

    def drop_job(self, row: int) -> None:
        """Forget a chunk whose job id was never recorded: its items are sent again."""
        self._write(lambda conn, _: journal_jobs.dropped(conn, row))

    def unfinished_jobs(self, *, scope: Scope | None = None) -> list[JournalJob]:
        """Chunks of this scope that no run has collected yet, oldest first."""
        scope_id = self._scope_id(scope, create=False)
        if scope_id is None or not self._table_exists(self._conn, "jobs"):
            return []
        return journal_jobs.unfinished(self._conn, scope_id)

    def _write(self, change: Callable[[sqlite3.Connection, int], object]) -> Any:
        """One transaction around ``change(conn, scope_id)``, this run's row made first."""
        if self.readonly:
            raise JournalError(f"{self.path} is open read-only")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            scope_id = self._scope_id(None, create=True)
            assert scope_id is not None
            if self._run_id is None:
                self._run_id = self._begin_run(scope_id, time.time())
            out = change(conn, scope_id)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return out

    def start_run(self) -> None:
        """Record that a run of this scope happened, before (or without) any outcome.

        A shard of a job array that holds no item still leaves its journal,
        so ``segcli status`` over every shard's journal finds them all.
        """
        if self.readonly or self._run_id is not None:
            return
        self.record([])

    def _begin_run(self, scope_id: int, now: float) -> int:
        cursor = self._conn.execute(
            "INSERT INTO runs (scope_id, pid, started_at) VALUES (?, ?, ?)",
            (scope_id, os.getpid(), now),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_run(self, summary: Mapping[str, object]) -> None:
        """Close this run's row with its summary (a run that recorded nothing has none)."""
        if self.readonly or self._run_id is None:
            return
        self._conn.execute(
            "UPDATE runs SET finished_at = ?, summary = ? WHERE id = ?",
            (time.time(), json.dumps(dict(summary), sort_keys=True), self._run_id),
        )

    def last_run(self, *, scope: Scope | None = None) -> dict[str, object] | None:
        """The latest run of the scope: pid, started_at, finished_at, summary (None: none)."""
        scope_id = self._scope_id(scope, create=False)
        if scope_id is None or not self._table_exists(self._conn, "runs"):
            return None
        row = self._conn.execute(
            "SELECT pid, started_at, finished_at, summary FROM runs "
            "WHERE scope_id = ? ORDER BY id DESC LIMIT 1",
            (scope_id,),
        ).fetchone()
        if row is None:
            return None
        pid, started, finished, summary = row
        return {
            "pid": pid,
            "started_at": started,
            "finished_at": finished,
            "summary": json.loads(summary) if summary else None,
        }

    def counts(self, *, scope: Scope | None = None) -> dict[str, int]:
        """Entries per state in the scope (duplicate lines count as invalid); zeros left out."""
        scope_id = self._scope_id(scope, create=False)
        if scope_id is None:
            return {}
        found: dict[str, int] = dict(
            self._conn.execute(
                "SELECT state, count(*) FROM items WHERE scope_id = ? GROUP BY state",
                (scope_id,),
            ).fetchall()
        )
        duplicates = self._duplicate_count(scope_id)
        if duplicates:
            found[ItemState.INVALID.value] = found.get(ItemState.INVALID.value, 0) + duplicates
        known = [s.value for s in ItemState if s.value in found]
        return {s: found[s] for s in [*known, *sorted(set(found) - set(known))]}

    def _duplicate_count(self, scope_id: int) -> int:
        if not self._table_exists(self._conn, "duplicate_lines"):
            return 0
        row = self._conn.execute(
            "SELECT count(*) FROM duplicate_lines WHERE scope_id = ?", (scope_id,)
        ).fetchone()
        return int(row[0])

    def rows(self, state: str | None = None, *, scope: Scope | None = None) -> Iterator[JournalRow]:
        """The entries of the scope by reference_id, optionally only those in ``state``.

        Duplicate lines come with the invalid entries (``duplicate=True``).
        """
        scope_id = self._scope_id(scope, create=False)
        if scope_id is None:
            return
        query = (
            "SELECT reference_id, fingerprint, state, message, source, attempts, updated_at, "
            "0 FROM items WHERE scope_id = ?"
        )
        params: tuple[object, ...] = (scope_id,)
        if state is not None:
            query += " AND state = ?"
            params += (ItemState(state).value,)
        if (state is None or ItemState(state) is ItemState.INVALID) and self._table_exists(
            self._conn, "duplicate_lines"
        ):
            query += (
                " UNION ALL SELECT reference_id, '', 'invalid', message, source, 1, NULL, 1 "
                "FROM duplicate_lines WHERE scope_id = ?"
            )
            params += (scope_id,)
        cursor = self._conn.execute(query + " ORDER BY 1, 8", params)
        try:
            while batch := cursor.fetchmany(_FETCH_ROWS):
                for ref, fp, st, message, source, attempts, updated_at, dup in batch:
                    yield JournalRow(
                        ref, fp, ItemState(st), message, source, attempts, updated_at, bool(dup)
                    )
        finally:
            cursor.close()

    def held(self, reference_ids: Sequence[str], *, scope: Scope | None = None) -> set[str]:
        """Which of these reference_ids the journal holds a row for (tried at least once)."""
        return set(self.states(reference_ids, scope=scope))

    def states(
        self, reference_ids: Sequence[str], *, scope: Scope | None = None
    ) -> dict[str, tuple[str, float]]:
        """The state and the time it was recorded of each of these items the journal holds."""
        scope_id = self._scope_id(scope, create=False)
        found: dict[str, tuple[str, float]] = {}
        if scope_id is None:
            return found
        for start in range(0, len(reference_ids), _IN_CHUNK):
            chunk = reference_ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                (ref, (state, updated_at))
                for ref, state, updated_at in self._conn.execute(
                    f"SELECT reference_id, state, updated_at FROM items WHERE scope_id = ? "
                    f"AND reference_id IN ({marks})",
                    (scope_id, *chunk),
                )
            )
        return found

    def scopes(self) -> list[Scope]:
        """Every scope this journal holds items or runs for."""
        return [
            Scope(endpoint, dataset_id, target)
            for endpoint, dataset_id, target in self._conn.execute(
                "SELECT endpoint, dataset_id, target FROM scopes ORDER BY id"
            )
        ]

    def _scope_id(self, scope: Scope | None, *, create: bool) -> int | None:
        scope = scope if scope is not None else self.scope
        if scope is None:
            raise ValueError("this journal was opened without a scope: pass scope=")
        cached = self._scope_ids.get(scope)
        if cached is not None:
            return cached
        key = (scope.endpoint, scope.dataset_id, scope.target)
        row = self._conn.execute(
            "SELECT id FROM scopes WHERE endpoint = ? AND dataset_id = ? AND target = ?", key
        ).fetchone()
        if row is None:
            if not create:
                return None
            # Only inside record()'s transaction: a rolled-back record must
            # not leave a cached id for a scope row that never existed.
            # lastrowid rather than RETURNING, which needs SQLite 3.35.
            cursor = self._conn.execute(
                "INSERT INTO scopes (endpoint, dataset_id, target) VALUES (?, ?, ?)", key
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid
        self._scope_ids[scope] = int(row[0])
        return int(row[0])

    # -- closing -----------------------------------------------------------

    def close(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
            self._conn = None  # type: ignore[assignment]
        self._unlock()

    def discard(self) -> None:
        """Close; and delete the file if this open made it and nothing was recorded.

        A run stopped before its first outcome (a bad key, an empty manifest)
        then leaves no journal behind.
        """
        unused = self.created and self._run_id is None and not self.readonly
        self.close()
        if unused:
            for leftover in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, {self.scope!r})"


def _apply(conn: sqlite3.Connection, schema: str, *pragmas: str) -> None:
    """Run schema statements and pragmas, then stamp the version: all of it, or none."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Statement by statement: executescript() would COMMIT first.
        for statement in schema.split(";"):
            if statement.strip():
                conn.execute(statement)
        for pragma in pragmas:
            conn.execute(pragma)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


_UPSERT = """
INSERT INTO items (scope_id, reference_id, fingerprint, state, message,
                   source, landed_fingerprint, landed_state, attempts,
                   updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
ON CONFLICT (scope_id, reference_id) DO UPDATE SET
    fingerprint = excluded.fingerprint,
    state = excluded.state,
    message = excluded.message,
    source = excluded.source,
    landed_fingerprint =
        coalesce(excluded.landed_fingerprint, landed_fingerprint),
    landed_state = coalesce(excluded.landed_state, landed_state),
    attempts = attempts + 1,
    updated_at = excluded.updated_at
"""
# reference_ids per query when looking many up at once (SQLite allows 999 parameters)
_IN_CHUNK = 500


def _upserts(scope_id: int, rows: Iterable[JournalRow], now: float) -> Iterator[tuple[object, ...]]:
    """Parameters of ``record``'s upsert for each row.

    A ``skipped`` row keeps the landed fingerprint and state it found (its
    own fingerprint is what landed), so the next run skips it again.
    """
    for row in rows:
        state = ItemState(row.state)
        landed = row.fingerprint if state in LANDED_STATES else None
        yield (
            scope_id,
            row.reference_id,
            row.fingerprint,
            state.value,
            row.message,
            row.source,
            landed,
            state.value if landed else None,
            now,
        )


def _lock(path: Path) -> int:
    """Take the run lock on the journal file itself, or raise JournalBusyError at once."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise JournalError(
            f"cannot create the journal {path}: {exc.strerror}; "
            "check that the folder exists and is writable, or pass --journal PATH"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise JournalError(f"cannot lock the journal {path}: {exc.strerror}") from None
        holder = _running_pid(path)
        who = f" (pid {holder})" if holder else ""
        raise JournalBusyError(
            f"another segcli run{who} is using the journal {path}",
            hint="wait for it to finish, or give this run --journal with another path",
        ) from None
    return fd


def _running_pid(path: Path) -> int | None:
    """The pid of the run that holds the journal, from its unfinished row in ``runs``."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute(
            "SELECT pid FROM runs WHERE finished_at IS NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
    except sqlite3.Error:  # no runs table yet, or the holder has not written one
        return None
    finally:
        conn.close()
    return int(row[0]) if row else None
