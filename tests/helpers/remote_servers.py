"""Real storage servers on 127.0.0.1 for tests, started once per session.

- ``s3_server``: moto in server mode (an S3 API over HTTP), one bucket.
- ``gcs_server``: gcp-storage-emulator (the GCS JSON API), one bucket.
- ``signed_url_server``: a plain HTTP server that serves objects only at the
  exact request target they were registered with, as S3 does for a presigned
  URL (any change to the query breaks the signature: 403), refuses HEAD as S3
  does for a presigned GET, and records every request line as received.

Each fixture gives ``put(name, data) -> uri`` and the ``storage_options``
segcli needs to read it back.
"""

from __future__ import annotations

import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

BUCKET = "segcli-test-masks"

# Fake credentials and region: moto accepts anything, and setting them keeps
# botocore from walking the real credential chain (files, instance metadata).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class S3Server:
    endpoint_url: str
    bucket: str
    client: Any  # a boto3 S3 client pointed at the server

    @property
    def storage_options(self) -> dict[str, dict[str, Any]]:
        return {"s3": {"endpoint_url": self.endpoint_url, "key": "testing", "secret": "testing"}}

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    import boto3
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS_ENV.items():
            mp.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            client = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            client.create_bucket(Bucket=BUCKET)
            yield S3Server(endpoint, BUCKET, client)
        finally:
            server.stop()


@dataclass
class GcsServer:
    endpoint_url: str
    bucket: str

    @property
    def storage_options(self) -> dict[str, dict[str, Any]]:
        return {"gs": {"endpoint_url": self.endpoint_url, "token": "anon"}}

    def put(self, name: str, data: bytes) -> str:
        # A simple media upload through the JSON API, independent of gcsfs.
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        request = urllib.request.Request(
            f"{self.endpoint_url}/upload/storage/v1/b/{self.bucket}/o?{query}",
            data=data,
            method="POST",
            headers={"Content-Type": "application/octet-stream"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        return f"gs://{self.bucket}/{name}"


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    try:
        # The emulator binds the port we ask for but does not report it, and
        # port 0 (any free port) is what keeps parallel runs apart.
        port = server._api._httpd.server_address[1]
        yield GcsServer(f"http://127.0.0.1:{port}", BUCKET)
    finally:
        server.stop()


@dataclass
class Route:
    status: int
    body: bytes
    content_type: str


@dataclass
class SignedUrlServer:
    base_url: str
    routes: dict[str, Route] = field(default_factory=dict)
    request_lines: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(
        self, target: str, body: bytes, *, status: int = 200, content_type: str = "image/png"
    ) -> str:
        """Serve ``body`` at exactly ``target`` (path and query, as sent); return its URL."""
        assert target.startswith("/")
        self.routes[target] = Route(status, body, content_type)
        return self.base_url + target

    def lines_for(self, path: str) -> list[bytes]:
        """Request lines received whose target starts with ``path``."""
        with self.lock:
            return [
                line for line in self.request_lines if line.split(b" ")[1].startswith(path.encode())
            ]


class _SignedUrlHandler(BaseHTTPRequestHandler):
    server: _Server
    raw_requestline: bytes  # set by BaseHTTPRequestHandler: the line exactly as received

    def _record(self) -> None:
        state = self.server.state
        with state.lock:
            state.request_lines.append(self.raw_requestline)

    def do_GET(self) -> None:
        self._record()
        route = self.server.state.routes.get(self.path)
        if route is None:
            body = b"<?xml version='1.0'?><Error><Code>SignatureDoesNotMatch</Code></Error>"
            self._reply(403, body, "application/xml")
        else:
            self._reply(route.status, route.body, route.content_type)

    def do_HEAD(self) -> None:
        self._record()
        # A presigned GET URL is signed for GET: S3 answers HEAD with 403.
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; requests are recorded instead


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: SignedUrlServer


@pytest.fixture(scope="session")
def signed_url_server() -> Iterator[SignedUrlServer]:
    httpd = _Server(("127.0.0.1", 0), _SignedUrlHandler)
    host, port = httpd.server_address[:2]
    httpd.state = SignedUrlServer(f"http://{host!s}:{port}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
