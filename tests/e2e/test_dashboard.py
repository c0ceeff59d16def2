"""End to end from real data: recorded AirQino responses → `elt load` → `elt transform` → `elt forecast` →
`elt publish` → private PostgreSQL → `elt dashboard import` → Superset 6.1 → every chart's data API returns the
numbers of the Mongo marts → headless Chromium renders every chart (target/e2e/dashboard.png).

Needs ../shared/data/airqino (skipped when absent) and `scripts/ci-setup-superset.sh` (PostgreSQL, Chromium,
the Superset venv; the test fails and says so when they are missing). Slow (several minutes: a year of two
stations goes through the whole pipeline):
    .venv/bin/python -m pytest -m e2e tests/e2e
`scripts/refresh-dashboard-png.sh` runs it and copies the screenshot to the committed docs/dashboard.png.
"""

from __future__ import annotations

import json
import shutil
import subprocess
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
from pymongo.database import Database

from tests.e2e import superset_server as superset
from tests.e2e.pipeline import build_from_recorded_data, elt, make_project
from tests.e2e.postgres import PostgresServer

pytest_plugins = ["tests.e2e.fixtures"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO_ROOT / "target" / "e2e" / "dashboard.png"
SMART188, SMART189 = "SMART188", "SMART189"
WHO_PM25 = 15.0
SETUP_HINT = "run scripts/ci-setup-superset.sh (or export SUPERSET_VENV=<a venv with apache-superset 6.1>)"


@dataclass
class Deployment:
    """What the tests look at: the running Superset, chart ids by chart file name, the Mongo database."""

    server: superset.SupersetServer
    project_dir: Path
    env: dict[str, str]
    charts: dict[str, int]
    dashboard_id: int
    db: Database
    timings: dict[str, float] = field(default_factory=dict)

    def chart_rows(self, name: str) -> list[dict[str, Any]]:
        """The rows ``GET /api/v1/chart/<id>/data/`` returns for ``charts/<name>.yaml`` (fails on error or none)."""
        response = self.server.login().get(
            f"{self.server.url}/api/v1/chart/{self.charts[name]}/data/", timeout=120
        )
        assert response.status_code == 200, f"{name}: HTTP {response.status_code} {response.text[:500]}"
        result = response.json()["result"][0]
        assert result.get("error") is None, f"{name}: {result['error']}"
        assert result["data"], f"{name}: the chart's query returned no rows"
        return result["data"]

    def daily(self, station_name: str) -> dict[str, dict[str, Any]]:
        """daily_sensor_averages of a station by day (the mart every daily chart derives from)."""
        return {d["day"]: d for d in self.db["daily_sensor_averages"].find({"station_name": station_name})}


def _require_setup() -> None:
    """Fail (not skip: e2e only runs when asked for) with the setup command when a piece is missing."""
    if not (superset.VENV / "bin" / "superset").is_file():
        pytest.fail(f"no Superset venv at {superset.VENV}: {SETUP_HINT}", pytrace=False)
    if not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()) or not shutil.which(
        "chromedriver"
    ):
        pytest.fail(f"headless Chromium (chromium, chromedriver) not installed: {SETUP_HINT}", pytrace=False)


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
def superset_installed() -> None:
    """The Superset venv and headless Chromium are there (checked before any server starts)."""
    _require_setup()


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    shared_data_dir: Path,
    superset_installed: None,
    mongo_server_uri: str,
    mongo_client: MongoClient,
    postgres_server: PostgresServer,
) -> Iterator[Deployment]:
    """The recorded data through the whole pipeline, published, and the dashboard imported into Superset."""
    timings: dict[str, float] = {}
    base = tmp_path_factory.mktemp("e2e")
    database = mongo_client[f"elt_e2e_{uuid.uuid4().hex[:8]}"]
    project_dir = make_project(base, database.name)
    publisher_dsn, reader_uri = _serving_database(postgres_server)
    env = superset.superset_env(base / "superset-home")
    env.update(
        {"MONGO_URI": mongo_server_uri, "SERVING_DSN": publisher_dsn, "SUPERSET_SERVING_URI": reader_uri}
    )
    for name in ("ELT_TARGET", "ELT_DATABASE"):
        env.pop(name, None)
    try:
        build_from_recorded_data(project_dir, env, database, shared_data_dir, timings)
        step = time.monotonic()
        published = elt(project_dir, env, "publish")
        assert not published.get("skipped"), f"marts missing after transform: {published['skipped']}"
        timings["publish"] = time.monotonic() - step

        timings["superset_metadata"] = superset.init_metadata(base / "superset-home")
        step = time.monotonic()
        imported = elt(project_dir, env, "dashboard", "import")
        timings["import"] = time.monotonic() - step
        step = time.monotonic()
        server = superset.start_server(base / "superset-home", timeout_s=300)
        timings["server_start"] = time.monotonic() - step
    except BaseException:
        mongo_client.drop_database(database.name)
        raise
    names = {
        str(yaml.safe_load(path.read_text())["uuid"]): path.stem
        for path in (REPO_ROOT / "config" / "superset" / "charts").glob("*.yaml")
    }
    charts = {names[chart_uuid]: chart_id for chart_uuid, chart_id in imported["charts"].items()}
    try:
        yield Deployment(server, project_dir, env, charts, imported["dashboard_id"], database, timings)
    finally:
        server.stop()
        mongo_client.drop_database(database.name)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.with_name("timings.json").write_text(
            json.dumps({k: round(v, 1) for k, v in timings.items()})
        )


def _epoch_ms(day: str | date, hour: int = 0) -> float:
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc).timestamp() * 1000


def _by(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [row for row in rows if all(row.get(key) == value for key, value in match.items())]
    assert len(found) == 1, f"expected one row matching {match}, got {found[:3]}"
    return found[0]


def _newest_day(deployment: Deployment) -> date:
    return date.fromisoformat(max(deployment.db["daily_sensor_averages"].distinct("day")))


def test_bundle_imports_every_chart(deployment: Deployment) -> None:
    expected = {path.stem for path in (REPO_ROOT / "config" / "superset" / "charts").glob("*.yaml")}
    assert set(deployment.charts) == expected


@pytest.mark.parametrize(
    "chart",
    sorted(path.stem for path in (REPO_ROOT / "config" / "superset" / "charts").glob("*.yaml")),
)
def test_every_chart_returns_rows_without_error(deployment: Deployment, chart: str) -> None:
    assert len(deployment.chart_rows(chart)) > 0


def test_headline_shows_yesterday_against_who_and_data_age(deployment: Deployment) -> None:
    rows = deployment.chart_rows("headline")
    yesterday = _newest_day(deployment) - timedelta(days=1)
    last_30 = {(yesterday - timedelta(days=i)).isoformat() for i in range(30)}
    hourly = deployment.db["stg_airqino_hourly"]
    newest_hour = hourly.find_one({}, sort=[("ts", -1)])["ts"]
    for station in (SMART188, SMART189):
        days = deployment.daily(station)
        row = _by(rows, station_name=station)
        expected = days[yesterday.isoformat()]
        assert row["yesterday"] == yesterday.isoformat()
        assert row["pm25_yesterday_mean"] == pytest.approx(expected["pm25_mean"])
        assert row["pm25_yesterday_who_ratio"] == pytest.approx(expected["pm25_mean"] / WHO_PM25)
        complete = [days[d] for d in last_30 if d in days and days[d]["pm25_complete"]]
        assert row["pm25_complete_days_30d"] == len(complete)
        assert row["pm25_days_over_who_30d"] == sum(1 for d in complete if d["pm25_mean"] > WHO_PM25)
        for pollutant in ("pm25", "co"):
            last_valid = hourly.find_one(
                {"station_name": station, f"{pollutant}_valid": True, "provisional": {"$ne": True}},
                sort=[("ts", -1)],
            )["ts"]
            hours = (newest_hour - last_valid).total_seconds() / 3600
            assert row[f"{pollutant}_hours_since_valid"] == pytest.approx(hours)
    # the real data: SMART188's CO sensor died (0 for days, flagged dead), so its CO is many hours old
    assert _by(rows, station_name=SMART188)["co_hours_since_valid"] > 24


def test_daily_pm25_marks_incomplete_days_as_their_own_series(deployment: Deployment) -> None:
    rows = deployment.chart_rows("daily_pm25")
    days = deployment.daily(SMART189)
    complete = [d for d in days.values() if d["pm25_complete"]]
    incomplete = [d for d in days.values() if not d["pm25_complete"] and d["pm25_mean"] is not None]
    assert complete and incomplete, "the recorded SMART189 year has complete and incomplete PM2.5 days"
    day = max(complete, key=lambda d: d["day"])
    row = _by(rows, day=_epoch_ms(day["day"]), station_name=SMART189)
    assert row["PM2.5 complete day"] == pytest.approx(day["pm25_mean"])
    assert row["PM2.5 incomplete day"] is None
    day = max(incomplete, key=lambda d: d["day"])
    row = _by(rows, day=_epoch_ms(day["day"]), station_name=SMART189)
    assert row["PM2.5 incomplete day"] == pytest.approx(day["pm25_mean"])
    assert row["PM2.5 complete day"] is None


def test_daily_co_shows_the_dead_sensor_as_no_valid_days(deployment: Deployment) -> None:
    rows = deployment.chart_rows("daily_co")
    days = deployment.daily(SMART189)
    day = max((d for d in days.values() if d["co_complete"]), key=lambda d: d["day"])
    row = _by(rows, day=_epoch_ms(day["day"]), station_name=SMART189)
    assert row["CO complete day"] == pytest.approx(day["co_mean"])
    newest = _newest_day(deployment)
    recent_188 = [
        r for r in rows
        if r["station_name"] == SMART188 and r["day"] >= _epoch_ms(newest - timedelta(days=7))
    ]  # fmt: skip
    assert recent_188 and all(
        r["CO complete day"] is None and r["CO incomplete day"] is None for r in recent_188
    )


def test_aqi_chart_counts_complete_days_per_station_and_category(deployment: Deployment) -> None:
    rows = deployment.chart_rows("aqi_categories")
    for station in (SMART188, SMART189):
        expected = Counter(
            d["pm25_aqi_category"] for d in deployment.daily(station).values() if d["pm25_complete"]
        )
        row = _by(rows, station_name=station)
        for category in ("Good", "Moderate", "Unhealthy for Sensitive Groups", "Unhealthy", "Hazardous"):
            assert row[category] == expected.get(category), (station, category)  # None: no such day, no bar
        assert sum(row[c] for c in expected) == sum(expected.values()) > 0


def test_completeness_chart_has_the_valid_hours_of_each_station_and_pollutant(deployment: Deployment) -> None:
    rows = deployment.chart_rows("data_completeness")
    for station in (SMART188, SMART189):
        days = deployment.daily(station)
        partial = min(
            (d for d in days.values() if 0 < d["pm25_hours"] < 24), key=lambda d: d["day"], default=None
        ) or next(iter(days.values()))
        row = _by(rows, day=_epoch_ms(partial["day"]), series=f"{station} · PM2.5")
        assert row["valid_hours"] == partial["pm25_hours"]
        row = _by(rows, day=_epoch_ms(partial["day"]), series=f"{station} · CO")
        assert row["valid_hours"] == partial["co_hours"]


@pytest.mark.parametrize(("chart", "pollutant"), [("forecast_pm25", "pm25"), ("forecast_co", "co")])
def test_forecast_chart_puts_observed_final_hours_next_to_both_horizons(
    deployment: Deployment, chart: str, pollutant: str
) -> None:
    rows = deployment.chart_rows(chart)
    hourly = deployment.db["stg_airqino_hourly"]
    newest = hourly.find_one({}, sort=[("ts", -1)])["ts"]
    assert min(r["ts"] for r in rows) > (newest - timedelta(hours=48)).timestamp() * 1000
    forecasts = deployment.db["forecasts"]
    checked = 0
    for doc in hourly.find(
        {"station_name": SMART189, "provisional": {"$ne": True}, f"{pollutant}_valid": True,
         "ts": {"$gt": newest - timedelta(hours=40)}}
    ):  # fmt: skip
        f1 = forecasts.find_one({"station_id": doc["station_id"], "pollutant": pollutant, "horizon_h": 1,
                                 "target_ts": doc["ts"]})  # fmt: skip
        f2 = forecasts.find_one({"station_id": doc["station_id"], "pollutant": pollutant, "horizon_h": 2,
                                 "target_ts": doc["ts"]})  # fmt: skip
        if not (f1 and f2):
            continue
        row = _by(rows, ts=doc["ts"].timestamp() * 1000, station_name=SMART189)
        assert row["Observed"] == pytest.approx(doc[pollutant])
        assert row["Forecast +1 h"] == pytest.approx(f1["value"])
        assert row["Forecast +2 h"] == pytest.approx(f2["value"])
        checked += 1
    assert checked >= 24
    provisional = hourly.find_one({"provisional": True, "station_name": SMART189})
    if provisional is not None:  # the still-filling hour is never drawn as an observation
        row = [
            r
            for r in rows
            if r["ts"] == provisional["ts"].timestamp() * 1000 and r["station_name"] == SMART189
        ]
        assert all(r["Observed"] is None for r in row)


def test_forecast_skill_chart_shows_n_and_skill_of_the_last_seven_days(deployment: Deployment) -> None:
    rows = deployment.chart_rows("forecast_skill")
    hourly = deployment.db["stg_airqino_hourly"]
    for horizon in (1, 2):
        errors, persistence = [], []
        for f in deployment.db["forecasts"].find(
            {"station_id": "283181971", "pollutant": "pm25", "horizon_h": horizon}
        ):
            target = hourly.find_one({"station_id": "283181971", "ts": f["target_ts"]})
            issue = hourly.find_one({"station_id": "283181971", "ts": f["issued_at"]})
            if not (target and issue) or target.get("provisional") or issue.get("provisional"):
                continue
            if not (target["pm25_valid"] and issue["pm25_valid"]):
                continue
            errors.append(abs(f["value"] - target["pm25"]))
            persistence.append(abs(issue["pm25"] - target["pm25"]))
        row = _by(rows, station_name=SMART189, pollutant_label="PM2.5 (µg/m³)", horizon_label=f"+{horizon} h")
        assert row["n_7d"] == len(errors) > 24
        assert row["mae_7d"] == pytest.approx(sum(errors) / len(errors))
        assert row["skill_7d"] == pytest.approx(1 - sum(errors) / sum(persistence))


def test_stations_chart_lists_names_coordinates_and_timezone(deployment: Deployment) -> None:
    rows = deployment.chart_rows("stations")
    config = yaml.safe_load((REPO_ROOT / "config" / "elt.yml").read_text())["stations"]
    assert [(r["station_name"], r["lat"], r["lon"], r["timezone"]) for r in rows] == [
        (s["name"], s["lat"], s["lon"], s["timezone"]) for s in sorted(config, key=lambda s: s["name"])
    ]


def test_reimport_keeps_the_same_dashboard_and_charts(deployment: Deployment) -> None:
    again = elt(deployment.project_dir, deployment.env, "dashboard", "import")
    assert again["dashboard_id"] == deployment.dashboard_id
    assert sorted(again["charts"].values()) == sorted(deployment.charts.values())
    assert "e2e-reader-pw" not in Path(again["bundle"]).read_bytes().decode("latin-1")


def test_native_filters_default_to_the_last_90_days_and_spare_undated_charts(deployment: Deployment) -> None:
    session = deployment.server.login()
    dashboard = session.get(f"{deployment.server.url}/api/v1/dashboard/airqino", timeout=30).json()["result"]
    filters = {f["name"]: f for f in json.loads(dashboard["json_metadata"])["native_filter_configuration"]}
    days = filters["Days before the newest data day"]
    assert days["defaultDataMask"]["filterState"]["value"] == [0, 89]
    undated = sorted(
        deployment.charts[n]
        for n in ("headline", "forecast_pm25", "forecast_co", "forecast_skill", "stations")
    )
    assert sorted(days["scope"]["excluded"]) == sorted(filters["Date range"]["scope"]["excluded"]) == undated


def test_dashboard_renders_every_chart_in_chromium(deployment: Deployment) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    completed = subprocess.run(
        [str(superset.VENV / "bin" / "python"), str(Path(__file__).with_name("screenshot.py")),
         deployment.server.url, "airqino", str(SCREENSHOT)],
        env={**deployment.env, "SUPERSET_USER": superset.ADMIN_USER, "SUPERSET_PASSWORD": superset.ADMIN_PASSWORD,
             "CHROMIUM_BIN": chromium, "CHROMEDRIVER_BIN": shutil.which("chromedriver") or ""},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    deployment.timings["screenshot"] = time.monotonic() - started
    assert completed.stdout.strip(), completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["errors"] == [] and report["not_rendered"] == [] and report["empty"] == []
    assert report["charts"] == report["rendered"] == len(deployment.charts)
