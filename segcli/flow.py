"""The stages of an upload joined: items flow from the feed through preparing and
batching to the senders, with bounded queues, and stop when the service goes away.

``Flow`` is the working half of the pipeline's coordinator (``pipeline._Run``
supplies the settings, the recorder and the queues); it finishes items only
through the recorder.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Protocol

from segcli.batching import Batch, Entry
from segcli.feed import Feed
from segcli.model import ItemState, MaskItem
from segcli.prepare import Prepared, Preparer, Settled, reads_here
from segcli.recorder import Recorder
from segcli.records import PlanHook, PlannedRequest, Stop, UploadStats
from segcli.send import BatchResult, Outage, Sender
from segcli.settings import UploadSettings
from segcli.slots import Slots

if TYPE_CHECKING:
    from segcli.staging import Stager

READ_PART = 32  # local items read, then checked, together
REMOTE_WINDOW_PER_WORKER = 8  # remote masks being read and inspected, per worker


class Chunker(Protocol):
    """What the producer needs of a batcher (``Batcher``, or ``job_stage.JobBatcher``)."""

    def add(self, entry: Entry) -> list[Batch]: ...
    def drain(self) -> list[Batch]: ...


class Flow:
    s: UploadSettings
    stats: UploadStats
    recorder: Recorder
    on_plan: PlanHook | None
    batcher: Chunker
    queue: asyncio.Queue[Batch | None]
    admission: Slots
    stopping: bool
    pending: int
    fed: asyncio.Event  # every item of the manifest went to the batcher (async jobs wait on it)
    stager: Stager | None  # --stage: local masks copied to a bucket, then sent by URL
    refuse_local: bool  # --async without --stage: local masks are not eligible

    def _finish_settled(self, settled: Settled) -> None:
        done = (settled.item, settled.state, settled.message, settled.problems, None)
        self.recorder.finish([(*done, settled.fingerprint)], write_now=False)

    def finish_results(
        self, results: Sequence[BatchResult], *, collected_job: int | None = None
    ) -> None:
        for result in results:
            self.stats.last_reply = result.replied_at
            done = [
                (e.item, state, message, e.problems, detail, e.fingerprint)
                for e, state, message, detail in result.outcomes()
            ]
            self.recorder.finish(done, write_now=True, collected_job=collected_job)

    # -- the stages, joined -----------------------------------------------------

    async def _produce(
        self,
        first: asyncio.Future[list[MaskItem]],
        feed: Feed,
        preparer: Preparer,
        senders: Sequence[asyncio.Future[None]],
    ) -> None:
        workers = preparer.inspector.slots
        remote = asyncio.Semaphore(workers * REMOTE_WINDOW_PER_WORKER)
        parts = asyncio.Semaphore(2 * workers)  # local parts being read and inspected
        tasks: set[asyncio.Future[None]] = set()

        def start(window: asyncio.Semaphore, work: Awaitable[Prepared | list[Prepared]]) -> None:
            task = asyncio.ensure_future(self._take_all(work))
            tasks.add(task)

            def done(task: asyncio.Future[None]) -> None:
                tasks.discard(task)
                window.release()

            task.add_done_callback(done)

        async for chunk in feed.chunks(first):
            if self.stopping:
                self.pending += len(chunk)
                continue
            self.recorder.number(chunk)
            for at in range(0, len(chunk), READ_PART):
                part = chunk[at : at + READ_PART]
                self.stats.read += len(part)
                for item in part:
                    if reads_here(item):
                        if self.refuse_local:
                            await self._take(preparer.not_eligible(item))
                        continue
                    if preparer.inspects_remote(item):
                        await remote.acquire()
                        start(remote, preparer.remote(item))
                    else:
                        # Nothing to read or inspect: no task, no hop (a remote
                        # batch of 20 would otherwise cost 20 tasks).
                        await self._take(preparer.without_mask(item))
                local = [item for item in part if reads_here(item) and not self.refuse_local]
                if local:
                    await parts.acquire()
                    start(parts, preparer.local(local))
        if tasks:
            await asyncio.gather(*tasks)
        self.recorder.flush()
        for batch in self.batcher.drain():
            await self._queue(batch)
        self.fed.set()
        if not self.stopping:
            for _ in senders:
                await self.queue.put(None)

    async def _take_all(self, work: Awaitable[Prepared | list[Prepared]]) -> None:
        got = await work
        ready = got if isinstance(got, list) else [got]
        if self.stager is not None:
            ready = await self.stager.stage(ready)
        for prepared in ready:
            await self._take(prepared)

    async def _take(self, prepared: Prepared) -> None:
        self.stats.validated += 1
        if isinstance(prepared, Settled):
            self._finish_settled(prepared)
            return
        for batch in self.batcher.add(prepared):
            await self._queue(batch)

    async def _queue(self, batch: Batch) -> None:
        if self.stopping:
            self.pending += len(batch)
            return
        await self.queue.put(batch)
        # Let an idle sender take it now: a chunk of ready items would
        # otherwise be batched whole before the first of them is sent.
        await asyncio.sleep(0)

    async def _sender(self, sender: Sender) -> None:
        while True:
            # A batch leaves the queue only when the limiter has room for it:
            # no batch (nor its masks' bytes) waits behind the limit in a sender.
            await self.admission.take()
            try:
                batch = await self.queue.get()
                if batch is None:
                    return
                await self._send(sender, batch)
            finally:
                self.admission.give_back()

    async def _send(self, sender: Sender, batch: Batch) -> None:
        if self.s.dry_run:
            self._rehearse(sender.rehearse(batch), batch.entries)
            return
        try:
            results = await sender.send(batch)
        except Outage as outage:
            self.finish_results(outage.results)
            raise
        except asyncio.CancelledError:
            if self.stopping:
                self.pending += len(batch)  # cut off mid-request by the stop: never answered
            raise
        self.finish_results(results)

    def _rehearse(self, request: PlannedRequest, entries: Sequence[Entry]) -> None:
        self.plan(f"POST {self.s.target.upload_route} ({request.kind})", request, entries)

    def plan(
        self,
        label: str,
        request: PlannedRequest,
        entries: Sequence[Entry],
        *,
        requests: int = 1,
    ) -> None:
        """A dry run's request: counted, shown, and its items finished as would_send."""
        self.stats.add_plan(label, request, requests=requests)
        if self.on_plan is not None:
            self.on_plan(request)
        done = [
            (e.item, ItemState.WOULD_SEND, "dry run: not sent", e.problems, None, e.fingerprint)
            for e in entries
        ]
        self.recorder.finish(done, write_now=False)

    # -- stopping when the service went away ----------------------------------

    async def _stop(
        self,
        outage: Outage,
        producer: asyncio.Future[None],
        senders: Sequence[asyncio.Future[None]],
    ) -> None:
        """Stop sending: what was not tried stays out of the journal, to be sent next time.

        The producer goes on to the end of the manifest, only counting, so the
        summary can say exactly how many items remain.
        """
        self.stopping = True
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        # Batches the producer still hands over are counted as they come:
        # producers blocked on the full queue must not wait for senders forever.
        drainer = asyncio.ensure_future(self._drain())
        try:
            with contextlib.suppress(Exception):  # a manifest broken further on changes nothing
                await producer
        finally:
            drainer.cancel()
            await asyncio.gather(drainer, return_exceptions=True)
        while not self.queue.empty():
            self._count(self.queue.get_nowait())
        self.recorder.flush()
        failed = self.stats.states["failed"]
        self.stats.stopped = Stop(message=outage.message, failed=failed, pending=self.pending)

    async def _drain(self) -> None:
        while True:
            self._count(await self.queue.get())

    def _count(self, batch: Batch | None) -> None:
        if batch is not None:
            self.pending += len(batch)
