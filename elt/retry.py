"""Retries with exponential backoff, jitter and ``Retry-After``, on tenacity (the source client, the alert hook).

An attempt raises ``Transient`` for what is worth retrying (a timeout, a connection error, 429, 5xx); the wait
before the next attempt is the server's ``Retry-After`` when it sent one, else an exponential step
(``base_s * 2**(attempt-1)``), both capped at ``max_s``. With ``jitter`` the step has "equal jitter": half fixed,
half random, so parallel callers do not retry in lockstep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base

from elt.utc import as_utc


class Transient(Exception):
    """A failure worth retrying, with the HTTP status (if any) and the server's ``Retry-After`` in seconds."""

    def __init__(self, message: str, http_status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after


def backoff_seconds(
    attempt: int,
    base_s: float,
    max_s: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds before retry ``attempt`` (1-based): ``retry_after`` if given, else exponential (jittered with
    ``rng``, exact without); capped at ``max_s``."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), max_s)
    step = min(base_s * 2 ** (attempt - 1), max_s)
    return step if rng is None else step / 2 + rng.uniform(0, step / 2)


class BackoffWait(wait_base):
    """A tenacity wait: ``backoff_seconds`` with the ``Retry-After`` of the last ``Transient``."""

    def __init__(self, base_s: float, max_s: float, rng: random.Random | None = None):
        self.base_s, self.max_s, self.rng = base_s, max_s, rng

    def __call__(self, retry_state: RetryCallState) -> float:
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(failure, "retry_after", None)
        return backoff_seconds(retry_state.attempt_number, self.base_s, self.max_s, retry_after, self.rng)


def retrying(
    attempts: int,
    wait: BackoffWait,
    sleep: Callable[[float], None] = time.sleep,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """At most ``attempts`` calls, retrying on ``Transient`` only; the last ``Transient`` is re-raised."""
    return Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception_type(Transient),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (it is a number or an HTTP date), or None when absent/unreadable."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (as_utc(when) - datetime.now(timezone.utc)).total_seconds()
