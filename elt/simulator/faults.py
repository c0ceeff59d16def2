"""Faults the simulator can inject, and row-level changes (corruptions, server-side history revisions).

A ``Fault`` shapes one response (``times`` of them, or every one with ``times=None``): a status code, a
body, a delay, a truncated body, or a change of the rows. Row changes are plain functions
``(rows, now) -> rows``; use them in a fault (``rows_fault(negative_value(5))``, one response) or as a lasting
server-side revision (``sim.revise_history(station, clip_negatives())``). Rows are addressed by ``hours_ago``:
the newest row whose timestamp is at or before the current hour minus that many hours, so the target exists
despite outages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from elt.simulator.response import Row, RowsTransform
from elt.simulator.timeutil import TIMESTAMP_FORMAT
from elt.utc import as_utc


@dataclass(frozen=True)
class Fault:
    """How to spoil the next response(s) of a station."""

    status: int | None = None
    """Answer with this status code instead of the normal response."""
    body: bytes | None = None
    """Body sent with ``status`` (default: a JSON error like the API's framework sends)."""
    content_type: str = "application/json"
    """Content-Type of ``body``."""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra response headers, e.g. ``(("Retry-After", "2"),)``."""
    delay_s: float = 0.0
    """Wait this long before answering (to trigger client timeouts)."""
    truncate_to: float | None = None
    """Send only this fraction of the normal body."""
    close_early: bool = True
    """With ``truncate_to``: announce the full Content-Length and drop the connection (an incomplete read);
    False sends a consistent but cut JSON text (a decode error)."""
    rows: RowsTransform | None = None
    """Change the rows of the normal response."""
    times: int | None = 1
    """How many requests this fault spoils; None = every request until cleared."""
    label: str = field(default="", compare=False)
    """A name for logs and test messages."""


def http_error(status: int = 500, times: int | None = 1) -> Fault:
    """A JSON error status (500, 502, 503, 404, ...)."""
    return Fault(status=status, times=times, label=f"http {status}")


def delay(seconds: float, times: int | None = 1) -> Fault:
    """The normal response, after ``seconds``."""
    return Fault(delay_s=seconds, times=times, label=f"delay {seconds}s")


def truncated(keep: float = 0.5, close_early: bool = True, times: int | None = 1) -> Fault:
    """The normal response cut after ``keep`` of its bytes (see ``Fault.close_early``)."""
    return Fault(truncate_to=keep, close_early=close_early, times=times, label=f"truncated {keep:.0%}")


def html_page(status: int = 502, times: int | None = 1) -> Fault:
    """An HTML error page instead of JSON: a proxy's 502 page, or a 200 maintenance page."""
    if status == 200:
        title, text = "Maintenance", "The AirQino service is under maintenance. Please try again later."
    else:
        title, text = f"{status} Bad Gateway" if status == 502 else f"{status} Error", "nginx"
    body = f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
    body += f"<hr><center>{text}</center>\r\n</body>\r\n</html>\r\n"
    return Fault(
        status=status, body=body.encode(), content_type="text/html", times=times, label=f"html {status}"
    )


def unauthorized(times: int | None = 1) -> Fault:
    """HTTP 401 with body ``{}``, as the API answers without a valid token."""
    return Fault(status=401, body=b"{}", times=times, label="401")


def rate_limited(retry_after_s: int = 1, times: int | None = 1) -> Fault:
    """HTTP 429 with a ``Retry-After`` header (seconds)."""
    body = json.dumps({"status": 429, "error": "Too Many Requests"}).encode()
    return Fault(
        status=429, body=body, headers=(("Retry-After", str(retry_after_s)),), times=times, label="429"
    )


def rows_fault(*changes: RowsTransform, times: int | None = 1) -> Fault:
    """The normal response with its rows changed by ``changes`` (applied in order)."""

    def apply(rows: list[Row], now: datetime) -> list[Row]:
        for change in changes:
            rows = change(rows, now)
        return rows

    return Fault(rows=apply, times=times, label="rows")


def empty_data(times: int | None = 1) -> Fault:
    """A 200 response whose ``data`` is ``[]``."""
    return Fault(rows=lambda rows, now: [], times=times, label="empty data")


def _target_index(rows: Sequence[Row], now: datetime, hours_ago: int) -> int:
    """Index of the newest row at or before the current hour minus ``hours_ago``."""
    limit = (as_utc(now).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)).strftime(
        TIMESTAMP_FORMAT
    )
    candidates = [i for i, row in enumerate(rows) if str(row.get("timestamp", "")) <= limit]
    if not candidates:
        raise ValueError(f"no row at or before {limit} to change")
    return max(candidates, key=lambda i: str(rows[i]["timestamp"]))


def set_value(hours_ago: int, key: str, value: Any) -> RowsTransform:
    """Set ``key`` of the row ``hours_ago`` to ``value`` (a revision, or a corruption like ``"n/a"``)."""

    def change(rows: list[Row], now: datetime) -> list[Row]:
        rows = [dict(row) for row in rows]
        rows[_target_index(rows, now, hours_ago)][key] = value
        return rows

    return change


def non_numeric_value(hours_ago: int = 5, key: str = "PM2.5", value: str = "n/a") -> RowsTransform:
    """A measure that is not a number."""
    return set_value(hours_ago, key, value)


def negative_value(hours_ago: int = 5, key: str = "CO", value: float = -0.42) -> RowsTransform:
    """A negative measure, as the API served before it clipped history to 0.0."""
    return set_value(hours_ago, key, value)


def clip_negatives(keys: Sequence[str] | None = None) -> RowsTransform:
    """Rewrite every negative number (of ``keys``, default all) to 0.0, as the API did to its history."""

    def change(rows: list[Row], now: datetime) -> list[Row]:
        return [
            {
                k: 0.0 if isinstance(v, float | int) and v < 0 and (keys is None or k in keys) else v
                for k, v in row.items()
            }
            for row in rows
        ]

    return change


def future_row(hours_ahead: int = 3) -> RowsTransform:
    """Append a copy of the newest row stamped ``hours_ahead`` hours after the current hour."""

    def change(rows: list[Row], now: datetime) -> list[Row]:
        if not rows:
            return rows
        moment = as_utc(now).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours_ahead)
        return [*rows, {**rows[-1], "timestamp": moment.strftime(TIMESTAMP_FORMAT)}]

    return change


def duplicate_row(hours_ago: int = 5, key: str = "PM2.5", delta: float = 7.5) -> RowsTransform:
    """Insert, after the row ``hours_ago``, a second row with the same timestamp and ``key`` + ``delta``."""

    def change(rows: list[Row], now: datetime) -> list[Row]:
        rows = list(rows)
        i = _target_index(rows, now, hours_ago)
        twin = dict(rows[i])
        twin[key] = round(float(twin.get(key, 0.0)) + delta, 5)
        rows.insert(i + 1, twin)
        return rows

    return change
