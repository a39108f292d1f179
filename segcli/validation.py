"""Check every item of a manifest: the library behind ``segcli validate``.

    verdicts = segcli.validate(segcli.load_manifest("masks.yaml"))
    for v in verdicts: ...

The upload pipeline without its journal and sender: the same ``feed`` reads
the manifest in chunks on a thread, the same ``prepare`` and ``inspector``
have each mask read, inspected and checked by a worker (only findings come
back, a mask shared by many items is decoded once per worker), on an event
loop of its own. Verdicts come back in manifest order, with a bounded number
of items in flight, so memory stays flat on a manifest of any length.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from segcli.codes import CodePolicy
from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.model import MaskItem, Verdict
from segcli.pool import PoolKind, default_workers

# Items per task sent to a worker: a task costs a few hundred microseconds of
# pickling and queue hand-offs in the parent, as much as decoding a small mask.
ITEMS_PER_TASK = 8
# On a Dask cluster a task also costs a trip through the scheduler and about a
# millisecond of its time; Dask wants tasks of 100 ms or more, which is about
# what 32 masks of 1024x1024 take (measured: 15% faster than 8 on a LocalCluster).
CLUSTER_ITEMS_PER_TASK = 32
# Tasks queued per worker: enough to keep every core busy while the
# manifest reader refills, small enough that memory does not grow with it.
WINDOW_PER_WORKER = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidateSettings:
    workers: int = field(default_factory=default_workers)
    pool: PoolKind = "process"
    max_pixels: int = DEFAULT_MAX_PIXELS
    validate_remote: bool = True
    storage_options: Mapping[str, Mapping[str, Any]] | None = None
    policy: CodePolicy = field(default_factory=CodePolicy)  # --ignore / --error
    #: a Dask scheduler's address, or "local" (a LocalCluster of ``workers``
    #: processes): masks are read and inspected there instead of the local pool
    scheduler: str | None = None


_END = object()


def validate(
    items: Iterable[MaskItem], settings: ValidateSettings | None = None
) -> Iterator[Verdict]:
    """Yield one ``Verdict`` per item, in manifest order."""
    settings = settings or ValidateSettings()
    window = max(1, settings.workers) * WINDOW_PER_WORKER
    results: queue.Queue[Any] = queue.Queue(maxsize=window * ITEMS_PER_TASK)
    run = _Checking(items, settings, results, window)
    thread = threading.Thread(target=run.main, name="segcli-validate", daemon=True)
    thread.start()
    waiting: dict[int, Verdict] = {}
    next_seq = 0
    try:
        while True:
            got = results.get()
            if got is _END:
                break
            if isinstance(got, BaseException):
                raise got
            seq, verdict = got
            waiting[seq] = verdict
            while next_seq in waiting:
                yield waiting.pop(next_seq)
                next_seq += 1
    finally:
        # Stopped early (Ctrl-C, a consumer that breaks): no work may go on.
        run.stop()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                results.get(timeout=0.05)  # a producer blocked on a full queue moves on
        thread.join()


class _Checking:
    """The pipeline's stages for checking only, on an event loop in its own thread."""

    def __init__(
        self,
        items: Iterable[MaskItem],
        settings: ValidateSettings,
        results: queue.Queue[Any],
        window: int,
    ) -> None:
        self.items = items
        self.s = settings
        self.results = results
        self.window = window
        self.per_task = ITEMS_PER_TASK
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Future[None] | None = None
        self._stopped = threading.Event()

    def main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # the consumer raises it, in its own thread
            if not self._stopped.is_set():
                self.results.put(exc)
                return
        if not self._stopped.is_set():
            self.results.put(_END)

    def stop(self) -> None:
        self._stopped.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended: nothing to stop
                loop.call_soon_threadsafe(task.cancel)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        if self._stopped.is_set():
            return
        from segcli.feed import Feed
        from segcli.inspector import Inspector
        from segcli.prepare import Preparer
        from segcli.wire import TableTexts
        from segcli.workers import open_workers

        s = self.s
        workers = open_workers(s.pool, s.workers, s.scheduler)
        # A cluster may have far more workers than this machine has cores.
        self.window = max(self.window, workers.slots * WINDOW_PER_WORKER)
        self.per_task = CLUSTER_ITEMS_PER_TASK if workers.near_data else ITEMS_PER_TASK
        threads = ThreadPoolExecutor(2, thread_name_prefix="segcli-feed")
        inspector = Inspector(
            workers, threads, max_pixels=s.max_pixels, storage_options=s.storage_options
        )
        preparer = Preparer(
            inspector, TableTexts(), policy=s.policy, validate_remote=s.validate_remote
        )
        feed = Feed(self.items, shard=None, policy=s.policy, pool=threads)
        try:
            if not self._stopped.is_set():  # Ctrl-C while the cluster was reached
                await self._check_all(feed, preparer)
        finally:
            await feed.aclose()
            workers.close()
            threads.shutdown(wait=False, cancel_futures=True)

    async def _check_all(self, feed: Any, preparer: Any) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.window)
        tasks: set[asyncio.Future[None]] = set()
        seq = 0
        first = asyncio.ensure_future(feed.first())
        async for chunk in feed.chunks(first):
            for at in range(0, len(chunk), self.per_task):
                group = chunk[at : at + self.per_task]
                await slots.acquire()
                task = asyncio.ensure_future(self._check(preparer, group, seq, loop))
                seq += len(group)
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _t: slots.release())
        if tasks:
            await asyncio.gather(*tasks)

    async def _check(
        self, preparer: Any, group: list[MaskItem], seq: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        for n, prepared in enumerate(await preparer.checked(group)):
            verdict = Verdict(item=prepared.item, problems=prepared.problems)
            try:
                self.results.put_nowait((seq + n, verdict))
            except queue.Full:  # the consumer is slower (printing): wait off the loop
                await loop.run_in_executor(None, self.results.put, (seq + n, verdict))


@dataclass(slots=True)
class ValidationSummary:
    """Running totals, fed one verdict at a time."""

    strict: bool = False
    items: int = 0
    ok: int = 0
    warnings: int = 0
    invalid: int = 0
    codes: Counter[str] = field(default_factory=Counter)

    def add(self, verdict: Verdict) -> str:
        label = verdict.label(strict=self.strict)
        self.items += 1
        if label == "invalid":
            self.invalid += 1
        elif label == "warning":
            self.warnings += 1
        else:
            self.ok += 1
        self.codes.update(p.code for p in verdict.problems)
        return label

    @property
    def passed(self) -> bool:
        return self.invalid == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "ok": self.ok,
            "with_warnings": self.warnings,
            "invalid": self.invalid,
            "strict": self.strict,
            "problems_by_code": dict(sorted(self.codes.items())),
        }
