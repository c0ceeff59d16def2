"""``elt publish`` against a real private PostgreSQL (initdb + pg_ctl) and a real wire MongoDB."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from pymongo.database import Database

from elt.config import load_project
from elt.errors import ConfigError, PublishError
from elt.publish import publish_marts
from tests.e2e.marts import FixtureMarts
from tests.e2e.postgres import SUPERUSER_PASSWORD, PostgresServer, query

#: Fixtures: postgres_server, serving_dsn (a fresh database on it), marts (fixture marts in mongo_db).
pytest_plugins = ["tests.e2e.fixtures"]

pytestmark = pytest.mark.timeout(120)


def _collections_digest(db: Database) -> str:
    digest = hashlib.sha256()
    for name in sorted(db.list_collection_names()):
        for doc in db[name].find({}, sort=[("_id", 1)]):
            digest.update(repr(sorted(doc.items())).encode())
    return digest.hexdigest()


def test_publish_copies_every_mart_with_typed_columns(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    project = load_project(project_dir)
    result = publish_marts(project, mongo_db, dsn=serving_dsn)

    counts = {t.table: t.inserted for t in result.tables}
    assert counts == {
        "daily_sensor_averages": 20,
        "station_freshness": 4,
        "forecasts": len(marts.collections["forecasts"]),
        "forecast_verification": len(marts.collections["forecast_verification"]),
        "stations": 2,
    }
    day = marts.known_day
    rows = query(
        serving_dsn,
        "SELECT station_name, pm25_mean, pm25_hours, pm25_complete, co_mean, pm25_aqi_category "
        "FROM airqino.daily_sensor_averages WHERE day = %s ORDER BY station_name",
        (day,),
    )
    assert rows == [
        ("SMART188", 22.5, 24, True, pytest.approx(0.33), "Moderate"),
        ("SMART189", 47.5, 24, True, pytest.approx(0.43), "Unhealthy for Sensitive Groups"),
    ]
    incomplete = query(
        serving_dsn,
        "SELECT day, pm25_hours, pm25_complete FROM airqino.daily_sensor_averages WHERE NOT pm25_complete",
    )
    assert incomplete == [(marts.days[4], 16, False)]
    types = dict(
        query(
            serving_dsn,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'airqino' AND table_name IN ('daily_sensor_averages', 'forecasts')",
        )
    )
    assert types["day"] == "date" and types["target_ts"] == "timestamp with time zone"
    assert types["pm25_mean"] == "double precision" and types["pm25_complete"] == "boolean"
    assert types["horizon_h"] == "bigint"
    # staging is not published: no chart reads it (the dashboard's marts are built from it)
    assert query(serving_dsn, "SELECT to_regclass('airqino.stg_airqino_hourly')") == [(None,)]
    stations = query(
        serving_dsn, "SELECT station_id, station_name, timezone, lat, lon FROM airqino.stations ORDER BY 1"
    )
    assert stations == [
        ("283164601", "SMART188", "Africa/Abidjan", 5.3693, -3.9588),
        ("283181971", "SMART189", "Africa/Abidjan", 5.3653, -3.9578),
    ]


def test_rerun_with_nothing_changed_writes_zero_rows(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    project = load_project(project_dir)
    publish_marts(project, mongo_db, dsn=serving_dsn)
    before = query(serving_dsn, "SELECT max(published_at), count(*) FROM airqino.forecasts")

    second = publish_marts(project, mongo_db, dsn=serving_dsn)

    assert second.rows_written == 0
    assert all(t.inserted == t.updated == t.deleted == 0 and not t.created for t in second.tables)
    assert query(serving_dsn, "SELECT max(published_at), count(*) FROM airqino.forecasts") == before


def test_one_changed_mart_row_updates_exactly_that_row(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    project = load_project(project_dir)
    publish_marts(project, mongo_db, dsn=serving_dsn)
    day = marts.known_day.isoformat()
    # _updated_at/_run_id change on every transform run: they must not count as a change
    mongo_db.daily_sensor_averages.update_many({}, {"$set": {"_run_id": "another-run"}})
    mongo_db.daily_sensor_averages.update_one(
        {"station_id": "283164601", "day": day}, {"$set": {"pm25_mean": 99.0}}
    )

    result = publish_marts(project, mongo_db, dsn=serving_dsn)

    by_table = {t.table: t for t in result.tables}
    assert by_table["daily_sensor_averages"].updated == 1
    assert result.rows_written == 1
    assert query(
        serving_dsn,
        "SELECT pm25_mean FROM airqino.daily_sensor_averages WHERE station_id = '283164601' AND day = %s",
        (date.fromisoformat(day),),
    ) == [(99.0,)]


def test_rows_that_leave_the_source_or_the_window_are_deleted(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    project = load_project(project_dir)
    publish_marts(project, mongo_db, dsn=serving_dsn)
    newest = max(d["target_ts"] for d in marts.collections["forecasts"])
    # one forecast 29 days after the newest moves the 30-day window past the first fixture forecasts
    moved = newest + timedelta(days=29)
    later = dict(marts.collections["forecasts"][-1], target_ts=moved, issued_at=moved - timedelta(hours=1))
    later.pop("_id", None)
    mongo_db.forecasts.insert_one(later)
    mongo_db.forecast_verification.delete_one({"station_id": "283164601", "horizon_h": 2, "pollutant": "co"})

    result = publish_marts(project, mongo_db, dsn=serving_dsn)

    by_table = {t.table: t for t in result.tables}
    assert by_table["forecast_verification"].deleted == 1
    window_start = moved - timedelta(days=30)
    dropped = sum(1 for d in marts.collections["forecasts"] if d["target_ts"] <= window_start)
    assert by_table["forecasts"].deleted == dropped > 0
    oldest = query(serving_dsn, "SELECT min(target_ts) FROM airqino.forecasts")[0][0]
    assert oldest > window_start


def test_rebuild_drops_and_recreates_every_table(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    project = load_project(project_dir)
    publish_marts(project, mongo_db, dsn=serving_dsn)

    result = publish_marts(project, mongo_db, dsn=serving_dsn, rebuild=True)

    assert all(t.created and t.inserted == t.rows for t in result.tables)
    assert query(serving_dsn, "SELECT count(*) FROM airqino.daily_sensor_averages") == [(20,)]


def test_a_table_with_other_columns_is_recreated(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    project = load_project(project_dir)
    publish_marts(project, mongo_db, dsn=serving_dsn)
    with psycopg.connect(serving_dsn) as conn:
        conn.execute("ALTER TABLE airqino.station_freshness DROP COLUMN last_ts")

    result = publish_marts(project, mongo_db, dsn=serving_dsn)

    freshness = next(t for t in result.tables if t.table == "station_freshness")
    assert freshness.created and freshness.inserted == 4
    assert not next(t for t in result.tables if t.table == "daily_sensor_averages").created


def test_forecast_tables_are_skipped_until_forecasts_exist(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    mongo_db.forecasts.drop()
    mongo_db.forecast_verification.drop()

    result = publish_marts(load_project(project_dir), mongo_db, dsn=serving_dsn)

    assert result.skipped[:2] == [
        "forecasts",
        "forecast_verification",
    ]  # then the dashboard marts not built here
    assert [t.table for t in result.tables] == [
        "daily_sensor_averages",
        "station_freshness",
        "stations",
    ]


def test_missing_marts_ask_for_a_transform_first(
    project_dir: Path, mongo_db: Database, serving_dsn: str
) -> None:
    mongo_db.create_collection("daily_sensor_averages")
    with pytest.raises(PublishError, match="has no station_freshness: run `elt transform`"):
        publish_marts(load_project(project_dir), mongo_db, dsn=serving_dsn)


def test_wrong_password_names_the_host_not_the_password_and_leaves_mongo_untouched(
    project_dir: Path,
    mongo_db: Database,
    marts: FixtureMarts,
    postgres_server: PostgresServer,
) -> None:
    before = _collections_digest(mongo_db)
    dsn = postgres_server.dsn(password="Wr0ng-pa55word")

    with pytest.raises(PublishError) as caught:
        publish_marts(load_project(project_dir), mongo_db, dsn=dsn)

    message = str(caught.value)
    assert f"postgres@127.0.0.1:{postgres_server.port}/postgres" in message
    assert "password authentication failed" in message
    assert "Wr0ng-pa55word" not in message and SUPERUSER_PASSWORD not in message
    assert _collections_digest(mongo_db) == before


def test_unreachable_postgres_is_a_clear_error(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts
) -> None:
    dsn = "postgresql://elt:hunter2@127.0.0.1:1/airqino"
    with pytest.raises(
        PublishError, match=r"cannot connect to PostgreSQL at elt@127\.0\.0\.1:1/airqino"
    ) as caught:
        publish_marts(load_project(project_dir), mongo_db, dsn=dsn)
    assert "hunter2" not in str(caught.value)


def test_no_serving_dsn_is_a_config_error(
    project_dir: Path, mongo_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVING_DSN", raising=False)
    with pytest.raises(ConfigError, match="SERVING_DSN"):
        publish_marts(load_project(project_dir), mongo_db)


def test_cli_publish_prints_json_and_exits_zero(
    project_dir: Path, marts: FixtureMarts, serving_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from elt.cli import main

    monkeypatch.setenv("SERVING_DSN", serving_dsn)
    runner = CliRunner()

    first = runner.invoke(main, ["--project-dir", str(project_dir), "publish", "--json"])
    second = runner.invoke(main, ["--project-dir", str(project_dir), "publish", "--json"])

    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["rows_written"] > 0 and SUPERUSER_PASSWORD not in first.stdout
    assert json.loads(second.stdout)["rows_written"] == 0


def test_cli_publish_wrong_dsn_exits_one_without_traceback(
    project_dir: Path, marts: FixtureMarts, monkeypatch: pytest.MonkeyPatch
) -> None:
    from elt.cli import main

    monkeypatch.setenv("SERVING_DSN", "postgresql://elt:hunter2@127.0.0.1:1/airqino")
    result = CliRunner().invoke(main, ["--project-dir", str(project_dir), "publish"])

    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL at elt@127.0.0.1:1/airqino" in result.stderr
    assert "Traceback" not in result.output and "hunter2" not in result.output


def test_timestamps_are_published_in_utc(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    publish_marts(load_project(project_dir), mongo_db, dsn=serving_dsn)
    last = query(
        serving_dsn, "SELECT last_ts FROM airqino.station_freshness WHERE station_id = '283181971' LIMIT 1"
    )[0][0]
    expected = datetime.combine(marts.days[-1], datetime.min.time(), tzinfo=timezone.utc) + timedelta(
        hours=20
    )
    assert last == expected


def test_a_failing_table_is_rolled_back_whole(
    project_dir: Path, mongo_db: Database, marts: FixtureMarts, serving_dsn: str
) -> None:
    project = load_project(project_dir)
    publish_marts(project, mongo_db, dsn=serving_dsn)
    before = query(
        serving_dsn,
        "SELECT station_id, day, pm25_mean, row_hash FROM airqino.daily_sensor_averages ORDER BY 1, 2",
    )
    mongo_db.daily_sensor_averages.update_many({}, {"$inc": {"pm25_mean": 1.0}})
    mongo_db.daily_sensor_averages.update_one(
        {"day": marts.days[-1].isoformat()}, {"$set": {"day": "not a day"}}
    )

    with pytest.raises(
        PublishError, match=r"publishing airqino\.daily_sensor_averages failed .*cannot read 'not a day'"
    ):
        publish_marts(project, mongo_db, dsn=serving_dsn)

    after = query(
        serving_dsn,
        "SELECT station_id, day, pm25_mean, row_hash FROM airqino.daily_sensor_averages ORDER BY 1, 2",
    )
    assert after == before  # none of the 19 convertible updates was kept
