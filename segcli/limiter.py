"""How many requests an upload keeps in flight: found from the answers, or fixed.

A service's capacity is not known in advance and changes (it autoscales, other
clients come and go), so by default the limit is found the way TCP finds its
window, in the spirit of Netflix's concurrency-limits (AIMD, Vegas, Gradient):

- it starts at ``INITIAL_LIMIT`` and, while answers come back fine and their
  latency stays near its observed minimum (``GROW_RTT_RATIO`` times it, plus
  ``LATENCY_SLACK_S``), grows: by half a request per
  answer at first (x1.5 each round trip, a gentler slow start than TCP's),
  by one per round trip after the first cut-back (additive increase). It
  grows only while the limit is in use (half of it or more in flight), so an
  idle limit cannot drift up.
- an answer that says "too much" (429, 503, 504) or a timeout cuts it back
  once per round trip: to ``BACKOFF_RATIO`` of itself, and below the number
  that was in flight when the refused request started (the server just said
  that many is too many), but never by more than half. That number stays a
  ceiling for ``CEILING_HOLD_S``: the limit does not probe it again sooner,
  so a service with a hard cap sees one burst of refusals, not one every
  few round trips.
- recent latency (a moving average) far above its minimum
  (``SHRINK_RTT_RATIO``) means requests queue inside the service: cut back
  too, as Vegas does, without a ceiling.
- a ``Retry-After`` closes a gate: no request starts before the time the
  server asked for.

It never goes above ``max_limit``. ``Limiter.fixed(n)`` keeps ``n`` and only
honours Retry-After (``--concurrency N``).

Latency minimums are kept per kind of request (a GET and a 20-item POST take
different times) over a sliding window of ``MIN_RTT_WINDOW_S``, so a service
whose latency rises for good is not taken as congested for ever.

The clock and the sleep are injected: tests drive a limiter with a fake clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import NamedTuple

from segcli.defaults import DEFAULT_MAX_CONCURRENCY
from segcli.slots import Slots

INITIAL_LIMIT = 10  # the official client keeps 10 local-file requests in flight
MAX_LIMIT = DEFAULT_MAX_CONCURRENCY
MIN_LIMIT = 1
# Slow start adds half a request per answer: the limit grows by half each
# round trip, not TCP's doubling. Against a hard cap, the requests of the
# round that crosses it are refused together, up to the whole growth of that
# round (measured at a cap of 32: 8 of 209 requests refused when doubling,
# 1 at this pace, for about the same time).
SLOW_START_STEP = 0.5
BACKOFF_RATIO = 0.9  # Netflix AIMD's default; gentle, since a cut comes once per round trip
FLOOR_RATIO = 0.5  # a refusal cuts by half at most (TCP Reno's cut)
GROW_RTT_RATIO = 1.5  # latency up to this times its minimum counts as "near" it
SHRINK_RTT_RATIO = 2.5  # recent latency beyond this times its minimum: requests queue
RECENT_WEIGHT = 0.2  # of each answer in the recent latency: about the last five count
# Added to both latency thresholds: scheduling noise on a busy machine (a
# pause, a GC run) is a few ms whatever the service's latency, and against a
# service answering in 5 ms it would otherwise read as queueing.
LATENCY_SLACK_S = 0.02
CEILING_HOLD_S = 30.0
MIN_RTT_WINDOW_S = 60.0

#: Answers that mean the service is taking too much (with timeouts).
OVERLOAD_STATUS = frozenset({429, 503, 504})


class _Latency:
    """One kind of request's latency: the smallest of roughly the last ``span_s``
    seconds (two half-spans), and a moving average of the recent answers."""

    def __init__(self, span_s: float) -> None:
        self._half_s = span_s / 2
        self._older = math.inf
        self._newer = math.inf
        self._since = -math.inf
        self.recent = math.nan

    def add(self, value: float, now: float) -> float:
        """The minimum, ``value`` included."""
        idle_s = now - self._since
        if idle_s >= self._half_s:
            # A half-span or more went by: the newer half becomes the older,
            # or, after a whole span without samples, both are forgotten.
            self._older = self._newer if idle_s < 2 * self._half_s else math.inf
            self._newer, self._since = math.inf, now
        self._newer = min(self._newer, value)
        if math.isnan(self.recent):
            self.recent = value
        self.recent += RECENT_WEIGHT * (value - self.recent)
        return min(self._older, self._newer)


class _Start(NamedTuple):
    at: float  # on the limiter's clock
    seq: int  # requests started before this one, plus one
    in_flight: int  # this one included
    limit: int  # the limit then


class Limiter:
    def __init__(
        self,
        *,
        initial: int = INITIAL_LIMIT,
        max_limit: int = MAX_LIMIT,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_change: Callable[[Limiter], None] | None = None,
    ) -> None:
        if max_limit < MIN_LIMIT or initial < MIN_LIMIT:
            raise ValueError(f"limits must be {MIN_LIMIT} or more")
        self.max_limit = max_limit
        self.adaptive = adaptive
        self._limit = float(min(initial, max_limit))
        self._clock = clock
        self._sleep = sleep
        self._on_change = on_change
        self._slots = Slots(lambda: self.limit)
        self._started = 0  # requests started so far
        self._slow_start = True
        self._cut_after = 0  # requests started up to the last cut-back
        self._ceiling = math.inf  # in flight known to be too many, until _ceiling_until
        self._ceiling_until = -math.inf
        self._latency: dict[str, _Latency] = {}
        #: no request starts before this (a Retry-After), on ``clock``
        self.blocked_until = -math.inf
        self.peak = self.limit
        self.cutbacks = 0

    @classmethod
    def fixed(
        cls,
        limit: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> Limiter:
        """Always ``limit`` in flight; Retry-After is still honoured."""
        return cls(initial=limit, max_limit=limit, adaptive=False, clock=clock, sleep=sleep)

    def __repr__(self) -> str:
        mode = "adaptive" if self.adaptive else "fixed"
        return f"Limiter({mode}, limit={self.limit}, max={self.max_limit})"

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return max(MIN_LIMIT, int(self._limit))

    @property
    def in_flight(self) -> int:
        return self._slots.taken

    def slot(self, kind: str = "", *, gate_seen: float = -math.inf) -> Slot:
        """``async with limiter.slot(kind) as slot:`` around one request on the wire.

        ``gate_seen``: a Retry-After deadline the caller has already waited out
        (its own retry sleep), so it is not waited twice.
        """
        return Slot(self, kind, gate_seen)

    async def _start(self, gate_seen: float) -> tuple[_Start, float]:
        """Wait for room and for any Retry-After; (the start, the deadline waited out)."""
        await self._slots.take()
        try:
            while self.blocked_until > gate_seen:
                gate_seen = self.blocked_until
                wait_s = gate_seen - self._clock()
                if wait_s > 0:
                    await self._sleep(wait_s)
        except BaseException:
            self._slots.give_back()
            raise
        self._started += 1
        return _Start(self._clock(), self._started, self._slots.taken, self.limit), gate_seen

    # -- what the answers say -------------------------------------------------

    def _succeeded(self, kind: str, start: _Start) -> None:
        now = self._clock()
        rtt = now - start.at
        latency = self._latency.get(kind)
        if latency is None:
            latency = self._latency[kind] = _Latency(MIN_RTT_WINDOW_S)
        least = latency.add(rtt, now)
        if not self.adaptive:
            return
        if latency.recent > least * SHRINK_RTT_RATIO + LATENCY_SLACK_S:
            # Judged on the recent average, not one answer: a single slow one
            # (a pause on this machine, a slow disk there) is not a queue.
            self._cut(start, now, refused=False)
        elif rtt <= least * GROW_RTT_RATIO + LATENCY_SLACK_S and 2 * max(
            start.in_flight, self.in_flight
        ) >= (start.limit):
            # The limit was in use (half of it or more in flight while this
            # request was, at its start or at its answer): there is room to use.
            self._grow(now)

    def _grow(self, now: float) -> None:
        step = SLOW_START_STEP if self._slow_start else 1.0 / self._limit
        top = float(self.max_limit)
        if now < self._ceiling_until:
            top = min(top, self._ceiling - 1)
        if self._limit < top:
            self._set(min(top, self._limit + step))

    def _dropped(self, start: _Start, retry_after_s: float | None) -> float:
        """The Retry-After deadline this answer set (-inf for none)."""
        now = self._clock()
        deadline = -math.inf
        if retry_after_s is not None and retry_after_s > 0:
            deadline = now + retry_after_s
            self.blocked_until = max(self.blocked_until, deadline)
        if self.adaptive:
            self._cut(start, now, refused=True)
        return deadline

    def _cut(self, start: _Start, now: float, *, refused: bool) -> None:
        if start.seq <= self._cut_after:
            return  # started before the last cut-back, which answered for it
        self._cut_after = self._started
        self._slow_start = False
        self.cutbacks += 1
        target = self._limit * BACKOFF_RATIO
        if refused:
            # The service refused with this many in flight: go below that (a
            # hard cap answers exactly so), but by half at most, since a
            # refusal can also be random and say little about the number.
            target = max(self._limit * FLOOR_RATIO, min(target, start.in_flight - 1))
            if start.in_flight > target:
                self._ceiling, self._ceiling_until = start.in_flight, now + CEILING_HOLD_S
        self._set(max(float(MIN_LIMIT), target), cut=True)

    def _set(self, value: float, *, cut: bool = False) -> None:
        before = self.limit
        self._limit = value
        self.peak = max(self.peak, self.limit)
        if self.limit > before:
            self._slots.wake()
        if (cut or self.limit != before) and self._on_change is not None:
            self._on_change(self)


class Slot:
    """One request's place in flight. Say how it went; saying nothing is neutral.

    ``ok()`` for an answer that came back fine, ``overloaded(retry_after_s)``
    for a 429/503/504 or a timeout. Anything else (a refused connection, a
    400) says nothing about the service's load and leaves the limit alone.
    """

    __slots__ = ("_kind", "_limiter", "_outcome", "_start", "gate_seen")

    def __init__(self, limiter: Limiter, kind: str, gate_seen: float) -> None:
        self._limiter = limiter
        self._kind = kind
        self._outcome: tuple[str, float | None] | None = None
        self._start = _Start(0.0, 0, 0, 0)
        #: the latest Retry-After deadline this request waits out itself: the
        #: gates it passed, and its own answer's (the caller sleeps through it)
        self.gate_seen = gate_seen

    async def __aenter__(self) -> Slot:
        self._start, self.gate_seen = await self._limiter._start(self.gate_seen)
        return self

    def ok(self) -> None:
        self._outcome = ("ok", None)

    def overloaded(self, retry_after_s: float | None = None) -> None:
        self._outcome = ("overloaded", retry_after_s)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        limiter = self._limiter
        if self._outcome is not None:
            what, retry_after_s = self._outcome
            if what == "ok":
                limiter._succeeded(self._kind, self._start)
            else:
                deadline = limiter._dropped(self._start, retry_after_s)
                self.gate_seen = max(self.gate_seen, deadline)
        limiter._slots.give_back()
