"""The upload pipeline: manifest -> prepare -> batch -> send -> resolve -> record.

    stats = segcli.upload(segcli.load_manifest("m.yaml"), settings, credentials)

One event loop drives the stages, each a module of its own: ``feed`` (the
manifest in chunks, on a thread), ``prepare`` (each item to an ``Entry`` or
a ``Settled`` outcome, masks read and inspected by ``inspector``),
``batching``, ``send`` (a batch on the wire, each item's state from the
answer). This module starts them (``opening``), joins them with bounded
queues, and is the one place where an item is finished: counted, handed to
``on_outcome`` and written to the journal (one transaction per batch, so a
killed run loses at most the batches in flight). Memory does not grow with
the manifest; a local mask's bytes are read once, inspected and sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from segcli.batching import Batch, Batcher, Entry
from segcli.feed import Feed
from segcli.inspector import Inspector
from segcli.model import ItemState, MaskItem
from segcli.pool import make_executor
from segcli.prepare import Prepared, Preparer, Settled, reads_here
from segcli.recorder import Recorder
from segcli.records import (
    ItemOutcome,
    OutcomeHook,
    PlanHook,
    PlannedRequest,
    RetryHook,
    Stop,
    UploadStats,
)
from segcli.send import BatchResult, Outage, Sender
from segcli.settings import Credentials, UploadSettings, parse_shard, shard_of
from segcli.wire import RequestBodies, TableTexts

__all__ = [
    "Credentials",
    "ItemOutcome",
    "PlannedRequest",
    "Stop",
    "UploadSettings",
    "UploadStats",
    "make_executor",
    "parse_shard",
    "shard_of",
    "upload",
]

READ_THREADS = 8  # mask reads are I/O bound (network for remote masks)
READ_PART = 32  # local items read, then checked, together
REMOTE_WINDOW_PER_WORKER = 8  # remote masks being read and inspected, per worker


def upload(
    items: Iterable[MaskItem],
    settings: UploadSettings,
    credentials: Credentials | None = None,
    *,
    on_outcome: OutcomeHook | None = None,
    on_plan: PlanHook | None = None,
    on_retry: RetryHook | None = None,
    stats: UploadStats | None = None,
) -> UploadStats:
    """Run a whole upload; blocking. Raises ``KeyboardInterrupt`` on Ctrl-C/SIGTERM
    after recording every finished item; ``stats`` then says how far it got.

    A dry run (``settings.dry_run``) is a rehearsal: the same preflight (key,
    dataset, model), the same journal look-ups and checks, and every request
    the run would make goes to ``on_plan`` instead of the wire. When the
    service stops answering mid-run for longer than the retries last, the run
    stops sending and returns with ``stats.stopped`` set; items not tried stay
    out of the journal, so a re-run sends them.
    """
    stats = stats if stats is not None else UploadStats()
    stats.dry_run = settings.dry_run
    credentials = credentials or Credentials.from_env()
    credentials.check()
    # The HTTP stack loads before the clock starts: elapsed_s times the
    # run, not module loading (which the CLI defers so --help stays fast).
    import segcli.client  # noqa: F401

    run = _Run(settings, credentials, stats, on_outcome, on_plan, on_retry)
    start = time.perf_counter()
    try:
        asyncio.run(run.main(items))
    finally:
        stats.elapsed_s = time.perf_counter() - start
    return stats


class _Run:
    def __init__(
        self,
        settings: UploadSettings,
        credentials: Credentials,
        stats: UploadStats,
        on_outcome: OutcomeHook | None,
        on_plan: PlanHook | None,
        on_retry: RetryHook | None,
    ) -> None:
        self.s = settings
        self.credentials = credentials
        self.stats = stats
        self.recorder = Recorder(stats, on_outcome)
        self.on_plan = on_plan
        self.retry_hook = on_retry
        self.client: Any = None  # segcli.client.NucleusClient, made by opening
        self.stopping = False  # the service went away: count what is left, send nothing
        self.pending = 0  # items never tried, once stopping
        self.threads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="segcli-read")
        self.inspect_pool: Executor | None = None
        self.batcher = Batcher(remote_size=settings.remote_batch, local_size=settings.local_batch)
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(
            maxsize=max(1, settings.concurrency)
        )
        self.tables = TableTexts()

    # -- finishing items: only through the recorder ---------------------------

    def _finish_settled(self, settled: Settled) -> None:
        done = (settled.item, settled.state, settled.message, settled.problems, None)
        self.recorder.finish([(*done, settled.fingerprint)], write_now=False)

    def _finish_results(self, results: Iterable[BatchResult]) -> None:
        for result in results:
            self.stats.last_reply = result.replied_at
            done = [
                (e.item, state, message, e.problems, detail, e.fingerprint)
                for e, state, message, detail in result.outcomes()
            ]
            self.recorder.finish(done, write_now=True)

    # -- lifecycle --------------------------------------------------------------

    async def main(self, items: Iterable[MaskItem]) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        if me is not None:
            # cron and job schedulers stop with SIGTERM: treat it like Ctrl-C.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGTERM, me.cancel)
        try:
            await self._main(items)
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGTERM)
            await self._close()

    async def _close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.aclose()
        if self.inspect_pool is not None:
            # Waiting for the workers (a few ms) lets the pool's manager thread
            # end before the interpreter does; left running, it could write
            # to a closed pipe at exit ("Exception ignored in ... threading").
            self.inspect_pool.shutdown(wait=True, cancel_futures=True)
        self.threads.shutdown(wait=False, cancel_futures=True)
        self.recorder.close()

    async def _main(self, items: Iterable[MaskItem]) -> None:
        from segcli.opening import open_run

        s = self.s
        if s.validate:
            self.inspect_pool = make_executor(s.pool, s.workers)
        inspector = Inspector(
            self.inspect_pool,
            self.threads,
            max_pixels=s.max_pixels,
            storage_options=s.storage_options,
            workers=s.workers,
        )
        feed = Feed(items, shard=s.shard, policy=s.policy, pool=self.threads)
        # The manifest is read while the preflight request is on the wire, and
        # the workers start if its first masks need them. No item is checked,
        # sent or reported before the preflight passes.
        first: asyncio.Future[list[MaskItem]] = asyncio.ensure_future(feed.first())
        warming = asyncio.ensure_future(inspector.warm_up_for(first, remote=s.validate_remote))
        try:
            self.client, self.recorder.journal = await open_run(
                s,
                self.credentials,
                first,
                threads=self.threads,
                on_retry=self._on_retry,
                manifest_items=lambda: feed.raw_items,
                label=feed.label,
            )
        except BaseException:
            for future in (first, warming):
                future.cancel()
            await asyncio.gather(first, warming, return_exceptions=True)
            await feed.aclose()
            raise
        journal = self.recorder.journal
        if not first.result():  # nothing to do: an empty manifest allowed, or an empty shard
            if journal is not None:
                journal.start_run()
            warming.cancel()
            await feed.aclose()
            return
        resuming = journal is not None and bool(journal.counts())
        preparer = Preparer(s, inspector, self.tables, journal=journal, resuming=resuming)
        bodies = RequestBodies(
            update=s.update,
            trained_slice_id=s.trained_slice_id if s.target.is_predictions else None,
            tables=self.tables,
        )
        sender = Sender(
            self.client, s.target, bodies, self.stats, endpoint=s.endpoint, update=s.update
        )
        senders = [asyncio.ensure_future(self._sender(sender)) for _ in range(s.concurrency)]
        producer = asyncio.ensure_future(self._produce(first, feed, preparer, senders))
        try:
            done, _ = await asyncio.wait([producer, *senders], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raise the first failure (auth lost mid-run, a bug)
        except Outage as outage:
            await self._stop(outage, producer, senders)
        finally:
            for task in [producer, *senders, warming]:
                task.cancel()
            await asyncio.gather(producer, *senders, warming, return_exceptions=True)

    def _on_retry(self, event: Any) -> None:
        self.stats.retries += 1
        self.stats.retrying = (event.error, time.perf_counter() + event.delay_s)
        if self.retry_hook is not None:
            self.retry_hook(event)

    # -- the stages, joined -----------------------------------------------------

    async def _produce(
        self,
        first: asyncio.Future[list[MaskItem]],
        feed: Feed,
        preparer: Preparer,
        senders: Sequence[asyncio.Future[None]],
    ) -> None:
        workers = max(1, self.s.workers)
        remote = asyncio.Semaphore(workers * REMOTE_WINDOW_PER_WORKER)
        parts = asyncio.Semaphore(2 * workers)  # local parts being read and inspected
        tasks: set[asyncio.Future[None]] = set()

        def start(window: asyncio.Semaphore, work: Any) -> None:
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
                        continue
                    if preparer.inspects_remote(item):
                        await remote.acquire()
                        start(remote, preparer.remote(item))
                    else:
                        # Nothing to read or inspect: no task, no hop (a remote
                        # batch of 20 would otherwise cost 20 tasks).
                        await self._take(preparer.without_mask(item))
                local = [item for item in part if reads_here(item)]
                if local:
                    await parts.acquire()
                    start(parts, preparer.local(local))
        if tasks:
            await asyncio.gather(*tasks)
        self.recorder.flush()
        for batch in self.batcher.drain():
            await self._queue(batch)
        if not self.stopping:
            for _ in senders:
                await self.queue.put(None)

    async def _take_all(self, work: Any) -> None:
        got = await work
        for prepared in got if isinstance(got, list) else [got]:
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
            batch = await self.queue.get()
            if batch is None:
                return
            if self.s.dry_run:
                self._rehearse(sender.rehearse(batch), batch.entries)
                continue
            try:
                results = await sender.send(batch)
            except Outage as outage:
                self._finish_results(outage.results)
                raise
            except asyncio.CancelledError:
                if self.stopping:
                    self.pending += len(batch)  # cut off mid-request by the stop: never answered
                raise
            self._finish_results(results)

    def _rehearse(self, request: PlannedRequest, entries: Sequence[Entry]) -> None:
        self.stats.add_plan(f"POST {self.s.target.upload_route} ({request.kind})", request)
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
