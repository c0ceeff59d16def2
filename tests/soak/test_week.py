"""A simulated week in the life of a deployment, with scheduled faults (marker ``soak``; run by ``.ci/run``).

The simulator, its clock moving one hour per run, serves 10 days of history for 4 stations (SMART188 with its
dead CO sensor, SMART189, and two synthetic stations, one in Europe/Rome). The first run lands the whole
history; then the project runs hourly through the code path of ``elt run`` (``open_store`` + ``RunTask``,
in-process: a process start costs seconds per run on 2 cores), with these faults scheduled into it:

- API HTTP 500 for every station for one hour, and HTTP 429 (Retry-After) for another;
- one station down for 20 hours (its rows for those hours never appear);
- a history rewrite 5 days back (one hour's PM2.5 changed server-side, for good);
- a provisional hour revised (the still-filling hour served with a spike, then final with its real value);
- a kill -9 of one run (an ``elt run`` subprocess killed once its transform has started; the hour is rerun);
- a database server restart (the embedded daemon stopped between two runs; the next run starts it again).

At the end: every mart equals a ``--full-refresh`` build on a copy of the same sources; the runs audit what
they changed (a full test pass only on the first run, the first of each real UTC day and the run after the
killed one); no duplicate keys;
every station with valid data got forecasts every hour after warm-up (the hours whose load an API fault failed
are excused and counted); ``forecast_verification`` holds the matched pairs; ``elt status`` is fresh, with no
stale station and no missing-forecast warning; with a real PostgreSQL (initdb/pg_ctl, as tests/e2e start it),
every run publishes and the published tables equal the Mongo marts row for row. A summary (runs, faults
injected, rows landed, forecasts written, divergences) is printed past pytest's capture (it shows in CI output,
with or without ``-s``) and written to ``target/soak-summary.json``.

Simulated days: ``ELT_SOAK_DAYS`` (at least 2). The default is the week, 7 days (168 hourly runs; measured on
2 cores with another suite alongside: about 2 s per run, 6 minutes with the checks).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymongo import MongoClient
from pymongo.database import Database

from elt.config import Project, load_project
from elt.forecast.predict import FORECAST_KEY
from elt.run.status import build_status
from elt.run.task import RunResult, RunTask
from elt.simulator import AirQinoSimulator, StationSpec
from elt.simulator.faults import http_error, rate_limited, rows_fault, set_value
from elt.simulator.timeutil import TIMESTAMP_FORMAT
from elt.store import open_store, read_embedded_state, stop_embedded_server
from elt.transform.task import run_transform
from tests.conftest import REPO_ROOT

pytest.importorskip("secantus", reason="the soak runs on the embedded server (SecantusDB)")
pytest.importorskip("sklearn", reason="the soak forecasts: pip install 'airqino-elt[forecast]'")

DAYS = int(os.environ.get("ELT_SOAK_DAYS", "7"))
#: Generous: up to 30 s per hourly run on 2 busy cores, plus the first run and the final checks.
pytestmark = [pytest.mark.soak, pytest.mark.timeout(900 + DAYS * 24 * 30)]
HISTORY_DAYS = 10
#: The clock of the first run: 30 minutes into an hour, 10 days of history behind it.
START = datetime(2024, 9, 2, 0, 30, tzinfo=timezone.utc)
SPECS = (
    StationSpec("283164601", "SMART188", 5.3693, -3.9588, dead_co_fraction=0.85, pm_level=1.0),
    StationSpec("283181971", "SMART189", 5.3653, -3.9578, pm_level=1.9),
    StationSpec("283190001", "SYN-ABJ", 5.3400, -4.0100, pm_level=1.3),
    StationSpec("283190002", "SYN-FLR", 43.7800, 11.2500, utc_offset_hours=2, pm_level=0.7),
)
TIMEZONES = {"283190002": "Europe/Rome"}
DEAD_CO = ("283164601", "co")
#: Runs (1-based, hourly after the first run) at which each fault is injected.
API_500, API_429, PROVISIONAL, DOWN_FROM, REWRITE, KILL, RESTART = 5, 9, 13, 16, 24, 30, 40
DOWN_HOURS = 20
DOWN_STATION, REWRITE_STATION, PROVISIONAL_STATION = "283190001", "283181971", "283190002"
#: Hourly runs before forecasts are checked (the last 3 hours of every series must be valid first).
WARMUP = 3
MART_COLLECTIONS = (
    "stg_airqino_hourly", "daily_sensor_averages", "station_day_last_hours", "station_freshness",
    "daily_air_quality", "daily_valid_hours", "station_headline", "forecast_pairs", "forecast_verification",
    "forecast_vs_observed",
)  # fmt: skip
VOLATILE = ("_id", "_updated_at", "_run_id")


def _ts(moment: datetime) -> str:
    return moment.strftime(TIMESTAMP_FORMAT)


def drop_hours(start: datetime, end: datetime):  # noqa: ANN201 - a RowsTransform
    """A lasting outage: the station's rows in [start, end) never exist."""
    lo, hi = _ts(start), _ts(end)
    return lambda rows, now: [r for r in rows if not (lo <= str(r.get("timestamp", "")) < hi)]


def set_at(moment: datetime, key: str, value: float):  # noqa: ANN201 - a RowsTransform
    """A lasting rewrite of one hour (by timestamp, so it stays on that hour as the clock moves)."""
    stamp = _ts(moment)
    return lambda rows, now: [{**r, key: value} if r.get("timestamp") == stamp else r for r in rows]


@dataclass
class Soak:
    """The world of the soak: simulator, project, the runs done and the faults injected."""

    sim: AirQinoSimulator
    project: Project
    project_dir: Path
    data_dir: Path
    env: dict[str, str]
    pg: Any | None
    runs: list[tuple[datetime, RunResult, float]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    excused_hours: set[datetime] = field(default_factory=set)

    def run(self, now: datetime) -> RunResult:
        """One hourly run, exactly as ``elt run`` does it (open the store, RunTask), at simulated ``now``."""
        started = time.perf_counter()
        with open_store(self.project) as store:
            result = RunTask(self.project, store.db, now=now).run()
        self.runs.append((now, result, time.perf_counter() - started))
        return result

    def client(self) -> MongoClient:
        """A client to the embedded server as it runs now (its port changes when it restarts)."""
        state = read_embedded_state(self.data_dir)
        assert state is not None, "the embedded server is not running"
        return MongoClient(state["uri"], directConnection=True, tz_aware=True)


def _write_project(root: Path) -> Path:
    project = root / "project"
    (project / "config").mkdir(parents=True)
    config = yaml.safe_load((REPO_ROOT / "config" / "elt.yml").read_text())
    config["stations"] = [
        {"id": s.id, "name": s.name, "timezone": TIMEZONES.get(s.id, "Africa/Abidjan"), "lat": s.lat,
         "lon": s.lon, "enabled": True}
        for s in SPECS
    ]  # fmt: skip
    # a failing hour fails fast: one retry, short backoff
    config["source"].update(retries=1, backoff_base_s=0.2, backoff_max_s=1, timeout_s=30)
    (project / "config" / "elt.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (project / "config" / "profiles.yml").write_text(yaml.safe_dump({"default_target": "soak", "targets": {
        "soak": {"database": "airqino_soak", "embedded_path": str(root / "mongo")}}}))  # fmt: skip
    (project / "aggregations").symlink_to(REPO_ROOT / "aggregations")
    return project


@pytest.fixture
def soak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Soak]:
    """The simulator (clock at START), the project on its own embedded server, PostgreSQL when installed."""
    if DAYS < 2:
        raise ValueError(f"ELT_SOAK_DAYS={DAYS}: at least 2 days are needed to fit the scheduled faults")
    from tests.e2e.postgres import _pg_bin, start_postgres

    pg = start_postgres() if _pg_bin("initdb") and _pg_bin("pg_ctl") else None
    project_dir = _write_project(tmp_path)
    data_dir = tmp_path / "mongo"
    for name in ("MONGO_URI", "ELT_DATABASE", "ELT_TARGET", "ELT_ALERT_WEBHOOK_URL", "AIRQINO_TOKEN",
                 "AIRQINO_USERNAME", "AIRQINO_PASSWORD", "ELT_RUN_LOOKBACK_HOURS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    sim = AirQinoSimulator.generated(specs=SPECS, seed=7, now=START, window_days=HISTORY_DAYS)
    with sim:
        monkeypatch.setenv("AIRQINO_BASE_URL", sim.base_url)
        if pg is not None:
            monkeypatch.setenv("SERVING_DSN", pg.dsn())
        else:
            monkeypatch.delenv("SERVING_DSN", raising=False)
        env = dict(os.environ)
        try:
            yield Soak(sim, load_project(project_dir), project_dir, data_dir, env, pg)
        finally:
            stop_embedded_server(data_dir)
            if pg is not None:
                pg.stop()


def _kill_mid_run(soak: Soak, now: datetime) -> str:
    """Start ``elt run`` as a subprocess and SIGKILL it once its transform has started; which step it was in."""
    run_id = f"soak-killed-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "elt", "--project-dir", str(soak.project_dir), "run", "--no-summary",
         "--no-alerts", "--run-id", run_id],
        env=soak.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    step = "?"
    try:
        deadline = time.monotonic() + 180
        with soak.client() as client:
            while time.monotonic() < deadline and proc.poll() is None:
                record = client["airqino_soak"].elt_runs.find_one({"_id": run_id}, {"steps.name": 1})
                steps = [s["name"] for s in (record or {}).get("steps", [])]
                if "transform" in steps:
                    step = steps[-1]
                    break
                time.sleep(0.02)
        assert proc.poll() is None, f"the run to kill ended first (exit {proc.returncode})"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return step


def _inject(soak: Soak, k: int, now: datetime) -> None:
    """The faults scheduled before hourly run ``k`` (clock at ``now``)."""
    sim, hour = soak.sim, now.replace(minute=0)
    if k == API_500:
        for station in sim.stations:
            sim.set_fault(station, http_error(500, times=None))
        soak.faults.append(f"run {k}: API HTTP 500 for every station")
        soak.excused_hours.add(hour)
    if k == API_429:
        for station in sim.stations:
            sim.set_fault(station, rate_limited(retry_after_s=1, times=None))
        soak.faults.append(f"run {k}: API HTTP 429 (Retry-After 1) for every station")
        soak.excused_hours.add(hour)
    if k == PROVISIONAL:
        sim.add_fault(PROVISIONAL_STATION, rows_fault(set_value(0, "PM2.5", 555.0)))
        soak.faults.append(f"run {k}: provisional hour {hour:%m-%d %H:00} of {PROVISIONAL_STATION} served as "
                           "PM2.5 555, final value an hour later")  # fmt: skip
    if k == DOWN_FROM:
        sim.revise_history(DOWN_STATION, drop_hours(hour, hour + timedelta(hours=DOWN_HOURS)))
        soak.faults.append(f"runs {k}-{k + DOWN_HOURS - 1}: station {DOWN_STATION} down {DOWN_HOURS} h")
    if k == REWRITE:
        sim.revise_history(REWRITE_STATION, set_at(hour - timedelta(days=5), "PM2.5", 77.7))
        soak.faults.append(f"run {k}: history rewrite of {REWRITE_STATION} at "
                           f"{hour - timedelta(days=5):%m-%d %H:00} (5 days back)")  # fmt: skip
    if k == KILL:
        step = _kill_mid_run(soak, now)
        soak.faults.append(f"run {k}: kill -9 of an `elt run` process during its {step} step; hour rerun")
    if k == RESTART:
        state = read_embedded_state(soak.data_dir)
        assert state is not None and stop_embedded_server(soak.data_dir)
        soak.faults.append(
            f"run {k}: embedded database server (pid {state['pid']}) stopped; the run restarts it"
        )


def _plain(value: Any) -> Any:
    """One comparable form for Mongo and PostgreSQL values."""
    if isinstance(value, datetime):
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):  # an integer column may hold 3.0 in Mongo, 3 in PostgreSQL
        return round(float(value), 6)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _digest(db: Database, name: str) -> list[str]:
    rows = []
    for doc in db[name].find({}):
        for key in VOLATILE:
            doc.pop(key, None)
        rows.append(json.dumps({k: _plain(v) for k, v in doc.items()}, sort_keys=True, default=str))
    return sorted(rows)


def _source_collections() -> list[str]:
    doc = yaml.safe_load((REPO_ROOT / "aggregations" / "sources.yml").read_text())
    return [t["collection"] for s in doc["sources"] for t in s["tables"] if t.get("collection")]


def _full_refresh_divergences(soak: Soak, client: MongoClient, db: Database) -> dict[str, int]:
    """Copy the sources to a new database, build every model with --full-refresh, count differing rows."""
    name = "airqino_soak_full"
    client.drop_database(name)
    for collection in _source_collections():
        docs = list(db[collection].find({}))
        if docs:
            client[name][collection].insert_many(docs)
    target = soak.project.target.model_copy(update={"database": name})
    full = Project(soak.project.project_dir, soak.project.config, soak.project.target_name, target)
    result = run_transform(full, client[name], full_refresh=True, write_artifacts=False)
    assert result.ok, result.error
    out = {}
    for mart in MART_COLLECTIONS:
        mine, theirs = _digest(db, mart), _digest(client[name], mart)
        out[mart] = len(set(mine) ^ set(theirs)) + abs(len(mine) - len(theirs))
        assert mine, f"{mart} is empty"
    client.drop_database(name)
    return out


def _duplicate_keys(db: Database) -> dict[str, int]:
    keys = {"raw_airqino_hourly": ("station_id", "ts"), "forecasts": FORECAST_KEY,
            "stg_airqino_hourly": ("station_id", "ts"), "daily_sensor_averages": ("station_id", "day"),
            "station_day_last_hours": ("station_id", "day"), "station_freshness": ("station_id", "pollutant"),
            "forecast_verification": ("station_id", "pollutant", "horizon_h", "day")}  # fmt: skip
    out = {}
    for name, key in keys.items():
        group = {"_id": {k: f"${k}" for k in key}, "n": {"$sum": 1}}
        out[name] = len(list(db[name].aggregate([{"$group": group}, {"$match": {"n": {"$gt": 1}}}])))
    return out


def _forecast_check(soak: Soak, db: Database) -> dict[str, int]:
    """Every hourly run after warm-up: each series with 3 valid final hours at its origin got both horizons."""
    valid: set[tuple[str, str, datetime]] = set()
    for doc in db.stg_airqino_hourly.find({"provisional": {"$ne": True}}):
        for p in ("co", "pm25"):
            if doc.get(p) is not None and doc.get(f"{p}_flag") is None:
                valid.add((doc["station_id"], p, doc["ts"]))
    issued = {(d["station_id"], d["pollutant"], d["issued_at"], d["horizon_h"]) for d in
              db.forecasts.find({}, {"station_id": 1, "pollutant": 1, "issued_at": 1, "horizon_h": 1})}  # fmt: skip
    checked = missed = excused = dead = 0
    problems = []
    for k, (now, result, _) in enumerate(soak.runs):
        if k <= WARMUP or result.record.get("trigger") != "cli":
            continue
        origin = now.replace(minute=0) - timedelta(hours=1)
        load = result.step("load") or {}
        for station in (s.id for s in SPECS):
            for p in ("co", "pm25"):
                if not all((station, p, origin - timedelta(hours=h)) in valid for h in range(3)):
                    continue
                if load.get("status") != "ok" or now.replace(minute=0) in soak.excused_hours:
                    excused += 1
                    continue
                missing = ((result.step("forecast") or {}).get("counts") or {}).get("series_missing", {})
                status = missing.get(f"{station}/{p}", "written")
                if (station, p) == DEAD_CO and status in ("no_valid_data", "dead_sensor"):
                    dead += 1
                    continue
                checked += 1
                if status != "written" or any((station, p, origin, h) not in issued for h in (1, 2)):
                    missed += 1
                    problems.append(f"run {k} {now:%m-%d %H:%M} {station} {p}: {status}")
    assert not problems, "forecasts missing for series with valid data:\n" + "\n".join(problems[:20])
    return {"checked": checked, "missed": missed, "excused_api_fault": excused, "dead_sensor": dead}


def _verification_pairs(db: Database) -> tuple[int, int]:
    """(forecasts with a valid final observation at target and issue hour, sum of forecast_verification.n)."""
    valid = {}
    for doc in db.stg_airqino_hourly.find({"provisional": {"$ne": True}}):
        for p in ("co", "pm25"):
            if doc.get(p) is not None and doc.get(f"{p}_flag") is None:
                valid[(doc["station_id"], p, doc["ts"])] = doc[p]
    pairs = sum(1 for f in db.forecasts.find({}) if (f["station_id"], f["pollutant"], f["target_ts"]) in valid
                and (f["station_id"], f["pollutant"], f["issued_at"]) in valid)  # fmt: skip
    verified = sum(int(d.get("n") or 0) for d in db.forecast_verification.find({}))
    return pairs, verified


def _published_divergences(soak: Soak, db: Database) -> dict[str, int]:
    """Per serving table: rows that differ between PostgreSQL and the Mongo mart (0 = row for row equal)."""
    import psycopg

    from elt.publish.tables import serving_tables

    names = {s.id: s.name for s in SPECS}
    out = {}
    with psycopg.connect(soak.pg.dsn()) as conn:
        for table in serving_tables(soak.project):
            if table.collection is None:
                continue
            columns = table.column_names
            quoted = ", ".join(f'"{c}"' for c in columns)
            pg_rows = sorted(repr(tuple(_plain(v) for v in row)) for row in
                             conn.execute(f'SELECT {quoted} FROM airqino."{table.name}"').fetchall())  # fmt: skip
            query: dict[str, Any] = {}
            if table.window_field and table.window_days:
                newest = db[table.collection].find_one({}, sort=[(table.window_field, -1)])
                if newest is not None:
                    start = newest[table.window_field] - timedelta(days=table.window_days)
                    query = {table.window_field: {"$gt": start}}  # as elt publish: newer than the start
            mongo_rows = []
            for doc in db[table.collection].find(query):
                if "station_name" in columns and "station_name" not in doc:
                    doc["station_name"] = names.get(doc.get("station_id"))
                mongo_rows.append(repr(tuple(_plain(doc.get(c)) for c in columns)))
            mongo_rows.sort()
            out[table.name] = len(set(pg_rows) ^ set(mongo_rows)) + abs(len(pg_rows) - len(mongo_rows))
    return out


def _report(capsys: pytest.CaptureFixture[str], summary: dict[str, Any]) -> None:
    """Print the summary past pytest's capture (it shows in CI output with or without -s); keep a JSON copy."""
    lines = ["", "=" * 30 + " soak summary " + "=" * 30]
    lines += [f"{key}: {json.dumps(value, default=str)}" for key, value in summary.items()]
    with capsys.disabled():
        print("\n".join(lines), flush=True)
    target = REPO_ROOT / "target"
    target.mkdir(exist_ok=True)
    (target / "soak-summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


def test_a_simulated_week_of_hourly_runs_with_faults_ends_consistent(
    soak: Soak, capsys: pytest.CaptureFixture[str]
) -> None:
    started, first_day = time.perf_counter(), datetime.now(timezone.utc).date()
    first = soak.run(START)  # empty database: the whole history
    assert first.ok, first.record.get("error")
    assert first.window.mode == "initial"
    hours = DAYS * 24
    for k in range(1, hours + 1):
        now = START + timedelta(hours=k)
        soak.sim.set_now(now)
        _inject(soak, k, now)
        result = soak.run(now)
        soak.sim.clear_faults()
        if now.replace(minute=0) in soak.excused_hours:
            assert result.step("load")["status"] == "failed", f"run {k}: the API fault did not fail the load"
            assert result.step("transform")["status"] == "ok"
        else:
            assert result.ok, f"run {k} at {now:%m-%d %H:%M} failed: {result.record.get('error')}"
    end = START + timedelta(hours=hours)

    with soak.client() as client:
        db = client["airqino_soak"]
        # the API's faults are all in raw: the rewrite, the revised provisional hour, the outage
        rewritten = db.raw_airqino_hourly.find_one({"station_id": REWRITE_STATION,
                                                    "ts": START.replace(minute=0) + timedelta(hours=REWRITE) - timedelta(days=5)})  # fmt: skip
        assert rewritten is not None and rewritten["pm25"] == 77.7
        provisional_hour = START.replace(minute=0) + timedelta(hours=PROVISIONAL)
        revised = db.raw_airqino_hourly.find_one({"station_id": PROVISIONAL_STATION, "ts": provisional_hour})
        assert revised is not None and revised["pm25"] != 555.0 and not revised.get("provisional")
        assert db.raw_airqino_history.count_documents({"station_id": PROVISIONAL_STATION, "pm25": 555.0}) >= 1
        down_start = START.replace(minute=0) + timedelta(hours=DOWN_FROM)
        assert db.raw_airqino_hourly.count_documents({"station_id": DOWN_STATION, "ts": {
            "$gte": down_start, "$lt": down_start + timedelta(hours=DOWN_HOURS)}}) == 0  # fmt: skip
        runs = {r["status"] for r in db.elt_runs.find({"_id": {"$regex": "^soak-killed-"}})}
        assert runs == {"aborted"}, f"the killed run is recorded as {runs}"

        mart_divergences = _full_refresh_divergences(soak, client, db)
        duplicates = _duplicate_keys(db)
        forecasts = _forecast_check(soak, db)
        pairs, verified = _verification_pairs(db)
        project = soak.project
        report = build_status(project, db, now=end)
        try:
            published: Any = _published_divergences(soak, db) if soak.pg is not None else None
        except Exception as exc:  # noqa: BLE001 - reported in the summary, failed below
            published = f"comparison failed: {type(exc).__name__}: {exc}"
        full_passes = [r.step("test")["counts"]["full_pass_reason"] for _, r, _ in soak.runs
                       if "full_pass_reason" in r.step("test")["counts"]]  # fmt: skip
        summary = {
            "simulated_days": DAYS,
            "runs": {
                "hourly": len(soak.runs),
                "killed": 1,
                "ok": sum(1 for _, r, _ in soak.runs if r.ok),
            },  # fmt: skip
            # why each full pass ran (the first run: "no full test pass recorded yet"); the other runs audited
            "full_test_passes": {"count": len(full_passes), "reasons": full_passes},
            "wall_seconds": round(time.perf_counter() - started, 1),
            "seconds_per_run": round(sum(s for _, _, s in soak.runs) / len(soak.runs), 2),
            "faults_injected": soak.faults,
            "rows_landed": {
                "raw_rows": db.raw_airqino_hourly.count_documents({}),
                "inserted": sum(
                    (r.step("load") or {}).get("counts", {}).get("inserted", 0) for _, r, _ in soak.runs
                ),
                "updated": sum(
                    (r.step("load") or {}).get("counts", {}).get("updated", 0) for _, r, _ in soak.runs
                ),
                "history_versions": db.raw_airqino_history.count_documents({}),
            },  # fmt: skip
            "forecasts_written": db.forecasts.count_documents({}),
            "forecast_hours": forecasts,
            "verification_pairs": {"matched_forecasts": pairs, "forecast_verification_n": verified},
            "stale_stations": [s.station_id for s in report.stale_stations],
            "forecast_warnings": report.forecast_warnings,
            "divergences": {
                "marts_vs_full_refresh": mart_divergences,
                "duplicate_keys": duplicates,
                "published_vs_mongo": published
                if published is not None
                else "not checked: no PostgreSQL (initdb/pg_ctl) installed",
            },  # fmt: skip
        }
        _report(capsys, summary)

    assert mart_divergences == dict.fromkeys(MART_COLLECTIONS, 0), mart_divergences
    # the first run, the first run of each (real, UTC) day and the run after the killed one (what it wrote may
    # be in no change record) test everything; the others audit their changes
    after_kill = [reason for reason in full_passes if "killed or crashed" in reason]
    assert len(after_kill) == 1, full_passes
    assert len(full_passes) - 1 <= 1 + (datetime.now(timezone.utc).date() - first_day).days, full_passes
    assert set(duplicates.values()) == {0}, duplicates
    assert forecasts["missed"] == 0 and forecasts["checked"] > 0
    assert pairs == verified > 0
    assert report.stale_stations == [] and report.forecast_warnings == []
    assert report.last_run is not None and report.last_run["status"] == "success"
    if published is None:
        warnings.warn("soak: PostgreSQL not installed; the published tables were not compared", stacklevel=1)
    else:
        assert isinstance(published, dict) and set(published.values()) == {0}, published
        assert all(r.step("publish")["status"] == "ok" for _, r, _ in soak.runs[-3:])
