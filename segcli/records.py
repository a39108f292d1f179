"""What an upload reports: each item's outcome, a dry run's requests, the run's counters.

The pipeline makes these and hands them to the caller's hooks; the CLI, the
journal and the report file all read the same records, which is why their
counts agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from segcli.model import ItemState, MaskItem, Problem

if TYPE_CHECKING:
    from segcli.client import RetryEvent


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    item: MaskItem
    state: ItemState
    message: str | None = None
    problems: tuple[Problem, ...] = ()
    #: the server's own answer about this item (a rejected item's error), for reports
    detail: str | None = None
    #: the item's place among the run's items (0, 1, 2... in manifest order)
    seq: int = -1

    def as_dict(self) -> dict[str, Any]:
        out = item_record(self.item, self.problems, state=self.state.value, message=self.message)
        if self.detail is not None:
            out["server_error"] = self.detail
        return out


def item_record(item: MaskItem, problems: tuple[Problem, ...], **fields: Any) -> dict[str, Any]:
    """One line of a ``--report`` file, for every command: where the item is, what
    it was found to be (``fields``: upload's state and message, validate's verdict)
    and its problems."""
    return {
        "reference_id": item.reference_id,
        "source": str(item.source),
        "mask": item.mask,
        "annotation_id": item.annotation_id,
        **fields,
        "problems": [p.as_dict() for p in problems],
    }


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """A request a dry run would make, exactly: method, URL, body kind and size, items."""

    method: str
    url: str
    kind: str  # "json" or "multipart"
    body_bytes: int
    reference_ids: tuple[str, ...]


@dataclass(slots=True)
class JobProgress:
    """An async job, as its latest status said: for displays, ``--json`` and reports."""

    job_id: str
    items: int
    status: str = "Running"
    completed_steps: int = 0
    total_steps: int = 0
    message: str = ""
    resumed: bool = False  # started by an earlier run, polled by this one

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "items": self.items,
            "completed_steps": self.completed_steps,
            "total_steps": self.total_steps,
            "resumed": self.resumed,
        }


@dataclass(slots=True)
class StageCounts:
    """What ``--stage`` did: masks copied to the bucket, and those already there."""

    prefix: str
    copied: int = 0
    already: int = 0
    bytes_copied: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "copied": self.copied,
            "already_staged": self.already,
            "bytes_copied": self.bytes_copied,
        }


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a run stopped sending before its end (the service went away)."""

    message: str
    failed: int  # items of the requests that ran out of retries
    pending: int  # items never tried: a re-run sends them


@dataclass(slots=True)
class UploadStats:
    """Counters the CLI's progress display reads; the pipeline bumps them."""

    read: int = 0
    validated: int = 0
    requests: int = 0
    retries: int = 0
    sent_items: int = 0
    elapsed_s: float = 0.0
    first_send: float | None = None  # perf_counter() when the first upload request went out
    last_reply: float | None = None  # ... and when the last one came back
    states: Counter[str] = field(default_factory=Counter)
    plan: dict[str, dict[str, Any]] = field(default_factory=dict)  # dry run: route -> counts
    dry_run: bool = False
    stopped: Stop | None = None  # set when an outage stopped the run
    #: the latest retry, for displays: (what failed, when the wait ends on perf_counter)
    retrying: tuple[str, float] | None = None
    #: requests allowed in flight now, the most so far, the ceiling; whether it adapts
    limit: int = 0
    limit_peak: int = 0
    limit_max: int = 0
    adaptive: bool = False
    cutbacks: int = 0  # times the limit was cut back (429, 503, 504, timeouts, latency)
    #: async jobs of this run (started or resumed), by job id, in the order seen
    jobs: dict[str, JobProgress] = field(default_factory=dict)
    stage: StageCounts | None = None  # --stage

    def add_plan(self, route: str, request: PlannedRequest, *, requests: int = 1) -> None:
        """Count a dry run's request under its route (with its first few items); an
        async job counts the ``requests`` that start it."""
        self.requests += requests
        plan = self.plan.setdefault(route, {"requests": 0, "items": 0, "first_items": []})
        plan["requests"] += requests
        plan["items"] += len(request.reference_ids)
        first: list[str] = plan["first_items"]
        first.extend(request.reference_ids[: max(0, 5 - len(first))])

    @property
    def finished(self) -> int:
        return sum(self.states.values())

    @property
    def send_elapsed_s(self) -> float:
        """From the first upload request to the last reply: the sending rate's clock."""
        if self.first_send is None or self.last_reply is None:
            return 0.0
        return self.last_reply - self.first_send

    @property
    def ok(self) -> bool:
        bad = (ItemState.INVALID, ItemState.REJECTED, ItemState.FAILED)
        return self.stopped is None and not any(self.states[s.value] for s in bad)

    def as_dict(self) -> dict[str, Any]:
        shown = [s for s in ItemState if s is not ItemState.WOULD_SEND or self.dry_run]
        out: dict[str, Any] = {
            "items": self.finished,
            **{s.value: self.states[s.value] for s in shown},
            "requests": self.requests,
            "retries": self.retries,
            "elapsed_s": round(self.elapsed_s, 3),
            "send_elapsed_s": round(self.send_elapsed_s, 3),
        }
        if self.limit_max:
            out["concurrency"] = {
                "adaptive": self.adaptive,
                "limit": self.limit,
                "peak": self.limit_peak,
                "max": self.limit_max,
                "cutbacks": self.cutbacks,
            }
        if self.stopped is not None:
            out["pending"] = self.stopped.pending
            out["stopped"] = self.stopped.message
        if self.plan:
            out["plan"] = self.plan
        if self.jobs:
            out["jobs"] = [job.as_dict() for job in self.jobs.values()]
        if self.stage is not None:
            out["stage"] = self.stage.as_dict()
        return out


OutcomeHook = Callable[[ItemOutcome], None]
PlanHook = Callable[[PlannedRequest], None]
RetryHook = Callable[["RetryEvent"], None]
JobHook = Callable[[JobProgress], None]
