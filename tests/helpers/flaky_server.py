"""A tiny real HTTP server on 127.0.0.1 that answers from a script.

Each path gets a queue of ``Reply``s; once it is empty the path answers 200
with ``{"ok": true}``. The server records every request it received (headers,
body, multipart parts as sent on the wire) and the largest number of handlers
that ran at once. It runs its own event loop in a thread, so it serves sync
and async tests alike and a stalled handler never stalls the client.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})  # JSON, or str sent as text
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # stall this long before answering (cut short by stop())
    drop: Literal["before", "mid"] | None = None  # close the connection instead


@dataclass(frozen=True)
class Part:
    headers: list[tuple[str, str]]  # as sent, in order
    name: str | None
    filename: str | None  # raw, still percent-encoded
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class Received:
    method: str
    path: str  # without the leading "/"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    parts: list[Part] | None  # for multipart/form-data

    def json(self) -> Any:
        return json.loads(self.body)


class FlakyServer:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.max_concurrent = 0
        self._concurrent = 0
        self._scripts: dict[str, collections.deque[Reply]] = collections.defaultdict(
            collections.deque
        )
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *replies: Reply | int) -> None:
        """Queue replies for ``path``; a bare int is a status with a JSON error body."""
        with self._lock:
            for reply in replies:
                if isinstance(reply, int):
                    reply = Reply(reply, {"error": f"scripted {reply}"})
                self._scripts[path.lstrip("/")].append(reply)

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path.lstrip("/")]

    def start(self) -> FlakyServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> FlakyServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self._concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self._concurrent)
        try:
            return await self._answer(request)
        finally:
            with self._lock:
                self._concurrent -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path.lstrip("/")
        with self._lock:
            self.received.append(
                Received(
                    method=request.method,
                    path=path,
                    query=dict(request.query),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    parts=_parse_multipart(request.headers.get("Content-Type", ""), body),
                )
            )
            queue = self._scripts.get(path)
            reply = queue.popleft() if queue else Reply()
        if reply.delay_s:
            assert self._stopping is not None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), reply.delay_s)
        if reply.drop == "before":
            assert request.transport is not None
            request.transport.abort()
            # Nothing more to send; aiohttp ignores a response to a closed
            # connection.
            return web.Response(status=200)
        if reply.drop == "mid":
            response = web.StreamResponse(status=200, headers={"Content-Length": "1000"})
            await response.prepare(request)
            await response.write(b'{"dataset_id": "')
            assert request.transport is not None
            request.transport.abort()
            return response
        if isinstance(reply.body, str):
            return web.Response(status=reply.status, text=reply.body, headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)


def _parse_multipart(content_type: str, body: bytes) -> list[Part] | None:
    """Split a multipart body exactly as sent, without forgiving anything."""
    if not content_type.startswith("multipart/form-data"):
        return None
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    assert body.endswith(b"--" + boundary + b"--\r\n"), "bad closing boundary"
    chunks = body[: -len(b"--" + boundary + b"--\r\n")].split(b"--" + boundary + b"\r\n")
    assert chunks[0] == b"", "bytes before the first boundary"
    parts = []
    for chunk in chunks[1:]:
        assert chunk.endswith(b"\r\n"), "part not followed by CRLF"
        head, data = chunk[:-2].split(b"\r\n\r\n", 1)
        headers = [
            (name.strip(), value.strip())
            for name, value in (line.split(":", 1) for line in head.decode().split("\r\n"))
        ]
        disposition = dict(_disposition_params(_header(headers, "content-disposition") or ""))
        parts.append(
            Part(
                headers=headers,
                name=disposition.get("name"),
                filename=disposition.get("filename"),
                content_type=_header(headers, "content-type"),
                data=data,
            )
        )
    return parts


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _disposition_params(value: str) -> Iterator[tuple[str, str]]:
    for item in value.split(";")[1:]:
        key, _, val = item.strip().partition("=")
        yield key, val.strip('"')
