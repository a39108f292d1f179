"""The resume journal: each item's last state per endpoint, dataset and target.

One SQLite file (stdlib ``sqlite3``, WAL mode). Each ``record`` call is one
transaction, so a run killed at any moment leaves every state it recorded
before the kill, and none half-written: SQLite rolls an interrupted
transaction back the next time the file is opened.

Where it lives by default: beside the manifest, as
``<manifest>.segcli-journal`` (``masks.csv`` -> ``masks.csv.segcli-journal``);
for a manifest read from stdin, ``./segcli-stdin.segcli-journal``. ``--journal``
chooses another path, for instance one per shard of a job array.

One run at a time: the journal is locked with ``flock`` on a sidecar file
``<journal>.lock``. The OS drops that lock when the process ends, however it
ends, so a SIGKILLed run never leaves the journal locked. The lock file is
left in place on purpose: deleting it would let two runs lock two different
files of the same name.

What "landed" means: the item is on the server (``uploaded``, or ``ignored``
because it already had a mask). The journal remembers the fingerprint of the
last landed version even when a later attempt with changed content failed, so
a re-run skips only items whose manifest entry and mask bytes are exactly
what landed.

The API key is never stored: the scope keeps the endpoint without any
userinfo, query or fragment.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from segcli.errors import JournalBusyError, JournalError
from segcli.model import ItemState, MaskItem, Segment

JOURNAL_SUFFIX = ".segcli-journal"
STDIN_JOURNAL = "segcli-stdin" + JOURNAL_SUFFIX
LOCK_SUFFIX = ".lock"
# "SEGJ" in the SQLite header tells our journal from any other SQLite file.
APPLICATION_ID = 0x5345474A
SCHEMA_VERSION = 1
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


def default_journal_path(manifest: str) -> Path:
    """Where the journal of ``manifest`` lives unless ``--journal`` says otherwise.

    Beside the manifest: ``<manifest>.segcli-journal``. A manifest read from
    stdin (``-``) gets ``./segcli-stdin.segcli-journal``; a manifest given as
    a URL gets ``./<its file name>.segcli-journal``.
    """
    if manifest in ("", "-"):
        return Path(STDIN_JOURNAL)
    if "://" in manifest:
        name = urllib.parse.urlsplit(manifest).path.rstrip("/").rsplit("/", 1)[-1]
        return Path((name or "manifest") + JOURNAL_SUFFIX)
    return Path(manifest + JOURNAL_SUFFIX)


class Journal:
    """The journal of one scope, locked for this process while open.

    ``Journal(path, scope)`` opens or creates the file and takes the lock.
    ``Journal(path, readonly=True)`` opens an existing journal without the
    lock, for ``segcli status`` while a run may be writing (WAL lets readers
    and one writer share the file); every query then needs a scope.
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
        if readonly:
            if not self.path.is_file():
                raise JournalError(
                    f"no journal at {self.path}; run `segcli upload` first, "
                    "or pass --journal with the path it used"
                )
        else:
            self._lock_fd = _lock(self.path)
        try:
            self._conn = self._open()
        except BaseException:
            self._unlock()
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
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Statement by statement: executescript() would COMMIT first.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise JournalError(
                f"{self.path} was written by another version of segcli (journal schema "
                f"{version}, this one reads {SCHEMA_VERSION}); use that version, "
                "or pass --journal with a new path"
            )
        # Fail now, not on the first query, if the file is damaged inside.
        conn.execute("SELECT count(*) FROM items").fetchone()

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

    def record(self, rows: Iterable[JournalRow]) -> None:
        """Store these outcomes in one transaction: all of them, or none if killed.

        ``skipped`` rows change nothing: the item keeps the landed state an
        earlier run recorded.
        """
        if self.readonly:
            raise JournalError(f"{self.path} is open read-only")
        now = time.time()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            scope_id = self._scope_id(None, create=True)
            assert scope_id is not None
            # One executemany per batch: the same upserts, in order, without
            # a round trip through Python for each row.
            conn.executemany(
                """
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
                """,
                _upserts(scope_id, rows, now),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def counts(self, *, scope: Scope | None = None) -> dict[str, int]:
        """Items per state in the scope; states with no item are left out."""
        scope_id = self._scope_id(scope, create=False)
        if scope_id is None:
            return {}
        found = dict(
            self._conn.execute(
                "SELECT state, count(*) FROM items WHERE scope_id = ? GROUP BY state",
                (scope_id,),
            ).fetchall()
        )
        known = [s.value for s in ItemState if s.value in found]
        return {s: found[s] for s in [*known, *sorted(set(found) - set(known))]}

    def rows(self, state: str | None = None, *, scope: Scope | None = None) -> Iterator[JournalRow]:
        """The items of the scope by reference_id, optionally only those in ``state``."""
        scope_id = self._scope_id(scope, create=False)
        if scope_id is None:
            return
        query = (
            "SELECT reference_id, fingerprint, state, message, source, attempts, updated_at "
            "FROM items WHERE scope_id = ?"
        )
        params: tuple[object, ...] = (scope_id,)
        if state is not None:
            query += " AND state = ?"
            params += (ItemState(state).value,)
        cursor = self._conn.execute(query + " ORDER BY reference_id", params)
        try:
            while batch := cursor.fetchmany(_FETCH_ROWS):
                for ref, fp, st, message, source, attempts, updated_at in batch:
                    yield JournalRow(ref, fp, ItemState(st), message, source, attempts, updated_at)
        finally:
            cursor.close()

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


def _upserts(scope_id: int, rows: Iterable[JournalRow], now: float) -> Iterator[tuple[object, ...]]:
    """Parameters of ``record``'s upsert for each row; ``skipped`` rows change nothing."""
    for row in rows:
        state = ItemState(row.state)
        if state is ItemState.SKIPPED:
            continue
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
    """Take the run lock beside ``path``, or raise JournalBusyError at once."""
    lock_path = path.with_name(path.name + LOCK_SUFFIX)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise JournalError(
            f"cannot create the journal lock {lock_path}: {exc.strerror}; "
            "check that the folder exists and is writable, or pass --journal PATH"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_pid(fd)
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise JournalError(f"cannot lock the journal {path}: {exc.strerror}") from None
        who = f" (pid {holder})" if holder else ""
        raise JournalBusyError(
            f"another segcli run{who} is using the journal {path}; "
            "wait for it to finish or use --journal with another path"
        ) from None
    # Tell a second run who holds the lock. Written after locking, so a
    # reader may see an empty file for an instant; it then names no pid.
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
