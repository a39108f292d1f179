"""The manifest, as chunks of items read ahead on a thread: an upload's first stage.

    feed = Feed(load_manifest("m.yaml"), shard=(0, 4), policy=policy, pool=threads)
    first = await feed.first()        # while the preflight is on the wire
    async for chunk in feed.rest(): ...

Parsing holds the GIL, so the reader fills ``AHEAD`` chunks (while the
preflight request is on the wire) and then rests until the queue is nearly
empty: a reader that kept going while the first batches are built and sent
would spread the first round's requests out, and every later round inherits
that spread (measured by ``make bench``). A manifest on a slow pipe never
stalls the sends, and reads never overlap each other.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Iterable, Iterator
from concurrent.futures import Executor
from typing import Any

from segcli.codes import CodePolicy
from segcli.model import MaskItem
from segcli.settings import shard_of

CHUNK = 256  # items pulled from the manifest per hop to the reader thread
AHEAD = 4  # chunks parsed ahead: about what a preflight round trip gives time for


class Feed:
    """The items of one run: the shard filter and the ``--ignore``/``--error`` policy
    applied, counted before the filter (``raw_items``: did the manifest hold any?)."""

    def __init__(
        self,
        items: Iterable[MaskItem],
        *,
        shard: tuple[int, int] | None,
        policy: CodePolicy,
        pool: Executor,
    ) -> None:
        self.raw_items = 0
        self.label: str = getattr(items, "label", None) or "the manifest"
        self._policy = policy
        self._pool = pool
        it: Iterator[MaskItem] = self._counted(items)
        if shard is not None:
            k, n = shard
            it = (i for i in it if shard_of(i.reference_id, n) == k)
        self._items = it
        self._chunks = self._read()

    def _counted(self, items: Iterable[MaskItem]) -> Iterator[MaskItem]:
        for item in items:
            self.raw_items += 1
            yield item

    def _take(self) -> list[MaskItem]:
        chunk = list(itertools.islice(self._items, CHUNK))
        if self._policy.active:
            chunk = [self._policy.item(item) for item in chunk]
        return chunk

    async def first(self) -> list[MaskItem]:
        """The first chunk; empty when the manifest (or the shard) holds no item."""
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return []

    async def chunks(
        self, first: asyncio.Future[list[MaskItem]]
    ) -> AsyncGenerator[list[MaskItem], None]:
        """The first chunk (already being read, as ``first()``), then the rest."""
        chunk = await first
        if not chunk:
            return
        yield chunk
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        await self._chunks.aclose()

    async def _read(self) -> AsyncGenerator[list[MaskItem], None]:
        loop = asyncio.get_running_loop()
        ready: asyncio.Queue[list[MaskItem] | Exception] = asyncio.Queue()
        low = asyncio.Event()  # set when the queue is nearly empty

        async def read() -> None:
            while True:
                if ready.qsize() >= AHEAD:
                    low.clear()
                    await low.wait()
                try:
                    chunk = await loop.run_in_executor(self._pool, self._take)
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
            reader.add_done_callback(discard)


def discard(future: asyncio.Future[Any]) -> None:
    """Retrieve a result nobody waits for, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()
