"""What journals say about earlier uploads: the library behind ``segcli status``.

    journals = expand_journals(["masks.yaml.shard-*.segcli-journal"])
    ids = (item.reference_id for item in load_manifest("masks.yaml"))
    report = read_status(journals, manifest=ids)

Counts are each item's latest outcome, summed over the journals given (one
per shard of a job array, say), per endpoint, dataset and target. With a
manifest, its items that no journal holds are counted as ``pending``: never
tried, by any shard; and an item that more than one journal holds (an
unsharded run and a sharded one, or shards of two different counts) is
counted once, by the outcome recorded last. Journals are opened read-only
and without the run lock, so this works while an upload is writing.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segcli.errors import UsageError
from segcli.journal import Journal, JournalRow, Scope, journal_family
from segcli.model import ItemState
from segcli.settings import shard_of

#: the states ``segcli status`` lists item by item: they need someone's attention
ATTENTION = (ItemState.FAILED, ItemState.REJECTED, ItemState.INVALID)
_IDS_PER_LOOKUP = 500


@dataclass(slots=True)
class ScopeStatus:
    scope: Scope
    counts: Counter[str] = field(default_factory=Counter)
    pending: int | None = None  # with a manifest: its items no journal holds
    #: with a manifest: its items more than one journal holds (each counted once)
    overlap: int | None = None
    listed: dict[str, list[JournalRow]] = field(default_factory=dict)  # up to the limit
    last_run: dict[str, Any] | None = None  # the latest of any journal's
    journals: int = 0  # how many of the journals hold this scope (a job array: one a shard)
    unfinished: int = 0  # of those, how many end in a run that did not finish
    #: async jobs an upload started and did not collect: {"job_id", "items"}
    jobs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        return any(self.counts[s.value] for s in ATTENTION) or bool(self.pending) or bool(self.jobs)

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
        if self.overlap is not None:
            out["overlap"] = self.overlap
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
        out["journal_count"] = self.journals
        out["unfinished"] = self.unfinished
        if self.jobs:
            out["jobs"] = self.jobs
        return out


@dataclass(slots=True)
class StatusReport:
    journals: list[str]
    scopes: list[ScopeStatus]
    #: with a manifest and no scope recorded yet: how many of its items wait
    untouched: int | None = None
    #: what makes the counts less than exact (say, journals of two shard counts)
    warnings: list[str] = field(default_factory=list)

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
        if self.warnings:
            out["warnings"] = self.warnings
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
    pending, and those several journals hold count once. ``limit`` caps the
    failed, rejected and invalid items listed per state (the counts are
    always whole).
    """
    opened: list[Journal] = []
    try:
        for path in journals:
            opened.append(Journal(Path(path), readonly=True))
        by_scope: dict[Scope, ScopeStatus] = {}
        for journal in opened:
            for scope in journal.scopes():
                status = by_scope.setdefault(scope, ScopeStatus(scope))
                status.counts.update(journal.counts(scope=scope))
                status.journals += 1
                status.jobs.extend(
                    {"job_id": job.job_id, "items": len(job.items)}
                    for job in journal.unfinished_jobs(scope=scope)
                )
                run = journal.last_run(scope=scope)
                if run is not None and run["finished_at"] is None:
                    status.unfinished += 1
                if run is not None and (
                    status.last_run is None or run["started_at"] > status.last_run["started_at"]
                ):
                    status.last_run = run
        report = StatusReport([str(j.path) for j in opened], list(by_scope.values()))
        superseded: dict[Scope, set[tuple[int, str]]] = {}
        if manifest is not None:
            superseded = _count_pending(opened, report, manifest)
        elif (mixed := _mixed_families(journals)) is not None:
            report.warnings.append(mixed)
        for status in report.scopes:
            for state in ATTENTION:
                if status.counts[state.value]:
                    skip = superseded.get(status.scope, set())
                    status.listed[state.value] = _rows(opened, state, status.scope, limit, skip)
        return report
    finally:
        for journal in opened:
            journal.close()


def expand_journals(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Each path as given, or, when it is a glob pattern, the journals it matches.

    segcli expands the pattern itself (quote it, so the shell leaves it alone
    and a pattern matching thousands of shards makes no over-long command
    line). SQLite's side files of a journal (``-wal``, ``-shm``) are left out,
    the matches come in natural order (shard 10 after shard 9), and a journal
    named twice is read once, so its items are not counted twice.
    """
    found: list[Path] = []
    for given in paths:
        text = os.fspath(given)
        if Path(text).is_file() or not any(c in text for c in "*?["):
            found.append(Path(text))
            continue
        matches = [
            Path(m) for m in glob.glob(text) if Path(m).is_file() and not _side_file(Path(m))
        ]
        if not matches:
            raise UsageError(
                f"--journal {text!r} matches no journal",
                hint="check the folder and the pattern; a shard's journal is named "
                "MANIFEST.shard-K-of-N.segcli-journal (quote the pattern so segcli expands it)",
            )
        found.extend(sorted(matches, key=_natural))
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def _side_file(path: Path) -> bool:
    """A file SQLite keeps beside a database (``X-wal``, ``X-shm``, ``X-journal``)."""
    for suffix in ("-wal", "-shm", "-journal"):
        if path.name.endswith(suffix) and path.with_name(path.name[: -len(suffix)]).is_file():
            return True
    return False


def _natural(path: Path) -> list[Any]:
    # re.split with a group alternates text and digits, so the types line up.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def _mixed_families(journals: Sequence[str | os.PathLike[str]]) -> str | None:
    """Why summing these journals may count an item twice, judged by their names.

    Journals of one job array hold disjoint items; the journal of an
    unsharded run, or those of a run with another shard count, hold some of
    the same items. Only a manifest lets the items be counted once.
    """
    counts: dict[str, set[int | None]] = {}
    for path in journals:
        family = journal_family(Path(path))
        if family is not None:
            manifest, shard = family
            counts.setdefault(manifest, set()).add(None if shard is None else shard[1])
    for manifest, shard_counts in counts.items():
        if len(shard_counts) > 1:
            kinds = ", ".join(
                "unsharded" if n is None else f"{n} shards"
                for n in sorted(shard_counts, key=lambda n: -1 if n is None else n)
            )
            return (
                f"the journals of {manifest} come from runs split differently ({kinds}): "
                "an item in more than one of them is counted once in each; add --manifest "
                f"{manifest} to count each item once"
            )
    return None


def _rows(
    journals: list[Journal],
    state: ItemState,
    scope: Scope,
    limit: int,
    skip: set[tuple[int, str]],
) -> list[JournalRow]:
    """Up to ``limit`` rows in ``state``, leaving out those a later journal's row replaced."""
    found: list[JournalRow] = []
    for n, journal in enumerate(journals):
        if len(found) >= limit:
            break
        rows = journal.rows(state.value, scope=scope)
        if skip:
            rows = (r for r in rows if r.duplicate or (n, r.reference_id) not in skip)
        found.extend(itertools.islice(rows, limit - len(found)))
    return found


def _count_pending(
    journals: list[Journal], report: StatusReport, ids: Iterable[str]
) -> dict[Scope, set[tuple[int, str]]]:
    """Count the manifest's items no journal holds, and those several hold only once.

    Returns, per scope, the (journal, reference_id) rows another journal's
    later row replaced, where they need attention, so they are not listed.
    """
    pending = {s.scope: 0 for s in report.scopes}
    superseded: dict[Scope, set[tuple[int, str]]] = {s.scope: set() for s in report.scopes}
    for status in report.scopes:
        status.overlap = 0
    array = _one_array(journals)
    total = 0
    it = iter(ids)
    while chunk := list(dict.fromkeys(r for r in itertools.islice(it, _IDS_PER_LOOKUP) if r)):
        total += len(chunk)
        if array is not None:
            _count_pending_by_shard(report, chunk, array, pending)
            continue
        for status in report.scopes:
            found = [journal.states(chunk, scope=status.scope) for journal in journals]
            copies = Counter(ref for states in found for ref in states)
            pending[status.scope] += len(chunk) - len(copies)
            for ref, n in copies.items():
                if n > 1:
                    _count_once(status, ref, found, superseded[status.scope])
    for status in report.scopes:
        status.pending = pending[status.scope]
    if not report.scopes:
        report.untouched = total
    return superseded


def _one_array(journals: list[Journal]) -> tuple[int, dict[int, Journal]] | None:
    """(N, the journal of each shard K) when the journals are shards of one split.

    Their default names say which shard each holds, and shards of one split
    hold disjoint items: an item can only be in the journal of its own shard,
    so each item is looked up in one journal rather than in all of them (a
    job array of 100 shards: 100 times fewer lookups), and none is held twice.
    """
    by_shard: dict[int, Journal] = {}
    splits: set[tuple[str, int]] = set()
    for journal in journals:
        family = journal_family(journal.path)
        shard = None if family is None else family[1]
        if family is None or shard is None or shard[0] in by_shard:
            return None
        splits.add((family[0], shard[1]))
        by_shard[shard[0]] = journal
    if len(splits) != 1:
        return None
    ((_, n),) = splits
    return n, by_shard


def _count_pending_by_shard(
    report: StatusReport,
    chunk: list[str],
    array: tuple[int, dict[int, Journal]],
    pending: dict[Scope, int],
) -> None:
    n, by_shard = array
    mine: dict[int, list[str]] = {}
    for ref in chunk:
        mine.setdefault(shard_of(ref, n), []).append(ref)
    for status in report.scopes:
        for k, refs in mine.items():
            journal = by_shard.get(k)  # None: that shard never ran
            held = journal.held(refs, scope=status.scope) if journal is not None else set()
            pending[status.scope] += len(refs) - len(held)


def _count_once(
    status: ScopeStatus,
    ref: str,
    found: list[dict[str, tuple[str, float]]],
    superseded: set[tuple[int, str]],
) -> None:
    """An item several journals hold: keep the outcome recorded last, drop the others."""
    assert status.overlap is not None
    status.overlap += 1
    held = sorted(
        (states[ref][1], n, states[ref][0]) for n, states in enumerate(found) if ref in states
    )
    for _, n, state in held[:-1]:
        status.counts[state] -= 1
        if ItemState(state) in ATTENTION:
            superseded.add((n, ref))
