"""The upload pipeline: manifest -> checks -> journal -> batches -> Nucleus.

    summary = segcli.upload(segcli.load_manifest("m.yaml"), settings, credentials)

One event loop drives everything. The manifest is read in chunks on a
thread, masks are read on a thread pool and inspected in worker processes,
and at most ``concurrency`` requests are on the wire; every stage is bounded,
so memory does not grow with the manifest. A local mask's bytes are read
once: the same bytes are inspected and sent. Each item ends in exactly one
``ItemState``, reported through ``on_outcome`` and written to the journal
one transaction per batch, so a killed run loses at most the batch in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import json
import os
import signal
import time
from collections import Counter, OrderedDict
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segcli.batching import Batch, Batcher, Entry
from segcli.codes import CodePolicy, problem
from segcli.compare import held_segmentation
from segcli.defaults import DEFAULT_ENDPOINT, DEFAULT_MAX_PIXELS
from segcli.errors import (
    ManifestError,
    UsageError,
)
from segcli.model import ItemState, MaskItem, Problem, Segment
from segcli.outcomes import resolve
from segcli.pool import PoolKind, default_workers, make_executor
from segcli.target import Target
from segcli.validation import check_one

MANIFEST_CHUNK = 256  # items pulled from the manifest per hop to the reader thread
MANIFEST_AHEAD = 4  # chunks parsed ahead: about what a preflight round trip gives time for
INSPECT_WINDOW_PER_WORKER = 8
READ_THREADS = 8  # mask reads are I/O bound (network for remote masks)
READ_PART = 32  # local items read, then checked, together
READ_GROUP = 16  # local files read per hop to a reader thread
# Inspection results kept by mask content: each holds at most 256 counts,
# so this bounds memory at a few MB however many distinct masks a run has.
INSPECTED_CACHE = 4096
TABLE_TEXTS_CACHE = 64  # segment tables whose JSON is kept (most runs have one)
LANDED = (ItemState.UPLOADED, ItemState.IGNORED)
ALREADY_LANDED = "already uploaded by an earlier run"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The API key never shows in a repr, a log or a report."""

    api_key: str | None = field(default=None, repr=False)
    limited_access_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if env is None else env
        creds = cls(
            api_key=env.get("NUCLEUS_API_KEY") or None,
            limited_access_key=env.get("NUCLEUS_LIMITED_ACCESS_KEY") or None,
        )
        creds.check()
        return creds

    def check(self) -> None:
        if self.api_key and self.limited_access_key:
            raise UsageError(
                "both NUCLEUS_API_KEY and NUCLEUS_LIMITED_ACCESS_KEY are set; unset one of them"
            )
        if not (self.api_key or self.limited_access_key):
            raise UsageError(
                "no API key",
                hint="set NUCLEUS_API_KEY (or NUCLEUS_LIMITED_ACCESS_KEY) in the environment; "
                "a dry run checks the key too",
            )

    def secrets(self) -> tuple[str, ...]:
        return tuple(k for k in (self.api_key, self.limited_access_key) if k)


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadSettings:
    target: Target
    endpoint: str = DEFAULT_ENDPOINT
    update: bool = False
    dry_run: bool = False
    force: bool = False
    concurrency: int = 8
    remote_batch: int = 20
    local_batch: int = 10
    retries: int = 6
    timeout_s: float = 60.0
    validate: bool = True
    validate_remote: bool = True
    shard: tuple[int, int] | None = None  # (k, n): keep items whose id hashes to k of n
    journal_path: Path | str | None = None
    workers: int = field(default_factory=default_workers)
    pool: PoolKind = "process"
    max_pixels: int = DEFAULT_MAX_PIXELS
    storage_options: Mapping[str, Mapping[str, Any]] | None = None
    trained_slice_id: str | None = None
    #: an empty manifest is an error (usually a broken step upstream) unless allowed
    allow_empty: bool = False
    policy: CodePolicy = field(default_factory=CodePolicy)  # --ignore / --error


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
        out = {
            "reference_id": self.item.reference_id,
            "source": str(self.item.source),
            "mask": self.item.mask,
            "annotation_id": self.item.annotation_id,
            "state": self.state.value,
            "message": self.message,
            "problems": [p.as_dict() for p in self.problems],
        }
        if self.detail is not None:
            out["server_error"] = self.detail
        return out


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """A request a dry run would make, exactly: method, URL, body kind and size, items."""

    method: str
    url: str
    kind: str  # "json" or "multipart"
    body_bytes: int
    reference_ids: tuple[str, ...]


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
        if self.stopped is not None:
            out["pending"] = self.stopped.pending
            out["stopped"] = self.stopped.message
        if self.plan:
            out["plan"] = self.plan
        return out


OutcomeHook = Callable[[ItemOutcome], None]
PlanHook = Callable[[PlannedRequest], None]
RetryHook = Callable[[Any], None]  # segcli.client.RetryEvent (imported lazily)


def shard_of(reference_id: str, n: int) -> int:
    """Stable across runs, machines and Python versions (unlike hash())."""
    digest = hashlib.sha256(reference_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise UsageError(f"--shard {text!r}: write K/N, e.g. 0/4 (K counts from 0)") from None
    if n < 1 or not 0 <= k < n:
        raise UsageError(f"--shard {text!r}: K must be in 0..N-1 and N at least 1")
    return k, n


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

    run = _Run(
        settings,
        credentials,
        stats,
        on_outcome or (lambda _o: None),
        on_plan=on_plan,
        on_retry=on_retry,
    )
    start = time.perf_counter()
    try:
        asyncio.run(run.main(items))
    finally:
        stats.elapsed_s = time.perf_counter() - start
    return stats


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_locals(
    uris: list[str], storage_options: Mapping[str, Mapping[str, Any]] | None
) -> list[bytes | Exception]:
    """Each mask's bytes, or what stopped its read (one bad file spoils only itself)."""
    from segcli.masks import read_mask

    out: list[bytes | Exception] = []
    for uri in uris:
        try:
            out.append(read_mask(uri, storage_options=storage_options))
        except Exception as exc:
            out.append(exc)
    return out


async def _first_chunk(chunks: AsyncIterator[list[MaskItem]]) -> list[MaskItem]:
    """The manifest's first chunk; empty when the manifest (or shard) holds no item."""
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return []


async def _chained(
    first: asyncio.Future[list[MaskItem]], rest: AsyncIterator[list[MaskItem]]
) -> AsyncIterator[list[MaskItem]]:
    """The chunk already being read, then the others."""
    chunk = await first
    if not chunk:
        return
    yield chunk
    async for chunk in rest:
        yield chunk


def _is_duplicate(item: MaskItem) -> bool:
    """A later copy of a reference_id the manifest already listed."""
    return any(p.code == "duplicate-reference-id" for p in item.problems)


def _discard(future: asyncio.Future[Any]) -> None:
    """Retrieve a result nobody waits for, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


def _close_journal(opening: asyncio.Future[Any]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


def _has_error(problems: Iterable[Problem]) -> bool:
    return any(p.is_error for p in problems)


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A read local item whose mask is not inspected yet."""

    item: MaskItem
    data: bytes
    digest: str
    fingerprint: str


class _Outage(Exception):
    """Raised by a sender whose request ran out of retries on an unreachable service."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# Rows settled without a request (skipped, invalid) written together, not one
# transaction each: a re-run of 200,000 landed items records them in ~800.
SETTLED_ROWS_PER_WRITE = 256


class _Run:
    def __init__(
        self,
        settings: UploadSettings,
        credentials: Credentials,
        stats: UploadStats,
        on_outcome: OutcomeHook,
        *,
        on_plan: PlanHook | None = None,
        on_retry: RetryHook | None = None,
    ) -> None:
        self.s = settings
        self.credentials = credentials
        self.stats = stats
        self.on_outcome = on_outcome
        self.on_plan = on_plan
        self.retry_hook = on_retry
        self.journal: Any = None
        self.resuming = False  # the journal holds items of this scope from earlier runs
        self.settled: list[tuple[ItemOutcome, str]] = []  # not yet written to the journal
        self.raw_items = 0  # items the manifest held, before the shard filter
        self.label = "the manifest"  # its name, once known, for messages
        self.stopping = False  # the service went away: count what is left, send nothing
        self.pending = 0  # items never tried, once stopping
        self.seq: dict[int, int] = {}  # id(item) -> its place, until it finishes
        self.next_seq = 0
        self.client: Any = None
        self.inspect_pool: Executor | None = None
        self.read_pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="segcli-read")
        self.batcher = Batcher(remote_size=settings.remote_batch, local_size=settings.local_batch)
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(
            maxsize=max(1, settings.concurrency)
        )
        self.tables: OrderedDict[int, tuple[tuple[Segment, ...], str, str]] = OrderedDict()
        self.inspected: OrderedDict[str, Any] = OrderedDict()  # sha256 -> MaskInfo | finding
        self.inspecting: dict[str, asyncio.Future[Any]] = {}
        self.check = functools.partial(
            check_one,
            max_pixels=settings.max_pixels,
            storage_options=settings.storage_options,
        )

    # -- outcomes ---------------------------------------------------------

    def finish(
        self,
        item: MaskItem,
        state: ItemState,
        message: str | None = None,
        problems: tuple[Problem, ...] = (),
        detail: str | None = None,
    ) -> ItemOutcome:
        seq = self.seq.pop(id(item), -1)
        outcome = ItemOutcome(item, state, message, problems, detail, seq)
        self.stats.states[state.value] += 1
        self.on_outcome(outcome)
        return outcome

    def settle(self, outcome: ItemOutcome, fingerprint: str) -> None:
        """Record an outcome reached without a request; written in groups (``flush``)."""
        self.settled.append((outcome, fingerprint))
        if len(self.settled) >= SETTLED_ROWS_PER_WRITE:
            self.flush()

    def flush(self) -> None:
        rows, self.settled = self.settled, []
        self.record(rows)

    def record(self, rows: list[tuple[ItemOutcome, str]]) -> None:
        if self.journal is None or self.s.dry_run or not rows:
            return
        from segcli.journal import JournalRow

        self.journal.record(
            JournalRow(
                reference_id=o.item.reference_id,
                fingerprint=fp,
                state=o.state,
                message=o.message,
                source=str(o.item.source),
                duplicate=_is_duplicate(o.item),
            )
            for o, fp in rows
        )

    # -- the run ----------------------------------------------------------

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
        self.read_pool.shutdown(wait=False, cancel_futures=True)
        if self.journal is not None:
            with contextlib.suppress(Exception):
                self.flush()
            if not self.journal.readonly:
                self.journal.finish_run(self.stats.as_dict())
            self.journal.discard()

    async def _main(self, items: Iterable[MaskItem]) -> None:
        s = self.s
        self.label = getattr(items, "label", None) or self.label
        if s.validate:
            self.inspect_pool = make_executor(s.pool, s.workers)
        # Reading the manifest starts now, on the reader thread, so its first
        # chunks are parsed (and the inspection workers started, if its masks
        # need them) while the preflight request is on the wire. No item is
        # checked, sent or reported before the preflight passes.
        chunks = self._manifest_chunks(items)
        first: asyncio.Future[list[MaskItem]] = asyncio.ensure_future(_first_chunk(chunks))
        warming = asyncio.ensure_future(self._warm_up(first))
        try:
            await self._connect(first)
        except BaseException:
            for future in (first, warming):
                future.cancel()
            await asyncio.gather(first, warming, return_exceptions=True)
            await chunks.aclose()
            raise
        if not first.result():  # nothing to do: an empty manifest allowed, or an empty shard
            if self.journal is not None:
                self.journal.start_run()
            warming.cancel()
            await chunks.aclose()
            return

        senders = [asyncio.ensure_future(self._sender()) for _ in range(max(1, s.concurrency))]
        producer = asyncio.ensure_future(self._produce(first, chunks, senders))
        try:
            done, _ = await asyncio.wait([producer, *senders], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raise the first failure (auth lost mid-run, a bug)
        except _Outage as outage:
            await self._stop(outage, producer, senders)
        finally:
            for task in [producer, *senders, warming]:
                task.cancel()
            await asyncio.gather(producer, *senders, warming, return_exceptions=True)

    async def _stop(
        self,
        outage: _Outage,
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
        self._drain_queue()
        self.flush()
        self.stats.stopped = Stop(
            message=outage.message, failed=self.stats.states["failed"], pending=self.pending
        )

    def _settled(self, batch: Batch) -> bool:
        return bool(batch.entries) and id(batch.entries[0].item) not in self.seq

    async def _drain(self) -> None:
        while True:
            batch = await self.queue.get()
            if batch is not None:
                self.pending += len(batch)

    def _drain_queue(self) -> None:
        while not self.queue.empty():
            batch = self.queue.get_nowait()
            if batch is not None:
                self.pending += len(batch)

    async def _warm_up(self, first: asyncio.Future[list[MaskItem]]) -> None:
        """Start the inspection workers early when the first items will need them."""
        if self.inspect_pool is None:
            return
        try:
            chunk = await asyncio.shield(first)
        except BaseException:  # the producer sees (and raises) the same failure
            return
        if any(self._reads(item) or self._waits(item) for item in chunk):
            from segcli.checks import warm_up

            loop = asyncio.get_running_loop()
            for _ in range(max(1, self.s.workers)):
                loop.run_in_executor(self.inspect_pool, warm_up).add_done_callback(_discard)

    async def _connect(self, first: asyncio.Future[list[MaskItem]]) -> None:
        """The client, the preflight and the journal: nothing of this run is sent before.

        A dry run does all of it too, with the journal opened read-only.
        """
        from segcli.client import NucleusClient
        from segcli.retry import RetryPolicy

        s = self.s
        self.client = NucleusClient(
            s.endpoint,
            api_key=self.credentials.api_key,
            limited_access_key=self.credentials.limited_access_key,
            timeout_s=s.timeout_s,
            max_in_flight=s.concurrency,
            retry=RetryPolicy(retries=s.retries),
            on_retry=self._on_retry,
        )
        # Fail before any work when the key or the dataset/model is wrong.
        # The first chunk of the manifest is parsed meanwhile; the journal
        # opens (and takes its lock) on a thread as soon as the manifest
        # proves not empty: creating it is ~20 ms that would otherwise delay
        # the first batch, and a run that finds it locked stops at once.
        preflight = asyncio.ensure_future(self._preflight())
        try:
            chunk = await asyncio.shield(first)
            if not chunk:
                self._nothing_to_do()
            if (chunk or self.raw_items) and s.journal_path is not None:
                opening = asyncio.get_running_loop().run_in_executor(
                    self.read_pool, self._open_journal
                )
                try:
                    self.journal = await asyncio.shield(opening)
                except asyncio.CancelledError:
                    # Cancelled while the thread still opens it: close it once made.
                    opening.add_done_callback(_close_journal)
                    raise
            await preflight
        except BaseException:
            preflight.cancel()
            await asyncio.gather(preflight, return_exceptions=True)
            if self.journal is not None:
                self.journal.discard()  # made by this run and unused: leave no file
                self.journal = None
            raise
        if self.journal is not None:
            # A journal with no item of this scope has nothing to skip:
            # then no item needs a look-up (the first run of a manifest).
            self.resuming = bool(self.journal.counts())

    def _open_journal(self) -> Any:
        from segcli.journal import Journal, Scope

        s = self.s
        assert s.journal_path is not None
        path = Path(s.journal_path)
        scope = Scope(endpoint=s.endpoint, dataset_id=s.target.dataset_id, target=s.target.kind)
        if s.dry_run:
            # A rehearsal reads what landed but writes nothing, and takes no lock.
            if not path.is_file():
                return None
            return Journal(path, scope, readonly=True)
        return Journal(path, scope)

    def _nothing_to_do(self) -> None:
        if self.raw_items:
            return  # the manifest has items; none fall in this shard: fine
        if not self.s.allow_empty:
            raise ManifestError(
                f"{self.label} holds no items, so there is nothing to upload",
                hint="an empty manifest usually means a step before this one failed; "
                "pass --allow-empty if an empty manifest is expected",
            )

    async def _preflight(self) -> None:
        from segcli.preflight import preflight

        await preflight(self.client, self.s.target, self.s.endpoint)

    def _on_retry(self, event: Any) -> None:
        self.stats.retries += 1
        self.stats.retrying = (event.error, time.perf_counter() + event.delay_s)
        if self.retry_hook is not None:
            self.retry_hook(event)

    async def _manifest_chunks(
        self, items: Iterable[MaskItem]
    ) -> AsyncGenerator[list[MaskItem], None]:
        """Pull items on a thread: a manifest on a slow pipe must not stall the sends.

        The reader fills MANIFEST_AHEAD chunks while the preflight is on the
        wire, then rests until the queue is nearly empty. Parsing holds the
        GIL: a reader that kept going while the first batches are built and
        sent would spread the first round's requests out, and every later
        round inherits that spread (measured by ``make bench``). Reads never
        overlap each other.
        """
        loop = asyncio.get_running_loop()
        it: Iterator[MaskItem] = self._counted(items)
        if self.s.shard is not None:
            k, n = self.s.shard
            it = (i for i in it if shard_of(i.reference_id, n) == k)

        def take() -> list[MaskItem]:
            return list(itertools.islice(it, MANIFEST_CHUNK))

        ready: asyncio.Queue[list[MaskItem] | Exception] = asyncio.Queue()
        low = asyncio.Event()  # set when the queue is nearly empty

        async def read() -> None:
            while True:
                if ready.qsize() >= MANIFEST_AHEAD:
                    low.clear()
                    await low.wait()
                try:
                    chunk = await loop.run_in_executor(self.read_pool, take)
                except Exception as exc:  # a manifest broken further down: raised in order
                    await ready.put(exc)
                    return
                await ready.put(chunk)
                if not chunk:
                    return

        reader = asyncio.ensure_future(read())
        try:
            while True:
                got = await ready.get()
                if ready.qsize() <= 1:
                    low.set()
                if isinstance(got, Exception):
                    raise got
                if not got:
                    return
                yield got
        finally:
            # Stopped early: the chunks being read are not wanted, nor their failure.
            reader.cancel()
            reader.add_done_callback(_discard)

    def _counted(self, items: Iterable[MaskItem]) -> Iterator[MaskItem]:
        for item in items:
            self.raw_items += 1
            yield item

    async def _produce(
        self,
        first: asyncio.Future[list[MaskItem]],
        chunks: AsyncIterator[list[MaskItem]],
        senders: Sequence[asyncio.Future[None]],
    ) -> None:
        window = asyncio.Semaphore(max(1, self.s.workers) * INSPECT_WINDOW_PER_WORKER)
        parts = asyncio.Semaphore(2 * max(1, self.s.workers))  # parts awaiting inspection
        tasks: set[asyncio.Future[None]] = set()
        policy = self.s.policy
        async for chunk in _chained(first, chunks):
            if self.stopping:
                self.pending += len(chunk)
                continue
            if policy.active:
                chunk = [policy.item(item) for item in chunk]
            for item in chunk:
                self.seq[id(item)] = self.next_seq
                self.next_seq += 1
            for start in range(0, len(chunk), READ_PART):
                part = chunk[start : start + READ_PART]
                self.stats.read += len(part)
                local = [item for item in part if self._reads(item)]
                got = iter(await self._read_all(local) if local else [])
                waiting: list[_Waiting] = []
                for item in part:
                    if self._reads(item):
                        ready = self._take_local(item, next(got), waiting)
                        if ready is not None:
                            await self._admit(ready)
                    elif self._waits(item):  # a remote mask to read and inspect
                        await window.acquire()
                        task = asyncio.ensure_future(self._prepare(item))
                        tasks.add(task)
                        task.add_done_callback(functools.partial(_done, tasks, window))
                    else:
                        # Nothing to read or inspect: no task, no hop (a remote
                        # batch of 20 would otherwise cost 20 tasks).
                        await self._prepare(item)
                if waiting:
                    await parts.acquire()
                    task = asyncio.ensure_future(self._finish_inspections(waiting))
                    tasks.add(task)
                    task.add_done_callback(functools.partial(_done, tasks, parts))
        if tasks:
            await asyncio.gather(*tasks)
        self.flush()
        for batch in self.batcher.drain():
            if self.stopping:
                self.pending += len(batch)
            else:
                await self.queue.put(batch)
        if not self.stopping:
            for _ in senders:
                await self.queue.put(None)

    def _reads(self, item: MaskItem) -> bool:
        """A local mask of a valid item: read here, once, then inspected and sent."""
        return bool(item.mask) and not item.is_remote and not _has_error(item.problems)

    def _waits(self, item: MaskItem) -> bool:
        """Whether preparing a remote ``item`` reads its mask and waits for an inspection."""
        if not item.mask or _has_error(item.problems):
            return False
        return item.is_remote and self.s.validate and self.s.validate_remote

    async def _read_all(self, items: list[MaskItem]) -> list[bytes | Exception]:
        """The bytes of local masks, a group of files per hop to the reader threads.

        A hop to a thread costs far more than reading a small file, so the
        files of a part are read in a few groups (in parallel), not one each.
        """
        loop = asyncio.get_running_loop()
        groups = [
            loop.run_in_executor(
                self.read_pool,
                _read_locals,
                [item.mask for item in items[i : i + READ_GROUP]],
                self.s.storage_options,
            )
            for i in range(0, len(items), READ_GROUP)
        ]
        return [got for group in await asyncio.gather(*groups) for got in group]

    def _take_local(
        self, item: MaskItem, got: bytes | Exception, waiting: list[_Waiting]
    ) -> Entry | None:
        """A read local item: ready to batch, finished here, or added to ``waiting``."""
        if isinstance(got, Exception):  # MaskReadError and anything the filesystem throws
            unreadable = problem(
                "mask-unreadable",
                item.unreadable(getattr(got, "message", None) or f"{item.mask}: {got}"),
                reference_id=item.reference_id,
                source=item.source,
            )
            self.stats.validated += 1
            outcome = self.finish(item, ItemState.INVALID, unreadable.message, (unreadable,))
            self.settle(outcome, "")
            return None
        from segcli.journal import fingerprint

        digest = _digest(got)
        fp = fingerprint(item, digest, segments_text=self._table_texts(item.segments)[0])
        if self.resuming and not self.s.force and self._already_landed(item, fp):
            self.stats.validated += 1
            self.settle(self.finish(item, ItemState.SKIPPED, ALREADY_LANDED), fp)
            return None
        if not self.s.validate:
            self.stats.validated += 1
            return Entry(item, fp, got, item.problems)
        found = self.inspected.get(digest)
        if found is None:
            waiting.append(_Waiting(item, got, digest, fp))
            return None
        self.inspected.move_to_end(digest)
        return self._checked(item, fp, got, found)

    def _checked(self, item: MaskItem, fp: str, data: bytes, found: Any) -> Entry | None:
        """The item with what its mask holds: an entry to send, or finished as invalid."""
        from segcli.checks import mask_problems

        problems = self.s.policy.apply(item.problems + mask_problems(item, found))
        self.stats.validated += 1
        if _has_error(problems):
            first = next(p for p in problems if p.is_error)
            outcome = self.finish(item, ItemState.INVALID, first.message, problems)
            self.settle(outcome, fp)
            return None
        return Entry(item, fp, data, problems)

    async def _admit(self, entry: Entry) -> None:
        if self.stopping:
            self.pending += 1
            return
        full = self.batcher.add(entry)
        for batch in full:
            await self.queue.put(batch)
        if full:
            # Let an idle sender take it now: a chunk of ready items would
            # otherwise be batched whole before the first of them is sent.
            await asyncio.sleep(0)

    async def _finish_inspections(self, waiting: list[_Waiting]) -> None:
        """Inspect the distinct masks of ``waiting`` (a few per worker call), then admit.

        What a mask holds depends on its bytes alone, so it is inspected once
        per distinct content (keyed by the sha256 the journal needs anyway)
        and checked against each item's own segment table here: thousands of
        items sharing a few masks cost a few decodes.
        """
        from segcli.checks import inspect_all

        loop = asyncio.get_running_loop()
        new: dict[str, bytes] = {}
        for w in waiting:
            if w.digest not in self.inspected and w.digest not in self.inspecting:
                new.setdefault(w.digest, w.data)
        if new:
            digests = list(new)
            size = -(-len(digests) // max(1, self.s.workers))  # one call per worker
            for i in range(0, len(digests), size):
                group = digests[i : i + size]
                futures = [loop.create_future() for _ in group]
                self.inspecting.update(zip(group, futures, strict=True))
                call = loop.run_in_executor(
                    self.inspect_pool,
                    functools.partial(inspect_all, max_pixels=self.s.max_pixels),
                    [new[d] for d in group],
                )
                call.add_done_callback(functools.partial(self._inspected, group, futures))
        for w in waiting:
            found = self.inspected.get(w.digest)
            if found is None:
                found = await asyncio.shield(self.inspecting[w.digest])
            entry = self._checked(w.item, w.fingerprint, w.data, found)
            if entry is not None:
                await self._admit(entry)

    def _inspected(
        self, digests: list[str], futures: list[asyncio.Future[Any]], done: asyncio.Future[Any]
    ) -> None:
        for digest in digests:
            del self.inspecting[digest]
        if done.cancelled():
            for future in futures:
                future.cancel()
            return
        error = done.exception()
        if error is not None:
            for future in futures:
                future.set_exception(error)
            return
        for digest, future, found in zip(digests, futures, done.result(), strict=True):
            self.inspected[digest] = found
            future.set_result(found)
        while len(self.inspected) > INSPECTED_CACHE:
            self.inspected.popitem(last=False)

    async def _prepare(self, item: MaskItem) -> None:
        """An item whose mask is not read here: invalid from the manifest, or remote."""
        s = self.s
        if _has_error(item.problems) or not item.mask:
            self.stats.validated += 1
            first = next((p for p in item.problems if p.is_error), None)
            message = first.message if first is not None else "failed manifest checks"
            outcome = self.finish(item, ItemState.INVALID, message, item.problems)
            self.settle(outcome, "")
            return
        from segcli.journal import fingerprint

        fp = fingerprint(item, None, segments_text=self._table_texts(item.segments)[0])
        if self.resuming and not s.force and self._already_landed(item, fp):
            self.stats.validated += 1
            self.settle(self.finish(item, ItemState.SKIPPED, ALREADY_LANDED), fp)
            return
        problems = item.problems
        if s.validate and s.validate_remote:
            loop = asyncio.get_running_loop()
            problems = await loop.run_in_executor(
                self.inspect_pool, functools.partial(self.check, inspect=True), item, None
            )
            problems = s.policy.apply(problems)
        self.stats.validated += 1
        if _has_error(problems):
            first = next(p for p in problems if p.is_error)
            outcome = self.finish(item, ItemState.INVALID, first.message, problems)
            self.settle(outcome, fp)
            return
        await self._admit(Entry(item, fp, None, problems))

    def _already_landed(self, item: MaskItem, fp: str) -> bool:
        state = self.journal.landed_state(item.reference_id, fp)
        if state is None:
            return False
        # An item the server ignored (it had a mask) is sent again when the
        # user now asks to replace masks.
        return not (self.s.update and state == ItemState.IGNORED)

    async def _sender(self) -> None:
        while True:
            batch = await self.queue.get()
            if batch is None:
                return
            await self._send(batch)

    def _serialized(self, batch: Batch) -> bytes:
        """The batch's JSON, byte for byte what ``json.dumps`` makes of the official
        client's request dict, put together from each segment table's JSON
        (kept per table) rather than encoding every segment of every item."""
        items = ", ".join(self._segmentation_json(e.item) for e in batch.entries)
        parts = [f'"update": {"true" if self.s.update else "false"}', f'"segmentations": [{items}]']
        if not batch.remote:
            # Key order as the official client writes it: a JSON batch leads
            # with "update", a multipart serialized_request with "segmentations".
            parts.reverse()
        if self.s.target.is_predictions and self.s.trained_slice_id:
            parts.append(f'"trained_slice_id": {json.dumps(self.s.trained_slice_id)}')
        return ("{" + ", ".join(parts) + "}").encode("ascii")

    def _segmentation_json(self, item: MaskItem) -> str:
        """``json.dumps(item.payload())``, with the table's part from the cache."""
        annotations = self._table_texts(item.segments)[1]
        return (
            f'{{"type": "mask", "mask_url": {json.dumps(item.mask)}, '
            f'"annotations": {annotations}, "annotation_id": {json.dumps(item.annotation_id)}, '
            f'"reference_id": {json.dumps(item.reference_id)}}}'
        )

    def _table_texts(self, segments: tuple[Segment, ...]) -> tuple[str, str]:
        """(journal fingerprint JSON, request JSON) of a segment table.

        Keyed by identity: the manifest reader gives items with equal tables
        one shared tuple, and the entry holds the tuple so its id stays its own.
        """
        entry = self.tables.get(id(segments))
        if entry is not None and entry[0] is segments:
            return entry[1], entry[2]
        from segcli.journal import segments_json

        texts = (segments_json(segments), json.dumps([s.payload() for s in segments]))
        self.tables[id(segments)] = (segments, *texts)
        if len(self.tables) > TABLE_TEXTS_CACHE:
            self.tables.popitem(last=False)
        return texts

    async def _send(self, batch: Batch) -> None:
        s = self.s
        route = s.target.upload_route
        if s.dry_run:
            self._plan(route, batch)
            return
        from segcli.client import PayloadTooLarge, RequestFailed

        self.stats.requests += 1
        if self.stats.first_send is None:
            self.stats.first_send = time.perf_counter()
        try:
            try:
                if batch.remote:
                    body = self._serialized(batch)
                    response = await self.client.post_json(route, body)
                else:
                    files = [(e.item.mask, e.data or b"") for e in batch.entries]
                    response = await self.client.post_multipart(
                        route, self._serialized(batch), files
                    )
            except PayloadTooLarge as exc:
                if len(batch) > 1:
                    first, second = batch.split()
                    try:
                        await self._send(first)
                    except asyncio.CancelledError:
                        if self.stopping:
                            self.pending += len(second)
                        raise
                    await self._send(second)
                    return
                failed = (ItemState.FAILED, exc.message)
                self._settle(batch, {e.item.reference_id: failed for e in batch.entries})
                return
            except RequestFailed as exc:
                failed = (ItemState.FAILED, exc.message)
                self._settle(batch, {e.item.reference_id: failed for e in batch.entries})
                if exc.status is None or exc.status >= 500:
                    # Unreachable (refused, reset, DNS, timeouts) or failing (5xx)
                    # for longer than the retries last: every other request would
                    # fail the same way, one by one. Stop; the rest stays to do.
                    from segcli.journal import clean_endpoint

                    raise _Outage(
                        f"the server at {clean_endpoint(s.endpoint)} stopped answering: "
                        f"{exc.message}"
                    ) from None
                return
            self.stats.sent_items += len(batch)
            refs = [e.item.reference_id for e in batch.entries]
            resolution = resolve(response.body, refs)
            states = dict(resolution.states)
            for ref in resolution.unresolved:
                entry = next(e for e in batch.entries if e.item.reference_id == ref)
                states[ref] = await self._read_back(entry)
            if response.uncertain and not s.update:
                await self._claim_own_writes(batch, states)
            self._settle(batch, states, resolution.details)
        except asyncio.CancelledError:
            if self.stopping and not self._settled(batch):
                self.pending += len(batch)  # cut off mid-request by the stop: never answered
            raise

    async def _claim_own_writes(
        self, batch: Batch, states: dict[str, tuple[ItemState, str | None]]
    ) -> None:
        """Tell our own lost write from someone else's mask, for items found ignored.

        An earlier attempt of this request may have landed with only its
        answer lost; the retry then finds our mask in place and the server
        counts it ignored. The server holding exactly this item's
        segmentation means the mask is ours (or one identical to it): uploaded.
        """
        for entry in batch.entries:
            ref = entry.item.reference_id
            if states[ref][0] is ItemState.IGNORED:
                found = await self._read_back(entry)
                if found[0] is ItemState.UPLOADED:
                    states[ref] = found

    def _settle(
        self,
        batch: Batch,
        states: Mapping[str, tuple[ItemState, str | None]],
        details: Mapping[str, str] | None = None,
    ) -> None:
        self.stats.last_reply = time.perf_counter()
        rows = []
        for entry in batch.entries:
            ref = entry.item.reference_id
            state, message = states[ref]
            detail = details.get(ref) if details else None
            outcome = self.finish(entry.item, state, message, entry.problems, detail)
            rows.append((outcome, entry.fingerprint))
        self.record(rows)

    async def _read_back(self, entry: Entry) -> tuple[ItemState, str | None]:
        """Ask the server what it holds for an item the counts could not place."""
        from segcli.client import RequestFailed

        route = self.s.target.readback_route(entry.item.reference_id)
        unknown = (
            "the server's counts do not say whether this item landed and it could not be "
            "read back; re-run (with --update to be sure)"
        )
        if route is None:
            return ItemState.FAILED, unknown
        try:
            response = await self.client.get(route)
        except (RequestFailed, Exception):
            return ItemState.FAILED, unknown
        held = held_segmentation(response.body)
        if held is None:
            return (
                ItemState.FAILED,
                "the server accepted the request but holds no mask for this item",
            )
        mine = entry.item.payload()
        same = held.get("annotation_id") == mine["annotation_id"] and _segments(held) == _segments(
            mine
        )
        if same:
            return ItemState.UPLOADED, None
        return (
            ItemState.IGNORED,
            "the item already has a different mask; re-run with --update to replace it",
        )

    def _plan(self, route: str, batch: Batch) -> None:
        """A dry run's request: counted, described exactly, and its items marked would-send."""
        from segcli.client import encode_multipart
        from segcli.journal import clean_endpoint

        body = self._serialized(batch)
        if batch.remote:
            kind, size = "json", len(body)
        else:
            files = [(e.item.mask, e.data or b"") for e in batch.entries]
            kind, size = "multipart", len(encode_multipart(body, files)[0])
        self.stats.requests += 1
        refs = tuple(e.item.reference_id for e in batch.entries)
        url = f"{clean_endpoint(self.s.endpoint)}/{route}"
        if self.on_plan is not None:
            self.on_plan(PlannedRequest("POST", url, kind, size, refs))
        plan = self.stats.plan.setdefault(
            f"POST {route} ({kind})", {"requests": 0, "items": 0, "first_items": []}
        )
        plan["requests"] += 1
        plan["items"] += len(batch)
        first: list[str] = plan["first_items"]
        first.extend(refs[: max(0, 5 - len(first))])
        for entry in batch.entries:
            self.finish(entry.item, ItemState.WOULD_SEND, "dry run: not sent", entry.problems)


def _done(
    tasks: set[asyncio.Future[None]], window: asyncio.Semaphore, task: asyncio.Future[None]
) -> None:
    tasks.discard(task)
    window.release()


def _segments(segmentation: Mapping[str, Any]) -> list[tuple[int, str]]:
    out = []
    for seg in segmentation.get("annotations") or []:
        if isinstance(seg, Mapping):
            out.append((int(seg.get("index", -1)), str(seg.get("label"))))
    return sorted(out)
