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
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segcli.batching import Batch, Batcher, Entry
from segcli.codes import problem
from segcli.errors import UsageError
from segcli.model import ItemState, MaskItem, Problem
from segcli.outcomes import resolve
from segcli.pool import PoolKind, default_workers, make_executor
from segcli.target import Target
from segcli.validate import DEFAULT_MAX_PIXELS, check_one

DEFAULT_ENDPOINT = "https://api.scale.com/v1/nucleus"
MANIFEST_CHUNK = 256  # items pulled from the manifest per hop to the reader thread
INSPECT_WINDOW_PER_WORKER = 8
READ_THREADS = 8  # mask reads are I/O bound (network for remote masks)
LANDED = (ItemState.UPLOADED, ItemState.IGNORED)


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
                "no API key: set NUCLEUS_API_KEY (or NUCLEUS_LIMITED_ACCESS_KEY) in the environment"
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
    journal_path: Path | None = None
    workers: int = field(default_factory=default_workers)
    pool: PoolKind = "process"
    max_pixels: int = DEFAULT_MAX_PIXELS
    storage_options: Mapping[str, Mapping[str, Any]] | None = None
    trained_slice_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    item: MaskItem
    state: ItemState
    message: str | None = None
    problems: tuple[Problem, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference_id": self.item.reference_id,
            "source": str(self.item.source),
            "mask": self.item.mask,
            "annotation_id": self.item.annotation_id,
            "state": self.state.value,
            "message": self.message,
            "problems": [p.as_dict() for p in self.problems],
        }


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
        return not any(self.states[s.value] for s in bad)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "items": self.finished,
            **{s.value: self.states[s.value] for s in ItemState},
            "requests": self.requests,
            "retries": self.retries,
            "elapsed_s": round(self.elapsed_s, 3),
            "send_elapsed_s": round(self.send_elapsed_s, 3),
        }
        if self.plan:
            out["plan"] = self.plan
        return out


OutcomeHook = Callable[[ItemOutcome], None]


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
    stats: UploadStats | None = None,
) -> UploadStats:
    """Run a whole upload; blocking. Raises ``KeyboardInterrupt`` on Ctrl-C/SIGTERM
    after recording every finished item; ``stats`` then says how far it got."""
    stats = stats if stats is not None else UploadStats()
    if not settings.dry_run:
        credentials = credentials or Credentials.from_env()
        credentials.check()
    run = _Run(settings, credentials, stats, on_outcome or (lambda _o: None))
    start = time.perf_counter()
    try:
        asyncio.run(run.main(items))
    finally:
        stats.elapsed_s = time.perf_counter() - start
    return stats


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_local(uri: str, storage_options: Mapping[str, Mapping[str, Any]] | None) -> bytes:
    from segcli.masks import read_mask

    return read_mask(uri, storage_options=storage_options)


class _Run:
    def __init__(
        self,
        settings: UploadSettings,
        credentials: Credentials | None,
        stats: UploadStats,
        on_outcome: OutcomeHook,
    ) -> None:
        self.s = settings
        self.credentials = credentials
        self.stats = stats
        self.on_outcome = on_outcome
        self.journal: Any = None
        self.client: Any = None
        self.inspect_pool: Executor | None = None
        self.read_pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="segcli-read")
        self.batcher = Batcher(remote_size=settings.remote_batch, local_size=settings.local_batch)
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(
            maxsize=max(1, settings.concurrency)
        )
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
    ) -> ItemOutcome:
        outcome = ItemOutcome(item, state, message, problems)
        self.stats.states[state.value] += 1
        self.on_outcome(outcome)
        return outcome

    def record(self, rows: list[tuple[ItemOutcome, str]]) -> None:
        if self.journal is None or not rows:
            return
        from segcli.journal import JournalRow

        self.journal.record(
            JournalRow(
                reference_id=o.item.reference_id,
                fingerprint=fp,
                state=o.state,
                message=o.message,
                source=str(o.item.source),
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
            self.inspect_pool.shutdown(wait=False, cancel_futures=True)
        self.read_pool.shutdown(wait=False, cancel_futures=True)
        if self.journal is not None:
            self.journal.close()

    async def _main(self, items: Iterable[MaskItem]) -> None:
        s = self.s
        if not s.dry_run:
            from segcli.client import NucleusClient
            from segcli.journal import Journal, Scope
            from segcli.retry import RetryPolicy

            assert self.credentials is not None
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
            for route in s.target.preflight_routes():
                await self.client.get(route)
            if s.journal_path is not None:
                scope = Scope(
                    endpoint=s.endpoint, dataset_id=s.target.dataset_id, target=s.target.kind
                )
                self.journal = Journal(s.journal_path, scope)
        if s.validate:
            self.inspect_pool = make_executor(s.pool, s.workers)

        senders = [asyncio.ensure_future(self._sender()) for _ in range(max(1, s.concurrency))]
        producer = asyncio.ensure_future(self._produce(items, senders))
        try:
            done, _ = await asyncio.wait([producer, *senders], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raise the first failure (auth lost mid-run, a bug)
        finally:
            for task in [producer, *senders]:
                task.cancel()
            await asyncio.gather(producer, *senders, return_exceptions=True)

    def _on_retry(self, _event: Any) -> None:
        self.stats.retries += 1

    async def _manifest_chunks(self, items: Iterable[MaskItem]) -> Any:
        """Pull items on a thread: a manifest on a slow pipe must not stall the sends."""
        loop = asyncio.get_running_loop()
        it: Iterator[MaskItem] = iter(items)
        if self.s.shard is not None:
            k, n = self.s.shard
            it = (i for i in it if shard_of(i.reference_id, n) == k)
        while True:
            chunk = await loop.run_in_executor(
                self.read_pool, lambda: list(itertools.islice(it, MANIFEST_CHUNK))
            )
            if not chunk:
                return
            yield chunk

    async def _produce(
        self, items: Iterable[MaskItem], senders: Sequence[asyncio.Future[None]]
    ) -> None:
        window = asyncio.Semaphore(max(1, self.s.workers) * INSPECT_WINDOW_PER_WORKER)
        tasks: set[asyncio.Future[None]] = set()
        async for chunk in self._manifest_chunks(items):
            for item in chunk:
                self.stats.read += 1
                await window.acquire()
                task = asyncio.ensure_future(self._prepare(item))
                tasks.add(task)
                task.add_done_callback(functools.partial(_done, tasks, window))
        if tasks:
            await asyncio.gather(*tasks)
        for batch in self.batcher.drain():
            await self.queue.put(batch)
        for _ in senders:
            await self.queue.put(None)

    async def _prepare(self, item: MaskItem) -> None:
        loop = asyncio.get_running_loop()
        s = self.s
        if any(p.is_error for p in item.problems) or not item.mask:
            self.stats.validated += 1
            outcome = self.finish(item, ItemState.INVALID, "failed manifest checks", item.problems)
            self.record([(outcome, "")])
            return
        data: bytes | None = None
        digest: str | None = None
        if not item.is_remote:
            try:
                data = await loop.run_in_executor(
                    self.read_pool, _read_local, item.mask, s.storage_options
                )
            except Exception as exc:  # MaskReadError and anything the filesystem throws
                found = (
                    problem(
                        "mask-unreadable",
                        f"cannot read {item.mask}: {getattr(exc, 'message', exc)}",
                        reference_id=item.reference_id,
                        source=item.source,
                    ),
                )
                self.stats.validated += 1
                outcome = self.finish(item, ItemState.INVALID, found[0].message, found)
                self.record([(outcome, "")])
                return
            digest = _digest(data)

        from segcli.journal import fingerprint

        fp = fingerprint(item, digest)
        if self.journal is not None and not s.force and self._already_landed(item, fp):
            self.stats.validated += 1
            self.finish(item, ItemState.SKIPPED, "already uploaded by an earlier run")
            return

        problems = item.problems
        if s.validate and (s.validate_remote or not item.is_remote):
            problems = await loop.run_in_executor(
                self.inspect_pool, functools.partial(self.check, inspect=True), item, data
            )
        self.stats.validated += 1
        if any(p.is_error for p in problems):
            first = next(p for p in problems if p.is_error)
            outcome = self.finish(item, ItemState.INVALID, first.message, problems)
            self.record([(outcome, fp)])
            return
        for batch in self.batcher.add(Entry(item, fp, data, problems)):
            await self.queue.put(batch)

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

    def _serialized(self, batch: Batch) -> dict[str, Any]:
        segmentations = [e.item.payload() for e in batch.entries]
        # Key order as the official client writes it: a JSON batch leads with
        # "update", a multipart serialized_request with "segmentations".
        body: dict[str, Any] = (
            {"update": self.s.update, "segmentations": segmentations}
            if batch.remote
            else {"segmentations": segmentations, "update": self.s.update}
        )
        if self.s.target.is_predictions and self.s.trained_slice_id:
            body["trained_slice_id"] = self.s.trained_slice_id
        return body

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
            if batch.remote:
                body = self._serialized(batch)
                response = await self.client.post_json(route, body)
            else:
                files = [(e.item.mask, e.data or b"") for e in batch.entries]
                response = await self.client.post_multipart(route, self._serialized(batch), files)
        except PayloadTooLarge as exc:
            if len(batch) > 1:
                first, second = batch.split()
                await self._send(first)
                await self._send(second)
                return
            self._settle(
                batch, {e.item.reference_id: (ItemState.FAILED, exc.message) for e in batch.entries}
            )
            return
        except RequestFailed as exc:
            message = f"{exc.message} (after {exc.attempts} attempt(s))"
            self._settle(
                batch, {e.item.reference_id: (ItemState.FAILED, message) for e in batch.entries}
            )
            return
        self.stats.sent_items += len(batch)
        refs = [e.item.reference_id for e in batch.entries]
        resolution = resolve(response.body, refs)
        states = dict(resolution.states)
        for ref in resolution.unresolved:
            entry = next(e for e in batch.entries if e.item.reference_id == ref)
            states[ref] = await self._read_back(entry)
        self._settle(batch, states)

    def _settle(self, batch: Batch, states: Mapping[str, tuple[ItemState, str | None]]) -> None:
        self.stats.last_reply = time.perf_counter()
        rows = []
        for entry in batch.entries:
            state, message = states[entry.item.reference_id]
            outcome = self.finish(entry.item, state, message, entry.problems)
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
        held = _held_segmentation(response.body)
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
        kind = "json" if batch.remote else "multipart"
        plan = self.stats.plan.setdefault(
            f"POST {route} ({kind})", {"requests": 0, "items": 0, "first_items": []}
        )
        plan["requests"] += 1
        plan["items"] += len(batch)
        first: list[str] = plan["first_items"]
        for entry in batch.entries:
            if len(first) < 5:
                first.append(entry.item.reference_id)
        for entry in batch.entries:
            self.finish(entry.item, ItemState.SKIPPED, "dry run: not sent", entry.problems)


def _done(
    tasks: set[asyncio.Future[None]], window: asyncio.Semaphore, task: asyncio.Future[None]
) -> None:
    tasks.discard(task)
    window.release()


def _held_segmentation(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, Mapping):
        return None
    annotations = body.get("annotations")
    if not isinstance(annotations, Mapping):
        return None
    segs = annotations.get("segmentation")
    if isinstance(segs, list) and segs and isinstance(segs[0], Mapping):
        return dict(segs[0])
    return None


def _segments(segmentation: Mapping[str, Any]) -> list[tuple[int, str]]:
    out = []
    for seg in segmentation.get("annotations") or []:
        if isinstance(seg, Mapping):
            out.append((int(seg.get("index", -1)), str(seg.get("label"))))
    return sorted(out)
