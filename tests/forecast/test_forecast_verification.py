"""forecast_verification and forecast_vs_observed (aggregations/marts/) on hand-built forecasts and staging, on a real
wire server (and the forecast chart's dataset on a real PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from elt.config import load_project
from elt.publish import publish_marts
from elt.transform.intervals import read_state
from elt.transform.task import run_transform
from tests.e2e.postgres import dataset_sql, query
from tests.reference_daily import raw_document, utc

#: Fixtures: postgres_server, serving_dsn (a fresh database on a private PostgreSQL).
pytest_plugins = ["tests.e2e.fixtures"]

STATION = "283181971"
OTHER = "283164601"
START = utc(2024, 3, 1)


def at(hour: int):
    return START + timedelta(hours=hour)


def raw_hours() -> list[dict[str, Any]]:
    """48 hours of station 283181971: pm25 = 10 + H, co = 0.1 + 0.01 H; pm25 negative at H = 20; H = 47 provisional."""
    docs = []
    for h in range(48):
        measures = {"pm25": 10.0 + h if h != 20 else -1.0, "co": round(0.1 + 0.01 * h, 4)}
        docs.append(raw_document(STATION, at(h), measures, provisional=h == 47))
    return docs


def forecast(station: str, pollutant: str, issued: int, horizon: int, value: float) -> dict[str, Any]:
    return {"station_id": station, "pollutant": pollutant, "issued_at": at(issued), "target_ts": at(issued + horizon),
            "horizon_h": horizon, "value": value, "model": "gbm", "model_version": "test"}  # fmt: skip


FORECASTS = [
    # day 1, pm25 +1 h: errors 1 and 3, persistence errors 1 and 1
    forecast(STATION, "pm25", 5, 1, 17.0),
    forecast(STATION, "pm25", 6, 1, 14.0),
    # day 1, pm25 +2 h: error 0.5, persistence (value at H=5: 15 vs 17) error 2
    forecast(STATION, "pm25", 5, 2, 17.5),
    # day 2, pm25 +1 h: error 0, persistence error 1
    forecast(STATION, "pm25", 30, 1, 41.0),
    # day 1, co +1 h: error 0.02, persistence error 0.01
    forecast(STATION, "co", 10, 1, 0.23),
    # never verified: target invalid (negative pm25 at H=20), target provisional (H=47), target not observed
    # yet, a station without observations
    forecast(STATION, "pm25", 19, 1, 30.0),
    forecast(STATION, "pm25", 46, 1, 56.0),
    forecast(STATION, "pm25", 59, 1, 70.0),
    forecast(OTHER, "pm25", 5, 1, 9.0),
]


@pytest.fixture
def verified(project_dir: Path, mongo_db: Database) -> Database:
    mongo_db.raw_airqino_hourly.insert_many(raw_hours())
    project = load_project(project_dir)
    assert run_transform(project, mongo_db).exit_code == 0
    # as elt forecast writes them: with the _loaded_at the incremental forecast_pairs tracks
    mongo_db.forecasts.insert_many([dict(f, _loaded_at=datetime.now(timezone.utc)) for f in FORECASTS])
    result = run_transform(project, mongo_db, select=["+forecast_verification"])
    assert result.exit_code == 0, [r.message for r in result.results]
    return mongo_db


def rows(db: Database) -> dict[tuple, dict[str, Any]]:
    return {
        (d["station_id"], d["pollutant"], d["horizon_h"], d["day"]): d
        for d in db.forecast_verification.find({}, {"_id": 0, "_updated_at": 0, "_run_id": 0, "_date": 0})
    }


def test_daily_mae_and_skill_of_hand_built_forecasts(verified: Database) -> None:
    got = rows(verified)
    assert set(got) == {
        (STATION, "pm25", 1, "2024-03-01"),
        (STATION, "pm25", 2, "2024-03-01"),
        (STATION, "pm25", 1, "2024-03-02"),
        (STATION, "co", 1, "2024-03-01"),
    }
    day1 = got[(STATION, "pm25", 1, "2024-03-01")]
    assert (day1["n"], day1["mae"], day1["mae_persistence"], day1["skill"]) == (2, 2.0, 1.0, -1.0)
    assert day1["station_name"] == "SMART189"
    plus2 = got[(STATION, "pm25", 2, "2024-03-01")]
    assert (plus2["n"], plus2["mae"], plus2["mae_persistence"], plus2["skill"]) == (1, 0.5, 2.0, 0.75)
    day2 = got[(STATION, "pm25", 1, "2024-03-02")]
    assert (day2["n"], day2["mae"], day2["mae_persistence"], day2["skill"]) == (1, 0.0, 1.0, 1.0)
    co = got[(STATION, "co", 1, "2024-03-01")]
    assert co["n"] == 1
    assert co["mae"] == pytest.approx(0.02)
    assert co["mae_persistence"] == pytest.approx(0.01)
    assert co["skill"] == pytest.approx(-1.0)


def test_trailing_seven_days_pool_the_errors_of_the_days_before(verified: Database) -> None:
    got = rows(verified)
    day2 = got[(STATION, "pm25", 1, "2024-03-02")]
    assert day2["n_7d"] == 3
    assert day2["mae_7d"] == pytest.approx(4 / 3)
    assert day2["mae_persistence_7d"] == pytest.approx(1.0)
    assert day2["skill_7d"] == pytest.approx(-1 / 3)
    day1 = got[(STATION, "pm25", 1, "2024-03-01")]
    assert (day1["n_7d"], day1["mae_7d"], day1["skill_7d"]) == (2, 2.0, -1.0)


def test_forecast_vs_observed_puts_each_hour_next_to_its_forecasts(
    project_dir: Path, verified: Database
) -> None:
    """The dashboard's mart: every staging hour per pollutant (observed only when valid and final) with the
    forecasts made 1 and 2 hours before it, plus the forecast-only hours (``received`` false)."""
    assert run_transform(load_project(project_dir), verified, select=["forecast_vs_observed"]).exit_code == 0
    got = {(d["station_id"], d["pollutant"], d["ts"].replace(tzinfo=timezone.utc)): d
           for d in verified.forecast_vs_observed.find({}, {"_id": 0, "_updated_at": 0, "_run_id": 0})}  # fmt: skip
    assert len(got) == 48 * 2 + 2  # + the forecast-only hours at H=60 and of the station without observations

    def row(station: str, pollutant: str, hour: int) -> tuple:
        d = got[(station, pollutant, at(hour))]
        return d["received"], d["observed"], d["forecast_1h"], d["forecast_2h"], d["station_name"]

    assert row(STATION, "pm25", 6) == (True, 16.0, 17.0, None, "SMART189")
    assert row(STATION, "pm25", 7) == (True, 17.0, 14.0, 17.5, "SMART189")
    assert row(STATION, "pm25", 20) == (True, None, 30.0, None, "SMART189")  # flagged: not an observation
    assert row(STATION, "pm25", 47) == (True, None, 56.0, None, "SMART189")  # provisional: not yet
    assert row(STATION, "pm25", 60) == (False, None, 70.0, None, "SMART189")  # what comes next
    assert row(OTHER, "pm25", 6) == (False, None, 9.0, None, "SMART188")
    assert row(STATION, "co", 11)[:3] == (True, pytest.approx(0.21), 0.23)


def test_the_forecast_charts_dataset_is_the_48_hours_before_the_newest_hour_received(
    project_dir: Path, mongo_db: Database, serving_dsn: str
) -> None:
    """72 hours received, forecasts for the 2 hours after: the chart's dataset, on PostgreSQL over the published
    mart, keeps the last 48 received hours and the forecast-only hours after them."""
    raw = [raw_document(STATION, at(h), {"pm25": 10.0 + h, "co": 0.5}) for h in range(72)]
    mongo_db.raw_airqino_hourly.insert_many(raw)
    mongo_db.forecasts.insert_many(
        [dict(forecast(STATION, "pm25", 71, h, 90.0), _loaded_at=datetime.now(timezone.utc)) for h in (1, 2)]
    )
    project = load_project(project_dir)
    assert run_transform(project, mongo_db).exit_code == 0
    publish_marts(project, mongo_db, dsn=serving_dsn)
    rows = query(
        serving_dsn,
        f"SELECT pollutant, ts, received, forecast_1h FROM ({dataset_sql('forecast_vs_observed_48h')}) v",
    )
    pm25 = sorted((ts, received, f1) for pollutant, ts, received, f1 in rows if pollutant == "pm25")
    assert [ts for ts, _, _ in pm25] == [at(h) for h in range(24, 74)]
    assert pm25[-2:] == [(at(72), False, 90.0), (at(73), False, None)]
    assert len(rows) == 2 * 48 + 2


def test_rebuild_gives_the_same_rows(project_dir: Path, verified: Database) -> None:
    before = rows(verified)
    result = run_transform(load_project(project_dir), verified, select=["+forecast_verification"])
    assert result.exit_code == 0
    assert rows(verified) == before


def test_hour_by_hour_verification_equals_a_full_refresh(project_dir: Path, mongo_db: Database) -> None:
    """Observations and forecasts arriving hour by hour, each hour an incremental run: the three verification
    models end equal to a --full-refresh build of the same data."""
    project = load_project(project_dir)
    raw = raw_hours()
    for hour in range(0, 48, 6):
        landed = datetime.now(timezone.utc)
        mongo_db.raw_airqino_hourly.insert_many([dict(d, _loaded_at=landed) for d in raw[hour : hour + 6]])
        due = [f for f in FORECASTS if hour <= (f["issued_at"] - START).total_seconds() / 3600 < hour + 6]
        if due:
            mongo_db.forecasts.insert_many([dict(f, _loaded_at=datetime.now(timezone.utc)) for f in due])
        assert run_transform(project, mongo_db).exit_code == 0
    later = [f for f in FORECASTS if (f["issued_at"] - START).total_seconds() / 3600 >= 48]
    if later:
        mongo_db.forecasts.insert_many([dict(f, _loaded_at=datetime.now(timezone.utc)) for f in later])
        assert run_transform(project, mongo_db).exit_code == 0
    names = ("forecast_pairs", "forecast_verification_days", "forecast_verification", "forecast_vs_observed")
    hidden = {"_id": 0, "_updated_at": 0, "_run_id": 0}

    def state() -> dict[str, list[str]]:
        return {n: sorted(repr(sorted(d.items())) for d in mongo_db[n].find({}, hidden)) for n in names}

    incremental = state()
    assert incremental["forecast_verification"], "nothing verified"
    full = run_transform(
        project, mongo_db, select=["+forecast_verification +forecast_vs_observed"], full_refresh=True
    )
    assert full.exit_code == 0
    rebuilt = state()
    for name in names:
        assert rebuilt[name] == incremental[name], name
    assert rows(mongo_db)[(STATION, "pm25", 1, "2024-03-02")]["n_7d"] == 3


def test_the_chart_mart_keeps_its_retained_span_hour_by_hour_as_a_full_refresh(
    project_dir: Path, mongo_db: Database
) -> None:
    """``retain`` (8 days shipped; 1 day here, over 48 hours): every incremental run deletes the hours older than
    the span before the newest staging hour, and a full refresh builds only that span: the two agree."""
    mart = project_dir / "aggregations" / "marts" / "forecast_vs_observed.yml"
    text = mart.read_text()
    assert "retain: 8d" in text and "days: 7}" in text
    mart.write_text(text.replace("retain: 8d", "retain: 1d").replace("days: 7}", "days: 1}"))
    project = load_project(project_dir)
    raw = raw_hours()
    messages = []
    for hour in range(0, 48, 6):
        mongo_db.raw_airqino_hourly.insert_many(
            [dict(d, _loaded_at=datetime.now(timezone.utc)) for d in raw[hour : hour + 6]]
        )
        due = [f for f in FORECASTS if hour <= (f["issued_at"] - START).total_seconds() / 3600 < hour + 6]
        if due:
            mongo_db.forecasts.insert_many([dict(f, _loaded_at=datetime.now(timezone.utc)) for f in due])
        result = run_transform(project, mongo_db, select=["+forecast_vs_observed"])
        assert result.exit_code == 0
        messages.append(result.result("model.forecast_vs_observed").message)
    hidden = {"_id": 0, "_updated_at": 0, "_run_id": 0}
    incremental = sorted(repr(sorted(d.items())) for d in mongo_db.forecast_vs_observed.find({}, hidden))
    # the newest staging hour is H = 47: the hours before H = 23 are gone
    assert mongo_db.forecast_vs_observed.find_one(sort=[("ts", 1)])["ts"] == at(23)
    assert any("older than the retained 1d deleted" in m for m in messages), messages
    full = run_transform(project, mongo_db, select=["+forecast_vs_observed"], full_refresh=True)
    assert full.exit_code == 0
    assert (
        sorted(repr(sorted(d.items())) for d in mongo_db.forecast_vs_observed.find({}, hidden)) == incremental
    )
    # the full refresh rebuilt staging first: its span ends at the newest hour staging got, read on the way
    newest_staged = mongo_db.stg_airqino_hourly.find_one(sort=[("ts", -1)])["ts"]
    assert read_state(mongo_db, "model.forecast_vs_observed")["retain_newest"] == newest_staged == at(47)
