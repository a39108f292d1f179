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
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from segcli.batching import Batch, Batcher
from segcli.errors import UsageError
from segcli.feed import Feed
from segcli.flow import Flow
from segcli.inspector import Inspector
from segcli.limiter import Limiter
from segcli.model import MaskItem
from segcli.pool import local_pool, make_executor
from segcli.prepare import Preparer
from segcli.recorder import Recorder
from segcli.records import (
    ItemOutcome,
    JobHook,
    OutcomeHook,
    PlanHook,
    PlannedRequest,
    RetryHook,
    StageCounts,
    Stop,
    UploadStats,
)
from segcli.send import Outage, Sender
from segcli.settings import Credentials, UploadSettings, parse_shard, shard_of
from segcli.slots import Slots
from segcli.wire import RequestBodies, TableTexts
from segcli.workers import Workers, open_workers

if TYPE_CHECKING:
    from segcli.client import NucleusClient, RetryEvent
    from segcli.job_stage import JobStage
    from segcli.journal import Journal

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


def upload(
    items: Iterable[MaskItem],
    settings: UploadSettings,
    credentials: Credentials | None = None,
    *,
    on_outcome: OutcomeHook | None = None,
    on_plan: PlanHook | None = None,
    on_retry: RetryHook | None = None,
    on_job: JobHook | None = None,
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
    check_settings(settings)
    # The HTTP stack loads before the clock starts: elapsed_s times the
    # run, not module loading (which the CLI defers so --help stays fast).
    import segcli.client  # noqa: F401

    run = _Run(settings, credentials, stats, on_outcome, on_plan, on_retry)
    run.job_hook = on_job
    start = time.perf_counter()
    try:
        asyncio.run(run.main(items))
    finally:
        stats.elapsed_s = time.perf_counter() - start
    return stats


class _Run(Flow):
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
        self.client: NucleusClient | None = None  # made by opening
        self.stopping = False  # the service went away: count what is left, send nothing
        self.pending = 0  # items never tried, once stopping
        self.threads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="segcli-read")
        self.workers: Workers | None = None  # where masks are inspected
        self.batcher = Batcher(remote_size=settings.remote_batch, local_size=settings.local_batch)
        self.limiter = make_limiter(settings, on_change=self._on_limit)
        self._on_limit(self.limiter)
        # A sender takes a batch only while fewer are being sent than the limit.
        self.admission = Slots(lambda: self.limiter.limit)
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=self.limiter.limit)
        self.tables = TableTexts()
        self.fed = asyncio.Event()
        self.stager = None
        self.refuse_local = settings.asynchronous and not settings.stage
        self.job_hook: JobHook | None = None

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
        if self.workers is not None:
            # Waiting for the workers (a few ms) lets the pool's manager thread
            # end before the interpreter does; left running, it could write
            # to a closed pipe at exit ("Exception ignored in ... threading").
            self.workers.close()
        self.threads.shutdown(wait=False, cancel_futures=True)
        self.recorder.close()

    async def _main(self, items: Iterable[MaskItem]) -> None:
        from segcli.opening import open_run

        s = self.s
        # Without checks nothing is inspected: no pool, and no cluster to reach.
        self.workers = (
            open_workers(s.pool, s.workers, s.scheduler)
            if s.validate
            else local_pool("inline", s.workers)
        )
        inspector = Inspector(
            self.workers, self.threads, max_pixels=s.max_pixels, storage_options=s.storage_options
        )
        feed = Feed(items, shard=s.shard, policy=s.policy, pool=self.threads)
        # The manifest is read while the preflight request is on the wire, and
        # the workers start if its first masks need them. No item is checked,
        # sent or reported before the preflight passes.
        first: asyncio.Future[list[MaskItem]] = asyncio.ensure_future(feed.first())
        warming = asyncio.ensure_future(inspector.warm_up_for(first, remote=s.validate_remote))
        try:
            self.client, journal = await open_run(
                s,
                self.credentials,
                first,
                threads=self.threads,
                on_retry=self._on_retry,
                manifest_items=lambda: feed.raw_items,
                label=feed.label,
                limiter=self.limiter,
            )
        except BaseException:
            for future in (first, warming):
                future.cancel()
            await asyncio.gather(first, warming, return_exceptions=True)
            await feed.aclose()
            raise
        self.recorder.journal = journal
        if not first.result():  # nothing to do: an empty manifest allowed, or an empty shard
            if journal is not None:
                journal.start_run()
            warming.cancel()
            await feed.aclose()
            return
        resuming = journal is not None and bool(journal.counts())
        if s.stage:
            from segcli.staging import StagePrefix, Stager

            prefix = StagePrefix.parse(s.stage)
            self.stats.stage = StageCounts(str(prefix))
            self.stager = Stager(
                prefix,
                s.storage_options,
                self.stats.stage,
                dry_run=s.dry_run,
                on_plan=self.on_plan,
            )
            try:
                await self.stager.check()
            except BaseException:
                warming.cancel()
                await feed.aclose()
                raise
        preparer = Preparer.for_upload(
            s,
            inspector,
            self.tables,
            journal=journal,
            resuming=resuming,
            sent_as=self.stager.sent_as if self.stager is not None else None,
        )
        bodies = RequestBodies(
            update=s.update,
            trained_slice_id=s.trained_slice_id if s.target.is_predictions else None,
            tables=self.tables,
        )
        sender = Sender(
            self.client, s.target, bodies, self.stats, endpoint=s.endpoint, update=s.update
        )
        helpers: list[asyncio.Future[None]] = []  # resumed async jobs, polled
        if s.asynchronous:
            stage = self._job_stage(sender, bodies, journal)
            senders = [asyncio.ensure_future(stage.worker()) for _ in range(s.max_jobs)]
            helpers = [asyncio.ensure_future(stage.collect(job)) for job in stage.resumed]
        else:
            # As many senders as the limit may ever allow; the limiter decides how
            # many of them send at a time.
            senders = [
                asyncio.ensure_future(self._sender(sender)) for _ in range(self.limiter.max_limit)
            ]
        producer = asyncio.ensure_future(self._produce(first, feed, preparer, senders))
        workers = [*senders, *helpers]
        try:
            done, _ = await asyncio.wait([producer, *workers], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raise the first failure (auth lost mid-run, a bug)
        except Outage as outage:
            await self._stop(outage, producer, workers)
        finally:
            for task in [producer, *workers, warming]:
                task.cancel()
            await asyncio.gather(producer, *workers, warming, return_exceptions=True)

    def _job_stage(
        self, sender: Sender, bodies: RequestBodies, journal: Journal | None
    ) -> JobStage:
        """``--async``: chunks become jobs; the jobs an earlier run left are polled again."""
        from segcli.job_stage import JobStage
        from segcli.jobs import JobSender

        s = self.s
        assert self.client is not None
        jobs = JobSender(
            self.client,
            s.target,
            bodies,
            self.stats,
            sender,
            endpoint=s.endpoint,
            update=s.update,
            trained_slice_id=s.trained_slice_id if s.target.is_predictions else None,
            poll_max_s=s.job_poll_s,
            on_job=self.job_hook,
        )
        stage = JobStage(self, jobs, journal, s.job_size)
        self.batcher = stage.batcher
        # One chunk waits for a free job: chunks are large, and the jobs pace the run.
        self.queue = asyncio.Queue(maxsize=1)
        return stage

    def _on_limit(self, limiter: Limiter) -> None:
        self.stats.limit = limiter.limit
        self.stats.limit_peak = limiter.peak
        self.stats.limit_max = limiter.max_limit
        self.stats.adaptive = limiter.adaptive
        self.stats.cutbacks = limiter.cutbacks

    def _on_retry(self, event: RetryEvent) -> None:
        self.stats.retries += 1
        self.stats.retrying = (event.error, time.perf_counter() + event.delay_s)
        if self.retry_hook is not None:
            self.retry_hook(event)


def check_settings(settings: UploadSettings) -> None:
    """Refuse settings the async and staging paths cannot honour, before anything runs."""
    from segcli.jobs import MAX_JOB_ITEMS

    s = settings
    if s.stage:
        from segcli.staging import StagePrefix

        StagePrefix.parse(s.stage)
    if not s.asynchronous:
        return
    if not 1 <= s.job_size <= MAX_JOB_ITEMS:
        raise UsageError(
            f"job size must be 1..{MAX_JOB_ITEMS:,}, not {s.job_size}",
            hint=f"a job's errors list holds its latest {MAX_JOB_ITEMS:,}: a larger job could "
            "fail items without naming them",
        )
    if s.max_jobs < 1:
        raise UsageError(f"max jobs must be 1 or more, not {s.max_jobs}")
    if s.target.model_run_id and not s.update:
        raise UsageError(
            "--async with --model-run needs --update",
            hint="a job's status does not say which items it ignored, and a model run's "
            "predictions cannot be read back to find out; with --update every item the job "
            "does not name in its errors is uploaded. Or use --model ID",
        )


def make_limiter(
    settings: UploadSettings, *, on_change: Callable[[Limiter], None] | None = None
) -> Limiter:
    """``--concurrency N`` fixes the limit; otherwise it adapts up to ``--max-concurrency``."""
    fixed, most = settings.concurrency, settings.max_concurrency
    if fixed is not None:
        if fixed < 1:
            raise UsageError(f"concurrency must be 1 or more, not {fixed}")
        return Limiter.fixed(fixed)
    if most < 1:
        raise UsageError(f"max concurrency must be 1 or more, not {most}")
    return Limiter(max_limit=most, on_change=on_change)
