"""Starting and stopping the server: in a background thread (tests, benchmarks)
or in the foreground until SIGINT/SIGTERM (``segcli serve``)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from segcli.server.app import build_app
from segcli.server.capacity import Capacity
from segcli.server.config import ServerConfig
from segcli.server.routing import PREFIX, STATE
from segcli.server.store import Store

# How long a stop waits for requests in flight before cancelling them (a
# stalled request would otherwise hold shutdown for its whole stall).
SHUTDOWN_TIMEOUT_S = 2.0


class _Running:
    """One listening server: its runner and its store."""

    def __init__(self, runner: web.AppRunner, store: Store, url: str) -> None:
        self.runner = runner
        self.store = store
        self.url = url
        self.capacity = runner.app[STATE].capacity

    @classmethod
    async def open(cls, config: ServerConfig) -> _Running:
        config.check()
        store = Store(config.data_dir)
        try:
            runner = web.AppRunner(
                build_app(config, store), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
            )
            await runner.setup()
            try:
                site = web.TCPSite(runner, config.host, config.port)
                await site.start()
            except BaseException:
                await runner.cleanup()
                raise
        except BaseException:
            store.close()
            raise
        port = runner.addresses[0][1]
        host = f"[{config.host}]" if ":" in config.host else config.host
        return cls(runner, store, f"http://{host}:{port}/" + "/".join(PREFIX))

    async def close(self) -> None:
        try:
            await self.runner.cleanup()
        finally:
            self.store.close()


class LocalServer:
    """The server on a background thread with its own event loop.

    ::

        with LocalServer(ServerConfig(data_dir=tmp, api_keys=("k",))) as server:
            httpx.get(server.url + "/dataset/ds_x/info", auth=("k", ""))
    """

    def __init__(self, config: ServerConfig) -> None:
        config.check()
        self.config = config
        self.url = ""
        self._running: _Running | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> Store:
        """The server's store, for reading what it holds (tests)."""
        if self._running is None:
            raise RuntimeError("the server is not running")
        return self._running.store

    @property
    def capacity(self) -> Capacity:
        """Requests in flight and refused over ``max_inflight``, for reading (tests, bench)."""
        if self._running is None:
            raise RuntimeError("the server is not running")
        return self._running.capacity

    def start(self) -> str:
        """Start listening; returns the base URL ``http://HOST:PORT/v1/nucleus``."""
        if self._thread is not None:
            return self.url
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._running = loop.run_until_complete(_Running.open(self.config))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._running.close())
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()

        thread = threading.Thread(target=main, name="segcli-server", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        assert self._running is not None
        self._loop, self._thread = loop, thread
        self.url = self._running.url
        return self.url

    def stop(self) -> None:
        """Stop listening, finish or cancel requests in flight, close the store."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = self._loop = None
        self._running = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(config: ServerConfig, *, on_ready: Callable[[str], None]) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then stop cleanly.

    ``on_ready`` gets the base URL once the server is listening.
    """
    asyncio.run(_serve(config, on_ready))


async def _serve(config: ServerConfig, on_ready: Callable[[str], None]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        running = await _Running.open(config)
        try:
            on_ready(running.url)
            await stop.wait()
        finally:
            await running.close()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
