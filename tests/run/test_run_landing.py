"""``elt run`` never windows landing away: a first run lands the whole history under any trigger, and a
history rewrite days behind the window reaches the marts on the next hourly run.

In-process ``RunTask`` (the code path of ``elt run``) against the simulator, clock moved by hand.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import requests
from pymongo.database import Database

from elt.config import load_project
from elt.run.task import RunTask
from elt.simulator import AirQinoSimulator
from elt.simulator.faults import set_value
from tests.simulator_fixtures import SIMULATOR_NOW


def _served_rows(sim: AirQinoSimulator) -> int:
    """How many rows the simulator serves right now, over every station (what a full fetch receives)."""
    return sum(len(requests.get(sim.station_url(s), timeout=60).json()["data"]) for s in sim.stations)


@pytest.mark.parametrize("trigger", ["airflow", "cli"])
def test_a_first_run_on_an_empty_database_lands_everything_the_api_returns(
    project_dir: Path, mongo_db: Database, sim: AirQinoSimulator, trigger: str
) -> None:
    project = load_project(project_dir)
    now = SIMULATOR_NOW
    if trigger == "airflow":  # one data interval, exactly as the DAG passes it
        start, end = now.replace(minute=5) - timedelta(hours=1), now.replace(minute=5)
    else:  # a manual backfill of one day
        start, end = now - timedelta(days=2), now - timedelta(days=1)
    result = RunTask(project, mongo_db, start=start, end=end, steps=["load"], trigger=trigger, now=now).run()
    assert result.ok, result.record.get("error")
    served = _served_rows(sim)
    assert mongo_db.raw_airqino_hourly.count_documents({}) == served > 24 * 13 * 2
    load = result.step("load")["counts"]
    assert load["inserted"] == load["received"] == served
    for audit in mongo_db.load_batches.find({"batch_id": load["batch_id"]}):
        assert audit["outside_window"] > 0 and audit["outside_window_landed"] is True
        assert audit["inserted"] == audit["received"]  # the rows outside the window were landed, not dropped


def test_a_rewrite_five_days_back_reaches_daily_sensor_averages_on_the_next_hourly_run(
    project_dir: Path, mongo_db: Database, sim: AirQinoSimulator
) -> None:
    project = load_project(project_dir)
    now = SIMULATOR_NOW
    assert RunTask(project, mongo_db, now=now, alerts=False).run().ok  # every step, as `elt run`
    station = "283181971"
    target = now.replace(minute=0) - timedelta(days=5)
    stored = mongo_db.raw_airqino_hourly.find_one({"station_id": station, "ts": {"$lte": target}, "pm25": {"$ne": None}},
                                                  sort=[("ts", -1)])  # fmt: skip
    assert stored is not None
    later = now + timedelta(hours=1)
    hours_ago = int((later.replace(minute=0) - stored["ts"]).total_seconds() // 3600)  # as of the next run
    assert hours_ago > 5 * 24
    day = f"{stored['ts']:%Y-%m-%d}"  # Africa/Abidjan: local day = UTC day
    before = mongo_db.daily_sensor_averages.find_one({"station_id": station, "day": day})
    assert before is not None and before["pm25_hours"] > 0

    # the clock moves on one hour and the API rewrites that hour (every later response shows it)
    sim.set_now(later)
    rewritten = round(stored["pm25"] + 48.0, 3)
    sim.revise_history(station, set_value(hours_ago, "PM2.5", rewritten))
    result = RunTask(project, mongo_db, now=later, lookback_hours=48, alerts=False).run()
    assert result.ok, result.record.get("error")
    assert result.window.mode == "incremental" and result.window.start > stored["ts"]
    assert result.step("load")["counts"]["updated"] >= 1
    landed = mongo_db.raw_airqino_hourly.find_one({"_id": stored["_id"]})
    assert landed["pm25"] == rewritten
    after = mongo_db.daily_sensor_averages.find_one({"station_id": station, "day": day})
    assert after["pm25_hours"] == before["pm25_hours"]
    delta = rewritten - stored["pm25"]
    assert after["pm25_mean"] == pytest.approx(before["pm25_mean"] + delta / before["pm25_hours"], abs=1e-3)
    assert after["pm25_max"] >= rewritten
