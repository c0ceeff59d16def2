"""The AirQino row model: key normalization, coercion, and every reason a row is quarantined."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from elt.sources.rows import HourlyRow, RowRejection, content_hash, normalize_key, parse_rows, parse_timestamp

FETCHED = datetime(2024, 9, 9, 10, 20, tzinfo=timezone.utc)


def row(ts: str = "2024-09-09 09:00:00", **values: object) -> dict:
    return {"timestamp": ts, "CO": 0.5, "PM2.5": 4.25, "T. int.": 401.0, **values}


@pytest.mark.parametrize(
    ("key", "expected"),
    [("PM2.5", "pm25"), ("PM10", "pm10"), ("T. int.", "t_int"), ("CO", "co"), ("NO2", "no2"), ("O3", "o3"),
     ("T", "t"), ("RH", "rh"), ("Wind Speed (m/s)", "wind_speed_m_s"), ("  PM1.0 ", "pm1_0")],
)  # fmt: skip
def test_keys_are_normalized_to_snake_case(key: str, expected: str) -> None:
    assert normalize_key(key) == expected


def test_measures_are_coerced_and_absent_keys_stay_absent() -> None:
    parsed = HourlyRow.from_source(
        "s1", {"timestamp": "2024-09-09 09:00:00", "CO": 1, "PM2.5": "4.5", "RH": None}
    )
    assert parsed.measures == {"co": 1.0, "pm25": 4.5}
    assert isinstance(parsed.measures["co"], float)
    assert "rh" not in parsed.measures and "t" not in parsed.measures
    assert parsed.ts == datetime(2024, 9, 9, 9, tzinfo=timezone.utc)


def test_original_row_is_kept_verbatim_as_json_text() -> None:
    source = {"timestamp": "2024-09-09 09:00:00", "PM2.5": 4.25, "T. int.": 401}
    parsed = HourlyRow.from_source("s1", source)
    assert json.loads(parsed.original_json) == source
    assert '"PM2.5":4.25' in parsed.original_json


def test_negative_values_are_kept_for_staging_qc() -> None:
    assert HourlyRow.from_source("s1", row(CO=-0.3178625)).measures["co"] == -0.3178625


def test_unknown_values_too_big_for_mongodb_are_kept_as_text() -> None:
    assert HourlyRow.from_source("s1", row(Serial=2**70)).extra == {"serial": str(2**70)}


def test_unknown_keys_are_kept_under_extra_and_change_the_hash() -> None:
    plain = HourlyRow.from_source("s1", row())
    with_extra = HourlyRow.from_source("s1", row(**{"Battery V": 3.7}))
    assert with_extra.extra == {"battery_v": 3.7}
    assert with_extra.measures == plain.measures
    assert with_extra.content_hash != plain.content_hash


@pytest.mark.parametrize(
    ("values", "kept"),
    [
        ({"CO": "n/a"}, {"co": "n/a"}),
        ({"PM2.5": [1]}, {"pm25": [1]}),
        ({"NO2": True}, {"no2": True}),
        ({"O3": float("nan")}, {"o3": "nan"}),
        ({"O3": 10**400}, {"o3": str(10**400)}),
        ({"O3": "Infinity"}, {"o3": "Infinity"}),
    ],
)
def test_a_bad_value_is_kept_verbatim_and_the_row_is_not_rejected(values: dict, kept: dict) -> None:
    parsed = HourlyRow.from_source("s1", row(**values))
    assert {k: parsed.measures[k] for k in kept} == kept  # staging flags these non_numeric
    assert parsed.measures["t_int"] == 401.0  # the row's other measures stay
    assert json.loads(parsed.original_json)["timestamp"] == "2024-09-09 09:00:00"
    result = parse_rows("s1", [row(**values)], FETCHED)
    assert (len(result.rows), result.rejects) == (1, [])


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (row(ts="2024-09-09T09:30:00"), "timestamp not on the hour"),
        (row(ts="09/09/2024 09:00"), "bad timestamp"),
        ({"CO": 1.0}, "missing timestamp"),
        ([1, 2], "row is not a JSON object"),
        (row(co=1.0), "keys 'CO' and 'co' both normalize to 'co'"),
    ],
)
def test_unusable_rows_are_rejected_with_a_reason(source: object, reason: str) -> None:
    with pytest.raises(RowRejection) as caught:
        HourlyRow.from_source("s1", source)
    assert reason in caught.value.reason
    assert caught.value.original_json.startswith(("{", "["))


def test_timestamps_are_utc_start_of_hour_in_several_spellings() -> None:
    expected = datetime(2024, 9, 9, 9, tzinfo=timezone.utc)
    assert parse_timestamp("2024-09-09 09:00:00") == expected
    assert parse_timestamp("2024-09-09T09:00:00Z") == expected
    assert parse_timestamp("2024-09-09T11:00:00+02:00") == expected


def test_content_hash_is_stable_and_ignores_key_order_and_int_float() -> None:
    a = HourlyRow.from_source("s1", {"timestamp": "2024-09-09 09:00:00", "CO": 0, "PM2.5": 4.25})
    b = HourlyRow.from_source("s1", {"PM2.5": 4.25, "CO": 0.0, "timestamp": "2024-09-09 09:00:00"})
    assert a.content_hash == b.content_hash == content_hash(a.ts, {"pm25": 4.25, "co": 0.0}, {})
    assert a.content_hash != HourlyRow.from_source("s1", row(CO=0.1)).content_hash


def test_response_marks_only_the_unfinished_hour_provisional() -> None:
    data = [row("2024-09-09 08:00:00"), row("2024-09-09 10:00:00"), row("2024-09-09 09:00:00")]
    parsed = parse_rows("s1", data, FETCHED)
    assert [r.ts.hour for r in parsed.rows] == [8, 9, 10]
    assert [r.provisional for r in parsed.rows] == [False, False, True]
    assert (parsed.received, parsed.rejects, parsed.duplicates) == (3, [], 0)


def test_response_whose_newest_hour_has_ended_has_no_provisional_row() -> None:
    parsed = parse_rows("s1", [row("2024-09-09 07:00:00")], FETCHED)
    assert [r.provisional for r in parsed.rows] == [False]


def test_future_rows_are_rejected() -> None:
    parsed = parse_rows("s1", [row("2024-09-09 10:00:00"), row("2024-09-09 11:00:00")], FETCHED)
    assert [r.ts.hour for r in parsed.rows] == [10]
    assert len(parsed.rejects) == 1
    assert parsed.rejects[0].reason.startswith("timestamp in the future: 2024-09-09 11:00 UTC")


def test_identical_duplicates_collapse_and_conflicting_duplicates_are_all_rejected() -> None:
    data = [row("2024-09-09 08:00:00"), row("2024-09-09 08:00:00"), row("2024-09-09 09:00:00", CO=1.0),
            row("2024-09-09 09:00:00", CO=2.0), row("2024-09-09 07:00:00")]  # fmt: skip
    parsed = parse_rows("s1", data, FETCHED)
    assert [r.ts.hour for r in parsed.rows] == [7, 8]
    assert parsed.duplicates == 1
    assert [r.reason for r in parsed.rejects] == ["duplicate timestamp with different values"] * 2
    assert {json.loads(r.original_json)["CO"] for r in parsed.rejects} == {1.0, 2.0}
    assert parsed.received == 5
