"""``segcli serve`` against hostile clients: keys, tokens, huge and broken bodies.

Fills the gaps the API tests leave: a wrong key (not only a missing one) on
every route, the token-guarded routes, a body refused before it is read (by
talking raw HTTP, so the server answers while the client is still sending),
and malformed bodies on every route that takes one.
"""

from __future__ import annotations

import base64
import secrets
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx
import pytest

from segcli.server import LocalServer
from segcli.server.routing import ROUTER
from tests.helpers.server_fixture import (
    SERVER_KEY,
    api,
    multipart,
    new_dataset,
    png,
    segmentation,
    wait_until,
)

LIMIT = 50_000


def concrete(parts: tuple[str, ...], ids: dict[str, str]) -> str:
    return "/".join(ids.get(p.strip("{}*"), "x") if p.startswith("{") else p for p in parts)


@pytest.fixture
def ids(nucleus_server: LocalServer) -> dict[str, str]:
    """Real ids for every route parameter, so a refusal is about the request itself."""
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a"])
        model = client.post("models/add", json={"name": "m", "reference_id": "m"}).json()
        run = client.post(f"dataset/{dataset}/modelRun/create", json={"name": "r"}).json()
    return {
        "dataset_id": dataset,
        "model_id": model["model_id"],
        "run_id": run["model_run_id"],
        "reference_id": "a",
        "request_id": "0" * 32,
    }


@pytest.mark.parametrize(
    "credentials",
    [
        {"Authorization": "Basic " + base64.b64encode(b"wrong-key:").decode()},
        {"Authorization": "Basic " + base64.b64encode(SERVER_KEY.upper().encode() + b":").decode()},
        {"Authorization": "Bearer " + SERVER_KEY},
        {"Authorization": "Basic !!!not-base64"},
        {"x-limited-access-key": "wrong-key"},
        {"x-limited-access-key": ""},
    ],
    ids=["wrong-key", "key-in-other-case", "bearer", "garbled", "wrong-limited", "empty-limited"],
)
def test_every_route_refuses_a_wrong_key(
    nucleus_server: LocalServer, ids: dict[str, str], credentials: dict[str, str]
) -> None:
    checked = 0
    with httpx.Client(base_url=nucleus_server.url + "/", headers=credentials) as client:
        for route in ROUTER.routes:
            if not route.auth:
                continue
            path = concrete(route.parts, ids)
            reply = client.request(route.method, path, json={"segmentations": []})
            assert reply.status_code == 401, (route.method, path, reply.text)
            assert SERVER_KEY not in reply.text
            checked += 1
    assert checked >= 20


def test_routes_without_a_key_need_an_unguessable_token(
    nucleus_server: LocalServer, ids: dict[str, str]
) -> None:
    base = nucleus_server.url
    for token in (secrets.token_urlsafe(32), "..%2F..%2Fnucleus.db", "%2E%2E"):
        put = httpx.put(f"{base}/_upload/{token}", content=b'{"a": 1}\n')
        assert put.status_code in (403, 404), (token, put.status_code)
    for name in (secrets.token_hex(16) + ".png", "..%2Fnucleus.db", "..", "nucleus.db"):
        assert httpx.get(f"{base}/_masks/{name}").status_code == 404, name
    # and a real signed URL works once only
    with api(nucleus_server) as client:
        signed = client.get(f"dataset/{ids['dataset_id']}/signedUrl/{'1' * 32}").json()
    assert httpx.put(signed["signed_url"], content=b"").status_code == 200
    assert httpx.put(signed["signed_url"], content=b"").status_code in (403, 404, 409)


# -- bodies refused before they are read --------------------------------------------------


@contextmanager
def raw_connection(server: LocalServer) -> Iterator[socket.socket]:
    url = urlsplit(server.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    try:
        yield sock
    finally:
        sock.close()


def status_of(sock: socket.socket) -> int:
    """The status code of the answer, read while the request body is still unsent."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def post_head(server: LocalServer, route: str, headers: dict[str, str]) -> bytes:
    path = urlsplit(server.url).path + "/" + route
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


AUTH = {"Authorization": "Basic " + base64.b64encode(f"{SERVER_KEY}:".encode()).decode()}


@pytest.fixture
def small_server(make_nucleus_server: Callable[..., LocalServer]) -> LocalServer:
    return make_nucleus_server(max_body_bytes=LIMIT)


def test_a_huge_declared_body_is_refused_before_it_is_read(small_server: LocalServer) -> None:
    with api(small_server) as client:
        dataset = new_dataset(client, ["a"])
    route = f"dataset/{dataset}/annotate"
    for headers, expected in (
        ({**AUTH, "Content-Length": str(2**40)}, 413),  # a terabyte, announced
        ({"Content-Length": str(2**40)}, 401),  # and without a key: refused first
    ):
        with raw_connection(small_server) as sock:
            head = {"Content-Type": "application/json", **headers}
            sock.sendall(post_head(small_server, route, head) + b'{"segmentations": [')
            # only the head and 20 bytes were sent: the answer cannot wait for the rest
            assert status_of(sock) == expected
    assert small_server.store.count("segmentations") == 0


def test_a_streamed_body_is_cut_off_at_the_limit(small_server: LocalServer) -> None:
    with api(small_server) as client:
        dataset = new_dataset(client, ["a"])
    head = {**AUTH, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    piece = b"x" * 8192
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with raw_connection(small_server) as sock:
        sock.sendall(post_head(small_server, f"dataset/{dataset}/annotate", head))
        sent = 0
        while sent <= LIMIT + len(piece):  # just past the limit; the body never ends
            sock.sendall(chunk)
            sent += len(piece)
        assert status_of(sock) == 413
    assert small_server.store.count("segmentations") == 0


# -- malformed bodies on every route that takes one -----------------------------------------

BAD_BODIES = [
    ("application/json", b"{not json"),
    ("application/json", b"\xff\xfe\x00garbage"),
    ("application/json", b"[1, 2, 3]"),
    ("application/json", b'"a string"'),
    ("application/json", b'{"segmentations": "nope", "items": 5, "name": ["x"]}'),
    ("multipart/form-data; boundary=b", b"--b\r\nno headers, no end"),
    ("multipart/form-data", b"no boundary parameter at all"),
    ("text/plain", b"\x00\x01\x02"),
]


def test_malformed_bodies_on_every_body_route_are_400(
    nucleus_server: LocalServer, ids: dict[str, str]
) -> None:
    checked = 0
    with api(nucleus_server) as client:
        for route in ROUTER.routes:
            if route.method not in ("POST", "PUT") or not route.auth:
                continue
            path = concrete(route.parts, ids)
            for content_type, body in BAD_BODIES:
                reply = client.request(
                    route.method, path, content=body, headers={"Content-Type": content_type}
                )
                assert reply.status_code == 400, (path, content_type, body, reply.text)
                assert reply.json()["error"]
                checked += 1
        # a valid request still works afterwards: nothing was left half-done
        ok = client.post(
            f"dataset/{ids['dataset_id']}/annotate",
            files=multipart([segmentation("a", "a.png")], [("a.png", png())]),
        )
    assert ok.status_code == 200 and ok.json()["annotations_processed"] == 1
    assert checked >= 8 * len(BAD_BODIES)
    assert nucleus_server.store.count("segmentations") == 1


def test_a_malformed_signed_upload_fails_its_job_not_the_server(
    nucleus_server: LocalServer, ids: dict[str, str]
) -> None:
    dataset = ids["dataset_id"]
    with api(nucleus_server) as client:
        signed = client.get(f"dataset/{dataset}/signedUrl/{'2' * 32}").json()["signed_url"]
        body = b"\xff\xfe{not ndjson\n[1]\n" + b'{"reference_id": 5}\n' + b"\x00" * 100
        assert httpx.put(signed, content=body).status_code == 200  # stored as sent
        job = client.post(f"dataset/{dataset}/annotate?async=1", json={"requestId": "2" * 32})
        job_id = job.json()["job_id"]
        wait_until(lambda: client.get(f"job/{job_id}").json()["status"] != "Running")
        status = client.get(f"job/{job_id}").json()["status"]
        errors = client.get(f"job/{job_id}/errors").json()
        still = client.get(f"dataset/{dataset}/info")
    assert status.startswith("Errored"), status
    assert errors and all(isinstance(e, str) for e in errors)
    assert still.status_code == 200
    assert nucleus_server.store.count("segmentations") == 0
