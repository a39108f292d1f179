"""When to retry a request and how long to wait first.

Exponential backoff with full jitter: attempt ``n`` (0-based) waits
``uniform(0, min(cap, base * 2**n))``. Full jitter spreads a crowd of
clients that failed together (a server restart, a rate limit) across the
whole window instead of sending them back in lockstep.

A server that says how long to wait (``Retry-After``) is believed, up to
``RETRY_AFTER_MAX_S``: a misconfigured proxy asking for an hour should not
park a cron job for an hour.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from segcli.errors import UsageError

#: Statuses worth another try: timeouts, rate limits and server-side trouble
#: (520/524 are Cloudflare's "origin misbehaved" / "origin timed out").
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504, 520, 524})

RETRIES = 6
RETRY_BASE_S = 0.5
RETRY_CAP_S = 30.0
RETRY_AFTER_MAX_S = 300.0

# 2**62 already dwarfs any cap; bounding the exponent keeps the float finite.
_MAX_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry one request and how long to wait between tries."""

    retries: int = RETRIES  # attempts after the first
    base_s: float = RETRY_BASE_S
    cap_s: float = RETRY_CAP_S

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise UsageError(f"retries must be 0 or more, not {self.retries}")
        if self.base_s < 0 or self.cap_s < 0:
            raise UsageError("retry delays must not be negative")

    @property
    def attempts(self) -> int:
        """Requests sent at most for one call, the first included."""
        return self.retries + 1

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0 = the first)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
        return rng.uniform(0.0, ceiling)


def retry_after_s(
    value: str | None,
    *,
    now: datetime | None = None,
    max_s: float = RETRY_AFTER_MAX_S,
) -> float | None:
    """Seconds a ``Retry-After`` header asks for, clamped to ``[0, max_s]``.

    The header is either delta-seconds (``"120"``) or an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``). Anything unreadable gives None, so
    the caller falls back to its own backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _seconds_until(text, now)
    if seconds is None or seconds != seconds:  # NaN compares unequal to itself
        return None
    return min(max(seconds, 0.0), max_s)


def _seconds_until(http_date: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are always GMT
        when = when.replace(tzinfo=timezone.utc)
    if now is None:
        now = datetime.now(timezone.utc)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return (when - now).total_seconds()
