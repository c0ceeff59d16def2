"""Hour arithmetic shared by the simulator: hours are ints counted from the Unix epoch (UTC)."""

from __future__ import annotations

from datetime import datetime, timezone

from elt.utc import as_utc

#: The API's timestamp format: UTC, no zone, labels the START of the hour.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
#: The format of the optional ``start_date``/``end_date`` query parameters.
QUERY_DATE_FORMAT = "%Y%m%d-%H%M"


def hour_of(moment: datetime) -> int:
    """The epoch hour whose interval contains ``moment`` (the floor)."""
    return int(as_utc(moment).timestamp() // 3600)


def hour_start(hour: int) -> datetime:
    """The aware UTC datetime at the start of epoch hour ``hour``."""
    return datetime.fromtimestamp(hour * 3600, timezone.utc)


def parse_timestamp(text: str) -> int:
    """The epoch hour of an API timestamp (minutes and seconds are floored)."""
    return hour_of(datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc))


def parse_query_date(text: str) -> datetime:
    """Parse a ``YYYYmmdd-HHMM`` query parameter (UTC); ``ValueError`` when malformed."""
    return datetime.strptime(text, QUERY_DATE_FORMAT).replace(tzinfo=timezone.utc)
