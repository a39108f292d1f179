"""NucleusClient against a real HTTP server on 127.0.0.1 that misbehaves on cue."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import socket
import subprocess
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from segcli import __version__
from segcli.client import (
    NucleusClient,
    PayloadTooLarge,
    RequestFailed,
    Response,
    RetryEvent,
    encode_multipart,
)
from segcli.errors import AuthError, NotFoundError, UsageError
from segcli.limiter import Limiter
from segcli.model import MaskItem, Segment, Source
from segcli.retry import RetryPolicy
from tests.helpers.flaky_server import FlakyServer, Reply
from tests.helpers.official_client import CURRENT

KEY = "sk_live_SEGCLI-CANARY-9f4e2b7d"  # distinctive: grep for it everywhere
SEED = 1234
T = TypeVar("T")


@pytest.fixture
def server() -> Iterator[FlakyServer]:
    with FlakyServer() as srv:
        yield srv


class Sleeps:
    """An injected sleep that records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)
        await asyncio.sleep(0)


def expected_delays(policy: RetryPolicy, n: int) -> list[float]:
    rng = random.Random(SEED)
    return [policy.delay(attempt, rng) for attempt in range(n)]


def run(
    server: FlakyServer,
    action: Callable[[NucleusClient], Awaitable[T]],
    **kwargs: Any,
) -> T:
    async def main() -> T:
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("rng", random.Random(SEED))
        kwargs.setdefault("sleep", Sleeps())
        async with NucleusClient(server.url, **kwargs) as client:
            return await action(client)

    return asyncio.run(main())


def assert_no_key(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), *map(str, exc.args)):
        assert KEY not in text
        assert base64.b64encode(f"{KEY}:".encode()).decode() not in text


# -- success and request shape ------------------------------------------------


def test_get_returns_parsed_json(server: FlakyServer) -> None:
    server.script("dataset/ds_1/info", Reply(200, {"dataset_id": "ds_1", "length": 3}))
    response = run(server, lambda c: c.get("dataset/ds_1/info"))
    assert response == Response(status=200, body={"dataset_id": "ds_1", "length": 3}, attempts=1)
    (request,) = server.received
    assert request.method == "GET"
    assert request.path == "dataset/ds_1/info"


def test_text_bodies_come_back_as_text(server: FlakyServer) -> None:
    server.script("job/1", Reply(200, "not json"))
    assert run(server, lambda c: c.get("job/1")).body == "not json"


def test_post_json_sends_the_body_and_params(server: FlakyServer) -> None:
    body = {"segmentations": [{"type": "mask", "mask_url": "s3://b/m.png"}], "update": False}
    run(server, lambda c: c.post_json("dataset/ds_1/annotate", body, params={"async": "1"}))
    (request,) = server.received
    assert request.method == "POST"
    assert request.query == {"async": "1"}
    assert request.headers["content-type"] == "application/json"
    assert request.json() == body


def test_basic_auth_with_the_key_as_user_and_empty_password(server: FlakyServer) -> None:
    run(server, lambda c: c.get("x"))
    headers = server.received[0].headers
    assert headers["authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert "x-limited-access-key" not in headers
    assert headers["user-agent"] == f"segcli/{__version__}"


def test_limited_access_key_header_and_no_basic_auth(server: FlakyServer) -> None:
    run(server, lambda c: c.get("x"), api_key=None, limited_access_key=KEY)
    headers = server.received[0].headers
    assert headers["x-limited-access-key"] == KEY
    assert "authorization" not in headers


def test_trailing_slash_of_endpoint_is_stripped(server: FlakyServer) -> None:
    async def main() -> None:
        async with NucleusClient(server.url + "/v1/nucleus/", api_key=KEY) as client:
            await client.get("dataset/ds_1/info")

    asyncio.run(main())
    assert server.received[0].path == "v1/nucleus/dataset/ds_1/info"


@pytest.mark.parametrize(
    ("keys", "needle"),
    [({}, "no API key"), ({"api_key": "a", "limited_access_key": "b"}, "exactly one")],
)
def test_exactly_one_key(keys: dict[str, Any], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        NucleusClient("http://127.0.0.1:1", **keys)


def test_endpoint_must_be_http() -> None:
    with pytest.raises(UsageError, match="not an http"):
        NucleusClient("ftp://example.com", api_key=KEY)


# -- retries ------------------------------------------------------------------


def test_sleep_sequence_on_repeated_503(server: FlakyServer) -> None:
    server.script("r", 503, 502, 500, 200)
    sleeps = Sleeps()
    events: list[RetryEvent] = []
    response = run(server, lambda c: c.get("r"), sleep=sleeps, on_retry=events.append)
    assert response.attempts == 4
    assert sleeps.delays == pytest.approx(expected_delays(RetryPolicy(), 3))
    assert [(e.route, e.attempt, e.status) for e in events] == [
        ("r", 1, 503),
        ("r", 2, 502),
        ("r", 3, 500),
    ]
    assert [e.delay_s for e in events] == sleeps.delays
    assert "scripted 503" in events[0].error
    assert len(server.received) == 4


def test_retry_after_is_honoured(server: FlakyServer) -> None:
    server.script(
        "r",
        Reply(503, {"error": "busy"}, headers={"Retry-After": "7"}),
        Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}),
        200,
    )
    sleeps = Sleeps()
    run(server, lambda c: c.get("r"), sleep=sleeps)
    backoff = expected_delays(RetryPolicy(), 2)
    assert backoff[0] < 7 and backoff[1] <= 1.0  # so Retry-After is what decides here
    assert sleeps.delays == [7.0, 1.0]


def test_backoff_wins_over_a_shorter_retry_after(server: FlakyServer) -> None:
    class Top(random.Random):
        def random(self) -> float:
            return 1.0

    server.script("r", 429, 429, Reply(429, headers={"Retry-After": "0"}), 200)
    sleeps = Sleeps()
    run(server, lambda c: c.get("r"), sleep=sleeps, rng=Top())
    assert sleeps.delays == [0.5, 1.0, 2.0]


def test_retry_after_as_http_date(server: FlakyServer) -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    server.script("r", Reply(503, headers={"Retry-After": when}), 200)
    sleeps = Sleeps()
    run(server, lambda c: c.get("r"), sleep=sleeps)
    assert 55 <= sleeps.delays[0] <= 60


def test_exhausted_retries_raise_the_last_error(server: FlakyServer) -> None:
    server.script("r", 503, 504, Reply(500, {"error": "database on fire"}))
    sleeps = Sleeps()
    with pytest.raises(RequestFailed) as caught:
        run(server, lambda c: c.get("r"), sleep=sleeps, retry=RetryPolicy(retries=2))
    exc = caught.value
    assert type(exc) is RequestFailed
    assert (exc.status, exc.attempts) == (500, 3)
    assert "database on fire" in exc.message and "3 tries" in exc.message
    assert len(sleeps.delays) == 2
    assert len(server.received) == 3


def test_no_retries_means_one_request(server: FlakyServer) -> None:
    server.script("r", 503)
    with pytest.raises(RequestFailed) as caught:
        run(server, lambda c: c.get("r"), retry=RetryPolicy(retries=0))
    assert caught.value.attempts == 1
    assert len(server.received) == 1


@pytest.mark.parametrize(
    ("status", "kind", "needle"),
    [
        (400, RequestFailed, "batch is malformed"),
        (401, AuthError, "NUCLEUS_API_KEY"),
        (403, AuthError, "NUCLEUS_API_KEY"),
        (404, NotFoundError, "batch is malformed"),
        (413, PayloadTooLarge, "too large"),
        (422, RequestFailed, "batch is malformed"),
    ],
)
def test_client_errors_are_not_retried(
    server: FlakyServer, status: int, kind: type[Exception], needle: str
) -> None:
    server.script("r", Reply(status, {"error": "batch is malformed"}))
    sleeps = Sleeps()
    with pytest.raises(kind) as caught:
        run(server, lambda c: c.post_json("r", {"a": 1}), sleep=sleeps)
    assert needle in str(caught.value)
    assert "batch is malformed" in str(caught.value)  # the server's own words
    assert sleeps.delays == []
    assert len(server.received) == 1
    if isinstance(caught.value, RequestFailed):
        assert (caught.value.status, caught.value.attempts) == (status, 1)


def test_payload_too_large_is_a_request_failure_with_the_html_flattened(
    server: FlakyServer,
) -> None:
    html = "<html>\n<head><title>413 Request Entity Too Large</title></head>\n" + "x" * 5000
    server.script("r", Reply(413, html))
    with pytest.raises(PayloadTooLarge) as caught:
        run(server, lambda c: c.get("r"))
    assert isinstance(caught.value, RequestFailed)
    assert "413 Request Entity Too Large" in caught.value.message
    assert "\n" not in caught.value.message
    assert len(caught.value.message) < 700


def test_auth_error_names_the_limited_access_variable(server: FlakyServer) -> None:
    server.script("r", 401)
    with pytest.raises(AuthError, match="NUCLEUS_LIMITED_ACCESS_KEY"):
        run(server, lambda c: c.get("r"), api_key=None, limited_access_key=KEY)


def test_timeout_is_retried(server: FlakyServer) -> None:
    server.script("r", Reply(delay_s=5.0), Reply(200, {"second": True}))
    events: list[RetryEvent] = []
    started = time.monotonic()
    response = run(server, lambda c: c.get("r"), timeout_s=0.2, on_retry=events.append)
    assert time.monotonic() - started < 4.0
    assert response.body == {"second": True}
    assert response.attempts == 2
    assert events[0].status is None
    assert "Timeout" in events[0].error


@pytest.mark.parametrize("drop", ["before", "mid"])
def test_dropped_connection_is_retried(server: FlakyServer, drop: str) -> None:
    server.script("r", Reply(drop=drop), Reply(drop=drop), 200)  # type: ignore[arg-type]
    events: list[RetryEvent] = []
    # A POST, as uploads are: aiohttp itself quietly reconnects once when a
    # kept-alive connection closes under an idempotent GET, which would hide
    # an attempt from the count.
    response = run(server, lambda c: c.post_json("r", b"{}"), on_retry=events.append)
    assert response.attempts == 3
    assert [e.status for e in events] == [None, None]
    expected = "ServerDisconnectedError" if drop == "before" else "ClientPayloadError"
    assert all(expected in e.error for e in events), events


@pytest.mark.parametrize(
    ("first", "uncertain"),
    [
        pytest.param(503, False, id="503"),
        pytest.param(429, False, id="429"),
        pytest.param(500, True, id="500"),
        pytest.param(504, True, id="504"),
        pytest.param(Reply(drop="before"), True, id="closed-before-answering"),
        pytest.param(Reply(drop="mid"), True, id="cut-mid-answer"),
        pytest.param(Reply(delay_s=5.0), True, id="timed-out"),
    ],
)
def test_an_answer_after_a_failure_that_may_have_landed_says_so(
    server: FlakyServer, first: int | Reply, uncertain: bool
) -> None:
    # 503 and 429 say the server took nothing; after the others the request
    # may have been applied with only its answer lost.
    server.script("r", first, 200)
    response = run(server, lambda c: c.post_json("r", b"{}"), timeout_s=0.5)
    assert response.attempts == 2
    assert response.uncertain is uncertain


def test_connection_refused_is_retried_then_fails() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()

    async def main() -> None:
        async with NucleusClient(
            f"http://127.0.0.1:{port}",
            api_key=KEY,
            sleep=sleeps,
            retry=RetryPolicy(retries=3),
        ) as client:
            await client.get("dataset/ds_1/info")

    with pytest.raises(RequestFailed) as caught:
        asyncio.run(main())
    assert caught.value.status is None
    assert caught.value.attempts == 4
    assert f"ClientConnectorError: cannot connect to 127.0.0.1:{port}" in caught.value.message
    assert len(sleeps.delays) == 3
    assert_no_key(caught.value)


# -- concurrency --------------------------------------------------------------


def test_in_flight_requests_never_exceed_the_bound(server: FlakyServer) -> None:
    server.script("slow", *[Reply(delay_s=0.05) for _ in range(24)])

    async def many(client: NucleusClient) -> list[Response]:
        return await asyncio.gather(*(client.get("slow") for _ in range(24)))

    responses = run(server, many, max_in_flight=3)
    assert len(responses) == 24
    assert server.max_concurrent == 3


def test_a_retry_waiting_out_its_backoff_does_not_hold_a_slot(server: FlakyServer) -> None:
    server.script("a", 503, 200)
    release = asyncio.Event()
    waiting: list[float] = []

    async def blocking_sleep(delay_s: float) -> None:
        waiting.append(delay_s)
        await release.wait()

    async def scenario(client: NucleusClient) -> tuple[Response, Response]:
        first = asyncio.create_task(client.get("a"))
        deadline = time.monotonic() + 5
        while not waiting:  # until "a" failed once and sleeps
            assert time.monotonic() < deadline, "the first request never retried"
            await asyncio.sleep(0.01)
        # One slot only: this can pass only if the sleeping retry let go of it.
        second = await asyncio.wait_for(client.get("b"), timeout=5)
        assert not first.done()
        release.set()
        return await asyncio.wait_for(first, timeout=5), second

    first, second = run(server, scenario, max_in_flight=1, sleep=blocking_sleep)
    assert (first.attempts, second.attempts) == (2, 1)
    assert [r.path for r in server.received] == ["a", "b", "a"]
    assert server.max_concurrent == 1


def test_an_adaptive_limiter_bounds_what_is_in_flight_and_the_connection_pool(
    server: FlakyServer,
) -> None:
    server.script("slow", *[Reply(delay_s=0.05) for _ in range(24)])
    limiter = Limiter(initial=3, max_limit=5)
    pools: list[int] = []

    async def many(client: NucleusClient) -> list[Response]:
        pools.append(client.max_in_flight)  # what its connection pool is sized by
        return await asyncio.gather(*(client.get("slow") for _ in range(24)))

    responses = run(server, many, limiter=limiter)
    assert len(responses) == 24
    assert pools == [5]  # the pool follows the limiter's ceiling
    assert server.max_concurrent <= 5
    assert limiter.peak == 5  # 24 answers, none refused: it grew to its ceiling


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(429, id="429"),
        pytest.param(503, id="503"),
        pytest.param(504, id="504"),
        pytest.param(Reply(delay_s=5.0), id="timed-out"),
    ],
)
def test_answers_that_say_the_service_is_overloaded_cut_the_limit(
    server: FlakyServer, first: int | Reply
) -> None:
    server.script("r", first, 200)
    limiter = Limiter()
    run(server, lambda c: c.post_json("r", b"{}"), timeout_s=0.5, limiter=limiter)
    assert limiter.cutbacks == 1
    assert limiter.limit == 5  # refused with one in flight: cut by half, the most


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(500, id="500"),
        pytest.param(502, id="502"),
        pytest.param(Reply(drop="before"), id="closed-before-answering"),
    ],
)
def test_answers_that_say_nothing_about_load_leave_the_limit(
    server: FlakyServer, first: int | Reply
) -> None:
    server.script("r", first, 200)
    limiter = Limiter()
    run(server, lambda c: c.post_json("r", b"{}"), limiter=limiter)
    assert (limiter.cutbacks, limiter.limit) == (0, 10)


def test_a_429s_retry_after_holds_back_every_other_request(server: FlakyServer) -> None:
    """Not only the refused request waits: none starts before the time the server asked."""
    server.script("a", Reply(429, headers={"Retry-After": "30"}), 200)
    gate = asyncio.Event()
    slept: list[float] = []

    async def sleep(delay_s: float) -> None:
        slept.append(delay_s)
        await gate.wait()

    async def until(sleeping: int) -> None:
        deadline = time.monotonic() + 5
        while len(slept) < sleeping:
            assert time.monotonic() < deadline, f"{sleeping} sleeps expected, saw {slept}"
            await asyncio.sleep(0.01)

    async def scenario(client: NucleusClient) -> list[str]:
        first = asyncio.ensure_future(client.get("a"))
        await until(1)  # "a" was refused and now waits out its Retry-After
        second = asyncio.ensure_future(client.get("b"))
        await until(2)  # "b" waits at the gate, unsent
        sent_while_closed = [r.path for r in server.received]
        gate.set()
        await asyncio.gather(first, second)
        return sent_while_closed

    limiter = Limiter(sleep=sleep)
    sent_while_closed = run(server, scenario, sleep=sleep, limiter=limiter)
    assert sent_while_closed == ["a"]
    assert slept[0] == 30.0 and 29 < slept[1] <= 30
    assert sorted(r.path for r in server.received) == ["a", "a", "b"]


# -- multipart ----------------------------------------------------------------

FILES = [
    ("/data/a b/m0.png", b"\x89PNG\r\n\x1a\nzero"),
    ("/data/ü+%/m1.png", b"\x89PNG\r\n\x1a\none"),
]
REQUEST = {
    "segmentations": [
        {"type": "mask", "mask_url": path, "annotations": [{"label": "bg", "index": 0}]}
        for path, _ in FILES
    ],
    "update": False,
}


def test_multipart_parts_in_order_exactly(server: FlakyServer) -> None:
    run(server, lambda c: c.post_multipart("dataset/ds_1/annotate", REQUEST, FILES))
    (request,) = server.received
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert request.parts is not None
    first, *masks = request.parts
    assert first.headers == [
        ("Content-Type", "application/json"),
        ("Content-Disposition", 'form-data; name="serialized_request"'),
    ]
    assert (first.name, first.filename) == ("serialized_request", None)
    assert first.data == json.dumps(REQUEST).encode()
    assert [(p.name, p.filename, p.content_type, p.data) for p in masks] == [
        ("mask", "%2Fdata%2Fa%20b%2Fm0.png", "image/png", FILES[0][1]),
        ("mask", "%2Fdata%2F%C3%BC%2B%25%2Fm1.png", "image/png", FILES[1][1]),
    ]


def test_a_retried_multipart_request_sends_the_same_bytes(server: FlakyServer) -> None:
    server.script("up", Reply(drop="mid"), 503, 200)
    response = run(server, lambda c: c.post_multipart("up", REQUEST, FILES))
    assert response.attempts == 3
    bodies = {r.body for r in server.received}
    assert len(server.received) == 3 and len(bodies) == 1
    parts = server.received[-1].parts
    assert parts is not None and [p.data for p in parts[1:]] == [data for _, data in FILES]


_OFFICIAL_FORM = textwrap.dedent(
    """
    import asyncio, base64, json, sys
    from nucleus.annotation import Segment, SegmentationAnnotation
    from nucleus.annotation_uploader import AnnotationUploader
    from nucleus.async_utils import FormDataContextHandler

    paths = json.loads(sys.argv[1])
    anns = [
        SegmentationAnnotation(
            mask_url=p,
            annotations=[Segment(label="bg", index=0),
                         Segment(label="car", index=1, metadata={"color": "red"})],
            reference_id=f"img {i}", annotation_id=f"ann_{i}")
        for i, p in enumerate(paths)
    ]
    uploader = AnnotationUploader.__new__(AnnotationUploader)
    fn = uploader.get_form_data_and_file_pointers_fn(anns, False)

    class Sink:
        def __init__(self):
            self.data = b""
        async def write(self, chunk):
            self.data += bytes(chunk)

    async def main():
        with FormDataContextHandler(fn) as form:
            writer = form()
            sink = Sink()
            await writer.write(sink)
            print(json.dumps({"boundary": writer.boundary,
                              "body": base64.b64encode(sink.data).decode()}))

    asyncio.run(main())
    """
)


@pytest.mark.nucleus
def test_multipart_body_matches_the_official_client_byte_for_byte(tmp_path: Path) -> None:
    python = CURRENT.python  # fails with how to install the client when it is missing
    folder = tmp_path / "a b" / "ü"
    folder.mkdir(parents=True)
    paths = []
    for i in range(3):
        path = folder / f"m+{i}%.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes([i]) * 50)
        paths.append(str(path))
    done = subprocess.run(
        [python, "-c", _OFFICIAL_FORM, json.dumps(paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    official = json.loads(done.stdout)
    segments = (Segment(0, "bg"), Segment(1, "car", {"color": "red"}))
    items = [
        MaskItem(f"img {i}", p, segments, Source("m.csv", i + 2), annotation_id=f"ann_{i}")
        for i, p in enumerate(paths)
    ]
    serialized = {"segmentations": [item.payload() for item in items], "update": False}
    files = [(p, Path(p).read_bytes()) for p in paths]
    ours, content_type = encode_multipart(serialized, files, boundary=official["boundary"])
    assert content_type == f"multipart/form-data; boundary={official['boundary']}"
    assert ours == base64.b64decode(official["body"])


# -- the key never leaks --------------------------------------------------------


def test_key_never_appears_in_errors_even_when_the_server_echoes_it(server: FlakyServer) -> None:
    echo = f"bad credentials: {KEY} / Basic {base64.b64encode(f'{KEY}:'.encode()).decode()}"
    server.script("auth", Reply(401, {"error": echo}))
    server.script("bad", Reply(400, echo))
    server.script("busy", Reply(503, {"error": echo}), Reply(503, {"error": echo}))
    events: list[RetryEvent] = []
    kinds: list[tuple[str, type[Exception]]] = [
        ("auth", AuthError),
        ("bad", RequestFailed),
        ("busy", RequestFailed),
    ]
    for route, kind in kinds:

        async def call(client: NucleusClient, route: str = route) -> Response:
            return await client.get(route)

        with pytest.raises(kind) as caught:
            run(server, call, retry=RetryPolicy(retries=1), on_retry=events.append)
        assert_no_key(caught.value)
        assert "***" in str(caught.value)
    assert events and all(KEY not in e.error and KEY not in repr(e) for e in events)


def test_key_is_not_in_the_client_repr() -> None:
    client = NucleusClient("http://127.0.0.1:1", api_key=KEY)
    assert KEY not in repr(client)
    assert KEY not in repr(vars(client) if hasattr(client, "__dict__") else client)
    assert client.scrub(f"x {KEY} y") == "x *** y"
    asyncio.run(client.aclose())


# -- against the local Nucleus server ------------------------------------------


def _png(value: int) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (4, 4), value).save(out, format="PNG")
    return out.getvalue()


def test_batches_land_exactly_once_through_injected_faults(tmp_path: Path) -> None:
    from segcli.server import FaultConfig, LocalServer, ServerConfig, seed_dataset

    refs = [f"img_{i:02d}" for i in range(24)]
    dataset = seed_dataset(tmp_path, "faults", refs)
    faults = FaultConfig(
        seed=3, rate_503=0.2, rate_429=0.15, retry_after_s=0.01, rate_500=0.1, rate_drop=0.15
    )
    config = ServerConfig(data_dir=tmp_path, api_keys=(KEY,), faults=faults)
    segments = (Segment(0, "bg"), Segment(1, "car"))
    events: list[RetryEvent] = []

    async def upload(url: str) -> list[Response]:
        async with NucleusClient(
            url, api_key=KEY, sleep=Sleeps(), max_in_flight=4, on_retry=events.append
        ) as client:
            calls = []
            for start in range(0, len(refs), 2):
                batch = [
                    MaskItem(r, str(tmp_path / f"{r}.png"), segments, Source("m.csv", 1))
                    for r in refs[start : start + 2]
                ]
                request = {"segmentations": [i.payload() for i in batch], "update": False}
                files = [(i.mask, _png(n % 2)) for n, i in enumerate(batch)]
                calls.append(client.post_multipart(f"dataset/{dataset}/annotate", request, files))
            return await asyncio.gather(*calls)

    with LocalServer(config) as server:
        responses = asyncio.run(upload(server.url))
        stored = server.store.segmentations(dataset)
    assert events, "the faults never fired"
    assert {e.status for e in events} - {None} <= {429, 500, 503}
    assert sum(r.body["annotations_processed"] for r in responses) == len(refs)
    assert sorted(row["reference_id"] for row in stored) == refs  # each once


def test_a_wrong_key_against_the_local_server_is_an_auth_error(tmp_path: Path) -> None:
    from segcli.server import LocalServer, ServerConfig

    config = ServerConfig(data_dir=tmp_path, api_keys=("the-right-key",))
    with LocalServer(config) as server, pytest.raises(AuthError, match="NUCLEUS_API_KEY") as caught:
        run_against(server.url, lambda c: c.get("dataset/ds_x/info"))
    assert_no_key(caught.value)


def run_against(url: str, action: Callable[[NucleusClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with NucleusClient(url, api_key=KEY, sleep=Sleeps()) as client:
            return await action(client)

    return asyncio.run(main())
