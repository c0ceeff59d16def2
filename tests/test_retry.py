"""``elt.retry``: the backoff and ``Retry-After`` rules shared by the source client and the alert hook."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from elt.retry import BackoffWait, Transient, backoff_seconds, parse_retry_after, retrying


def test_retry_after_is_seconds_or_an_http_date() -> None:
    assert parse_retry_after("7") == 7.0 and parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    in_a_minute = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=60), usegmt=True)
    assert 50 < parse_retry_after(in_a_minute) <= 60


def test_backoff_doubles_up_to_the_cap_and_retry_after_wins() -> None:
    assert [backoff_seconds(n, 1.0, 5.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert backoff_seconds(1, 1.0, 5.0, retry_after=3) == 3.0
    assert backoff_seconds(1, 1.0, 5.0, retry_after=-2) == 0.0
    assert backoff_seconds(1, 1.0, 5.0, retry_after=99) == 5.0


def test_retrying_waits_by_retry_after_then_gives_up_with_the_last_failure() -> None:
    waits: list[float] = []
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        raise Transient("HTTP 429", 429, retry_after=2.0 if len(calls) == 1 else None)

    with pytest.raises(Transient, match="HTTP 429"):
        retrying(3, BackoffWait(0.5, 10.0), waits.append)(flaky)
    assert len(calls) == 3 and waits == [2.0, 1.0]


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bad body")

    with pytest.raises(ValueError):
        retrying(5, BackoffWait(0.1, 1.0), lambda s: None)(broken)
    assert len(calls) == 1
