"""A real HTTP proxy on loopback that records every request it forwards.

Two clients talk to the same local Nucleus server through it, and the test
compares what each one put on the wire: routes, JSON bodies, multipart parts.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web


@dataclass
class Part:
    name: str | None
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    content_type: str
    body: bytes
    parts: list[Part] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


def split_multipart(content_type: str, body: bytes) -> list[Part]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    parts = []
    for part in message.iter_parts():
        disposition = part.get("Content-Disposition", "")
        params = dict(part.get_params(header="content-disposition") or [])
        parts.append(
            Part(
                name=params.get("name"),
                filename=params.get("filename") if "filename" in disposition else None,
                content_type=part.get_content_type() if part.get("Content-Type") else "",
                data=part.get_payload(decode=True) or b"",
            )
        )
    return parts


class RecordingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[Recorded] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        ctype = request.headers.get("Content-Type", "")
        record = Recorded(request.method, request.path, request.query_string, ctype, body)
        if ctype.startswith("multipart/"):
            record.parts = split_multipart(ctype, body)
        self.requests.append(record)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in {"host", "content-length", "transfer-encoding"}
        }
        async with httpx.AsyncClient(timeout=60) as client:
            reply = await client.request(
                request.method,
                self.upstream + request.raw_path,
                content=body,
                headers=headers,
            )
        return web.Response(
            status=reply.status_code,
            body=reply.content,
            content_type=reply.headers.get("content-type", "application/json").split(";")[0],
        )

    async def _start(self) -> str:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> str:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self.url

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def uploads(self) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if r.method == "POST" and r.path.endswith(("/annotate", "/uploadPredictions"))
        ]
