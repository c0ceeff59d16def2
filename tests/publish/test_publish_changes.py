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
    assert {"station_freshness", "forecasts", "forecast_verification"} <= set(result.unchanged)
    assert by_table["daily_sensor_averages"].rows == 1 and by_table["daily_sensor_averages"].updated == 1
    assert query(serving_dsn, "SELECT pm25_mean FROM airqino.daily_sensor_averages WHERE station_id = %s AND day = %s",
                 (STATION, date.fromisoformat(day))) == [(77.0,)]  # fmt: skip
    assert query(serving_dsn, "SELECT pm25_mean FROM airqino.daily_sensor_averages WHERE station_id = %s AND day = %s",
                 (other["station_id"], date.fromisoformat(other["day"]))) != [(55.0,)]  # fmt: skip


def test_overlapping_scopes_publish_each_row_once(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    """Two steps of one run (transform, then the forecast step's refresh) may record overlapping scopes of the
    same relation: each changed row is written once (PostgreSQL refuses an upsert touching a row twice)."""
    project = load_project(project_dir)
    publish_marts(project, mongo_db, dsn=serving_dsn)
    day = marts.known_day.isoformat()
    mongo_db.daily_sensor_averages.update_one(
        {"station_id": STATION, "day": day}, {"$set": {"pm25_mean": 66.0}}
    )
    changes = RunChanges("run-1")
    changes.add_scopes("daily_sensor_averages", [{"station_id": STATION, "day": {"$gte": day, "$lte": day}},
                                                 {"station_id": STATION}])  # fmt: skip

    result = publish_marts(project, mongo_db, dsn=serving_dsn, changes=changes)

    published = next(t for t in result.tables if t.table == "daily_sensor_averages")
    assert published.updated == 1
    assert published.rows == mongo_db.daily_sensor_averages.count_documents({"station_id": STATION})
    assert query(serving_dsn, "SELECT pm25_mean FROM airqino.daily_sensor_averages WHERE station_id = %s AND day = %s",
                 (STATION, date.fromisoformat(day))) == [(66.0,)]  # fmt: skip


def test_a_scoped_publish_deletes_inside_its_scope_and_moves_the_window(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    project = load_project(project_dir)
    publish_marts(project, mongo_db, dsn=serving_dsn)
    mine = sorted((d for d in marts.collections["forecasts"] if d["station_id"] == STATION and d["pollutant"] == "pm25"),
                  key=lambda d: (d["issued_at"], d["horizon_h"]))  # fmt: skip
    gone = mine[-1]
    mongo_db.forecasts.delete_one({k: gone[k] for k in ("station_id", "pollutant", "issued_at", "horizon_h")})
    newest = max(d["target_ts"] for d in marts.collections["forecasts"])
    moved = newest + timedelta(days=29)
    later = dict(mine[0], target_ts=moved, issued_at=moved - timedelta(hours=1))
    later.pop("_id", None)
    mongo_db.forecasts.insert_one(later)
    changes = RunChanges("run-2")
    changes.add_scopes("forecasts", [
        {"station_id": STATION, "pollutant": "pm25", "issued_at": {"$gte": gone["issued_at"]}},
    ])  # fmt: skip

    result = publish_marts(project, mongo_db, dsn=serving_dsn, changes=changes)

    table = {t.table: t for t in result.tables}["forecasts"]
    window_start = moved - timedelta(days=30)
    in_window = [d for d in marts.collections["forecasts"] if d["target_ts"] > window_start]
    assert table.inserted == 1
    assert query(serving_dsn, "SELECT count(*) FROM airqino.forecasts WHERE station_id = %s AND pollutant = 'pm25' "
                 "AND issued_at = %s AND horizon_h = %s", (STATION, gone["issued_at"], gone["horizon_h"])) == [(0,)]  # fmt: skip
    # the full publish of the same data gives the same table
    columns = "station_id, pollutant, issued_at, horizon_h, row_hash"
    served = query(serving_dsn, f"SELECT {columns} FROM airqino.forecasts ORDER BY 1, 2, 3, 4")
    publish_marts(project, mongo_db, dsn=serving_dsn)
    assert query(serving_dsn, f"SELECT {columns} FROM airqino.forecasts ORDER BY 1, 2, 3, 4") == served
    assert len(served) == len([d for d in in_window if d is not gone]) + 1
