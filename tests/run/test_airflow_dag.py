"""The Airflow 3 DAG in pipelines/airflow, with real Airflow from its own virtualenv (``.airflow-venv``, or
``$AIRFLOW_VENV``).

``scripts/ci-setup-airflow.sh`` creates that venv (``.ci/run`` runs it before the tests); without it these
tests are skipped. Airflow never enters the project's venv: its tasks call the project's ``elt`` executable,
found through the worker's ``ELT_BIN`` when the task runs (never the DAG processor's at parse time).

``airflow dags test`` on an empty database: the first interval lands the whole history the simulator serves;
after the clock moves on an hour and the API rewrites an hour 5 days back, the next interval lands exactly
what changed. With ``ELT_AIRFLOW_SHARDS=3`` the load and staging tasks are mapped over three station shards and
the marts equal those of a single-process ``elt run`` over the same interval.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from pymongo import MongoClient

from elt.simulator.faults import set_value
from tests.conftest import REPO_ROOT
from tests.simulator_fixtures import SIMULATOR_NOW

AIRFLOW_VENV = Path(os.environ.get("AIRFLOW_VENV", REPO_ROOT / ".airflow-venv"))
AIRFLOW = AIRFLOW_VENV / "bin" / "airflow"
DAG_FILE = REPO_ROOT / "pipelines" / "airflow" / "airqino_elt_dag.py"
ELT_BIN = Path(sys.executable).parent / "elt"

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(
        not AIRFLOW.exists(), reason=f"no Airflow venv at {AIRFLOW_VENV}: run scripts/ci-setup-airflow.sh"
    ),
]

_INSPECT = """
import json, runpy, sys
ns = runpy.run_path(sys.argv[1])
dag = ns["dag"]
print(json.dumps({
    "dag_id": dag.dag_id,
    "tasks": [t.task_id for t in dag.topological_sort()] if hasattr(dag, "topological_sort") else sorted(dag.task_ids),
    "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
    "timetable": type(dag.timetable).__name__,
    "cron": getattr(dag.timetable, "_expression", None),
    "timezone": str(getattr(dag.timetable, "_timezone", "")),
    "max_active_runs": dag.max_active_runs,
    "catchup": dag.catchup,
    "retries": dag.default_args["retries"],
    "backoff": dag.default_args["retry_exponential_backoff"],
    "load_command": dag.get_task("load_shard").partial_kwargs["bash_command"],
    "load_mapped": type(dag.get_task("load_shard")).__name__,
    "marts_command": dag.get_task("marts").bash_command,
    "marts_env": dag.get_task("marts").env,
    "append_env": dag.get_task("marts").append_env,
}))
"""


def _airflow_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ELT_", "AIRQINO_", "MONGO_URI"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAG_FILE.parent),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        ELT_BIN=str(ELT_BIN),
        ELT_AIRFLOW_RETRIES="0",
    )
    env.update(extra or {})
    return env


def test_dag_imports_with_the_hourly_interval_timetable_and_shards_mapped_before_the_marts(
    tmp_path: Path,
) -> None:
    # what the DAG processor has in its environment must not reach the tasks
    env = _airflow_env(tmp_path / "airflow-home", {"ELT_BIN": "/parse-time/bin/elt",
                                                     "ELT_PROJECT_DIR": "/parse-time/project"})  # fmt: skip
    done = subprocess.run([str(AIRFLOW_VENV / "bin" / "python"), "-c", _INSPECT, str(DAG_FILE)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    dag: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert dag["dag_id"] == "airqino_elt_hourly"
    assert dag["upstream"] == {"shards": [], "load_shard": ["shards"], "transform_shard": ["load_shard", "shards"],
                               "marts": ["transform_shard"], "test": ["marts"], "forecast": ["test"],
                               "publish": ["forecast"]}  # fmt: skip
    assert (
        dag["load_mapped"] == "MappedOperator" and '--step load --shard "$ELT_SHARD"' in dag["load_command"]
    )
    assert "--step load --step transform --after-shards" in dag["marts_command"]
    assert dag["timetable"] == "CronDataIntervalTimetable" and dag["cron"] == "5 * * * *"
    assert dag["timezone"] in ("UTC", "Timezone('UTC')")
    assert dag["max_active_runs"] == 1 and dag["catchup"] is False
    assert dag["retries"] == 0 and dag["backoff"] is True  # retries come from ELT_AIRFLOW_RETRIES here
    assert '--start "{{ data_interval_start }}" --end "{{ data_interval_end }}"' in dag["load_command"]
    assert '--start "{{ data_interval_start }}" --end "{{ data_interval_end }}"' in dag["marts_command"]
    # ELT_BIN / ELT_PROJECT_DIR are expanded by bash in the task, from the worker's environment
    assert dag["load_command"].startswith('"${ELT_BIN:-elt}" --project-dir "${ELT_PROJECT_DIR:-')
    assert "parse-time" not in json.dumps(dag)
    assert dag["append_env"] is True and set(dag["marts_env"]) == {"ELT_AIRFLOW_RUN_ID"}


def _served(sim: Any) -> dict[tuple[str, str], str]:
    """(station, timestamp) -> row JSON of what the simulator serves right now."""
    rows = {}
    for station_id in sim.stations:
        for row in requests.get(sim.station_url(station_id), timeout=60).json()["data"]:
            rows[(station_id, row["timestamp"])] = json.dumps(row, sort_keys=True)
    return rows


def _dags_test(env: dict[str, str], logical: Any) -> str:
    tested = subprocess.run([str(AIRFLOW), "dags", "test", "airqino_elt_hourly", logical.isoformat()], env=env,
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    output = tested.stdout + tested.stderr
    assert tested.returncode == 0, output[-5000:]
    assert "state=success" in output, output[-5000:]
    return output


def test_airflow_dags_test_lands_the_whole_history_first_then_only_what_changed(
    tmp_path: Path, airqino_simulator_factory: Any
) -> None:
    sim = airqino_simulator_factory(window_days=14)
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "elt.yml").write_text((REPO_ROOT / "config" / "elt.yml").read_text())
    (project / "aggregations").symlink_to(REPO_ROOT / "aggregations")
    (project / "config" / "profiles.yml").write_text(yaml.safe_dump(
        {"default_target": "dev", "targets": {"dev": {"database": "airqino", "embedded_path": ".elt/mongo"}}}
    ))  # fmt: skip
    home = tmp_path / "airflow-home"
    # the worker's environment: where elt is and which project it runs (nothing else tells the tasks)
    env = _airflow_env(home, {"ELT_PROJECT_DIR": str(project), "AIRQINO_BASE_URL": sim.base_url})
    elt = [str(ELT_BIN), "--project-dir", str(project)]
    try:
        migrated = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True,
                                  timeout=300)  # fmt: skip
        assert migrated.returncode == 0, migrated.stderr[-3000:]

        # 1. first interval on an empty database: everything the API returns is landed
        first_served = _served(sim)
        logical = SIMULATOR_NOW.replace(minute=5)
        _dags_test(env, logical)
        state = json.loads((project / ".elt" / "mongo.server.json").read_text())
        with MongoClient(state["uri"], directConnection=True, tz_aware=True) as client:
            db = client["airqino"]
            assert db.raw_airqino_hourly.count_documents({}) == len(first_served) > 14 * 24
            run = db.elt_runs.find_one({"trigger": "airflow"})
            assert run is not None and run["_id"].startswith("airflow__")
            assert run["status"] == "success" and run["full"] is True
            assert [s["name"] for s in run["steps"]] == ["load", "transform", "test", "forecast", "publish"]
            assert run["window"]["mode"] == "explicit"
            start, end = run["window"]["start"], run["window"]["end"]
            assert end - start == timedelta(hours=1) and start.minute == 5
            load = run["steps"][0]["counts"]
            assert load["stations_failed"] == 0 and load["inserted"] == len(first_served)
            assert run["steps"][4]["status"] == "skipped" and "SERVING_DSN" in run["steps"][4]["reason"]
            hour = start.replace(minute=0)
            assert db.stg_airqino_hourly.count_documents({"ts": hour}) == 2
            assert db.forecasts.count_documents({"issued_at": hour}) > 0  # 14 days: enough history to train
            health = list(db.forecast_health.find())
            assert len(health) == 4 and all(h["status"] for h in health)

        # 2. an hour later, with an hour 5 days back rewritten by the API: only the changes are landed
        sim.revise_history("283181971", set_value(5 * 24, "PM2.5", 123.4))
        sim.advance(hours=1)
        second_served = _served(sim)
        newest = {s: max(ts for (sid, ts) in first_served if sid == s) for s in sim.stations}
        new = [k for k in second_served if k not in first_served]
        changed = [k for k in second_served if k in first_served and
                   (second_served[k] != first_served[k] or k[1] == newest[k[0]])]  # fmt: skip
        _dags_test(env, logical + timedelta(hours=1))
        with MongoClient(state["uri"], directConnection=True, tz_aware=True) as client:
            db = client["airqino"]
            runs = list(db.elt_runs.find({"trigger": "airflow"}).sort("started_at", -1))
            assert len(runs) == 2 and runs[0]["status"] == "success"
            load = runs[0]["steps"][0]["counts"]
            assert (load["inserted"], load["updated"]) == (len(new), len(changed))
            assert (
                len(new) == 2 and len(changed) >= 3
            )  # the new hour per station, the rewrite, the final hours
            # the rolling window dropped its oldest hour from the API; raw keeps it
            assert db.raw_airqino_hourly.count_documents({}) == len(first_served) + len(new)
            assert db.raw_airqino_hourly.count_documents({"station_id": "283181971", "pm25": 123.4}) == 1
    finally:
        subprocess.run([*elt, "server", "stop"], env=env, capture_output=True, timeout=120)


def test_the_mapped_dag_with_three_shards_builds_the_marts_of_one_process(
    tmp_path: Path, airqino_simulator_factory: Any
) -> None:
    """``airflow dags test`` with ``ELT_AIRFLOW_SHARDS=3`` over 4 stations (5 days, too short to train a
    forecast: small on purpose), then one ``elt run`` over the same interval into another database of the same
    server: the marts are equal."""
    from tests.run.run_helpers import mart_digest

    sim = airqino_simulator_factory(count=4, window_days=5)
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    config = yaml.safe_load((REPO_ROOT / "config" / "elt.yml").read_text())
    config["stations"] = [{"id": sid, "name": f"S{sid}", "timezone": "Africa/Abidjan", "lat": 5.36, "lon": -3.95}
                          for sid in sorted(sim.stations)]  # fmt: skip
    (project / "config" / "elt.yml").write_text(yaml.safe_dump(config))
    (project / "aggregations").symlink_to(REPO_ROOT / "aggregations")
    (project / "config" / "profiles.yml").write_text(yaml.safe_dump(
        {"default_target": "dev", "targets": {"dev": {"database": "airqino", "embedded_path": ".elt/mongo"}}}
    ))  # fmt: skip
    env = _airflow_env(tmp_path / "airflow-home", {"ELT_PROJECT_DIR": str(project), "AIRQINO_BASE_URL": sim.base_url,
                                                   "ELT_AIRFLOW_SHARDS": "3"})  # fmt: skip
    elt = [str(ELT_BIN), "--project-dir", str(project)]
    try:
        migrated = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True,
                                  timeout=300)  # fmt: skip
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        logical = SIMULATOR_NOW.replace(minute=5)
        _dags_test(env, logical)
        start, end = logical - timedelta(hours=1), logical
        single = subprocess.run([*elt, "run", "--start", start.isoformat(), "--end", end.isoformat(), "--no-summary"],
                                env={**env, "ELT_DATABASE": "airqino_single"}, capture_output=True, text=True,
                                timeout=600)  # fmt: skip
        assert single.returncode == 0, single.stderr[-3000:]
        state = json.loads((project / ".elt" / "mongo.server.json").read_text())
        with MongoClient(state["uri"], directConnection=True, tz_aware=True) as client:
            sharded = client["airqino"]
            run = sharded.elt_runs.find_one({"trigger": "airflow"})
            assert run is not None and run["status"] == "success" and run["full"] is True
            assert sorted(run["shards"]) == [
                f"{step}-{i}-of-3" for step in ("load", "transform") for i in range(3)
            ]
            assert [run["shards"][f"load-{i}-of-3"]["counts"]["stations"] for i in range(3)] == [2, 1, 1]
            assert run["steps"][0]["counts"]["shards"] == 3
            assert sharded.raw_airqino_hourly.count_documents({}) == client["airqino_single"].raw_airqino_hourly.count_documents({}) > 4 * 4 * 24  # fmt: skip
            assert sharded.daily_sensor_averages.count_documents({}) > 0
            assert mart_digest(client, "airqino") == mart_digest(client, "airqino_single")
    finally:
        subprocess.run([*elt, "server", "stop"], env=env, capture_output=True, timeout=120)
