"""Group ready items into requests the protocol allows.

Remote masks go as JSON with their URL (up to 20 a request); local masks go
as multipart with their bytes (up to 10 a request). The two kinds never mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from segcli.model import MaskItem, Problem

MAX_REMOTE_BATCH = 20  # the official client's batch size for URL segmentations
MAX_LOCAL_BATCH = 10  # the service refuses more files in one multipart request
# A multipart request over this many bytes is sent before it reaches MAX_LOCAL_BATCH,
# to stay well under the service's body limit and its one-minute request budget.
MAX_LOCAL_BATCH_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Entry:
    """An item that passed its checks, with what the journal needs to record it."""

    item: MaskItem
    fingerprint: str
    data: bytes | None = None  # local masks: the bytes that were inspected
    problems: tuple[Problem, ...] = ()  # warnings found on the way; they go in the report


@dataclass(slots=True)
class Batch:
    remote: bool
    entries: list[Entry] = field(default_factory=list)
    size_bytes: int = 0

    def __len__(self) -> int:
        return len(self.entries)

    def split(self) -> tuple[Batch, Batch]:
        mid = len(self.entries) // 2
        first, second = self.entries[:mid], self.entries[mid:]
        return (
            Batch(self.remote, first, sum(len(e.data or b"") for e in first)),
            Batch(self.remote, second, sum(len(e.data or b"") for e in second)),
        )


class Batcher:
    """Accumulates entries into the two kinds of request."""

    def __init__(self, *, remote_size: int, local_size: int) -> None:
        self.remote_size = max(1, min(remote_size, MAX_REMOTE_BATCH))
        self.local_size = max(1, min(local_size, MAX_LOCAL_BATCH))
        self._remote = Batch(remote=True)
        self._local = Batch(remote=False)

    def add(self, entry: Entry) -> list[Batch]:
        """Add one entry; return the batches that are now full (usually none)."""
        if entry.item.is_remote:
            self._remote.entries.append(entry)
            if len(self._remote) >= self.remote_size:
                full, self._remote = self._remote, Batch(remote=True)
                return [full]
            return []
        full_local: list[Batch] = []
        size = len(entry.data or b"")
        if self._local.entries and self._local.size_bytes + size > MAX_LOCAL_BATCH_BYTES:
            full_local.append(self._local)
            self._local = Batch(remote=False)
        self._local.entries.append(entry)
        self._local.size_bytes += size
        if len(self._local) >= self.local_size:
            full_local.append(self._local)
            self._local = Batch(remote=False)
        return full_local

    def drain(self) -> list[Batch]:
        out = [b for b in (self._remote, self._local) if b.entries]
        self._remote, self._local = Batch(remote=True), Batch(remote=False)
        return out
