"""Incremental runs: an hourly fetch recomputes at most two local days per station, a revision of an old hour
is picked up, and the result always equals a --full-refresh build (bit for bit, run fields aside)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from elt.config import load_project
from elt.simulator.faults import set_value
from elt.transform.intervals import read_state, stored_watermarks
from elt.transform.task import run_transform
from tests.load_helpers import fast_source, run_load
from tests.reference_daily import (
    OWN_MODELS,
    RUN_FIELDS,
    assert_rows_equal,
    collection_rows,
    daily_sensor_averages,
    hours,
    raw_document,
    set_stations,
    utc,
)

MODELS = ("stg_airqino_hourly", "daily_sensor_averages", "station_day_last_hours", "station_freshness")
SORT = {"stg_airqino_hourly": ("station_id", "ts"), "station_freshness": ("station_id", "pollutant")}


def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every model's documents without the run fields."""
    return {name: collection_rows(db, name, SORT.get(name, ("station_id", "day"))) for name in MODELS}


def assert_equals_full_refresh(project_dir: Path, db: Database) -> None:
    incremental = snapshot(db)
    result = run_transform(load_project(project_dir), db, full_refresh=True, select=OWN_MODELS)
    assert result.exit_code == 0, result.error
    assert {r.adapter_response["mode"] for r in result.results} == {"full"}
    full = snapshot(db)
    for name in MODELS:
        assert incremental[name] == full[name], f"{name} differs from a full refresh"


def run_results(project_dir: Path) -> dict[str, Any]:
    return json.loads((project_dir / "target" / "run_results.json").read_text())


def partitions_per_station(results: dict[str, Any], model: str) -> Counter:
    node = next(r for r in results["results"] if r["unique_id"] == f"model.{model}")
    return Counter(p["station_id"] for p in node["adapter_response"].get("partitions", []))


@pytest.fixture
def simulated(project_dir: Path, mongo_db: Database, airqino_simulator_factory) -> Any:
    """Two weeks of the two brief stations loaded by the real loader and transformed once."""
    sim = airqino_simulator_factory(window_days=14)
    fast_source(project_dir, sim.base_url)
    assert run_load(project_dir).exit_code == 0
    first = run_transform(load_project(project_dir), mongo_db, select=OWN_MODELS)
    assert first.exit_code == 0, first.error
    return sim


def test_one_new_hourly_fetch_touches_at_most_two_days_per_station(simulated, project_dir: Path,
                                                                   mongo_db: Database) -> None:  # fmt: skip
    simulated.advance(hours=1)
    assert run_load(project_dir).exit_code == 0
    result = run_transform(load_project(project_dir), mongo_db, select=OWN_MODELS)
    assert result.exit_code == 0, result.error
    results = run_results(project_dir)
    for model in ("daily_sensor_averages", "station_day_last_hours"):
        per_station = partitions_per_station(results, model)
        assert set(per_station) == {"283164601", "283181971"}
        assert max(per_station.values()) <= 2, per_station
    staging = next(r for r in result.results if r.unique_id == "model.stg_airqino_hourly").adapter_response
    assert staging["mode"] == "incremental" and staging["partition_count"] == 2
    # the new hour, the finalized one, and the run flags they change (at most 25 rows per station)
    assert 2 <= staging["rows_affected"] <= 2 * 25
    assert_equals_full_refresh(project_dir, mongo_db)


def test_revision_of_a_ten_day_old_hour_is_picked_up_by_the_next_run(simulated, project_dir: Path,
                                                                     mongo_db: Database) -> None:  # fmt: skip
    station = "283181971"
    simulated.advance(hours=1)
    ten_days_ago = simulated.clock() - timedelta(days=10)
    target = mongo_db.raw_airqino_hourly.find_one({"station_id": station, "ts": {"$lte": ten_days_ago}},
                                                  sort=[("ts", -1)])  # fmt: skip
    current_hour = simulated.clock().replace(minute=0, second=0, microsecond=0)
    hours_ago = int((current_hour - target["ts"]).total_seconds() // 3600)
    assert hours_ago >= 24 * 10
    simulated.revise_history(station, set_value(hours_ago, "PM2.5", 444.0))
    assert run_load(project_dir).exit_code == 0
    assert mongo_db.raw_airqino_hourly.find_one({"_id": target["_id"]})["pm25"] == 444.0
    assert run_transform(load_project(project_dir), mongo_db, select=OWN_MODELS).exit_code == 0
    revised = mongo_db.stg_airqino_hourly.find_one({"station_id": station, "ts": target["ts"]})
    assert revised["pm25"] == 444.0
    day = mongo_db.daily_sensor_averages.find_one({"station_id": station, "day": revised["day"]})
    assert day["pm25_max"] == 444.0
    touched = {
        (p["station_id"], p["day"])
        for p in run_results(project_dir)["results"][1]["adapter_response"]["partitions"]
    }
    assert (station, revised["day"]) in touched
    raw = list(mongo_db.raw_airqino_hourly.find())
    stations = {s.id: s.model_dump() for s in load_project(project_dir).config.stations}
    assert_rows_equal(
        collection_rows(mongo_db, "daily_sensor_averages"), daily_sensor_averages(raw, stations)
    )
    assert_equals_full_refresh(project_dir, mongo_db)


def test_rerun_without_new_data_changes_no_document(simulated, project_dir: Path, mongo_db: Database) -> None:
    before = {name: list(mongo_db[name].find().sort("_id", 1)) for name in MODELS}
    result = run_transform(load_project(project_dir), mongo_db, select=OWN_MODELS)
    assert result.exit_code == 0
    assert [r.adapter_response["rows_affected"] for r in result.results] == [0, 0, 0, 0]
    assert result.results[-1].adapter_response["mode"] == "skipped_unchanged"
    after = {name: list(mongo_db[name].find().sort("_id", 1)) for name in MODELS}
    assert before == after  # _updated_at and _run_id included


def assert_watermarks_are_the_parents_newest_stamps(db: Database) -> None:
    """Each model's recorded watermark of a parent model is that parent's newest ``_updated_at`` (found here by
    reading every document; the transform takes its own stamp when it wrote the parent in the same run)."""
    for child in MODELS[1:]:
        marks = stored_watermarks(read_state(db, f"model.{child}"))
        parents = {node: value for node, value in marks.items() if node.startswith("model.")}
        assert parents, child
        for node, value in parents.items():
            newest = max(
                doc["_updated_at"] for doc in db[node.removeprefix("model.")].find({}, {"_updated_at": 1})
            )
            assert value == newest, (child, node)


def test_watermarks_of_parents_built_in_the_same_run_are_their_newest_stamps(
    simulated, project_dir: Path, mongo_db: Database
) -> None:
    assert_watermarks_are_the_parents_newest_stamps(mongo_db)  # the first build
    simulated.advance(hours=1)
    assert run_load(project_dir).exit_code == 0
    assert run_transform(load_project(project_dir), mongo_db, select=OWN_MODELS).exit_code == 0
    assert_watermarks_are_the_parents_newest_stamps(mongo_db)  # an hourly run
    assert run_transform(load_project(project_dir), mongo_db, select=OWN_MODELS).exit_code == 0
    assert_watermarks_are_the_parents_newest_stamps(mongo_db)  # a run that changed nothing


def test_changed_definition_rebuilds_fully(simulated, project_dir: Path, mongo_db: Database) -> None:
    result = run_transform(
        load_project(project_dir), mongo_db, vars={"min_hours_per_day": 20}, select=OWN_MODELS
    )
    modes = {r.unique_id: (r.adapter_response["mode"], r.message) for r in result.results}
    assert modes["model.daily_sensor_averages"][0] == "full"
    assert "definition changed" in modes["model.daily_sensor_averages"][1]
    assert modes["model.stg_airqino_hourly"][0] == "incremental"  # its rendered pipeline did not change
    complete = mongo_db.daily_sensor_averages.count_documents(
        {"pm25_complete": True, "pm25_hours": {"$lt": 20}}
    )
    assert complete == 0


def _land(db: Database, docs: list[dict[str, Any]]) -> None:
    """What the loader does for one fetch: the previous provisional hour becomes final, the newest is provisional."""
    stamp = docs[-1]["_loaded_at"]
    db.raw_airqino_hourly.update_many(
        {"provisional": True}, {"$set": {"provisional": False, "_loaded_at": stamp}}
    )
    db.raw_airqino_hourly.insert_many(docs)


def test_hour_by_hour_landing_across_dst_equals_full_refresh(project_dir: Path, mongo_db: Database) -> None:
    set_stations(project_dir, [{"id": "R", "name": "ROME", "timezone": "Europe/Rome"},
                               {"id": "Z", "name": "ZERO", "timezone": "Africa/Abidjan"}])  # fmt: skip
    start = utc(2024, 3, 29, 20)
    stream = []
    for i, ts in enumerate(hours(start, 96)):
        stream.append(("R", ts, {"co": 0.2 + i % 3 / 10, "pm25": 7.0 if 40 <= i <= 46 else 8.0 + i % 4}))
        stream.append(("Z", ts, {"co": 0.0 if 20 <= i <= 70 else 0.5 + i % 2 / 10, "pm25": 9.0 + i % 5}))
    project = load_project(project_dir)
    steps = [0, 30, 31, 35, 41, 44, 45, 46, 47, 60, 69, 70, 71, 72, 90, 96]
    for step, (lo, hi) in enumerate(zip(steps, steps[1:], strict=False)):
        loaded_at = utc(2024, 6, 1) + timedelta(minutes=step)
        chunk = stream[2 * lo : 2 * hi]
        docs = [raw_document(s, ts, m, provisional=(j >= len(chunk) - 2), loaded_at=loaded_at)
                for j, (s, ts, m) in enumerate(chunk)]  # fmt: skip
        _land(mongo_db, docs)
        assert run_transform(project, mongo_db, select=OWN_MODELS).exit_code == 0
    dead = mongo_db.stg_airqino_hourly.count_documents({"station_id": "Z", "co_flag": "dead"})
    assert dead == 51
    stuck = mongo_db.stg_airqino_hourly.count_documents({"station_id": "R", "pm25_flag": "stuck"})
    assert stuck == 7
    assert (
        mongo_db.daily_sensor_averages.find_one({"station_id": "R", "day": "2024-03-31"})["pm25_hours"]
        == 23 - 7
    )
    raw = list(mongo_db.raw_airqino_hourly.find())
    stations = {
        "R": {"name": "ROME", "timezone": "Europe/Rome"},
        "Z": {"name": "ZERO", "timezone": "Africa/Abidjan"},
    }
    assert_rows_equal(
        collection_rows(mongo_db, "daily_sensor_averages"), daily_sensor_averages(raw, stations)
    )
    assert_equals_full_refresh(project_dir, mongo_db)


def test_run_fields_are_the_only_difference_with_a_full_build(
    simulated, project_dir: Path, mongo_db: Database
) -> None:
    doc = mongo_db.daily_sensor_averages.find_one()
    assert set(RUN_FIELDS) <= set(doc)
    assert doc["_run_id"] == run_results(project_dir)["metadata"]["invocation_id"]


def _gap_stream() -> dict[int, float]:
    """CO of station Z by hour (absent = no row), 300 hours from 2024-05-01, max_gap_hours 6:

    0-9 and 17-30 zeros around a 7-hour gap (two short runs, valid); 60-71 and 78-89 zeros around a 6-hour gap
    (one 24-hour run, dead); 24 zeros 7 hours apart from hour 100 to 261, the hours between without a row or
    without CO (None) (one 24-hour run, dead, spanning 161 hours = the model's lookback); every other hour a
    changing non-zero value.
    """
    co: dict[int, float | None] = {i: 0.3 + (i % 7) / 10 for i in range(300)}
    for i in (*range(10, 17), *range(72, 78), *(i for i in range(100, 262) if (i - 100) % 7 and i % 2)):
        del co[i]
    for i in range(100, 262):
        if (i - 100) % 7 and i in co:
            co[i] = None
    for i in (*range(10), *range(17, 31), *range(60, 72), *range(78, 90), *range(100, 262, 7)):
        co[i] = 0.0
    return co


def test_change_next_to_a_gap_equals_full_refresh(project_dir: Path, mongo_db: Database) -> None:
    """Runs bridge gaps, so a change can flip flags up to the lookback away: incremental == --full-refresh."""
    set_stations(project_dir, [{"id": "Z", "name": "ZERO", "timezone": "Africa/Abidjan"}])
    start, first_load = utc(2024, 5, 1), utc(2024, 6, 1)
    co = _gap_stream()

    def doc(i: int, value: float | None, loaded_at: Any) -> dict[str, Any]:
        measures = {"pm25": 5.0 + i % 9} if value is None else {"co": value, "pm25": 5.0 + i % 9}
        return raw_document(
            "Z", start + timedelta(hours=i), measures, provisional=(i == 299), loaded_at=loaded_at
        )

    mongo_db.raw_airqino_hourly.insert_many([doc(i, value, first_load) for i, value in sorted(co.items())])
    project = load_project(project_dir)
    assert run_transform(project, mongo_db, select=OWN_MODELS).exit_code == 0

    def co_flags(hours_: Any) -> set[Any]:
        found = mongo_db.stg_airqino_hourly.find({"station_id": "Z", "co": 0.0})
        return {d["co_flag"] for d in found if int((d["ts"] - start).total_seconds() // 3600) in hours_}

    assert co_flags(range(31)) == {None}
    assert co_flags(range(60, 90)) == co_flags(range(100, 262)) == {"dead"}
    # 1. a zero inside the 7-hour gap bridges the two short runs: 25 hours, dead
    # 2. a non-zero value right after the 6-hour gap splits the dead run into 12 + 11 hours: valid
    # 3. the last zero of the 161-hour run becomes 0.4: 23 hours left, valid back to hour 100
    later = first_load + timedelta(hours=1)
    mongo_db.raw_airqino_hourly.insert_one(doc(13, 0.0, later))
    for i, value in ((78, 0.5), (261, 0.4)):
        mongo_db.raw_airqino_hourly.replace_one({"_id": f"Z|{start + timedelta(hours=i):%Y-%m-%dT%H:00Z}"},
                                                doc(i, value, later))  # fmt: skip
    result = run_transform(project, mongo_db, select=OWN_MODELS)
    assert result.exit_code == 0, result.error
    staging = next(r for r in result.results if r.unique_id == "model.stg_airqino_hourly").adapter_response
    assert staging["mode"] == "incremental"
    assert co_flags(range(31)) == {"dead"}
    assert co_flags(range(60, 90)) == co_flags(range(100, 262)) == {None}
    raw = list(mongo_db.raw_airqino_hourly.find())
    expected = daily_sensor_averages(raw, {"Z": {"name": "ZERO", "timezone": "Africa/Abidjan"}})
    assert_rows_equal(collection_rows(mongo_db, "daily_sensor_averages"), expected)
    assert_equals_full_refresh(project_dir, mongo_db)
