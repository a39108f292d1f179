"""The Nucleus HTTP client: one ``aiohttp.ClientSession`` per run, our retries.

Request errors, by what the caller does with them::

    RequestFailed            this request is lost (retries exhausted, or a 4xx
     │                       that retrying cannot fix); the caller marks the
     │                       batch failed and goes on with the others
     └── PayloadTooLarge     413: the caller splits the batch and tries again
    AuthError (401/403)      the whole run stops: nothing will get through
    NotFoundError (404)      the whole run stops: wrong dataset, model or run

Retries are ours rather than the HTTP library's so that a request waiting
out its backoff gives its in-flight slot to another one: a slot of the
``Limiter`` is held only while a request is on the wire, and each answer
tells the limiter how the service is coping (``limiter.py``).

aiohttp rather than httpx: at 20 requests in flight the client's own CPU per
request is what limits a remote-URL upload (the server answers a 20-item
batch in ~1.5 ms), and aiohttp spends ~0.6 ms of CPU on a 16 KB POST where
httpx (pure-Python HTTP parsing, anyio) spends ~2 ms. ``make bench`` shows it.

The API key lives in request headers only. Every message this module builds
goes through ``_Secrets.scrub`` anyway, because a server (or a proxy) may
echo a header back in an error body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import ssl
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from segcli import __version__
from segcli.defaults import DEFAULT_ENDPOINT
from segcli.errors import AuthError, NotFoundError, UsageError
from segcli.limiter import OVERLOAD_STATUS, Limiter
from segcli.retry import RETRYABLE_STATUS, RetryPolicy, retry_after_s
from segcli.wire import encode_multipart

TIMEOUT_S = 60.0  # the service documents a one-minute limit per call
MAX_IN_FLIGHT = 8
USER_AGENT = f"segcli/{__version__}"
LIMITED_ACCESS_HEADER = "x-limited-access-key"
# Long enough to show a server's JSON error, short enough for a log line
# when a proxy answers with a whole HTML page.
MESSAGE_MAX_CHARS = 500

# Network trouble worth another try: refused or reset connections, a body cut
# short, a malformed answer (a proxy restarting), a timeout. Everything else
# aiohttp raises (InvalidURL, a non-HTTP scheme...) is our own mistake and
# would fail the same way again.
_RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientResponseError,
    asyncio.TimeoutError,
)


# Failed attempts that prove the server did nothing: no connection was made,
# or the server said it is not taking requests. After any other failure (a
# connection cut, a read timed out, a 500 or 504) the request may have been
# applied with only its answer lost.
_NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)
_NOT_APPLIED_STATUS = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Any  # parsed JSON, or the text when the body is not JSON
    attempts: int  # requests sent, the successful one included
    #: An earlier attempt failed in a way that does not rule out that the
    #: server applied it: this answer may describe a second copy of the request.
    uncertain: bool = False


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """A failed attempt about to be retried, for progress displays and logs."""

    route: str
    attempt: int  # 1 = the first request failed
    status: int | None  # None for a network error or a timeout
    error: str  # what went wrong; never contains the key
    delay_s: float  # how long the client now waits before the next attempt


class RequestFailed(Exception):
    """A request that will not succeed: retries exhausted or a non-retryable status."""

    def __init__(self, message: str, *, status: int | None, attempts: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"attempts={self.attempts!r})"
        )


class PayloadTooLarge(RequestFailed):
    """413: the body is over the server's limit; send the batch in smaller pieces."""


class _Secrets:
    """The strings that must never leave this process, and how to blank them."""

    __slots__ = ("_values",)

    def __init__(self, key: str) -> None:
        basic = base64.b64encode(f"{key}:".encode()).decode("ascii")
        # Longest first, so a value containing another is blanked whole.
        found = {key, basic, urllib.parse.quote(key, safe="")}
        self._values = tuple(sorted((v for v in found if v), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text

    def __repr__(self) -> str:
        return "_Secrets(***)"


class NucleusClient:
    """Speaks the Nucleus upload routes; see ``docs/nucleus-protocol.md`` for the wire format.

    Use one per run, as an async context manager. ``sleep`` and ``rng`` are
    injectable so tests can check the exact waits without waiting.
    ``limiter`` decides how many requests are in flight (an upload passes an
    adaptive one); without it, ``max_in_flight`` at most, fixed.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        api_key: str | None = None,
        limited_access_key: str | None = None,
        timeout_s: float = TIMEOUT_S,
        max_in_flight: int = MAX_IN_FLIGHT,
        limiter: Limiter | None = None,
        retry: RetryPolicy = RetryPolicy(),
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> None:
        from segcli.settings import Credentials

        credentials = Credentials(api_key=api_key, limited_access_key=limited_access_key)
        key = credentials.key  # checks: exactly one, and not empty
        self._secrets = _Secrets(key)
        # Named in messages so the user knows which variable to fix.
        self.key_variable = credentials.variable
        endpoint = endpoint.strip().rstrip("/")
        if not endpoint.startswith(("http://", "https://")):
            raise UsageError(
                f"endpoint {self._secrets.scrub(endpoint)!r} is not an http(s) URL; "
                f"use e.g. {DEFAULT_ENDPOINT}"
            )
        if timeout_s <= 0:
            raise UsageError(f"timeout must be positive, not {timeout_s}")
        if limiter is None:
            if max_in_flight < 1:
                raise UsageError(f"concurrency must be 1 or more, not {max_in_flight}")
            limiter = Limiter.fixed(max_in_flight, sleep=sleep)
        self.endpoint = endpoint
        self.retry = retry
        self.limiter = limiter
        # The connection pool follows the limiter's ceiling: a connection
        # per request in flight, never a request queued for a connection.
        self.max_in_flight = limiter.max_limit
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._on_retry = on_retry
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key is not None:
            # Basic auth, key as user and an empty password, as a fixed header:
            # the same bytes an auth helper would add, without running it
            # for every request.
            token = base64.b64encode(f"{api_key}:".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        else:
            headers[LIMITED_ACCESS_HEADER] = key
        self._headers = _Hidden(headers)  # they hold the key: never in a repr
        # A limit on connecting and on each wait for data; no overall limit,
        # so a large multipart body on a slow uplink is not cut off.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._tls = _tls_context(endpoint)
        self._proxy = _proxy_for(endpoint)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"NucleusClient({self.endpoint!r}, max_in_flight={self.max_in_flight})"

    async def __aenter__(self) -> NucleusClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _http(self) -> aiohttp.ClientSession:
        """The run's session, made on first use (it must be made inside the event loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.max_in_flight, limit_per_host=self.max_in_flight, ssl=self._tls
            )
            # trust_env stays off: with it aiohttp reads ~/.netrc on a worker
            # thread for every request (and refuses our Authorization header
            # if the file names the host). The proxy comes from the
            # environment once, in __init__.
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    def scrub(self, text: str) -> str:
        """``text`` with this client's key blanked out, for callers that log."""
        return self._secrets.scrub(text)

    async def get(self, route: str) -> Response:
        return await self._request("GET", route)

    async def get_bytes(self, route: str) -> bytes:
        """The body of a GET as sent (a mask file), with the same retries."""
        response = await self._request("GET", route, as_bytes=True)
        data: bytes = response.body
        return data

    def route_of(self, url: str) -> str | None:
        """The route of an absolute URL under this endpoint, None for any other URL.

        A URL a server answered with is fetched (with the key) only when it
        lies under the endpoint: the key is never sent to another host.
        """
        prefix = self.endpoint + "/"
        return url[len(prefix) :] if url.startswith(prefix) else None

    async def post_json(
        self,
        route: str,
        body: Mapping[str, Any] | bytes,
        *,
        params: Mapping[str, str] | None = None,
    ) -> Response:
        """POST a JSON body: a mapping, or its JSON text already encoded."""
        # Serialised once: every retry sends exactly the same bytes.
        content = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        return await self._request("POST", route, content=content, headers=headers, params=params)

    async def post_multipart(
        self,
        route: str,
        serialized_request: Mapping[str, Any] | bytes,
        files: Sequence[tuple[str, bytes]],
    ) -> Response:
        """POST a local-mask batch: the JSON request, then one ``mask`` part per file.

        ``files`` holds (path as written in ``mask_url``, PNG bytes), in the
        order of the segmentations.
        """
        body, content_type = encode_multipart(serialized_request, files)
        headers = {"Content-Type": content_type}
        return await self._request("POST", route, content=body, headers=headers)

    async def put_signed(self, url: str, content: bytes) -> Response:
        """PUT a body to a signed URL the service handed out, with the same retries.

        The URL carries its own authorisation: no key goes with it (it may
        point at another host, a bucket), and no Content-Type either, as the
        official client sends none (a signature may cover that header).
        """
        return await self._request(
            "PUT", url, content=content, signed=True, skip_headers=("Content-Type",)
        )

    async def _request(
        self,
        method: str,
        route: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        as_bytes: bool = False,
        signed: bool = False,
        skip_headers: Sequence[str] = (),
    ) -> Response:
        if signed:
            # A signed URL's query is its credential: messages show the path only.
            # encoded=True: the query goes out byte for byte, or a signature breaks.
            url: str | URL = URL(route, encoded=True)
            base_headers = {"User-Agent": USER_AGENT}
            shown = self._secrets.scrub(route.partition("?")[0])
            proxy = _proxy_for(route)
        else:
            url, base_headers = f"{self.endpoint}/{route.lstrip('/')}", self._headers.value
            shown = self._secrets.scrub(route)  # for messages; belt and braces
            proxy = self._proxy
        # Latency is compared among requests of one kind: a GET and a batch
        # of masks take different times.
        kind = f"{method} {(headers or {}).get('Content-Type', '').partition(';')[0]}"
        attempt = 0
        uncertain = False
        gate_seen = float("-inf")  # a Retry-After this request has waited out itself
        while True:
            attempt += 1
            status: int | None = None
            wait_at_least_s: float | None = None
            async with self.limiter.slot(kind, gate_seen=gate_seen) as slot:  # on the wire only
                try:
                    async with self._http().request(
                        method,
                        url,
                        data=content,
                        headers={**base_headers, **(headers or {})},
                        params=params,
                        allow_redirects=False,
                        proxy=proxy,
                        skip_auto_headers=skip_headers,
                    ) as reply:
                        raw = await reply.read()
                except _RETRYABLE_ERRORS as exc:
                    error = self._describe(exc)
                    uncertain = uncertain or not isinstance(exc, _NOT_SENT_ERRORS)
                    if isinstance(exc, asyncio.TimeoutError):
                        slot.overloaded()  # the service is too slow to answer
                except (aiohttp.ClientError, ValueError) as exc:
                    raise RequestFailed(
                        f"{method} {shown}: {self._describe(exc)}", status=None, attempts=attempt
                    ) from None
                else:
                    status = reply.status
                    if 200 <= status < 300:
                        slot.ok()
                        body = raw if as_bytes else _parse_body(raw)
                        return Response(status, body, attempt, uncertain)
                    body = _parse_body(raw)
                    error = self._server_message(status, body)
                    uncertain = uncertain or status not in _NOT_APPLIED_STATUS
                    wait_at_least_s = retry_after_s(reply.headers.get("Retry-After"))
                    if status in OVERLOAD_STATUS:
                        slot.overloaded(wait_at_least_s)
            # Its own Retry-After is part of the sleep below: not waited twice.
            gate_seen = slot.gate_seen
            if status is not None and status not in RETRYABLE_STATUS:
                if signed:  # a bucket's refusal says nothing of the key or the dataset
                    raise RequestFailed(
                        f"{method} {shown}: {error}", status=status, attempts=attempt
                    )
                raise self._refusal(method, shown, status, error, attempt)
            if attempt > self.retry.retries:
                tries = "try" if attempt == 1 else "tries"
                raise RequestFailed(
                    f"{method} {shown} failed after {attempt} {tries}: {error}",
                    status=status,
                    attempts=attempt,
                )
            delay_s = self.retry.delay(attempt - 1, self._rng)
            if wait_at_least_s is not None:
                delay_s = max(delay_s, wait_at_least_s)
            if self._on_retry is not None:
                self._on_retry(RetryEvent(shown, attempt, status, error, delay_s))
            await self._sleep(delay_s)

    def _refusal(
        self, method: str, route: str, status: int, error: str, attempts: int
    ) -> Exception:
        where = f"{method} {route}"
        if status in (401, 403):
            what = "rejected the key" if status == 401 else "refused access"
            return AuthError(
                f"the server {what} ({error}) on {where}",
                hint=f"check {self.key_variable} and that it may access this dataset",
            )
        if status == 404:
            return NotFoundError(
                f"{where} answered {error}", hint="check the dataset, model or model run id"
            )
        if status == 413:
            return PayloadTooLarge(
                f"{where}: request body too large ({error})", status=status, attempts=attempts
            )
        return RequestFailed(f"{where}: {error}", status=status, attempts=attempts)

    def _server_message(self, status: int, body: Any) -> str:
        text: str
        if isinstance(body, Mapping):
            found = body.get("error", body.get("message"))
            text = found if isinstance(found, str) else json.dumps(body)
        else:
            text = "" if body is None else str(body)
        text = " ".join(text.split()) or "no message"
        if len(text) > MESSAGE_MAX_CHARS:
            text = text[:MESSAGE_MAX_CHARS] + "..."
        return self._secrets.scrub(f"HTTP {status}: {text}")

    def _describe(self, exc: BaseException) -> str:
        detail = str(exc).strip()
        name = type(exc).__name__
        if isinstance(exc, aiohttp.ClientConnectorError):
            # aiohttp's own text adds "ssl:default" even for plain HTTP.
            # asyncio's text ("Connect call failed (...)") hides the cause its errno names.
            number = exc.os_error.errno
            reason = (
                (os.strerror(number) if isinstance(number, int) else None)
                or exc.os_error.strerror
                or str(exc.os_error)
                or "connection failed"
            )
            detail = f"cannot connect to {exc.host}:{exc.port}: {reason}"
        return self._secrets.scrub(f"{name}: {detail}" if detail else name)


class _Hidden:
    """A value kept out of reprs (request headers carry the key)."""

    __slots__ = ("value",)

    def __init__(self, value: dict[str, str]) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "_Hidden(***)"


def _tls_context(endpoint: str) -> ssl.SSLContext:
    """The TLS context for an endpoint; the CA store (~50 ms to load) only when TLS can occur.

    A plain-HTTP endpoint with no proxy configured never opens a TLS
    connection; it gets a context that trusts nothing, so a TLS connection
    could not be made by mistake. ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are
    honoured, as OpenSSL's defaults.
    """
    if endpoint.startswith("https://") or urllib.request.getproxies():
        context = ssl.create_default_context()
        if not context.cert_store_stats()["x509_ca"] and not context.get_ca_certs():
            # No system CA store (a minimal container, some Python builds):
            # Mozilla's bundle, which the S3/GCS stack installs anyway.
            try:
                import certifi
            except ImportError:
                return context
            context.load_verify_locations(certifi.where())
        return context
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _proxy_for(endpoint: str) -> str | None:
    """The proxy the environment sets for ``endpoint`` (HTTP(S)_PROXY, NO_PROXY), if any."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _parse_body(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text
