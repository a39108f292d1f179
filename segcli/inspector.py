"""Read masks and find what they hold, on a pool, once per distinct content.

    inspector = Inspector(workers, threads, max_pixels=..., storage_options=...)
    datas = await inspector.read_local(items)            # bytes, or why not
    found = await inspector.inspect_masks(wanted)        # MaskInfo | finding | Unread each
    problems = await inspector.check_remote(item)        # read and checked by a worker

What a mask holds depends on its bytes alone, so it is inspected once per
distinct content, keyed by the sha256 the journal needs anyway, and checked
against each item's own segment table afterwards: thousands of items sharing
a few masks cost a few decodes. A local mask is read here once (the same
bytes are inspected and sent); a remote one is read by the worker that
inspects it, so only its findings come back. On a cluster
(``workers.near_data``) the workers read local masks too, and send back the
digest of what they read: it must be the digest of the bytes read here, which
are the ones sent.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import socket
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from segcli.model import MaskItem, Problem
from segcli.workers import Workers

# Inspection results kept by mask content: each holds at most 256 counts,
# so this bounds memory at a few MB however many distinct masks a run has.
INSPECTED_CACHE = 4096
READ_GROUP = 16  # local files read per hop to a reader thread

Found = Any  # segcli.png.MaskInfo, or a (code, message) finding (imported lazily)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Unread:
    """A cluster's worker could not read a local mask, or read other bytes than this
    process: why (the item is unreadable, whatever the content)."""

    reason: str


class Inspector:
    def __init__(
        self,
        workers: Workers,
        read_pool: Executor,
        *,
        max_pixels: int,
        storage_options: Mapping[str, Mapping[str, Any]] | None,
    ) -> None:
        self.pool = workers.executor
        self.slots = max(1, workers.slots)
        self.near_data = workers.near_data
        self.read_pool = read_pool
        self.max_pixels = max_pixels
        self.storage_options = storage_options
        self._known: OrderedDict[str, Found] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Found]] = {}

    async def warm_up_for(self, first: asyncio.Future[list[MaskItem]], *, remote: bool) -> None:
        """Start the workers early when the first items will need them."""
        if self.pool is None:
            return
        try:
            chunk = await asyncio.shield(first)
        except BaseException:  # whoever waits for the chunk sees (and raises) this too
            return
        local = [i for i in chunk if i.mask and not i.is_remote]
        if local or (remote and any(i.mask and i.is_remote for i in chunk)):
            self.warm_up()

    def warm_up(self) -> None:
        """Start loading what inspecting needs in every worker, before the first mask.
        (A cluster's workers are up already, and one call would not reach each.)"""
        if self.pool is None or self.near_data:
            return
        from segcli.checks import warm_up

        loop = asyncio.get_running_loop()
        for _ in range(self.slots):
            loop.run_in_executor(self.pool, warm_up).add_done_callback(_ignored)

    async def read_local(self, items: Sequence[MaskItem]) -> list[bytes | Exception]:
        """The bytes of local masks, a group of files per hop to the reader threads.

        A hop to a thread costs far more than reading a small file, so the
        files are read in a few groups (in parallel), not one each.
        """
        loop = asyncio.get_running_loop()
        groups = [
            loop.run_in_executor(
                self.read_pool,
                _read_locals,
                [item.mask for item in items[i : i + READ_GROUP]],
                self.storage_options,
            )
            for i in range(0, len(items), READ_GROUP)
        ]
        return [got for group in await asyncio.gather(*groups) for got in group]

    def known(self, key: str) -> Found | None:
        found = self._known.get(key)
        if found is not None:
            self._known.move_to_end(key)
        return found

    async def inspect(self, datas: Mapping[str, bytes]) -> dict[str, Found]:
        """What each distinct mask holds (digest -> found), a few masks per worker call."""
        loop = asyncio.get_running_loop()
        new = [d for d in datas if d not in self._known and d not in self._pending]
        if new:
            size = -(-len(new) // self.slots)  # one call per worker
            for i in range(0, len(new), size):
                group = new[i : i + size]
                futures = [loop.create_future() for _ in group]
                self._pending.update(zip(group, futures, strict=True))
                call = loop.run_in_executor(
                    self.pool,
                    functools.partial(_inspect_all, max_pixels=self.max_pixels),
                    [datas[d] for d in group],
                )
                call.add_done_callback(functools.partial(self._done, group, futures))
        out: dict[str, Found] = {}
        for key in datas:
            found = self.known(key)
            if found is None:
                found = await asyncio.shield(self._pending[key])
            out[key] = found
        return out

    async def inspect_masks(self, wanted: Sequence[tuple[str, bytes, str]]) -> list[Found | Unread]:
        """What each ``(digest, bytes, uri)`` local mask holds, in order.

        The local pool gets the bytes, once per distinct content. A cluster's
        workers read each uri themselves, near the data; what they read counts
        only when its digest is the one of the bytes read here (which are sent).
        """
        if not self.near_data:
            found = await self.inspect({key: data for key, data, _ in wanted})
            return [found[key] for key, _, _ in wanted]
        out: list[Found | Unread | None] = [self.known(key) for key, _, _ in wanted]
        asked = sorted({uri for (_, _, uri), got in zip(wanted, out, strict=True) if got is None})
        if not asked:
            return [got for got in out if got is not None]
        loop = asyncio.get_running_loop()
        read = functools.partial(
            inspect_paths, max_pixels=self.max_pixels, storage_options=self.storage_options
        )
        groups = [asked[i : i + READ_GROUP] for i in range(0, len(asked), READ_GROUP)]
        calls = [loop.run_in_executor(self.pool, read, group) for group in groups]
        read_all = [answer for got in await asyncio.gather(*calls) for answer in got]
        answers = dict(zip(asked, read_all, strict=True))
        for place, (key, _, uri) in enumerate(wanted):
            if out[place] is None:
                out[place] = self._answer(key, uri, answers[uri])
        return [got for got in out if got is not None]

    def _answer(self, key: str, uri: str, answer: tuple[str, Found] | str) -> Found | Unread:
        if isinstance(answer, str):
            return Unread(answer)
        read, found = answer
        if read != key:
            return Unread(
                f"{uri}: a Dask worker read other bytes at this path than this machine; "
                "the workers must see this machine's files at the same paths "
                "(or the file changed during the run)"
            )
        self._remember(key, found)
        return found

    def _remember(self, key: str, found: Found) -> None:
        self._known[key] = found
        while len(self._known) > INSPECTED_CACHE:
            self._known.popitem(last=False)

    async def check(self, items: Sequence[MaskItem]) -> list[tuple[Problem, ...]]:
        """Each item's problems (the manifest's, then its mask's), its mask read and
        inspected by a worker: only the findings come back. One pool call."""
        loop = asyncio.get_running_loop()
        check = functools.partial(
            check_items,
            max_pixels=self.max_pixels,
            storage_options=self.storage_options,
            on_cluster=self.near_data,
        )
        return await loop.run_in_executor(self.pool, check, list(items))

    async def check_remote(self, item: MaskItem) -> tuple[Problem, ...]:
        """A remote mask's item, read and checked by a worker."""
        return (await self.check([item]))[0]

    def _done(
        self, keys: list[str], futures: list[asyncio.Future[Found]], done: asyncio.Future[Any]
    ) -> None:
        for key in keys:
            del self._pending[key]
        if done.cancelled():
            for future in futures:
                future.cancel()
            return
        error = done.exception()
        if error is not None:
            for future in futures:
                future.set_exception(error)
            return
        for key, future, found in zip(keys, futures, done.result(), strict=True):
            self._remember(key, found)
            future.set_result(found)


# -- what a worker runs ------------------------------------------------------

#: In each worker: what masks already seen by their content hold (the same
#: bound as the parent's), so a mask shared by many items is decoded once per
#: worker. A Dask worker runs tasks on several threads, hence the lock.
_SEEN: OrderedDict[str, Found] = OrderedDict()
_SEEN_LOCK = threading.Lock()


def _seen(data: bytes, max_pixels: int) -> tuple[str, Found]:
    from segcli.checks import inspect_data

    key = digest(data)
    with _SEEN_LOCK:
        found = _SEEN.get(key)
        if found is not None:
            _SEEN.move_to_end(key)
            return key, found
    found = inspect_data(data, max_pixels=max_pixels)
    with _SEEN_LOCK:
        _SEEN[key] = found
        if len(_SEEN) > INSPECTED_CACHE:
            _SEEN.popitem(last=False)
    return key, found


def check_items(
    items: list[MaskItem],
    *,
    max_pixels: int,
    storage_options: Mapping[str, Mapping[str, Any]] | None,
    on_cluster: bool = False,
) -> list[tuple[Problem, ...]]:
    """All problems of each item: the manifest's, then the mask's. Never raises for
    bad input. Items without a mask are not read. ``on_cluster``: this is a Dask
    worker, which messages about a mask it cannot read name."""
    from segcli.checks import inspect_item

    def seen(data: bytes) -> Found:
        return _seen(data, max_pixels)[1]

    out = []
    for item in items:
        if not item.mask:
            out.append(item.problems)
            continue
        where = reader_note(item.is_remote) if on_cluster else None
        found = inspect_item(
            item, None, storage_options=storage_options, inspect=seen, reader=where
        )
        out.append(item.problems + found)
    return out


def inspect_paths(
    uris: list[str],
    *,
    max_pixels: int,
    storage_options: Mapping[str, Mapping[str, Any]] | None,
) -> list[tuple[str, Found] | str]:
    """On a cluster's worker: each local mask read here, near the data, as the digest
    of what was read and what it holds, or why it could not be read."""
    from segcli.storage import MaskReadError, read_mask

    out: list[tuple[str, Found] | str] = []
    for uri in uris:
        try:
            data = read_mask(uri, storage_options=storage_options)
        except MaskReadError as exc:
            out.append(f"{exc.message} ({reader_note(remote=False)})")
            continue
        except Exception as exc:  # one path's oddity spoils only that item
            out.append(f"{uri}: {type(exc).__name__}: {exc} ({reader_note(remote=False)})")
            continue
        out.append(_seen(data, max_pixels))
    return out


def reader_note(remote: bool) -> str:
    """Who read a mask that could not be read, and what that requires."""
    where = f"read by a Dask worker on {socket.gethostname()}"
    if remote:
        return f"{where}, with that worker's credentials"
    return f"{where}: the workers must see this machine's files at the same paths"


def _inspect_all(datas: list[bytes], *, max_pixels: int) -> list[Found]:
    from segcli.checks import inspect_all

    return inspect_all(datas, max_pixels=max_pixels)


def _read_locals(
    uris: list[str], storage_options: Mapping[str, Mapping[str, Any]] | None
) -> list[bytes | Exception]:
    """Each mask's bytes, or what stopped its read (one bad file spoils only itself)."""
    from segcli.storage import read_mask

    out: list[bytes | Exception] = []
    for uri in uris:
        try:
            out.append(read_mask(uri, storage_options=storage_options))
        except Exception as exc:
            out.append(exc)
    return out


def _ignored(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
