"""One notion of "which database": ``--demo`` reads ``<database>_demo`` in every command that reads the marts,
and a live command that finds nothing says where the demo's data is and what to run."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pymongo import MongoClient
from pymongo.database import Database

from elt.cli import main
from tests.conftest import REPO_ROOT


@pytest.fixture
def demo_db(mongo_client: MongoClient, mongo_db: Database) -> Iterator[Database]:
    """The demo database next to the test database, with one daily mart row and a run record."""
    demo = mongo_client[f"{mongo_db.name}_demo"]
    demo.daily_sensor_averages.insert_one({"station_id": "283164601", "day": "2024-09-08", "pm25_mean": 8.0})
    demo.raw_airqino_hourly.insert_one({"_id": "283164601|2024-09-08T10:00Z", "station_id": "283164601"})
    yield demo
    mongo_client.drop_database(demo.name)


def _elt(project_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--project-dir", str(project_dir), *args])
    return result.exit_code, result.stdout, result.stderr


def test_status_and_test_read_the_demo_database_with_demo(project_dir: Path, mongo_db: Database,
                                                          demo_db: Database) -> None:  # fmt: skip
    code, out, _ = _elt(project_dir, "status", "--json", "--demo")
    assert code == 0
    assert json.loads(out)["database"] == demo_db.name
    code, out, err = _elt(project_dir, "status", "--json")
    assert json.loads(out)["database"] == mongo_db.name
    assert "`elt status --demo`" in err  # the live database has no run: where the demo's data is

    code, out, err = _elt(project_dir, "test", "--demo", "--json", "-s", "daily_sensor_averages")
    assert code in (0, 1), err
    results = json.loads(out)
    assert results["metadata"]["database"] == demo_db.name
    assert {r["relation_name"].split(".")[0] for r in results["results"]} == {demo_db.name}
    assert mongo_db.list_collection_names() == []  # the live database was not touched


def test_publish_on_an_empty_live_database_names_the_demo_command(
    project_dir: Path, mongo_db: Database, demo_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg", reason="pip install 'airqino-elt[publish]'")
    monkeypatch.setenv("SERVING_DSN", "postgresql://elt:secret@127.0.0.1:1/airqino")
    code, _, err = _elt(project_dir, "publish")
    assert code != 0
    assert f"database '{mongo_db.name}' has no" in err
    assert "`elt publish --demo`" in err and demo_db.name in err
    assert "secret" not in err


def test_dashboard_accepts_demo_and_says_what_it_reads(project_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "config" / "superset", project_dir / "config" / "superset")
    code, out, err = _elt(project_dir, "dashboard", "--demo", "build", "-o", str(tmp_path / "bundle.zip"))
    assert code == 0, err
    assert "elt publish --demo" in err and (tmp_path / "bundle.zip").exists()
