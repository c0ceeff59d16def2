"""The serving database's shape: columns from the models, the real transform's marts, the documented roles."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg
import pytest
import yaml
from pymongo.database import Database

from elt.config import load_project
from elt.publish import publish_marts
from elt.publish.tables import serving_tables
from tests.e2e.marts import FixtureMarts
from tests.e2e.postgres import PostgresServer, query

pytest_plugins = ["tests.e2e.fixtures"]

pytestmark = pytest.mark.timeout(180)


def test_serving_roles_give_superset_read_only_access_that_survives_a_rebuild(
    project_dir: Path,
    mongo_db: Database,
    marts: FixtureMarts,
    serving_dsn: str,
    postgres_server: PostgresServer,
) -> None:
    dbname = serving_dsn.rsplit("/", 1)[1]
    roles_sql = (
        Path(__file__).resolve().parents[2] / "config" / "superset" / "serving_roles.sql"
    ).read_text()
    with psycopg.connect(serving_dsn, autocommit=True) as conn:
        conn.execute(roles_sql)
        conn.execute(roles_sql)  # rerunnable
        conn.execute("ALTER ROLE elt_publisher PASSWORD 'pub-pw'")
        conn.execute("ALTER ROLE superset_ro PASSWORD 'ro-pw'")
    publisher = postgres_server.dsn(user="elt_publisher", password="pub-pw", dbname=dbname)
    reader = postgres_server.dsn(user="superset_ro", password="ro-pw", dbname=dbname)
    project = load_project(project_dir)

    publish_marts(project, mongo_db, dsn=publisher)
    publish_marts(project, mongo_db, dsn=publisher, rebuild=True)

    assert query(reader, "SELECT count(*) FROM airqino.daily_sensor_averages") == [(20,)]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), psycopg.connect(reader) as conn:
        conn.execute("DELETE FROM airqino.stations")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), psycopg.connect(reader) as conn:
        conn.execute("SET TRANSACTION READ WRITE")
        conn.execute("DELETE FROM airqino.stations")


def test_serving_columns_come_from_the_models(project_dir: Path) -> None:
    tables = {t.name: t for t in serving_tables(load_project(project_dir))}

    daily = tables["daily_sensor_averages"]
    assert daily.origin == "model" and daily.key == ("station_id", "day")
    assert [(c.name, c.type) for c in daily.columns][:4] == [
        ("station_id", "string"),
        ("station_name", "string"),
        ("day", "date"),  # a local YYYY-MM-DD string is served as a date
        ("co_mean", "number"),
    ]
    assert tables["forecasts"].origin == "contract"
    assert "station_name" in tables["forecasts"].column_names  # added for the dashboard's station filter


def test_a_column_added_to_a_model_is_published(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    publish_marts(load_project(project_dir), mongo_db, dsn=serving_dsn)
    model_file = project_dir / "aggregations" / "marts" / "station_freshness.yml"
    model = yaml.safe_load(model_file.read_text())
    model["columns"].append({"name": "lag_hours", "type": "number", "description": "test column"})
    model_file.write_text(yaml.safe_dump(model, sort_keys=False))
    mongo_db.station_freshness.update_many({}, {"$set": {"lag_hours": 1.5}})

    result = publish_marts(load_project(project_dir), mongo_db, dsn=serving_dsn)

    freshness = next(t for t in result.tables if t.table == "station_freshness")
    assert freshness.created and freshness.inserted == 4
    assert query(serving_dsn, "SELECT DISTINCT lag_hours FROM airqino.station_freshness") == [(1.5,)]


def test_marts_of_the_real_transform_publish_value_for_value(
    project_dir: Path, mongo_db: Database, serving_dsn: str
) -> None:
    from elt.transform.task import run_transform
    from tests.reference_daily import hours, raw_document, utc

    raw = [
        raw_document(
            station_id, ts, {"co": 0.4 + (i % 3) / 10, "pm25": 8.0 + (i % 5) * 3, "pm10": 20.0, "rh": 70.0}
        )
        for station_id in ("283164601", "283181971")
        for i, ts in enumerate(hours(utc(2024, 9, 1), 24 * 3))
    ]
    mongo_db.raw_airqino_hourly.insert_many(raw)
    project = load_project(project_dir)
    assert run_transform(project, mongo_db, write_artifacts=False).ok

    publish_marts(project, mongo_db, dsn=serving_dsn)

    published = query(
        serving_dsn,
        "SELECT station_id, day, pm25_mean, co_mean, pm25_hours, pm25_aqi, pm25_aqi_category, pm25_who_exceeded "
        "FROM airqino.daily_sensor_averages ORDER BY station_id, day",
    )
    documents = mongo_db.daily_sensor_averages.find({}, sort=[("station_id", 1), ("day", 1)])
    assert published == [
        (d["station_id"], date.fromisoformat(d["day"]), pytest.approx(d["pm25_mean"]), pytest.approx(d["co_mean"]),
         d["pm25_hours"], d["pm25_aqi"], d["pm25_aqi_category"], d["pm25_who_exceeded"])
        for d in documents
    ]  # fmt: skip
    assert len(published) == 6
    assert query(serving_dsn, "SELECT to_regclass('airqino.stg_airqino_hourly')") == [
        (None,)
    ]  # no chart reads it
