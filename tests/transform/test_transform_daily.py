"""daily_sensor_averages equals the independent pandas computation (tests/reference_daily.py), row by row.

Hand-built raw documents cover every QC rule and the AQI/WHO edges; a Europe/Rome station covers the 23- and
25-hour DST days; the simulator (through the real loader) and the recorded API responses cover realistic data.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymongo import MongoClient
from pymongo.database import Database

from elt.config import load_project
from elt.transform.task import run_transform
from tests.reference_daily import (
    OWN_MODELS,
    assert_rows_equal,
    collection_rows,
    daily_sensor_averages,
    hours,
    raw_document,
    set_stations,
    staging_frame,
    utc,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
STATIONS = [
    {"id": "A", "name": "ABIDJAN-A", "timezone": "Africa/Abidjan"},
    {"id": "B", "name": "ABIDJAN-B", "timezone": "Africa/Abidjan"},
    {"id": "R", "name": "ROME-R", "timezone": "Europe/Rome"},
    {"id": "D", "name": "DEAD-D", "timezone": "Africa/Abidjan"},
    {"id": "E", "name": "DEAD-E", "timezone": "Africa/Abidjan"},
    {"id": "G", "name": "GAPS-G", "timezone": "Africa/Abidjan"},
]


def _alternating(low: float, high: float, count: int) -> list[float]:
    return [low if i % 2 == 0 else high for i in range(count)]


def qc_station() -> list[dict[str, Any]]:
    """Station A: one rule per stretch of hours (UTC days 2024-01-01 .. 2024-01-05)."""
    docs = []
    start = utc(2024, 1, 1)
    for i, ts in enumerate(hours(start, 24 * 5)):
        m: dict[str, Any] = {"co": 0.4 + (i % 5) * 0.1, "pm25": 6.0 + (i % 7), "pm10": 12.0 + (i % 4),
                             "no2": 20.0 + (i % 3), "o3": 30.0 + (i % 6), "t": 27.0 + (i % 9) / 10, "rh": 70.0 + (i % 5)}  # fmt: skip
        if i < 5:
            m["co"] = 0.0  # 5 zeros at night: valid readings at the sensor floor
        if i == 6:
            m["pm25"] = -2.0  # negative
        if i == 7:
            m["pm25"] = 1500.0  # above the physical maximum
        if i == 8:
            m["co"] = "n/a"  # non-numeric
        if i == 9:
            del m["rh"]  # missing key
        if 10 <= i <= 15:
            m["pm25"] = 12.3  # frozen: 6 equal non-zero values -> stuck
        if 17 <= i <= 21:
            m["pm25"] = 5.5  # only 5 equal values -> valid
        if 30 <= i <= 59:
            m["co"] = 0.0  # 30 zeros across a day boundary -> dead
        if 62 <= i <= 73 or 75 <= i <= 86:
            m["co"] = 0.0  # 12 + (missing hour 74) + 12 zeros -> the gap is bridged: 24 hours, dead
        if 90 <= i <= 92 or 94 <= i <= 96:
            m["t"] = 25.0  # 3 + (missing value at 93) + 3 equal values -> one run of 6 hours: stuck
        if i == 93:
            del m["t"]
        if i == 100:
            m["t"] = -60.0  # below min_t
        if i == 101:
            m["rh"] = 101.0  # above max_rh
        if i == 102:
            m["co"] = 60.0  # above max_co
        if i == 74 or 110 <= i <= 115:
            continue  # missing hours
        docs.append(raw_document("A", ts, m, provisional=(i == 24 * 5 - 1)))
    return docs


def aqi_station() -> list[dict[str, Any]]:
    """Station B: one day per AQI/WHO edge, values alternating so no run forms and every mean is exact."""
    means = [(8.5, 9.5), (8.5625, 9.5625), (35.0, 36.0), (14.5, 15.5), (15.0, 15.5), (225.0, 226.0),
             (399.0, 401.0), (55.0, 56.0), (125.0, 126.0)]  # fmt: skip
    docs = []
    for d, (low, high) in enumerate(means):
        day = utc(2024, 2, 1) + timedelta(days=d)
        for ts, value in zip(hours(day, 24), _alternating(low, high, 24), strict=True):
            docs.append(raw_document("B", ts, {"co": 0.5 + ts.hour % 3 / 10, "pm25": value}))
    # a day with 17 valid hours (incomplete) and one with exactly 18 (complete)
    for d, count in ((20, 17), (21, 18)):
        day = utc(2024, 2, 1) + timedelta(days=d)
        for ts, value in zip(hours(day, count), _alternating(10.0, 11.0, count), strict=True):
            docs.append(raw_document("B", ts, {"co": 1.0 + ts.hour % 2 / 10, "pm25": value}))
    return docs


def _busy(i: int) -> dict[str, Any]:
    """Valid, never-repeating values for every measure at hour ``i``."""
    return {"co": 0.4 + (i % 5) * 0.1, "pm25": 6.0 + (i % 7), "pm10": 12.0 + (i % 4), "no2": 20.0 + (i % 3),
            "o3": 30.0 + (i % 6), "t": 27.0 + (i % 9) / 10, "rh": 70.0 + (i % 5)}  # fmt: skip


def dead_with_outage_stations() -> list[dict[str, Any]]:
    """Stations D and E (2024-03-01 onwards): the issue's dead CO sensor split by a one-hour outage.

    D: CO 0.0 from 00:00 to 05:00, no row at 06:00, 0.0 again from 07:00 to 05:00 the next day, then values.
    E: the same zeros, but the 06:00 row is there with CO "n/a" (and valid PM2.5), and 07:00's CO key is absent.
    """
    docs = []
    for station in ("D", "E"):
        for i, ts in enumerate(hours(utc(2024, 3, 1), 48)):
            m = _busy(i)
            if i <= 29:
                m["co"] = 0.0
            if station == "D" and i == 6:
                continue
            if station == "E" and i == 6:
                m["co"] = "n/a"
            if station == "E" and i == 7:
                del m["co"]
            docs.append(raw_document(station, ts, m))
    return docs


def gap_station() -> list[dict[str, Any]]:
    """Station G (2024-04-01 onwards), one stretch per rule at max_gap_hours 6, dead_zero_hours 24:

    0-11 CO 0.0, 12-19 no rows (8 h > 6), 20-35 0.0 -> two runs of 12 and 16 hours: valid;
    48-59 0.0, 60-65 no rows (6 h), 66-77 0.0 -> one run of 24 hours: dead;
    96-107 0.0, 108 CO 0.3, 109-126 0.0 -> a different value interrupts: runs of 12 and 18 hours, valid;
    150-152 PM2.5 9.9, 153-158 PM2.5 null, 159-161 9.9 -> a run of 6 across 6 null values: stuck.
    """
    docs = []
    for i, ts in enumerate(hours(utc(2024, 4, 1), 168)):
        if 12 <= i <= 19 or 60 <= i <= 65:
            continue
        m: dict[str, Any] = _busy(i)
        if i <= 35 or 48 <= i <= 77 or 96 <= i <= 126:
            m["co"] = 0.0
        if i == 108:
            m["co"] = 0.3
        if 150 <= i <= 161:
            m["pm25"] = None if 153 <= i <= 158 else 9.9
        docs.append(raw_document("G", ts, m))
    return docs


def dst_station() -> list[dict[str, Any]]:
    """Station R (Europe/Rome): every hour around the 2024 DST changes (31 March: 23 h, 27 October: 25 h)."""
    docs = []
    for start in (utc(2024, 3, 29, 23), utc(2024, 10, 25, 22)):
        for i, ts in enumerate(hours(start, 24 * 4)):
            docs.append(raw_document("R", ts, {"co": 0.3 + i % 4 / 10, "pm25": 10.0 + i % 5}))
    return docs


@pytest.fixture(scope="module")
def edge_case_db(mongo_client: MongoClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """Stations A, B, R landed by hand and transformed once (shared by this module's read-only tests)."""
    db = mongo_client[f"elt_test_daily_{uuid.uuid4().hex[:8]}"]
    project_dir = tmp_path_factory.mktemp("edge") / "project"
    (project_dir / "config").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "config" / "elt.yml", project_dir / "config" / "elt.yml")
    shutil.copytree(REPO_ROOT / "aggregations", project_dir / "aggregations")
    (project_dir / "config" / "profiles.yml").write_text(
        yaml.safe_dump({"default_target": "test", "targets": {"test": {"database": db.name}}})
    )
    set_stations(project_dir, STATIONS)
    db.raw_airqino_hourly.insert_many(EDGE_CASES)
    result = run_transform(load_project(project_dir, env={}), db, select=OWN_MODELS)
    assert result.exit_code == 0, result.error
    yield db
    mongo_client.drop_database(db.name)


EDGE_CASES = qc_station() + aqi_station() + dst_station() + dead_with_outage_stations() + gap_station()


def _stations_map() -> dict[str, dict[str, str]]:
    return {s["id"]: s for s in STATIONS}


def test_daily_mart_equals_independent_computation_on_edge_cases(edge_case_db: Database) -> None:
    raw, mongo_db = EDGE_CASES, edge_case_db
    assert_rows_equal(
        collection_rows(mongo_db, "daily_sensor_averages"), daily_sensor_averages(raw, _stations_map())
    )


def test_staging_flags_equal_independent_computation(edge_case_db: Database) -> None:
    raw, mongo_db = EDGE_CASES, edge_case_db
    expected = staging_frame(raw, _stations_map())
    actual = collection_rows(mongo_db, "stg_airqino_hourly", ("station_id", "ts"))
    assert len(actual) == len(expected)
    for (_, want), got in zip(expected.iterrows(), actual, strict=True):
        assert (got["station_id"], got["day"], got["hour_local"]) == (
            want["station_id"],
            want["day"],
            want["hour_local"],
        )
        for m in ("co", "pm25", "pm10", "no2", "o3", "t", "rh"):
            # pandas may show None as NaN
            flag = want[f"{m}_flag"] if isinstance(want[f"{m}_flag"], str) else None
            assert got[f"{m}_flag"] == flag, f"{got['station_id']} {got['ts']} {m}"
            assert got[f"{m}_valid"] is (flag is None)


def _flag(db: Database, station: str, ts: Any, measure: str) -> str | None:
    return db.stg_airqino_hourly.find_one({"station_id": station, "ts": ts})[f"{measure}_flag"]


def test_each_qc_rule_flags_what_the_architecture_says(edge_case_db: Database) -> None:
    mongo_db = edge_case_db
    t0 = utc(2024, 1, 1)

    def at(i: int) -> Any:
        return t0 + timedelta(hours=i)

    assert [_flag(mongo_db, "A", at(i), "co") for i in range(5)] == [None] * 5  # short zero run is valid
    assert _flag(mongo_db, "A", at(6), "pm25") == "negative"
    assert _flag(mongo_db, "A", at(7), "pm25") == "out_of_range"
    assert _flag(mongo_db, "A", at(8), "co") == "non_numeric"
    assert _flag(mongo_db, "A", at(9), "rh") == "missing"
    assert {_flag(mongo_db, "A", at(i), "pm25") for i in range(10, 16)} == {"stuck"}
    assert {_flag(mongo_db, "A", at(i), "pm25") for i in range(17, 22)} == {None}
    assert {_flag(mongo_db, "A", at(i), "co") for i in range(30, 60)} == {"dead"}
    assert {_flag(mongo_db, "A", at(i), "co") for i in (*range(62, 74), *range(75, 87))} == {"dead"}
    assert {_flag(mongo_db, "A", at(i), "t") for i in (90, 91, 92, 94, 95, 96)} == {"stuck"}
    assert _flag(mongo_db, "A", at(100), "t") == "out_of_range"
    assert _flag(mongo_db, "A", at(101), "rh") == "out_of_range"
    assert _flag(mongo_db, "A", at(102), "co") == "out_of_range"
    assert _flag(mongo_db, "A", at(24 * 5 - 1), "pm25") == "provisional"
    non_numeric = mongo_db.stg_airqino_hourly.find_one({"station_id": "A", "ts": at(8)})
    assert non_numeric["co"] is None and non_numeric["co_valid"] is False


def _flags(db: Database, station: str, measure: str, start: Any, indexes: Any) -> set[str | None]:
    return {_flag(db, station, start + timedelta(hours=i), measure) for i in indexes}


def test_dead_sensor_with_a_one_hour_outage_is_dead_on_both_sides(edge_case_db: Database) -> None:
    """The issue's pattern: zeros 00:00-05:00, 06:00 missing, zeros from 07:00 on: every zero is flagged and the
    day's CO mean is null, never 0; the same with the outage hour present but CO non-numeric / absent."""
    mongo_db, start = edge_case_db, utc(2024, 3, 1)
    assert _flags(mongo_db, "D", "co", start, (*range(6), *range(7, 30))) == {"dead"}
    assert mongo_db.stg_airqino_hourly.find_one({"station_id": "D", "ts": start + timedelta(hours=6)}) is None
    assert _flags(mongo_db, "E", "co", start, (*range(6), *range(8, 30))) == {"dead"}
    assert _flag(mongo_db, "E", start + timedelta(hours=6), "co") == "non_numeric"
    assert _flag(mongo_db, "E", start + timedelta(hours=7), "co") == "missing"
    for station in ("D", "E"):
        day = mongo_db.daily_sensor_averages.find_one({"station_id": station, "day": "2024-03-01"})
        assert (day["co_mean"], day["co_min"], day["co_hours"], day["co_complete"]) == (None, None, 0, False)
        assert _flags(mongo_db, station, "co", start, range(30, 48)) == {None}  # a live sensor again
    e_day = mongo_db.daily_sensor_averages.find_one({"station_id": "E", "day": "2024-03-01"})
    assert e_day["pm25_hours"] == 24  # the hour whose CO is "n/a" keeps its PM2.5


def test_a_gap_longer_than_max_gap_hours_starts_a_new_run(edge_case_db: Database) -> None:
    mongo_db, start = edge_case_db, utc(2024, 4, 1)
    assert _flags(mongo_db, "G", "co", start, (*range(12), *range(20, 36))) == {None}  # 8-hour gap: 12 + 16
    assert _flags(mongo_db, "G", "co", start, (*range(48, 60), *range(66, 78))) == {"dead"}  # 6-hour gap: 24


def test_a_different_value_interrupts_a_run(edge_case_db: Database) -> None:
    mongo_db, start = edge_case_db, utc(2024, 4, 1)
    assert _flags(mongo_db, "G", "co", start, (*range(96, 108), *range(109, 127))) == {None}  # 12 + 18
    assert _flag(mongo_db, "G", start + timedelta(hours=108), "co") is None


def test_a_frozen_value_bridges_null_values(edge_case_db: Database) -> None:
    mongo_db, start = edge_case_db, utc(2024, 4, 1)
    assert _flags(mongo_db, "G", "pm25", start, (150, 151, 152, 159, 160, 161)) == {"stuck"}
    assert _flags(mongo_db, "G", "pm25", start, range(153, 159)) == {"missing"}


def test_dead_co_day_has_null_mean_not_clean_air(edge_case_db: Database) -> None:
    mongo_db = edge_case_db
    day = mongo_db.daily_sensor_averages.find_one({"station_id": "A", "day": "2024-01-02"})
    # hours 30..47 of the day are dead (0.0) and hour 24..29 valid: 6 valid hours, never a 0 in the mean
    assert day["co_hours"] == 6
    assert day["co_min"] > 0
    assert day["co_complete"] is False


def test_aqi_and_who_edges(edge_case_db: Database) -> None:
    mongo_db = edge_case_db
    rows = {r["day"]: r for r in mongo_db.daily_sensor_averages.find({"station_id": "B"})}
    expect = {
        "2024-02-01": (9.0, 50, "Good", False),
        "2024-02-02": (9.0625, 50, "Good", False),  # truncated to 9.0, not rounded to 9.1
        "2024-02-03": (35.5, 101, "Unhealthy for Sensitive Groups", True),
        "2024-02-04": (15.0, 62, "Moderate", False),  # exactly 15 is not above the WHO guideline
        "2024-02-05": (15.25, 62, "Moderate", True),
        "2024-02-06": (225.5, 301, "Hazardous", True),
        "2024-02-07": (400.0, 649, "Hazardous", True),  # beyond 325.4: the last segment is extended
        "2024-02-08": (55.5, 151, "Unhealthy", True),
        "2024-02-09": (125.5, 201, "Very Unhealthy", True),
    }
    for day, (mean, aqi, category, who) in expect.items():
        row = rows[day]
        assert (row["pm25_mean"], row["pm25_aqi"], row["pm25_aqi_category"], row["pm25_who_exceeded"]) == (
            mean,
            aqi,
            category,
            who,
        ), day
    assert (rows["2024-02-21"]["pm25_hours"], rows["2024-02-21"]["pm25_complete"]) == (17, False)
    assert (rows["2024-02-22"]["pm25_hours"], rows["2024-02-22"]["pm25_complete"]) == (18, True)


def test_dst_days_have_23_and_25_local_hours(edge_case_db: Database) -> None:
    mongo_db = edge_case_db
    rows = {r["day"]: r for r in mongo_db.daily_sensor_averages.find({"station_id": "R"})}
    assert rows["2024-03-31"]["pm25_hours"] == 23
    assert rows["2024-10-27"]["pm25_hours"] == 25
    assert rows["2024-03-30"]["pm25_hours"] == rows["2024-10-26"]["pm25_hours"] == 24
    assert rows["2024-03-31"]["pm25_complete"] and rows["2024-10-27"]["pm25_complete"]
    local_hours = sorted(
        d["hour_local"] for d in mongo_db.stg_airqino_hourly.find({"station_id": "R", "day": "2024-03-31"})
    )
    assert local_hours == [0, 1, *range(3, 24)]  # 02:00 does not exist that night
    autumn = sorted(
        d["hour_local"] for d in mongo_db.stg_airqino_hourly.find({"station_id": "R", "day": "2024-10-27"})
    )
    assert autumn == sorted([*range(24), 2])  # 02:00 happens twice


def test_simulator_data_through_the_real_loader(
    project_dir: Path, mongo_db: Database, airqino_simulator_factory
) -> None:
    from tests.load_helpers import fast_source, run_load

    sim = airqino_simulator_factory(window_days=21)
    fast_source(project_dir, sim.base_url)
    assert run_load(project_dir).exit_code == 0
    project = load_project(project_dir)
    assert run_transform(project, mongo_db, select=OWN_MODELS).exit_code == 0
    raw = list(mongo_db.raw_airqino_hourly.find())
    stations = {s.id: s.model_dump() for s in project.config.stations}
    expected = daily_sensor_averages(raw, stations)
    assert_rows_equal(collection_rows(mongo_db, "daily_sensor_averages"), expected)
    flags = set(mongo_db.stg_airqino_hourly.distinct("co_flag"))
    assert {"dead", "provisional"} <= flags  # SMART188's dead CO sensor is recognised


@pytest.mark.shared_data
def test_recorded_responses_through_the_real_loader(
    project_dir: Path, mongo_db: Database, shared_data_dir: Path
) -> None:
    from tests.load_helpers import run_load

    archive = shared_data_dir / "v3_full_response_2024-09-09"
    assert run_load(project_dir, "--from-dir", str(archive)).exit_code == 0
    project = load_project(project_dir)
    assert run_transform(project, mongo_db, select=OWN_MODELS).exit_code == 0
    raw = list(mongo_db.raw_airqino_hourly.find())
    stations = {s.id: s.model_dump() for s in project.config.stations}
    expected = daily_sensor_averages(raw, stations)
    assert len(expected) > 600
    assert_rows_equal(collection_rows(mongo_db, "daily_sensor_averages"), expected)
    smart188 = [r for r in expected if r["station_id"] == "283164601"]
    assert sum(r["co_hours"] for r in smart188) < 0.05 * 24 * len(smart188)  # the dead CO sensor is excluded


def test_non_numeric_co_keeps_the_rows_pm25_through_the_real_loader(
    project_dir: Path, mongo_db: Database, tmp_path: Path
) -> None:
    """A bad value, not a bad row: CO "n/a" is landed verbatim and flagged non_numeric; the hour's PM2.5 counts."""
    import json

    from tests.load_helpers import ARCHIVE_END, STATIONS, run_load, write_archive

    archive = write_archive(tmp_path / "archive", ARCHIVE_END, hours=48)
    path = archive / f"{STATIONS[0]}.json"
    payload = json.loads(path.read_text())
    bad = next(row for row in payload["data"] if row["timestamp"] == "2024-09-08 12:00:00")
    bad["CO"] = "n/a"
    path.write_text(json.dumps(payload))
    loaded = run_load(project_dir, "--from-dir", str(archive), "--fetched-at", "2024-09-09 11:05")
    assert loaded.exit_code == 0, loaded.stderr
    assert loaded.station(STATIONS[0])["rejected"] == 0
    assert mongo_db.raw_airqino_rejects.count_documents({}) == 0
    raw_row = mongo_db.raw_airqino_hourly.find_one({"_id": f"{STATIONS[0]}|2024-09-08T12:00Z"})
    assert raw_row["co"] == "n/a" and '"CO":"n/a"' in raw_row["original_json"]
    project = load_project(project_dir)
    assert run_transform(project, mongo_db, select=OWN_MODELS).exit_code == 0
    staged = mongo_db.stg_airqino_hourly.find_one({"station_id": STATIONS[0], "ts": raw_row["ts"]})
    assert (staged["co"], staged["co_flag"], staged["pm25"], staged["pm25_valid"]) == (
        None, "non_numeric", raw_row["pm25"], True
    )  # fmt: skip
    day = mongo_db.daily_sensor_averages.find_one({"station_id": STATIONS[0], "day": "2024-09-08"})
    present = [r for r in payload["data"] if r["timestamp"].startswith("2024-09-08")]
    assert day["pm25_hours"] == len(present)  # the "n/a" hour's PM2.5 is in the mart
    assert day["co_hours"] == len([r for r in present if r["CO"] != "n/a" and r["CO"] >= 0])
    raw = list(mongo_db.raw_airqino_hourly.find())
    stations = {s.id: s.model_dump() for s in project.config.stations}
    assert_rows_equal(
        collection_rows(mongo_db, "daily_sensor_averages"), daily_sensor_averages(raw, stations)
    )


def test_max_gap_hours_zero_is_the_strict_rule(
    mongo_client: MongoClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With max_gap_hours 0 only consecutive hours form a run: the outage splits the dead run again."""
    db = mongo_client[f"elt_test_daily_{uuid.uuid4().hex[:8]}"]
    project_dir = tmp_path_factory.mktemp("strict") / "project"
    (project_dir / "config").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "config" / "elt.yml", project_dir / "config" / "elt.yml")
    shutil.copytree(REPO_ROOT / "aggregations", project_dir / "aggregations")
    set_stations(project_dir, STATIONS)
    try:
        db.raw_airqino_hourly.insert_many(EDGE_CASES)
        strict = {"max_gap_hours": 0}
        result = run_transform(load_project(project_dir, env={}), db, select=OWN_MODELS, vars=strict)
        assert result.exit_code == 0, result.error
        expected = daily_sensor_averages(EDGE_CASES, _stations_map(), strict)
        assert_rows_equal(collection_rows(db, "daily_sensor_averages"), expected)
        assert _flags(db, "D", "co", utc(2024, 3, 1), (*range(6), *range(7, 30))) == {None}  # 6 + 23 hours
        assert {_flag(db, "A", utc(2024, 1, 1) + timedelta(hours=i), "co") for i in range(62, 74)} == {None}
    finally:
        mongo_client.drop_database(db.name)
