"""Fault injection: latency, error answers, dropped connections, stalls, lost answers.

A fault is decided before the request reaches its handler. All but one act
before the handler, so such a request has stored nothing: a client that
retries it must see exactly one copy land. A lost answer acts after: the
write is applied and the connection cut, so the retry finds the write there.
The draw uses one ``random.Random(seed)`` in arrival order, so a given seed
and request sequence always yields the same faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass

from aiohttp import web

from segcli.server.config import FaultConfig
from segcli.server.responses import error_response

# A dropped response announces this many bytes and sends only a few of them,
# so the client sees a connection closed mid-body, not an empty answer.
_DROP_ANNOUNCED_BYTES = 256
_DROP_SENT = b'{"dataset_id": "'


@dataclass(frozen=True)
class Fault:
    latency_s: float
    kind: str | None  # "503", "429", "500", "504", "drop", "stall", "lost" or None


class FaultInjector:
    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._closing = asyncio.Event()

    def close(self) -> None:
        """End stalls now: a server shutting down does not wait out a 130 s stall."""
        self._closing.set()

    def draw(self, route: str) -> Fault | None:
        """The fault for the next request to ``route``, or None if faults are off there."""
        if not self.config.active or not self.config.covers(route):
            return None
        # Always two draws per request, whatever the rates, so that changing
        # one rate does not shift the latency sequence.
        jitter = self._rng.random()
        pick = self._rng.random()
        latency_s = self.config.latency_s + jitter * self.config.latency_jitter_s
        edge = 0.0
        for kind, rate in self.config.rates().items():
            edge += rate
            if pick < edge:
                return Fault(latency_s, kind)
        return Fault(latency_s, None)

    async def act(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        """Sleep the request's way in, then answer for the fault; None lets it through.

        Latency is a round trip: half of it passes before the request reaches
        its handler, half (``way_back``) before its answer leaves. Requests
        sent together then reach the handlers together, as over a network,
        but answers no longer leave in one burst behind the slowest handler.
        """
        if fault.latency_s > 0:
            await asyncio.sleep(fault.latency_s / 2)
        if fault.kind is None or fault.kind == "lost":
            return None
        if fault.kind == "503":
            return error_response(503, "Service temporarily unavailable, try again later.")
        if fault.kind == "429":
            return error_response(
                429,
                "Too many requests, slow down.",
                headers={"Retry-After": f"{self.config.retry_after_s:g}"},
            )
        if fault.kind == "500":
            return error_response(500, "Internal server error.")
        if fault.kind == "504":
            return error_response(504, "Gateway timeout.")
        if fault.kind == "stall":
            # Longer than the client's timeout; the write is not applied.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.config.stall_s)
            return error_response(504, "Gateway timeout.")
        return await _drop(request)

    async def way_back(
        self, fault: Fault, request: web.Request, answer: web.StreamResponse
    ) -> web.StreamResponse:
        """The answer's half of the latency; a lost answer is cut off on the way."""
        if fault.latency_s > 0:
            await asyncio.sleep(fault.latency_s / 2)
        if fault.kind == "lost":
            return await _drop(request)
        return answer


async def _drop(request: web.Request) -> web.StreamResponse:
    """Start a 200 answer, send part of it, then cut the connection."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = _DROP_ANNOUNCED_BYTES
    await response.prepare(request)
    await response.write(_DROP_SENT)
    transport = request.transport
    if transport is not None:
        transport.abort()
    return response
