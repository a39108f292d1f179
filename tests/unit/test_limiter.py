"""The concurrency limiter alone, on a fake clock: growth, back-off, Retry-After, the cap."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from segcli.limiter import (
    CEILING_HOLD_S,
    INITIAL_LIMIT,
    MIN_RTT_WINDOW_S,
    Limiter,
    Slot,
)
from segcli.slots import Slots

T = TypeVar("T")
RTT_S = 0.1


class Clock:
    """Time that moves only when told to, or when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(clock: Clock, **kwargs: object) -> Limiter:
    return Limiter(clock=clock, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


def run(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(main())  # type: ignore[arg-type]


async def start(lim: Limiter, n: int, kind: str = "POST") -> list[Slot]:
    """``n`` requests on the wire; fails rather than hangs if there is no room for them."""
    slots = [lim.slot(kind) for _ in range(n)]
    for slot in slots:
        await asyncio.wait_for(slot.__aenter__(), timeout=2)
    return slots


async def finish(slots: list[Slot], how: str = "ok", retry_after_s: float | None = None) -> None:
    for slot in slots:
        if how == "ok":
            slot.ok()
        elif how == "overloaded":
            slot.overloaded(retry_after_s)
        await slot.__aexit__(None, None, None)


async def full_round(lim: Limiter, clock: Clock, rtt_s: float = RTT_S) -> int:
    """As many requests as the limit allows, all answered fine after ``rtt_s``."""
    slots = await start(lim, lim.limit - lim.in_flight)
    clock.now += rtt_s
    await finish(slots)
    return lim.limit


# -- growth ---------------------------------------------------------------------


def test_it_starts_at_ten_and_grows_by_half_each_round_trip_while_answers_are_fine() -> None:
    clock = Clock()
    lim = limiter(clock)

    async def main() -> list[int]:
        return [lim.limit] + [await full_round(lim, clock) for _ in range(5)]

    assert run(main) == [INITIAL_LIMIT, 15, 22, 33, 50, 64]  # the last round stops at the cap


def test_it_never_goes_above_max_concurrency() -> None:
    clock = Clock()
    lim = limiter(clock, max_limit=25)

    async def main() -> list[int]:
        return [await full_round(lim, clock) for _ in range(6)]

    assert run(main) == [15, 22, 25, 25, 25, 25]
    assert lim.peak == 25


def test_an_idle_limit_does_not_grow() -> None:
    """One request at a time says nothing about room for more (Netflix's app-limited rule)."""
    clock = Clock()
    lim = limiter(clock)

    async def main() -> None:
        for _ in range(50):
            await finish(await start(lim, 1))
            clock.now += RTT_S

    run(main)
    assert lim.limit == INITIAL_LIMIT


def test_latency_well_above_its_minimum_stops_growth() -> None:
    clock = Clock()
    lim = limiter(clock)

    async def main() -> list[int]:
        await full_round(lim, clock, rtt_s=0.1)  # the minimum: 15 now
        # 0.18 s is 1.8x the minimum: more than "near" it, less than queueing.
        return [await full_round(lim, clock, rtt_s=0.18) for _ in range(3)]

    assert run(main) == [15, 15, 15]
    assert lim.cutbacks == 0


def test_latency_far_above_its_minimum_cuts_back_once_a_round_trip() -> None:
    """Requests queueing inside the service (Vegas): back off, as for a 429, but no ceiling."""
    clock = Clock()
    lim = limiter(clock)

    async def main() -> list[int]:
        await full_round(lim, clock, rtt_s=0.1)  # 15
        await full_round(lim, clock, rtt_s=0.1)  # 22.5
        return [await full_round(lim, clock, rtt_s=0.5) for _ in range(2)]

    assert run(main) == [20, 18]  # 22.5 x 0.9, then x 0.9 again: one cut per round, not 22
    assert lim.cutbacks == 2


def test_one_slow_answer_is_not_a_queue() -> None:
    """A pause of a few hundred ms on one answer (GC, a busy core) cuts nothing."""
    clock = Clock()
    lim = limiter(clock)

    async def main() -> int:
        await full_round(lim, clock)  # 15
        slots = await start(lim, 15)
        clock.now += RTT_S
        await finish(slots[:14])
        clock.now += 4 * RTT_S  # one answer five times as slow as the rest
        await finish(slots[14:])
        return lim.limit

    assert run(main) >= 15
    assert lim.cutbacks == 0


def test_a_few_ms_of_jitter_on_a_fast_service_is_not_congestion() -> None:
    """2 ms at best, 12 ms often: six times the minimum, but scheduling noise, not a queue."""
    clock = Clock()
    lim = limiter(clock)

    async def main() -> list[int]:
        await full_round(lim, clock, rtt_s=0.002)
        return [await full_round(lim, clock, rtt_s=0.012) for _ in range(3)]

    assert run(main) == [22, 33, 50]
    assert lim.cutbacks == 0


def test_minimums_are_per_kind_of_request() -> None:
    """A slow POST is not a congested GET: each kind is compared with its own minimum."""
    clock = Clock()
    lim = limiter(clock)

    async def main() -> list[int]:
        await finish(await start(lim, 1, kind="GET"))  # 1 ms: the GET's minimum
        clock.now += 0.001
        return [await full_round(lim, clock, rtt_s=0.5) for _ in range(2)]

    assert run(main) == [15, 22]
    assert lim.cutbacks == 0


def test_the_latency_minimum_forgets_old_samples() -> None:
    """A service whose latency rose for good is, after a while, the new normal."""
    clock = Clock()
    lim = limiter(clock)

    async def main() -> list[int]:
        await full_round(lim, clock, rtt_s=0.01)  # 15, minimum 10 ms
        clock.now += MIN_RTT_WINDOW_S  # no request for a minute
        grown = []
        for _ in range(3):  # 50x the old minimum
            grown.append(await full_round(lim, clock, rtt_s=0.5))
        return grown

    assert run(main) == [22, 33, 50]


# -- back-off -------------------------------------------------------------------


def test_a_429_cuts_below_what_was_in_flight_and_holds_that_ceiling() -> None:
    """A server capped at 32 refuses the 33rd: the limit drops under 33 and stays there."""
    clock = Clock()
    lim = limiter(clock)

    async def main() -> list[int]:
        for _ in range(4):  # 15, 22, 33, 50
            await full_round(lim, clock)
        accepted = await start(lim, 32)
        refused = await start(lim, 8)  # the 33rd to the 40th in flight
        await finish(refused, "overloaded")
        after_cut = lim.limit
        clock.now += RTT_S
        await finish(accepted)
        limits = [after_cut]
        for _ in range(int(CEILING_HOLD_S / RTT_S) - 10):  # rounds within the hold
            limits.append(await full_round(lim, clock))
        return limits

    limits = run(main)
    assert limits[0] == 32  # min(50 x 0.9, 33 - 1)
    assert max(limits) == 32  # never probes 33 again while the ceiling holds
    assert lim.cutbacks == 1  # eight refusals of one burst: one cut


def test_after_the_ceiling_expires_it_probes_one_more_each_round_trip() -> None:
    clock = Clock()
    lim = limiter(clock)

    async def main() -> list[int]:
        await full_round(lim, clock)  # 15
        slots = await start(lim, 15)
        clock.now += RTT_S
        await finish(slots[14:], "overloaded")  # refused with 15 in flight: 13.5 (15 x 0.9)
        await finish(slots[:14])  # +1/13.5 each, up to the ceiling: 14
        held = lim.limit
        clock.now += CEILING_HOLD_S
        return [held] + [await full_round(lim, clock) for _ in range(4)]

    limits = run(main)
    assert limits[0] == 14
    # Additive increase: about one a round trip (1/limit an answer), never more.
    steps = [after - before for before, after in itertools.pairwise(limits)]
    assert all(0 <= step <= 1 for step in steps) and sum(steps) >= 3, limits


def test_a_refusal_of_an_early_request_cuts_by_half_at_most() -> None:
    """Refused with 3 in flight: a random refusal as likely as a capacity of 2."""
    clock = Clock()
    lim = limiter(clock)

    async def main() -> int:
        await full_round(lim, clock)  # 15
        slots = await start(lim, 15)
        await finish(slots[2:3], "overloaded")
        return lim.limit

    assert run(main) == 7  # 15 / 2
    assert lim.cutbacks == 1


def test_an_answer_that_says_nothing_about_load_leaves_the_limit_alone() -> None:
    """A refused connection or a 400 is released without ok() or overloaded()."""
    clock = Clock()
    lim = limiter(clock)

    async def main() -> int:
        slots = await start(lim, 10)
        clock.now += RTT_S
        await finish(slots, "neither")
        return lim.limit

    assert run(main) == INITIAL_LIMIT
    assert lim.in_flight == 0


def test_the_limit_never_drops_below_one() -> None:
    clock = Clock()
    lim = limiter(clock)

    async def main() -> int:
        for _ in range(40):
            await finish(await start(lim, 1), "overloaded")
            clock.now += RTT_S
        return lim.limit

    assert run(main) == 1
    assert lim.in_flight == 0


# -- Retry-After ----------------------------------------------------------------


def test_no_request_starts_before_the_retry_after_deadline() -> None:
    clock = Clock()
    lim = limiter(clock)

    async def main() -> tuple[float, float]:
        refused = await start(lim, 1)
        refused_at = clock.now
        await finish(refused, "overloaded", retry_after_s=2.5)
        (later,) = await start(lim, 1)  # another request, not the refused one
        started = clock.now
        await finish([later])
        return refused_at, started

    refused_at, started = run(main)
    assert started == pytest.approx(refused_at + 2.5)
    assert clock.slept == [pytest.approx(2.5)]


def test_the_refused_request_does_not_wait_its_own_retry_after_twice() -> None:
    """The client's retry sleep covers its own Retry-After; the gate must not add another."""
    clock = Clock()
    lim = limiter(clock)

    async def main() -> None:
        slot = lim.slot("POST")
        await slot.__aenter__()
        await finish([slot], "overloaded", retry_after_s=3.0)
        again = lim.slot("POST", gate_seen=slot.gate_seen)
        await again.__aenter__()
        await finish([again])

    run(main)
    assert clock.slept == []


def test_a_later_retry_after_from_another_request_is_still_waited() -> None:
    clock = Clock()
    lim = limiter(clock)

    async def main() -> None:
        mine, other = await start(lim, 2)
        await finish([mine], "overloaded", retry_after_s=1.0)
        await finish([other], "overloaded", retry_after_s=5.0)
        again = lim.slot("POST", gate_seen=mine.gate_seen)
        await again.__aenter__()
        await finish([again])

    run(main)
    assert clock.slept == [pytest.approx(5.0)]


# -- fixed ----------------------------------------------------------------------


def test_a_fixed_limit_never_moves_but_still_honours_retry_after() -> None:
    clock = Clock()
    lim = Limiter.fixed(8, clock=clock, sleep=clock.sleep)

    async def main() -> list[int]:
        limits = [await full_round(lim, clock) for _ in range(3)]
        await finish(await start(lim, 8), "overloaded", retry_after_s=1.5)
        limits.append(lim.limit)
        await finish(await start(lim, 1))
        return limits

    assert run(main) == [8, 8, 8, 8]
    assert lim.cutbacks == 0
    assert clock.slept == [pytest.approx(1.5)]
    assert not lim.adaptive and lim.max_limit == 8


# -- the slots ------------------------------------------------------------------


def test_waiters_get_slots_in_order_and_a_cancelled_waiter_gives_its_turn_away() -> None:
    limit = [1]
    order: list[str] = []

    async def main() -> None:
        slots = Slots(lambda: limit[0])
        await slots.take()

        async def wait(name: str) -> None:
            await slots.take()
            order.append(name)

        tasks = {name: asyncio.ensure_future(wait(name)) for name in "abc"}
        await asyncio.sleep(0)
        tasks["b"].cancel()
        limit[0] = 3
        slots.wake()  # the limit grew: room for two more
        await asyncio.sleep(0)
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        assert slots.taken == 3

    run(main)
    assert order == ["a", "c"]
