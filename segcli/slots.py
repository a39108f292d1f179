"""Places taken and given back in FIFO order, at most a limit that may change.

The limiter holds one per request on the wire; the upload's senders hold one
per batch they send, so a batch leaves its queue only when there is room.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Slots:
    """Taken and given back in FIFO order, at most ``limit()`` at once; ``limit`` may change.

    ``wake()`` after the limit grows hands the new room to the longest waiters.
    """

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self.taken = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def take(self) -> None:
        if not self._waiters and self.taken < self._limit():
            self.taken += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give_back()  # handed a slot just as it was cancelled
            raise

    def give_back(self) -> None:
        self.taken -= 1
        self.wake()

    def wake(self) -> None:
        while self._waiters and self.taken < self._limit():
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                self.taken += 1
                waiter.set_result(None)
