"""A service's capacity: at most N requests in flight, 429 with Retry-After above it.

``segcli serve --max-inflight N`` makes the local server behave like a
service with a fixed capacity, so a client's concurrency limit can be seen
finding it. A request counts from its arrival to its answer's departure
(fault latency included: it stands for the time the service spends on it);
one that arrives while N are in flight is answered 429 at once, having
reached no handler, so it stored nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from segcli.server.responses import error_response


@dataclass
class Capacity:
    limit: int | None  # None: no cap
    retry_after_s: float
    in_flight: int = 0
    peak: int = 0  # the most in flight at once
    admitted: int = 0
    refused: int = 0

    def admit(self) -> bool:
        """Take a place for a request that just arrived; False when the service is full."""
        if self.limit is not None and self.in_flight >= self.limit:
            self.refused += 1
            return False
        self.in_flight += 1
        self.admitted += 1
        self.peak = max(self.peak, self.in_flight)
        return True

    def release(self) -> None:
        self.in_flight -= 1

    def refusal(self) -> web.Response:
        return error_response(
            429,
            f"Too many requests in flight: this server takes {self.limit} at once. "
            f"Retry after {self.retry_after_s:g} s.",
            headers={"Retry-After": f"{self.retry_after_s:g}"},
        )
