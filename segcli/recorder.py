"""Where each item of an upload is finished: counted, reported, written to the journal.

The pipeline's coordinator owns one ``Recorder`` and is the only caller, so
an item's outcome reaches the stats, the caller's ``on_outcome`` hook and the
journal in one place, and all three agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from segcli.model import ItemState, MaskItem, Problem
from segcli.records import ItemOutcome, OutcomeHook, UploadStats

if TYPE_CHECKING:
    from segcli.journal import JournalRow

# Rows settled without a request (skipped, invalid) written together, not one
# transaction each: a re-run of 200,000 landed items records them in ~800.
SETTLED_ROWS_PER_WRITE = 256

#: (item, state, message, problems, the server's detail, fingerprint)
Done = tuple[MaskItem, ItemState, "str | None", tuple[Problem, ...], "str | None", str]


class RunJournal(Protocol):
    """What an upload needs of ``segcli.journal.Journal``."""

    @property
    def readonly(self) -> bool: ...
    def landed_state(self, reference_id: str, fingerprint: str) -> ItemState | None: ...
    def record(self, rows: Iterable[JournalRow], *, collected_job: int | None = None) -> None: ...
    def counts(self) -> dict[str, int]: ...
    def start_run(self) -> None: ...
    def finish_run(self, summary: Mapping[str, object]) -> None: ...
    def discard(self) -> None: ...


class Recorder:
    def __init__(self, stats: UploadStats, on_outcome: OutcomeHook | None) -> None:
        self.stats = stats
        self.on_outcome = on_outcome
        self.journal: RunJournal | None = None
        self._rows: list[tuple[ItemOutcome, str]] = []  # not yet written to the journal
        self._seq: dict[int, int] = {}  # id(item) -> its place, until it finishes
        self._next = 0

    def number(self, items: Iterable[MaskItem]) -> None:
        """Give items their places in manifest order (``ItemOutcome.seq``)."""
        for item in items:
            self._seq[id(item)] = self._next
            self._next += 1

    def finish(
        self, done: Sequence[Done], *, write_now: bool, collected_job: int | None = None
    ) -> None:
        """Count, report and record these outcomes. A batch is written at once;
        outcomes settled without a request a few hundred at a time. The items
        of an async job are written with the job marked collected."""
        for item, state, message, problems, detail, fingerprint in done:
            seq = self._seq.pop(id(item), -1)
            outcome = ItemOutcome(item, state, message, problems, detail, seq)
            self.stats.states[state.value] += 1
            if self.on_outcome is not None:
                self.on_outcome(outcome)
            self._rows.append((outcome, fingerprint))
        if write_now or len(self._rows) >= SETTLED_ROWS_PER_WRITE:
            self.flush(collected_job=collected_job)

    def flush(self, *, collected_job: int | None = None) -> None:
        rows, self._rows = self._rows, []
        if self.journal is None or self.journal.readonly:
            return
        if not rows and collected_job is None:
            return
        from segcli.journal import JournalRow

        self.journal.record(
            (
                JournalRow(
                    reference_id=o.item.reference_id,
                    fingerprint=fp,
                    state=o.state,
                    message=o.message,
                    source=str(o.item.source),
                    duplicate=any(p.code == "duplicate-reference-id" for p in o.item.problems),
                )
                for o, fp in rows
            ),
            collected_job=collected_job,
        )

    def close(self) -> None:
        """Write what is left and the run's summary; drop a journal nothing went into."""
        if self.journal is None:
            return
        try:
            self.flush()
        finally:
            if not self.journal.readonly:
                self.journal.finish_run(self.stats.as_dict())
            self.journal.discard()
