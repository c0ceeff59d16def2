"""Change-driven publish (``elt run``'s publish step): only the scopes a run changed are read and written."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from pymongo.database import Database

from elt.config import load_project
from elt.models.changes import RunChanges
from elt.publish import publish_marts
from tests.e2e.marts import FixtureMarts
from tests.e2e.postgres import query

pytest_plugins = ["tests.e2e.fixtures"]

pytestmark = pytest.mark.timeout(120)

STATION = "283164601"


def test_unchanged_tables_are_not_touched_and_changed_scopes_are_upserted(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    project = load_project(project_dir)
    publish_marts(project, mongo_db, dsn=serving_dsn)
    day = marts.known_day.isoformat()
    mongo_db.daily_sensor_averages.update_one(
        {"station_id": STATION, "day": day}, {"$set": {"pm25_mean": 77.0}}
    )
    # a change outside the recorded scope is not published by a scoped run (the next full publish does it)
    other = mongo_db.daily_sensor_averages.find_one({"station_id": {"$ne": STATION}})
    mongo_db.daily_sensor_averages.update_one({"_id": other["_id"]}, {"$set": {"pm25_mean": 55.0}})
    changes = RunChanges("run-1")
    changes.add_scopes("daily_sensor_averages", [{"station_id": STATION, "day": {"$gte": day, "$lte": day}}])

    result = publish_marts(project, mongo_db, dsn=serving_dsn, changes=changes)

    by_table = {t.table: t for t in result.tables}
    assert set(by_table) == {"daily_sensor_averages", "stations"}
    assert {"stg_airqino_hourly", "station_freshness", "forecasts", "forecast_verification"} <= set(
        result.unchanged
    )
    assert by_table["daily_sensor_averages"].rows == 1 and by_table["daily_sensor_averages"].updated == 1
    assert query(serving_dsn, "SELECT pm25_mean FROM airqino.daily_sensor_averages WHERE station_id = %s AND day = %s",
                 (STATION, date.fromisoformat(day))) == [(77.0,)]  # fmt: skip
    assert query(serving_dsn, "SELECT pm25_mean FROM airqino.daily_sensor_averages WHERE station_id = %s AND day = %s",
                 (other["station_id"], date.fromisoformat(other["day"]))) != [(55.0,)]  # fmt: skip


def test_a_scoped_publish_deletes_inside_its_scope_and_moves_the_window(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    project = load_project(project_dir)
    publish_marts(project, mongo_db, dsn=serving_dsn)
    hours = sorted(d["ts"] for d in marts.collections["stg_airqino_hourly"] if d["station_id"] == STATION)
    gone = hours[-1]
    mongo_db.stg_airqino_hourly.delete_one({"station_id": STATION, "ts": gone})
    newest = max(d["ts"] for d in marts.collections["stg_airqino_hourly"])
    later = dict(next(d for d in marts.collections["stg_airqino_hourly"] if d["station_id"] == STATION),
                 ts=newest + timedelta(days=25))  # fmt: skip
    later.pop("_id", None)
    mongo_db.stg_airqino_hourly.insert_one(later)
    changes = RunChanges("run-2")
    changes.add_scopes("stg_airqino_hourly", [
        {"station_id": STATION, "ts": {"$gte": gone - timedelta(hours=1), "$lte": later["ts"]}},
    ])  # fmt: skip

    result = publish_marts(project, mongo_db, dsn=serving_dsn, changes=changes)

    table = {t.table: t for t in result.tables}["stg_airqino_hourly"]
    window_start = later["ts"] - timedelta(days=30)
    in_window = [d for d in marts.collections["stg_airqino_hourly"] if d["ts"] > window_start]
    assert table.inserted == 1
    assert query(serving_dsn, "SELECT count(*) FROM airqino.stg_airqino_hourly WHERE station_id = %s AND ts = %s",
                 (STATION, gone)) == [(0,)]  # fmt: skip
    # the full publish of the same data gives the same table
    served = query(
        serving_dsn, "SELECT station_id, ts, row_hash FROM airqino.stg_airqino_hourly ORDER BY 1, 2"
    )
    publish_marts(project, mongo_db, dsn=serving_dsn)
    assert (
        query(serving_dsn, "SELECT station_id, ts, row_hash FROM airqino.stg_airqino_hourly ORDER BY 1, 2")
        == served
    )
    assert (
        len(served) == len([d for d in in_window if not (d["station_id"] == STATION and d["ts"] == gone)]) + 1
    )
