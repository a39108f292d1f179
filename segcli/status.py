"""What journals say about earlier uploads: the library behind ``segcli status``.

    report = segcli.status.read_status(["masks.yaml.segcli-journal"], manifest="masks.yaml")

Counts are each item's latest outcome, summed over the journals given (one
per shard of a job array, say), per endpoint, dataset and target. With a
manifest, its items that no journal holds are counted as ``pending``: never
tried, by any shard. Journals are opened read-only and without the run
lock, so this works while an upload is writing.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segcli.journal import Journal, JournalRow, Scope
from segcli.model import ItemState

#: the states ``segcli status`` lists item by item: they need someone's attention
ATTENTION = (ItemState.FAILED, ItemState.REJECTED, ItemState.INVALID)
_IDS_PER_LOOKUP = 500


@dataclass(slots=True)
class ScopeStatus:
    scope: Scope
    counts: Counter[str] = field(default_factory=Counter)
    pending: int | None = None  # with a manifest: its items no journal holds
    listed: dict[str, list[JournalRow]] = field(default_factory=dict)  # up to the limit
    last_run: dict[str, Any] | None = None

    @property
    def needs_attention(self) -> bool:
        return any(self.counts[s.value] for s in ATTENTION) or bool(self.pending)

    def as_dict(self) -> dict[str, Any]:
        counts = {s.value: self.counts[s.value] for s in ItemState if self.counts[s.value]}
        out: dict[str, Any] = {
            "endpoint": self.scope.endpoint,
            "dataset_id": self.scope.dataset_id,
            "target": self.scope.target,
            "counts": counts,
        }
        if self.pending is not None:
            out["pending"] = self.pending
        out["items"] = {
            state: [
                {
                    "reference_id": r.reference_id,
                    "source": r.source,
                    "message": r.message,
                    **({"duplicate": True} if r.duplicate else {}),
                }
                for r in rows
            ]
            for state, rows in self.listed.items()
        }
        out["more"] = {
            state: self.counts[state] - len(rows)
            for state, rows in self.listed.items()
            if self.counts[state] > len(rows)
        }
        out["last_run"] = self.last_run
        return out


@dataclass(slots=True)
class StatusReport:
    journals: list[str]
    scopes: list[ScopeStatus]
    #: with a manifest and no scope recorded yet: how many of its items wait
    untouched: int | None = None

    @property
    def needs_attention(self) -> bool:
        return bool(self.untouched) or any(s.needs_attention for s in self.scopes)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "journals": self.journals,
            "scopes": [s.as_dict() for s in self.scopes],
        }
        if self.untouched is not None:
            out["untouched"] = self.untouched
        return out


def read_status(
    journals: Sequence[str | os.PathLike[str]],
    *,
    manifest: Iterable[str] | None = None,
    limit: int = 50,
) -> StatusReport:
    """The status of every scope in these journals.

    ``manifest`` is the reference_ids of a manifest (``item.reference_id``
    for each item of ``load_manifest(...)``): those no journal holds count as
    pending. ``limit`` caps the failed, rejected and invalid items listed per
    state (the counts are always whole).
    """
    opened = [Journal(Path(p), readonly=True) for p in journals]
    try:
        by_scope: dict[Scope, ScopeStatus] = {}
        for journal in opened:
            for scope in journal.scopes():
                status = by_scope.setdefault(scope, ScopeStatus(scope))
                status.counts.update(journal.counts(scope=scope))
                run = journal.last_run(scope=scope)
                if run is not None and (
                    status.last_run is None or run["started_at"] > status.last_run["started_at"]
                ):
                    status.last_run = run
        for status in by_scope.values():
            for state in ATTENTION:
                if status.counts[state.value]:
                    rows = _rows(opened, state, status.scope, limit)
                    status.listed[state.value] = rows
        report = StatusReport([str(j.path) for j in opened], list(by_scope.values()))
        if manifest is not None:
            _count_pending(opened, report, manifest)
        return report
    finally:
        for journal in opened:
            journal.close()


def _rows(journals: list[Journal], state: ItemState, scope: Scope, limit: int) -> list[JournalRow]:
    found: list[JournalRow] = []
    for journal in journals:
        if len(found) >= limit:
            break
        found.extend(itertools.islice(journal.rows(state.value, scope=scope), limit - len(found)))
    return found


def _count_pending(journals: list[Journal], report: StatusReport, ids: Iterable[str]) -> None:
    scopes = [s.scope for s in report.scopes]
    pending = dict.fromkeys(scopes, 0)
    total = 0
    it = iter(ids)
    while chunk := list(dict.fromkeys(r for r in itertools.islice(it, _IDS_PER_LOOKUP) if r)):
        total += len(chunk)
        for scope in scopes:
            held: set[str] = set()
            for journal in journals:
                held |= journal.held(chunk, scope=scope)
            pending[scope] += len(chunk) - len(held)
    for status in report.scopes:
        status.pending = pending[status.scope]
    if not scopes:
        report.untouched = total
