"""``elt/commands/params.py``: the click parameters every command shares."""

from __future__ import annotations

from datetime import datetime, timezone

import click
import pytest

from elt.commands.params import UtcTime, parse_station_map, parse_vars

UTC_10 = datetime(2024, 9, 9, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "value",
    ["2024-09-09 10:00", "2024-09-09T10:00Z", "2024-09-09 12:00:00+02:00", datetime(2024, 9, 9, 10), UTC_10],
)
def test_utc_time_is_always_aware_utc(value: object) -> None:
    parsed = UtcTime().convert(value, None, None)
    assert parsed == UTC_10 and parsed.utcoffset().total_seconds() == 0
    assert UtcTime().convert("2024-09-09", None, None) == datetime(2024, 9, 9, tzinfo=timezone.utc)


def test_bad_values_are_usage_errors_with_an_example() -> None:
    with pytest.raises(click.BadParameter, match="'yesterday' is not a time: use e.g. 2024-09-09"):
        UtcTime().convert("yesterday", None, None)
    with pytest.raises(click.BadParameter, match="expected a mapping"):
        parse_vars("[1, 2]")
    with pytest.raises(click.BadParameter, match="expected FILE_STEM=STATION_ID"):
        parse_station_map(("station1_data",))
    assert parse_vars("{min_hours_per_day: 20}") == {"min_hours_per_day": 20} and parse_vars(None) == {}
    assert parse_station_map(("station1_data.json=283164601",)) == {"station1_data": "283164601"}
