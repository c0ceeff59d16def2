"""End to end: marts in MongoDB → `elt publish` → private PostgreSQL → `elt dashboard import` → Superset 6.1
→ every chart's data API returns the fixture numbers → headless Chromium renders every chart (docs/dashboard.png).

Slow (about 2 minutes warm, plus about 90 s the first time to initialise Superset's metadata); run by .ci/run:
    .venv/bin/python -m pytest -m e2e tests/e2e
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from pymongo import MongoClient

from tests.e2e import superset_server as superset
from tests.e2e.marts import FixtureMarts, build_marts, write_marts
from tests.e2e.postgres import PostgresServer

pytest_plugins = ["tests.e2e.fixtures"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SMART188, SMART189 = "SMART188", "SMART189"


@dataclass
class Deployment:
    """Everything the tests look at: the running Superset, the chart ids by chart file name, the fixture."""

    server: superset.SupersetServer
    project_dir: Path
    env: dict[str, str]
    charts: dict[str, int]
    dashboard_id: int
    marts: FixtureMarts
    timings: dict[str, float] = field(default_factory=dict)

    def chart_rows(self, name: str) -> list[dict[str, Any]]:
        """The rows ``GET /api/v1/chart/<id>/data/`` returns for the chart of ``charts/<name>.yaml``."""
        response = self.server.login().get(
            f"{self.server.url}/api/v1/chart/{self.charts[name]}/data/", timeout=60
        )
        assert response.status_code == 200, f"{name}: HTTP {response.status_code} {response.text[:500]}"
        result = response.json()["result"][0]
        assert result.get("error") is None, f"{name}: {result['error']}"
        return result["data"]


def _elt(project_dir: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "elt", "--project-dir", str(project_dir), *args, "--json"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, f"elt {' '.join(args)} failed: {completed.stderr[-3000:]}"
    return json.loads(completed.stdout)


def _serving_database(server: PostgresServer) -> tuple[str, str]:
    """A fresh serving database with the documented roles; (publisher DSN, Superset URI), passwords inside."""
    name = f"airqino_e2e_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(server.dsn(dbname=name), autocommit=True) as conn:
        conn.execute((REPO_ROOT / "config" / "superset" / "serving_roles.sql").read_text())
        conn.execute("ALTER ROLE elt_publisher PASSWORD 'e2e-publisher-pw'")
        conn.execute("ALTER ROLE superset_ro PASSWORD 'e2e-reader-pw'")
    return (
        server.dsn(user="elt_publisher", password="e2e-publisher-pw", dbname=name),
        server.sqlalchemy_uri("superset_ro", "e2e-reader-pw", name),
    )


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    mongo_server_uri: str,
    mongo_client: MongoClient,
    postgres_server: PostgresServer,
) -> Iterator[Deployment]:
    """Fixture marts published to PostgreSQL and the dashboard imported into a running Superset."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    reason = superset.ensure_venv()
    if reason:
        pytest.skip(reason)
    timings["superset_venv"] = time.monotonic() - started

    base = tmp_path_factory.mktemp("e2e")
    project_dir = base / "project"
    for folder in ("config", "aggregations"):
        shutil.copytree(
            REPO_ROOT / folder, project_dir / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    marts = build_marts()
    database = mongo_client[f"elt_e2e_{uuid.uuid4().hex[:8]}"]
    write_marts(database, marts)
    publisher_dsn, reader_uri = _serving_database(postgres_server)
    env = superset.superset_env(base / "superset-home")
    env.update(
        {
            "MONGO_URI": mongo_server_uri,
            "ELT_DATABASE": database.name,
            "SERVING_DSN": publisher_dsn,
            "SUPERSET_SERVING_URI": reader_uri,
        }
    )

    step = time.monotonic()
    published = _elt(project_dir, env, "publish")
    assert published["rows_written"] == sum(len(v) for v in marts.collections.values()) + len(marts.stations)
    timings["publish"] = time.monotonic() - step

    step = time.monotonic()
    timings["superset_metadata"] = superset.init_metadata(base / "superset-home")
    step = time.monotonic()
    imported = _elt(project_dir, env, "dashboard", "import")
    timings["import"] = time.monotonic() - step

    step = time.monotonic()
    server = superset.start_server(base / "superset-home")
    timings["server_start"] = time.monotonic() - step
    names = {
        str(yaml.safe_load(path.read_text())["uuid"]): path.stem
        for path in (REPO_ROOT / "config" / "superset" / "charts").glob("*.yaml")
    }
    charts = {names[chart_uuid]: chart_id for chart_uuid, chart_id in imported["charts"].items()}
    try:
        yield Deployment(server, project_dir, env, charts, imported["dashboard_id"], marts, timings)
    finally:
        server.stop()
        mongo_client.drop_database(database.name)
        print(f"\ne2e timings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")


def _epoch_ms(day: date, hour: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc).timestamp() * 1000


def _by(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [row for row in rows if all(row.get(key) == value for key, value in match.items())]
    assert len(found) == 1, f"expected one row matching {match}, got {found}"
    return found[0]


def test_bundle_imports_every_chart(deployment: Deployment) -> None:
    expected = {path.stem for path in (REPO_ROOT / "config" / "superset" / "charts").glob("*.yaml")}
    assert set(deployment.charts) == expected and len(expected) == 8


def test_daily_pm25_chart_has_the_known_day_per_station(deployment: Deployment) -> None:
    rows = deployment.chart_rows("daily_pm25")
    day = _epoch_ms(deployment.marts.known_day)
    assert _by(rows, day=day, station_name=SMART188)["pm25_daily_mean"] == pytest.approx(22.5)
    assert _by(rows, day=day, station_name=SMART189)["pm25_daily_mean"] == pytest.approx(47.5)
    assert len(rows) == 20


def test_daily_co_chart_has_the_known_day_per_station(deployment: Deployment) -> None:
    rows = deployment.chart_rows("daily_co")
    day = _epoch_ms(deployment.marts.known_day)
    assert _by(rows, day=day, station_name=SMART188)["co_daily_mean"] == pytest.approx(0.33)
    assert _by(rows, day=day, station_name=SMART189)["co_daily_mean"] == pytest.approx(0.43)


def test_completeness_chart_shows_the_incomplete_station_day(deployment: Deployment) -> None:
    rows = deployment.chart_rows("data_completeness")
    days = deployment.marts.days
    assert _by(rows, day=_epoch_ms(days[4]), station_name=SMART189)["pm25_valid_hours"] == 16
    assert _by(rows, day=_epoch_ms(days[4]), station_name=SMART188)["pm25_valid_hours"] == 24
    assert _by(rows, day=_epoch_ms(days[-1]), station_name=SMART189)["pm25_valid_hours"] == 21


def test_latest_hour_chart_shows_each_station_with_its_age(deployment: Deployment) -> None:
    rows = deployment.chart_rows("latest_hour")
    last = datetime.combine(deployment.marts.days[-1], datetime.min.time(), tzinfo=timezone.utc) + timedelta(
        hours=20
    )
    row = _by(rows, station_name=SMART189, pollutant="pm25")
    assert row["last_ts"] == last.timestamp() * 1000
    expected_age = (datetime.now(timezone.utc) - last).total_seconds() / 3600
    assert float(row["age_hours"]) == pytest.approx(expected_age, abs=0.2)
    assert float(_by(rows, station_name=SMART188, pollutant="pm25")["age_hours"]) == pytest.approx(
        expected_age - 3, abs=0.2
    )


def test_forecast_chart_puts_both_horizons_next_to_the_observation(deployment: Deployment) -> None:
    rows = deployment.chart_rows("forecast_vs_observed")
    row = _by(rows, target_ts=_epoch_ms(deployment.marts.known_day, 10), station_name=SMART188)
    # PM2.5 of SMART188 on day 8 at 10:00 = 5 + 2*8 + (10 mod 4); forecasts are biased +0.5 per horizon hour
    assert (row["Observed"], row["Forecast +1 h"], row["Forecast +2 h"]) == (23.0, 23.5, 24.0)


def test_forecast_skill_chart_averages_the_stations_per_horizon(deployment: Deployment) -> None:
    rows = deployment.chart_rows("forecast_skill")
    day = deployment.marts.known_day.isoformat()
    for pollutant in ("pm25", "co"):
        for horizon in (1, 2):
            skills = [
                v["skill"]
                for v in deployment.marts.collections["forecast_verification"]
                if v["day"] == day and v["pollutant"] == pollutant and v["horizon_h"] == horizon
            ]
            row = _by(
                rows, day=_epoch_ms(deployment.marts.known_day), horizon_label=f"+{horizon} h {pollutant}"
            )
            assert row["skill_mean"] == pytest.approx(sum(skills) / len(skills))
            assert 0 < row["skill_mean"] < 1


def test_aqi_chart_counts_station_days_per_category(deployment: Deployment) -> None:
    rows = deployment.chart_rows("aqi_categories")
    counts = {row["pm25_aqi_category"]: row["days"] for row in rows}
    assert counts == {"Good": 2, "Moderate": 10, "Unhealthy for Sensitive Groups": 8}
    assert counts == Counter(
        d["pm25_aqi_category"] for d in deployment.marts.collections["daily_sensor_averages"]
    )


def test_stations_chart_lists_coordinates(deployment: Deployment) -> None:
    rows = deployment.chart_rows("stations")
    assert [(r["station_id"], r["station_name"], r["lat"], r["lon"]) for r in rows] == [
        ("283164601", SMART188, 5.3693, -3.9588),
        ("283181971", SMART189, 5.3653, -3.9578),
    ]


def test_reimport_keeps_the_same_dashboard_and_charts(deployment: Deployment) -> None:
    again = _elt(deployment.project_dir, deployment.env, "dashboard", "import")
    assert again["dashboard_id"] == deployment.dashboard_id
    assert sorted(again["charts"].values()) == sorted(deployment.charts.values())
    bundle = Path(again["bundle"])
    assert "e2e-reader-pw" not in bundle.read_bytes().decode("latin-1")


def test_dashboard_renders_every_chart_in_chromium(deployment: Deployment) -> None:
    chromium, driver = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")
    if not (Path(chromium).exists() and driver):
        pytest.skip(
            "headless Chromium not installed: apt-get install -y chromium chromium-driver fonts-dejavu-core"
        )
    output = deployment.project_dir / "dashboard.png"
    started = time.monotonic()
    completed = subprocess.run(
        [str(superset.VENV / "bin" / "python"), str(Path(__file__).with_name("screenshot.py")),
         deployment.server.url, "airqino", str(output)],
        env={**deployment.env, "SUPERSET_USER": superset.ADMIN_USER, "SUPERSET_PASSWORD": superset.ADMIN_PASSWORD,
             "CHROMIUM_BIN": chromium, "CHROMEDRIVER_BIN": driver},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    deployment.timings["screenshot"] = time.monotonic() - started
    assert completed.stdout.strip(), completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["errors"] == [] and report["not_rendered"] == []
    assert report["charts"] == report["rendered"] == len(deployment.charts)
    (REPO_ROOT / "docs").mkdir(exist_ok=True)
    shutil.copy(output, REPO_ROOT / "docs" / "dashboard.png")


def test_native_filters_point_at_the_imported_charts_and_dataset(deployment: Deployment) -> None:
    session = deployment.server.login()
    dashboard = session.get(f"{deployment.server.url}/api/v1/dashboard/airqino", timeout=30).json()["result"]
    station, date_range = json.loads(dashboard["json_metadata"])["native_filter_configuration"]
    datasets = session.get(
        f"{deployment.server.url}/api/v1/dataset/", params={"q": "(page_size:100)"}, timeout=30
    ).json()["result"]
    stations_id = next(d["id"] for d in datasets if d["table_name"] == "stations")
    assert station["targets"] == [{"column": {"name": "station_name"}, "datasetId": stations_id}]
    # charts without a date column are out of the date filter's scope (ids remapped by the import)
    assert sorted(date_range["scope"]["excluded"]) == sorted(
        [deployment.charts["latest_hour"], deployment.charts["stations"]]
    )
