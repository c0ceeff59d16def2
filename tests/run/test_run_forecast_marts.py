"""In one ``elt run`` the transform step leaves the models that read the forecasts to the forecast step, which
builds them after writing the forecasts (so this run's marts hold this run's forecasts), and builds them even
when forecasting fails (they also carry the observations).

In-process ``RunTask`` (the code path of ``elt run``) against the simulator.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pymongo.database import Database

from elt.config import load_project
from elt.run.task import RunTask
from elt.simulator import AirQinoSimulator
from tests.run.run_helpers import forecasts_missing_from_the_chart
from tests.simulator_fixtures import SIMULATOR_NOW

pytestmark = pytest.mark.timeout(600)
pytest.importorskip("sklearn", reason="the forecast step needs the forecast extra")

FORECAST_MARTS = {"forecast_pairs", "forecast_verification_days", "forecast_verification", "forecast_skill_7d",
                  "forecast_vs_observed"}  # fmt: skip


def test_the_forecast_step_builds_the_forecast_marts_with_this_runs_forecasts(
    project_dir: Path, mongo_db: Database, sim: AirQinoSimulator
) -> None:
    result = RunTask(load_project(project_dir), mongo_db, now=SIMULATOR_NOW, alerts=False).run()
    assert result.ok, result.record.get("error")
    models = len([f for f in (project_dir / "aggregations").rglob("*.yml") if f.name != "sources.yml"])
    # built once, by the forecast step: the transform step leaves them to it
    assert result.step("transform")["counts"]["nodes"] == models - len(FORECAST_MARTS)
    marts = result.step("forecast")["counts"]["forecast_marts"]
    assert marts["models"]["nodes"] == len(FORECAST_MARTS) and marts["tests"]["nodes"] > 0
    assert mongo_db.forecasts.count_documents({}) > 0
    assert forecasts_missing_from_the_chart(mongo_db) == []


def test_the_first_runs_full_pass_counts_with_the_forecast_marts_tests_so_the_next_run_audits(
    project_dir: Path, mongo_db: Database, sim: AirQinoSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the test step's full pass leaves the forecast marts' tests to the forecast step: together they are the
    # day's full pass, and the next run of the day audits only what it changed
    first = RunTask(load_project(project_dir), mongo_db, now=SIMULATOR_NOW, alerts=False).run()
    assert first.step("test")["counts"]["full_pass_reason"] == "no full test pass recorded yet"
    assert first.step("forecast")["counts"]["forecast_marts"]["tests"]["scope"] == "full"
    sim.advance(hours=1)
    import elt.forecast.store as store

    parses, parse = [], store.from_document
    monkeypatch.setattr(store, "from_document", lambda doc: parses.append(doc["_id"]) or parse(doc))
    second = RunTask(load_project(project_dir), mongo_db, now=SIMULATOR_NOW + timedelta(hours=1),
                     alerts=False).run()  # fmt: skip
    assert second.ok, second.record.get("error")
    # the model trained by the first run is parsed once, in the background, and the forecast step uses it
    assert len(parses) == 1 and second.step("forecast")["counts"].get("trained") is None
    assert second.step("test")["counts"]["scope"] == "changed"
    assert "full_pass_reason" not in second.step("test")["counts"]
    assert second.step("forecast")["counts"]["forecast_marts"]["tests"]["scope"] == "changed"


def test_a_failing_forecast_still_brings_the_observations_to_the_forecast_marts(
    project_dir: Path, mongo_db: Database, sim: AirQinoSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("model store unreachable")

    monkeypatch.setattr("elt.forecast.run.run_forecast", fail)
    result = RunTask(load_project(project_dir), mongo_db, now=SIMULATOR_NOW, alerts=False).run()
    forecast = result.step("forecast")
    assert forecast["status"] == "failed" and "model store unreachable" in forecast["error"]
    assert result.step("transform")["status"] == "ok" and result.step("test")["status"] == "ok"
    for newest in mongo_db.stg_airqino_hourly.aggregate(
        [{"$group": {"_id": "$station_id", "ts": {"$max": "$ts"}}}]
    ):
        row = mongo_db.forecast_vs_observed.find_one({"station_id": newest["_id"], "ts": newest["ts"]})
        assert row is not None and row["received"] is True, newest


def test_the_forecast_modules_and_model_are_loaded_in_the_background_only_when_a_forecast_step_follows(
    project_dir: Path, mongo_db: Database, sim: AirQinoSimulator
) -> None:
    from elt.forecast.run import train_project
    from elt.forecast.store import load_latest, save_forecast
    from elt.run.steps import start_forecast_import

    steps = ("load", "transform", "test", "forecast", "publish")
    nothing_stored = start_forecast_import(steps, mongo_db)
    assert nothing_stored is not None and nothing_stored.result(120) is None
    assert {"elt.forecast.run", "skops.io", "sklearn.ensemble"} <= set(sys.modules)
    # nothing to overlap with, or no forecast step
    assert start_forecast_import(("forecast",), mongo_db) is None
    assert start_forecast_import(("load", "transform", "test", "publish"), mongo_db) is None

    RunTask(load_project(project_dir), mongo_db, steps=["load", "transform"], now=SIMULATOR_NOW,
            alerts=False).run()  # fmt: skip
    stored = train_project(load_project(project_dir), mongo_db)
    parsed = start_forecast_import(steps, mongo_db).result(120)
    assert parsed is not None and parsed.version == stored.version
    assert load_latest(mongo_db, parsed) is parsed  # still the newest: not parsed again
    stored.version, stored.created_at = "a-newer-version", stored.created_at + timedelta(seconds=1)
    save_forecast(mongo_db, stored)
    newer = load_latest(mongo_db, parsed)
    assert newer is not parsed and newer.version == "a-newer-version"
