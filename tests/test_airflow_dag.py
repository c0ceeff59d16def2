"""The Airflow 3 DAG in pipelines/airflow, with real Airflow from its own virtualenv (``.airflow-venv``).

``scripts/ci-setup-airflow.sh`` creates that venv (``.ci/run`` runs it before the tests); without it these
tests are skipped. Airflow never enters the project's venv: its tasks call the project's ``elt`` executable.
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
import yaml
from pymongo import MongoClient

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
    "load_command": dag.get_task("load").bash_command,
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
        **(extra or {}),
    )
    return env


def test_dag_imports_with_the_hourly_interval_timetable_and_one_task_per_step(tmp_path: Path) -> None:
    env = _airflow_env(tmp_path / "airflow-home")
    done = subprocess.run([str(AIRFLOW_VENV / "bin" / "python"), "-c", _INSPECT, str(DAG_FILE)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    dag: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert dag["dag_id"] == "airqino_elt_hourly"
    assert dag["upstream"] == {"load": [], "transform": ["load"], "test": ["transform"], "forecast": ["test"],
                               "publish": ["forecast"]}  # fmt: skip
    assert dag["timetable"] == "CronDataIntervalTimetable" and dag["cron"] == "5 * * * *"
    assert dag["timezone"] in ("UTC", "Timezone('UTC')")
    assert dag["max_active_runs"] == 1 and dag["catchup"] is False
    assert dag["retries"] == 0 and dag["backoff"] is True  # retries come from ELT_AIRFLOW_RETRIES here
    assert '--start "{{ data_interval_start }}" --end "{{ data_interval_end }}"' in dag["load_command"]


def test_airflow_dags_test_runs_every_step_against_the_simulator_and_the_embedded_store(
    tmp_path: Path, airqino_simulator_factory: Any
) -> None:
    sim = airqino_simulator_factory(window_days=60)
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "elt.yml").write_text((REPO_ROOT / "config" / "elt.yml").read_text())
    (project / "aggregations").symlink_to(REPO_ROOT / "aggregations")
    (project / "config" / "profiles.yml").write_text(yaml.safe_dump(
        {"default_target": "dev", "targets": {"dev": {"database": "airqino", "embedded_path": ".elt/mongo"}}}
    ))  # fmt: skip
    home = tmp_path / "airflow-home"
    env = _airflow_env(home, {"ELT_PROJECT_DIR": str(project), "AIRQINO_BASE_URL": sim.base_url})
    elt = [str(ELT_BIN), "--project-dir", str(project)]
    try:
        # history before the DAG run's interval, so the forecast step has something to learn from
        seed_end = SIMULATOR_NOW.replace(minute=5) - timedelta(hours=1)
        seeded = subprocess.run([*elt, "run", "--start", (seed_end - timedelta(days=56)).isoformat(), "--end",
                                 seed_end.isoformat(), "--step", "load", "--step", "transform", "--no-summary"],
                                env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
        assert seeded.returncode == 0, seeded.stderr[-3000:]

        migrated = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True,
                                  timeout=300)  # fmt: skip
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        logical = SIMULATOR_NOW.replace(minute=5)
        tested = subprocess.run([str(AIRFLOW), "dags", "test", "airqino_elt_hourly", logical.isoformat()], env=env,
                                capture_output=True, text=True, timeout=900)  # fmt: skip
        output = tested.stdout + tested.stderr
        assert tested.returncode == 0, output[-5000:]
        assert "state=success" in output, output[-5000:]

        state = json.loads((project / ".elt" / "mongo.server.json").read_text())
        with MongoClient(state["uri"], directConnection=True, tz_aware=True) as client:
            db = client["airqino"]
            run = db.elt_runs.find_one({"trigger": "airflow"})
            assert run is not None and run["_id"].startswith("airflow__")
            assert run["status"] == "success" and run["full"] is True
            assert [s["name"] for s in run["steps"]] == ["load", "transform", "test", "forecast", "publish"]
            assert run["window"]["mode"] == "explicit"
            start, end = run["window"]["start"], run["window"]["end"]
            assert end - start == timedelta(hours=1) and start.minute == 5
            load = run["steps"][0]["counts"]
            assert (
                load["stations_failed"] == 0 and load["inserted"] + load["unchanged"] + load["updated"] == 2
            )
            assert run["steps"][4]["status"] == "skipped" and "SERVING_DSN" in run["steps"][4]["reason"]
            hour = start.replace(minute=0)
            assert db.stg_airqino_hourly.count_documents({"ts": hour}) == 2
            assert db.forecasts.count_documents({"issued_at": hour}) > 0
    finally:
        subprocess.run([*elt, "server", "stop"], env=env, capture_output=True, timeout=120)
