"""One definition of "this instant in UTC" (every module that makes a datetime timezone-aware uses it) and of
a datetime in JSON output."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (naive values are taken as UTC, as pymongo returns them)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def as_utc_or_none(moment: datetime | None) -> datetime | None:
    """``as_utc`` for an optional value: None stays None."""
    return None if moment is None else as_utc(moment)


def jsonable(value: Any, other: Callable[[Any], Any] | None = None) -> Any:
    """``value`` ready for ``json.dumps``: datetimes as ISO 8601 UTC ending in ``Z``, mapping keys as strings,
    tuples as lists; any other value as it is, or ``other(value)`` when given and the value is not JSON."""
    if isinstance(value, datetime):
        return as_utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): jsonable(v, other) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, other) for v in value]
    if other is None or isinstance(value, str | int | float | bool | type(None)):
        return value
    return other(value)
