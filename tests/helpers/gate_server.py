"""An HTTP server for masks that can hold one of them: the next request for a held
path waits until the test releases it, so a test knows a worker is mid-task.

    with GateServer() as gate:
        url = gate.put("/slow.png", png)
        gate.hold("/slow.png")
        ...start a run...
        gate.wait_for_request("/slow.png")   # a worker is reading it now
        gate.release()

Every request is counted by path. A held request gives up after ``HOLD_S``, so
a test that fails never leaves a thread behind for long.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

HOLD_S = 120.0


class GateServer:
    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.held: set[str] = set()
        self.requests: Counter[str] = Counter()
        self.lock = threading.Condition()
        self.released = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.gate = self
        host, port = self._httpd.server_address[:2]
        self.base_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> GateServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def put(self, path: str, body: bytes) -> str:
        self.routes[path] = body
        return self.base_url + path

    def hold(self, path: str) -> None:
        """The next request for ``path`` waits for ``release``."""
        with self.lock:
            self.held.add(path)

    def count(self, path: str) -> int:
        with self.lock:
            return self.requests[path]

    def wait_for_request(self, path: str, n: int = 1, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while self.requests[path] < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{path} was requested {self.requests[path]} times")
                self.lock.wait(left)

    def release(self) -> None:
        self.released.set()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        gate = self.server.gate
        path = self.path
        with gate.lock:
            gate.requests[path] += 1
            held = path in gate.held
            gate.held.discard(path)
            gate.lock.notify_all()
        if held:
            gate.released.wait(HOLD_S)
        body = gate.routes.get(path)
        status = 200 if body is not None else 404
        body = body if body is not None else b"not found"
        try:
            self.send_response(status)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the reader is gone (a killed worker)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    gate: GateServer
