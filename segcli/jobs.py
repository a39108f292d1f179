"""Async ingestion: a chunk of remote masks handed to the service as one job (``--async``).

    start   GET dataset/{id}/signedUrl/{request_id}, PUT the NDJSON there (no key),
            POST .../annotate?async=1 (or uploadPredictions) {"requestId", "update"}
    wait    GET job/{job_id} until the job ends; its steps are the progress
    settle  GET job/{job_id}/errors: each item an error names is rejected with the
            service's words; every other item is uploaded (--update: the job
            replaced what it held) or read back, as the sync path reads back the
            items its counts cannot place: it holds our segmentation (uploaded),
            another one (ignored), or none (failed, with the job's status)

The job status says how many objects were read, not which were new, updated
or ignored, hence the read-backs. A chunk is at most ``MAX_JOB_ITEMS`` items:
``job/{id}/errors`` returns only the latest 10,000 errors, so a larger job
could fail items without naming them. Nothing here records an outcome: the
coordinator finishes the items of the ``BatchResult`` that ``settle`` returns.
The journal holds each chunk (``Journal.add_job``) before its NDJSON leaves,
and its job id from the moment the service answers with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from segcli.batching import Batch, Entry
from segcli.model import ItemState
from segcli.outcomes import job_errors, rejected_states
from segcli.records import JobHook, JobProgress, PlannedRequest, UploadStats
from segcli.send import UNPLACED, BatchResult, Outage, Sender
from segcli.target import Target
from segcli.wire import RequestBodies

if TYPE_CHECKING:
    from segcli.client import NucleusClient

MAX_JOB_ITEMS = 10_000  # job.errors() returns the latest 10,000 errors
COMPLETED = "Completed"
# Statuses of a job still at work. The official client's sleep_until_complete
# waits on Running alone; a queued or retried job has not ended either.
IN_PROGRESS = frozenset({"Queued", "Running", "Retried"})
UNKNOWN = "Unknown"  # the service answered 404 for the job: it no longer knows it
FIRST_POLL_S = 0.5  # then doubling, up to UploadSettings.job_poll_s
READBACKS_AT_ONCE = 64  # read-backs of one job waiting for the client's limiter


class JobJournal(Protocol):
    """What a job needs of the journal (``segcli.journal.Journal``)."""

    def add_job(self, request_id: str, items: list[tuple[str, str]]) -> int: ...
    def job_started(self, row: int, job_id: str) -> None: ...
    def drop_job(self, row: int) -> None: ...


class JobRefused(Exception):
    """The service refused to start a job (a 4xx): its items failed, the others go on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(slots=True)
class Started:
    row: int | None  # the chunk's row in the journal (None in a run without one)
    progress: JobProgress


class JobSender:
    def __init__(
        self,
        client: NucleusClient,
        target: Target,
        bodies: RequestBodies,
        stats: UploadStats,
        sender: Sender,
        *,
        endpoint: str,
        update: bool,
        trained_slice_id: str | None = None,
        poll_max_s: float = 5.0,
        on_job: JobHook | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.target = target
        self.bodies = bodies
        self.stats = stats
        self.sender = sender  # its read-back, shared with the sync path
        self.endpoint = endpoint
        self.update = update
        self.trained_slice_id = trained_slice_id
        self.poll_max_s = poll_max_s
        self.on_job = on_job
        self._sleep = sleep

    # -- what goes on the wire ------------------------------------------------

    def ndjson(self, batch: Batch) -> bytes:
        """One segmentation a line, each as a JSON batch would hold it, newline after each."""
        return "".join(self.bodies.segmentation(e.item) + "\n" for e in batch.entries).encode()

    def start_body(self, request_id: str) -> bytes:
        """The official client's keys, in its order; predictions add trained_slice_id."""
        body: dict[str, Any] = {"requestId": request_id, "update": self.update}
        if self.target.is_predictions:
            body["trained_slice_id"] = self.trained_slice_id
        return json.dumps(body).encode()

    def rehearse(self, batch: Batch) -> PlannedRequest:
        """The job a dry run would start: its POST, and the NDJSON's size and items."""
        from segcli.journal import clean_endpoint

        url = f"{clean_endpoint(self.endpoint)}/{self.target.upload_route}?async=1"
        refs = tuple(e.item.reference_id for e in batch.entries)
        return PlannedRequest("POST", url, "job", len(self.ndjson(batch)), refs)

    # -- start, wait, settle --------------------------------------------------

    async def start(self, batch: Batch, journal: JobJournal | None) -> Started:
        """Hand the chunk to the service; raises Outage or JobRefused."""
        from segcli.client import RequestFailed

        request_id = uuid.uuid4().hex  # 32 hex characters, as the official client makes
        items = [(e.item.reference_id, e.fingerprint) for e in batch.entries]
        row = journal.add_job(request_id, items) if journal is not None else None
        self.stats.requests += 3
        if self.stats.first_send is None:
            self.stats.first_send = time.perf_counter()
        try:
            answer = await self.client.get(self.target.signed_url_route(request_id))
            signed = answer.body.get("signed_url") if isinstance(answer.body, Mapping) else None
            if not isinstance(signed, str) or not signed:
                raise RequestFailed(
                    f"the signed URL request answered no signed_url: {str(answer.body)[:200]}",
                    status=400,
                    attempts=1,
                )
            await self.client.put_signed(signed, self.ndjson(batch))
            answer = await self.client.post_json(
                self.target.upload_route, self.start_body(request_id), params={"async": "1"}
            )
        except RequestFailed as exc:
            if exc.status is None or exc.status >= 500:
                # The journal keeps the chunk without a job id: the next run
                # drops it and sends its items again.
                raise self._outage(exc.message) from None
            if journal is not None and row is not None:
                journal.drop_job(row)
            raise JobRefused(exc.message) from None
        body = answer.body if isinstance(answer.body, Mapping) else {}
        job_id = body.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            if journal is not None and row is not None:
                journal.drop_job(row)
            raise JobRefused(f"the service started no job: it answered {str(answer.body)[:200]}")
        if journal is not None and row is not None:
            journal.job_started(row, job_id)
        self.stats.sent_items += len(batch)
        status = body.get("job_last_known_status")
        progress = JobProgress(job_id, len(batch), status if isinstance(status, str) else "Running")
        self.report(progress)
        return Started(row, progress)

    async def wait(self, progress: JobProgress) -> JobProgress:
        """Poll the job until it ends; raises Outage when the service stops answering."""
        from segcli.client import RequestFailed
        from segcli.errors import NotFoundError

        delay = FIRST_POLL_S
        while True:
            try:
                answer = await self.client.get(f"job/{quote(progress.job_id, safe='')}")
            except NotFoundError:
                progress.status = UNKNOWN
                progress.message = f"the service does not know job {progress.job_id}"
                self.report(progress)
                return progress
            except RequestFailed as exc:
                if exc.status is None or exc.status >= 500:
                    raise self._outage(exc.message) from None
                progress.status, progress.message = UNKNOWN, exc.message
                self.report(progress)
                return progress
            _read_status(progress, answer.body)
            self.report(progress)
            if progress.status not in IN_PROGRESS:
                self.stats.last_reply = time.perf_counter()
                return progress
            await self._sleep(delay)
            delay = min(delay * 2, max(self.poll_max_s, FIRST_POLL_S))

    async def settle(self, batch: Batch, progress: JobProgress) -> BatchResult:
        """Each item's state once its job ended (see the module's docstring)."""
        from segcli.client import RequestFailed

        refs = [e.item.reference_id for e in batch.entries]
        errors: Any = []
        if progress.status != UNKNOWN:
            try:
                errors = (
                    await self.client.get(f"job/{quote(progress.job_id, safe='')}/errors")
                ).body
            except RequestFailed as exc:
                if exc.status is None or exc.status >= 500:
                    raise self._outage(exc.message) from None
        named = job_errors(errors, refs)
        states = rejected_states(named)
        rest = [e for e in batch.entries if e.item.reference_id not in named]
        if progress.status == COMPLETED and self.update:
            states.update({e.item.reference_id: (ItemState.UPLOADED, None) for e in rest})
        else:
            room = asyncio.Semaphore(READBACKS_AT_ONCE)

            async def placed(entry: Entry) -> tuple[str, tuple[ItemState, str | None]]:
                async with room:
                    return entry.item.reference_id, self._placed(
                        progress, await self.sender.read_back(entry)
                    )

            states.update(await asyncio.gather(*(placed(e) for e in rest)))
        return BatchResult(batch, states, dict(named))

    def _placed(
        self, progress: JobProgress, found: tuple[ItemState, str | None]
    ) -> tuple[ItemState, str | None]:
        state, said = found
        if state is ItemState.UPLOADED:
            return found
        if state is ItemState.IGNORED and not self.update:
            return found  # it holds another mask, which the job left in place
        if said == UNPLACED:
            return ItemState.FAILED, f"job {progress.job_id} ended {progress.status}: {said}"
        how = (
            "completed without naming the item in its errors"
            if progress.status == COMPLETED
            else f"ended {progress.status}" + (f" ({progress.message})" if progress.message else "")
        )
        return (
            ItemState.FAILED,
            f"job {progress.job_id} {how}, and the server holds no mask of it for this item; "
            "re-run to send it again",
        )

    def report(self, progress: JobProgress) -> None:
        self.stats.jobs[progress.job_id] = progress
        if self.on_job is not None:
            self.on_job(progress)

    def _outage(self, message: str) -> Outage:
        from segcli.journal import clean_endpoint

        return Outage(
            f"the server at {clean_endpoint(self.endpoint)} stopped answering: {message}", []
        )


def _read_status(progress: JobProgress, body: Any) -> None:
    """Status, message and steps of ``job/{id}``; steps come as strings (the client's docs)."""
    if not isinstance(body, Mapping):
        return
    status = body.get("status")
    if isinstance(status, str) and status:
        progress.status = status
    message = body.get("message")
    progress.message = message if isinstance(message, str) else ""
    for key in ("completed_steps", "total_steps"):
        with contextlib.suppress(ValueError):
            setattr(progress, key, int(str(body.get(key))))
