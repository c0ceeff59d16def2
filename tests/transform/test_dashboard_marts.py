"""The dashboard's marts (aggregations/marts/, tag dashboard) on a real wire server, from hand-made raw hours.

Two stations, local days 2024-09-01..04 (Africa/Abidjan = UTC). PM2.5 alternates base-1, base, base+1 over the
hours, so a day's mean is its base; SMART188's bases are 10, 15, 20, 25 (all days complete), SMART189's 30, 35,
40, 45 with 12 hours on 09-02 and 10 hours on 09-04 (both incomplete). The newest data day is 09-04, so
"yesterday" is 09-03 and "the last 30 days" are 09-01..03.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pymongo.database import Database

from elt.config import load_project
from elt.publish import publish_marts
from elt.transform.task import run_transform
from tests.e2e.postgres import dataset_sql, query
from tests.reference_daily import hours, raw_document, utc

#: Fixtures: postgres_server, serving_dsn (a fresh database on a private PostgreSQL).
pytest_plugins = ["tests.e2e.fixtures"]

pytestmark = pytest.mark.timeout(600)

SMART188, SMART189 = "283164601", "283181971"
BASES = {SMART188: (10, 15, 20, 25), SMART189: (30, 35, 40, 45)}
HOURS_PER_DAY = {SMART188: (24, 24, 24, 24), SMART189: (24, 12, 24, 10)}


@pytest.fixture
def marts(project_dir: Path, mongo_db: Database) -> Database:
    """The raw hours transformed into the dashboard marts (and what they read)."""
    raw = []
    for station_id, bases in BASES.items():
        for i, base in enumerate(bases):
            for h, ts in enumerate(hours(utc(2024, 9, 1 + i), HOURS_PER_DAY[station_id][i])):
                measures = {"pm25": base + (h % 3) - 1, "co": 0.4 + (h % 3) / 10, "pm10": 20.0 + h % 2}
                raw.append(raw_document(station_id, ts, measures))
    mongo_db.raw_airqino_hourly.insert_many(raw)
    project = load_project(project_dir)
    result = run_transform(
        project, mongo_db, select=["+station_headline +daily_valid_hours"], write_artifacts=False
    )
    assert result.ok
    return mongo_db


def _one(db: Database, collection: str, **match: object) -> dict:
    docs = list(db[collection].find(match, {"_id": 0}))
    assert len(docs) == 1, (collection, match, docs)
    return docs[0]


def test_days_ago_counts_back_from_the_newest_data_day_of_any_station(
    project_dir: Path, marts: Database, serving_dsn: str
) -> None:
    """days_ago is computed when read: the dashboard's datasets over the published marts, on PostgreSQL."""
    publish_marts(load_project(project_dir), marts, dsn=serving_dsn)
    for dataset in ("daily_air_quality", "daily_valid_hours"):
        rows = query(
            serving_dsn, f"SELECT station_id, day::text, days_ago FROM ({dataset_sql(dataset)}) AS v"
        )
        days_ago = {(station, day): n for station, day, n in rows}
        assert days_ago[(SMART188, "2024-09-04")] == 0, dataset
        assert days_ago[(SMART189, "2024-09-01")] == 3, dataset
        assert days_ago[(SMART189, "2024-09-04")] == 0, dataset


def test_incomplete_days_have_their_mean_in_their_own_column(marts: Database) -> None:
    incomplete = _one(marts, "daily_air_quality", station_id=SMART189, day="2024-09-02")
    assert incomplete["pm25_mean_incomplete_day"] == pytest.approx(35)
    assert incomplete["pm25_mean_complete_day"] is None
    complete = _one(marts, "daily_air_quality", station_id=SMART189, day="2024-09-03")
    assert complete["pm25_mean_complete_day"] == pytest.approx(40)
    assert complete["pm25_mean_incomplete_day"] is None


def test_headline_has_yesterday_against_who_the_last_30_days_and_data_age(marts: Database) -> None:
    smart188 = _one(marts, "station_headline", station_id=SMART188)
    assert smart188["yesterday"] == "2024-09-03"
    assert smart188["pm25_yesterday_mean"] == pytest.approx(20)
    assert smart188["pm25_yesterday_who_ratio"] == pytest.approx(20 / 15)
    # complete days 09-01..03 at 10, 15, 20: only 20 is over 15 (15 is not)
    assert (smart188["pm25_days_over_who_30d"], smart188["pm25_complete_days_30d"]) == (1, 3)
    assert smart188["pm25_hours_since_valid"] == 0
    smart189 = _one(marts, "station_headline", station_id=SMART189)
    # 09-02 (12 hours) does not count: a 24-hour guideline needs a complete day
    assert (smart189["pm25_days_over_who_30d"], smart189["pm25_complete_days_30d"]) == (2, 2)
    # its last hour is 09-04 09:00; the newest hour of any station is 09-04 23:00
    assert smart189["pm25_hours_since_valid"] == pytest.approx(14)


def test_valid_hours_are_one_row_per_station_pollutant_and_day(marts: Database) -> None:
    row = _one(marts, "daily_valid_hours", station_id=SMART189, pollutant="pm25", day="2024-09-02")
    assert (row["series"], row["valid_hours"], row["complete"]) == ("SMART189 · PM2.5", 12, False)
    assert marts.daily_valid_hours.count_documents({}) == 2 * 2 * 4


def test_forecast_skill_takes_the_trailing_week_of_the_newest_verified_day(
    project_dir: Path, mongo_db: Database
) -> None:
    base = {"station_id": SMART189, "station_name": "SMART189", "pollutant": "pm25", "horizon_h": 1}
    mongo_db.forecast_verification.insert_many(
        [
            {
                **base,
                "day": "2024-09-03",
                "n_7d": 20,
                "mae_7d": 1.0,
                "mae_persistence_7d": 2.0,
                "skill_7d": 0.5,
            },
            {
                **base,
                "day": "2024-09-04",
                "n_7d": 30,
                "mae_7d": 1.5,
                "mae_persistence_7d": 2.0,
                "skill_7d": 0.25,
            },
        ]
    )
    result = run_transform(
        load_project(project_dir), mongo_db, select=["forecast_skill_7d"], write_artifacts=False
    )
    assert result.ok
    row = _one(mongo_db, "forecast_skill_7d", station_id=SMART189)
    assert (row["window_end"], row["n_7d"], row["skill_7d"]) == ("2024-09-04", 30, 0.25)
    assert (row["pollutant_label"], row["horizon_label"]) == ("PM2.5 (µg/m³)", "+1 h")
