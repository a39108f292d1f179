"""Resume for ``segcli convert``: what each earlier run wrote, keyed by reference_id.

One SQLite file (stdlib, no service) holds, per image, the digest of its
sources and of the options that shape the output, the output's URI and the
manifest item written for it. A later run skips an image whose digest and
output are unchanged (and whose output still exists), and puts the stored
item in the new manifest. A failed image is forgotten, so it is tried again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from typing import Any

from segcli.errors import JournalBusyError, UsageError
from segcli.model import MaskItem, Segment, Source

STATE_NAME = ".segcli-convert.sqlite"
COMMIT_EVERY = 64  # rows per transaction: a killed run redoes at most this many images

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
    reference_id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    output TEXT NOT NULL,
    item TEXT NOT NULL
)
"""


def default_state_path(out: str, *, remote: bool) -> str:
    """In the output folder; for a bucket, in the working directory, named after the prefix."""
    if not remote:
        return os.path.join(out, STATE_NAME)
    digest = hashlib.sha256(out.encode()).hexdigest()[:12]
    return os.path.abspath(f".segcli-convert-{digest}.sqlite")


class ConvertState:
    """The state of one run. It holds the file's lock until ``close``: one run at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, timeout=0.1)
            # Exclusive locking: the first write takes the file's lock and keeps it
            # until the connection closes, so a second run on the same state
            # stops at once instead of interleaving with this one.
            self._conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(_SCHEMA)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise JournalBusyError(
                    f"another segcli convert is using the resume state {path}; wait for it "
                    "to finish, or give another --out or --state"
                ) from None
            raise UsageError(
                f"cannot use the resume state {path}: {exc}; remove it or give another --state"
            ) from exc
        except sqlite3.Error as exc:
            raise UsageError(
                f"cannot use the resume state {path}: {exc}; remove it or give another --state"
            ) from exc
        self._pending = 0

    def known(self, reference_id: str) -> tuple[str, str] | None:
        """(digest, output) of what an earlier run wrote for this image."""
        row = self._conn.execute(
            "SELECT digest, output FROM outputs WHERE reference_id = ?", (reference_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def item(self, reference_id: str, source: Source) -> MaskItem | None:
        row = self._conn.execute(
            "SELECT item FROM outputs WHERE reference_id = ?", (reference_id,)
        ).fetchone()
        return _item(json.loads(row[0]), source) if row else None

    def record(self, item: MaskItem, digest: str) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO outputs VALUES (?, ?, ?, ?)",
            (item.reference_id, digest, item.mask, json.dumps(_record(item))),
        )
        self._tick()

    def forget(self, reference_id: str) -> None:
        self._conn.execute("DELETE FROM outputs WHERE reference_id = ?", (reference_id,))
        self._tick()

    def _tick(self) -> None:
        self._pending += 1
        if self._pending >= COMMIT_EVERY:
            self._conn.execute("COMMIT")
            self._conn.execute("BEGIN")
            self._pending = 0

    def close(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")
        self._conn.close()


def _record(item: MaskItem) -> dict[str, Any]:
    return {
        "reference_id": item.reference_id,
        "mask": item.mask,
        "annotation_id": item.annotation_id,
        "width": item.width,
        "height": item.height,
        "segments": [s.payload() for s in item.segments],
        "image": item.image,
    }


def _item(record: dict[str, Any], source: Source) -> MaskItem:
    return MaskItem(
        reference_id=record["reference_id"],
        mask=record["mask"],
        segments=tuple(
            Segment(index=s["index"], label=s["label"], metadata=s.get("metadata"))
            for s in record["segments"]
        ),
        source=source,
        annotation_id=record["annotation_id"],
        width=record["width"],
        height=record["height"],
        image=record.get("image"),  # absent from the records of older runs
    )
