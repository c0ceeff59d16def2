"""One definition of "this instant in UTC": every module that makes a datetime timezone-aware uses it."""

from __future__ import annotations

from datetime import datetime, timezone


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (naive values are taken as UTC, as pymongo returns them)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def as_utc_or_none(moment: datetime | None) -> datetime | None:
    """``as_utc`` for an optional value: None stays None."""
    return None if moment is None else as_utc(moment)
