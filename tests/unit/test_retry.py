from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from segcli.errors import UsageError
from segcli.retry import RETRY_AFTER_MAX_S, RETRYABLE_STATUS, RetryPolicy, retry_after_s


class TopOfRange(random.Random):
    """An rng whose every draw is the top of the range: delays equal their ceilings."""

    def random(self) -> float:
        return 1.0


def test_ceilings_double_from_base_up_to_cap() -> None:
    policy = RetryPolicy(retries=8, base_s=0.5, cap_s=30.0)
    delays = [policy.delay(n, TopOfRange()) for n in range(policy.retries)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_exact_sleep_sequence_with_a_seeded_rng() -> None:
    policy = RetryPolicy()  # 6 retries, 0.5 s base, 30 s cap
    draws = random.Random(20240611)
    expected = [c * draws.random() for c in [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]]
    rng = random.Random(20240611)
    assert [policy.delay(n, rng) for n in range(policy.retries)] == pytest.approx(expected)


def test_full_jitter_spans_zero_to_ceiling() -> None:
    policy = RetryPolicy(base_s=1.0, cap_s=4.0)
    rng = random.Random(7)
    delays = [policy.delay(5, rng) for _ in range(2000)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert min(delays) < 0.1 and max(delays) > 3.9  # the whole window, not a fixed step


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert RetryPolicy(cap_s=30.0).delay(10_000, TopOfRange()) == 30.0


def test_defaults_and_attempts() -> None:
    policy = RetryPolicy()
    assert (policy.retries, policy.base_s, policy.cap_s, policy.attempts) == (6, 0.5, 30.0, 7)
    assert RetryPolicy(retries=0).attempts == 1


@pytest.mark.parametrize("kwargs", [{"retries": -1}, {"base_s": -0.1}, {"cap_s": -1.0}])
def test_bad_policies_are_usage_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retryable_statuses() -> None:
    assert {408, 429, 500, 502, 503, 504, 520, 524} == RETRYABLE_STATUS
    assert not {400, 401, 403, 404, 413, 422} & RETRYABLE_STATUS


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("0", 0.0), ("1", 1.0), (" 120 ", 120.0), ("2.5", 2.5), ("-5", 0.0), ("86400", 300.0)],
)
def test_retry_after_delta_seconds(header: str, seconds: float) -> None:
    assert retry_after_s(header) == seconds


NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)


def test_retry_after_http_date() -> None:
    assert retry_after_s("Wed, 21 Oct 2015 07:28:42 GMT", now=NOW) == 42.0


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    assert retry_after_s("Wed, 21 Oct 2015 07:27:00 GMT", now=NOW) == 0.0


def test_retry_after_http_date_far_ahead_is_clamped() -> None:
    far = (NOW + timedelta(hours=3)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_s(far, now=NOW) == RETRY_AFTER_MAX_S


def test_retry_after_naive_now_is_taken_as_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert retry_after_s("Wed, 21 Oct 2015 07:28:10 GMT", now=naive) == 10.0


def test_retry_after_custom_maximum() -> None:
    assert retry_after_s("100", max_s=5.0) == 5.0


@pytest.mark.parametrize("header", [None, "", "  ", "soon", "nan", "Wed, 99 Foo 2015"])
def test_unreadable_retry_after_is_none(header: str | None) -> None:
    assert retry_after_s(header) is None
