"""Forecast health through ``elt run``'s steps: no model before the minimum history, a model as soon as it
exists, a status per station and pollutant, and a warning (status, alert) when a series goes unforecast."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from pymongo.database import Database

from elt.config import load_project
from elt.forecast.health import HEALTH_COLLECTION
from elt.forecast.store import MODELS_COLLECTION
from elt.run.status import build_status
from elt.run.task import RunTask
from elt.simulator import AirQinoSimulator
from tests.run.test_status_alerts import Receiver, receiver  # noqa: F401 - the local webhook fixture
from tests.simulator_fixtures import SIMULATOR_NOW

pytest.importorskip("sklearn", reason="pip install 'airqino-elt[forecast]'")

STEPS = ["load", "transform", "forecast"]


@pytest.fixture
def sim(airqino_simulator_factory: Callable[..., AirQinoSimulator], monkeypatch: pytest.MonkeyPatch
        ) -> AirQinoSimulator:  # fmt: skip
    """The two brief stations with only 5 days of history served (less than training needs)."""
    simulator = airqino_simulator_factory(window_days=5)
    monkeypatch.setenv("AIRQINO_BASE_URL", simulator.base_url)
    return simulator


def _health(db: Database) -> dict[tuple[str, str], dict]:
    return {(d["station_id"], d["pollutant"]): d for d in db[HEALTH_COLLECTION].find()}


def test_no_model_before_the_minimum_history_then_one_as_soon_as_it_exists(
    project_dir: Path, mongo_db: Database, sim: AirQinoSimulator
) -> None:
    project = load_project(project_dir)
    short = RunTask(project, mongo_db, steps=STEPS, now=SIMULATOR_NOW, alerts=False).run()
    assert short.ok, short.record.get("error")
    forecast = short.step("forecast")
    assert forecast["status"] == "ok" and forecast["counts"]["trained"] is None
    assert forecast["counts"]["series_written"] == 0
    assert set(forecast["counts"]["series_missing"].values()) == {"not_enough_history"}
    assert mongo_db[MODELS_COLLECTION].count_documents({}) == 0  # nothing trained on too little data
    assert mongo_db.forecasts.count_documents({}) == 0
    health = _health(mongo_db)
    assert len(health) == 4 and {h["status"] for h in health.values()} == {"not_enough_history"}
    assert all("168" in h["reason"] for h in health.values())
    # not enough history is expected, not a warning
    assert build_status(project, mongo_db, now=SIMULATOR_NOW).forecast_warnings == []

    # the API now serves 14 days: the next hourly run trains at once and forecasts
    sim.window_days = 14
    later = SIMULATOR_NOW + timedelta(hours=1)
    sim.set_now(later)
    ready = RunTask(project, mongo_db, steps=STEPS, now=later, alerts=False).run()
    assert ready.ok, ready.record.get("error")
    counts = ready.step("forecast")["counts"]
    assert counts["trained"] is not None
    health = _health(mongo_db)
    assert health[("283181971", "pm25")]["status"] == "written"
    assert health[("283181971", "co")]["status"] == "written"
    assert health[("283164601", "pm25")]["status"] == "written"
    # SMART188's CO sensor reads 0.0 for weeks: a dead sensor, reported as such, never a warning
    assert health[("283164601", "co")]["status"] in ("dead_sensor", "no_valid_data")
    assert counts["series_written"] == 3 and list(counts["series_missing"]) == ["283164601/co"]
    assert mongo_db.forecasts.count_documents({"station_id": "283181971"}) == 4
    assert build_status(project, mongo_db, now=later).forecast_warnings == []


def test_a_station_without_new_hours_becomes_a_forecast_warning_and_an_alert_after_n_hours(
    project_dir: Path,
    mongo_db: Database,
    sim: AirQinoSimulator,
    receiver: Receiver,  # noqa: F811
) -> None:
    project = load_project(project_dir)
    sim.window_days = 14
    assert RunTask(project, mongo_db, steps=STEPS, now=SIMULATOR_NOW, alerts=False).run().ok
    assert _health(mongo_db)[("283181971", "pm25")]["status"] == "written"

    # SMART189 stops sending: 8 hours later its newest final hour is the old one
    silent_from = SIMULATOR_NOW.replace(minute=0).strftime("%Y-%m-%d %H:%M:%S")
    sim.revise_history("283181971", lambda rows, now: [r for r in rows if r["timestamp"] < silent_from])
    later = SIMULATOR_NOW + timedelta(hours=8)
    sim.set_now(later)
    result = RunTask(project, mongo_db, steps=STEPS, now=later).run()  # alerts on: the receiver gets them
    assert result.ok
    health = _health(mongo_db)
    for pollutant in ("co", "pm25"):
        entry = health[("283181971", pollutant)]
        assert entry["status"] == "recent_gap" and "no new final hour" in entry["reason"]
    assert health[("283164601", "pm25")]["status"] == "written"

    report = build_status(project, mongo_db, now=later)
    warned = {(w["station_id"], w["pollutant"]) for w in report.forecast_warnings}
    assert warned == {("283181971", "co"), ("283181971", "pm25")}
    assert all(w["missing_hours"] > 6 for w in report.forecast_warnings)
    assert report.as_json()["forecast_warnings"][0]["status"] == "recent_gap"
    alert = next(b for b in receiver.bodies if b["event"] == "forecasts_missing")
    assert {(x["station_id"], x["pollutant"]) for x in alert["series"]} == warned
    assert "SMART189" in alert["text"] or "283181971" in alert["text"]
    # below the threshold there is no warning yet
    assert build_status(project, mongo_db, now=SIMULATOR_NOW + timedelta(hours=3)).forecast_warnings == []
