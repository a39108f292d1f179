"""The async stage of an upload: chunks of ready items become jobs (``--async``).

It takes the place of the batcher and the senders: ``JobBatcher`` gathers
remote entries into chunks of up to ``job_size``, ``JobStage.worker`` (as
many as ``max_jobs``) starts each chunk's job, waits for it and settles its
items through the coordinator's recorder. Jobs an earlier run started and
did not collect are polled again (``resumed``): the items of this run's
manifest that they carry, in the same version, join them instead of being
sent a second time, and are finished when the job has ended and the
manifest has been read to its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from segcli.batching import Batch, Entry
from segcli.jobs import JobRefused, JobSender
from segcli.model import ItemState
from segcli.records import JobProgress, PlannedRequest
from segcli.send import BatchResult, Outage

if TYPE_CHECKING:
    from segcli.flow import Flow
    from segcli.journal import Journal


@dataclass(slots=True)
class Resumed:
    """A job of an earlier run, polled by this one."""

    row: int
    job_id: str
    items: dict[str, str]  # reference_id -> fingerprint the job carries
    arrived: dict[str, Entry] = field(default_factory=dict)  # ... and this run's entries of them


class JobBatcher:
    """Chunks of remote entries for jobs; entries a resumed job carries join it instead."""

    def __init__(self, size: int, resumed: Sequence[Resumed] = ()) -> None:
        self.size = size
        self._resumed = {ref: job for job in resumed for ref in job.items}
        self._chunk = Batch(remote=True)

    def add(self, entry: Entry) -> list[Batch]:
        ref = entry.item.reference_id
        job = self._resumed.get(ref)
        if job is not None and job.items[ref] == entry.fingerprint and ref not in job.arrived:
            job.arrived[ref] = entry
            return []
        self._chunk.entries.append(entry)
        if len(self._chunk) >= self.size:
            full, self._chunk = self._chunk, Batch(remote=True)
            return [full]
        return []

    def drain(self) -> list[Batch]:
        out = [self._chunk] if self._chunk.entries else []
        self._chunk = Batch(remote=True)
        return out


class JobStage:
    def __init__(self, flow: Flow, jobs: JobSender, journal: Journal | None, size: int) -> None:
        self.flow = flow
        self.jobs = jobs
        self.journal = journal
        self.resumed = self._resume()
        self.batcher = JobBatcher(size, self.resumed)

    def _resume(self) -> list[Resumed]:
        if self.journal is None:
            return []
        found = []
        for job in self.journal.unfinished_jobs():
            if job.job_id is None:
                # Killed before its job id was recorded: the job may never have
                # started. Its items are sent again (as any item not landed).
                if not self.journal.readonly:
                    self.journal.drop_job(job.row)
                continue
            found.append(Resumed(job.row, job.job_id, job.items))
        return found

    @property
    def writable(self) -> Journal | None:
        return self.journal if self.journal is not None and not self.journal.readonly else None

    async def worker(self) -> None:
        flow = self.flow
        while True:
            batch = await flow.queue.get()
            if batch is None:
                return
            try:
                await self._run(batch)
            except Outage:
                flow.pending += len(batch)  # in a job, or never started: the next run finds them
                raise
            except asyncio.CancelledError:
                if flow.stopping:
                    flow.pending += len(batch)
                raise

    async def _run(self, batch: Batch) -> None:
        flow = self.flow
        if flow.s.dry_run:
            request = self.jobs.rehearse(batch)
            # Three requests start a job: the signed URL, the PUT, the POST.
            label = f"POST {flow.s.target.upload_route}?async=1 (job)"
            flow.plan(label, request, batch.entries, requests=3)
            return
        try:
            started = await self.jobs.start(batch, self.writable)
        except JobRefused as exc:
            failed: dict[str, tuple[ItemState, str | None]] = {
                e.item.reference_id: (ItemState.FAILED, exc.message) for e in batch.entries
            }
            flow.finish_results([BatchResult(batch, failed)])
            return
        final = await self.jobs.wait(started.progress)
        flow.finish_results([await self.jobs.settle(batch, final)], collected_job=started.row)

    async def collect(self, job: Resumed) -> None:
        """Poll a job an earlier run started; settle the items of it this run has."""
        flow = self.flow
        progress = JobProgress(job.job_id, len(job.items), resumed=True)
        try:
            if flow.s.dry_run:
                await flow.fed.wait()
                self._rehearse(job)
                return
            self.jobs.report(progress)
            final = await self.jobs.wait(progress)
            await flow.fed.wait()  # every entry of the manifest that joins it has arrived
            if not job.arrived:
                if self.writable is not None:
                    self.writable.record([], collected_job=job.row)
                return
            batch = Batch(remote=True, entries=list(job.arrived.values()))
            flow.finish_results([await self.jobs.settle(batch, final)], collected_job=job.row)
        except (Outage, asyncio.CancelledError):
            flow.pending += len(job.arrived)
            raise

    def _rehearse(self, job: Resumed) -> None:
        from segcli.journal import clean_endpoint

        url = f"{clean_endpoint(self.flow.s.endpoint)}/job/{job.job_id}"
        refs = tuple(job.arrived)
        request = PlannedRequest("GET", url, "poll", 0, refs)
        label = "GET job/{job_id} (a job of an earlier run)"
        self.flow.plan(label, request, list(job.arrived.values()), requests=0)
