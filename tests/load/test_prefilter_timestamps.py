"""The prefilter's fast timestamp path reads exactly what ``parse_timestamp`` reads (and the UTC day of it), and
refuses what it refuses."""

from __future__ import annotations

from datetime import timezone

import pytest

from elt.load.prefilter import _hour_and_day
from elt.sources.rows import parse_timestamp

STAMPS = [
    "2024-09-09 10:00:00",
    "2024-09-09T10:00:00",
    "2024-02-29 23:00:00",
    "2024-09-09 10:00:00Z",
    "2024-09-09T10:00:00+02:00",
    " 2024-09-09 10:00:00",
    "2024-09-09 10:30:00",
    "2024-13-01 10:00:00",
    "2023-02-29 10:00:00",
    "2024-09-09 24:00:00",
    "2024-09-0a 10:00:00",
    "2024-09-09 10:00",
    "2024-09-09",
    "",
]


@pytest.mark.parametrize("stamp", STAMPS)
def test_fast_path_matches_parse_timestamp(stamp: str) -> None:
    try:
        expected = parse_timestamp(stamp)
    except ValueError:
        with pytest.raises(ValueError):
            _hour_and_day(stamp)
        return
    got, day = _hour_and_day(stamp)
    assert got == expected and got.tzinfo is not None and got.utcoffset() == expected.utcoffset()
    assert day == expected.astimezone(timezone.utc).date().isoformat()
