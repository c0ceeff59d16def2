"""Airflow 3 DAG: the hourly airqino-elt run, one task per step, each over the DAG run's data interval.

Each task calls the project's CLI (``elt run --step NAME --start <interval start> --end <interval end>``) in the
project's own virtualenv, so Airflow never imports airqino-elt and their dependencies never meet. All tasks of
one DAG run share ``--run-id airflow__<run_id>``: ``elt status`` shows them as one run.

The interval decides which hours the run answers for, never what is landed: the first DAG run on an empty
database lands the whole history the API returns, and every later run lands every new or changed row (a
rewrite days back included), whatever its interval.

- Timetable: ``CronDataIntervalTimetable("5 * * * *", timezone="UTC")``: the run at 11:05 covers 10:05-11:05 and
  answers for the 10:00 hour, final by then (an explicit window answers for the hours that ended inside it).
- ``max_active_runs=1``; the run lease in MongoDB also keeps cron or a manual ``elt run`` from interleaving
  (a busy step exits 3, which Airflow retries).
- Retries with exponential backoff (2 min doubling, at most 30 min) for a slow or failing API.
- Backfills: ``airflow backfill create --dag-id airqino_elt_hourly --from-date ... --to-date ...``, or set
  ``ELT_AIRFLOW_CATCHUP=true`` with ``ELT_AIRFLOW_START_DATE``: every interval is loaded exactly once.

Environment of the Airflow worker, read when the task runs (never when the DAG is parsed, so the DAG
processor's environment does not matter): ``ELT_BIN`` (the ``elt`` executable, default ``elt`` on PATH),
``ELT_PROJECT_DIR`` (the project directory, default ``/opt/airqino-elt``), plus what ``elt`` itself reads
(``MONGO_URI``, ``AIRQINO_TOKEN``, ``SERVING_DSN``, ``ELT_ALERT_WEBHOOK_URL``...): the tasks inherit the
worker's environment (``append_env=True``) and the bash command expands ``${ELT_BIN:-elt}`` itself.

Scheduling settings are the DAG's own and so are read where the DAG is parsed: ``ELT_AIRFLOW_START_DATE``,
``ELT_AIRFLOW_CATCHUP``, ``ELT_AIRFLOW_RETRIES`` (default 3).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

DAG_ID = "airqino_elt_hourly"
STEPS = ("load", "transform", "test", "forecast", "publish")

START_DATE = datetime.fromisoformat(os.environ.get("ELT_AIRFLOW_START_DATE", "2024-01-01T00:00:00+00:00"))
if START_DATE.tzinfo is None:
    START_DATE = START_DATE.replace(tzinfo=timezone.utc)
CATCHUP = os.environ.get("ELT_AIRFLOW_CATCHUP", "false").strip().lower() in ("1", "true", "yes")
RETRIES = int(os.environ.get("ELT_AIRFLOW_RETRIES", "3"))

# Rendered by Airflow: the data interval (ISO with offset, which `elt run` parses) and one run id per DAG run.
# ELT_BIN and ELT_PROJECT_DIR are expanded by bash in the task's process: the worker's environment decides.
STEP_COMMAND = (
    '"${{ELT_BIN:-elt}}" --project-dir "${{ELT_PROJECT_DIR:-/opt/airqino-elt}}" run --step {step} '
    '--start "{{{{ data_interval_start }}}}" --end "{{{{ data_interval_end }}}}" '
    '--run-id "$ELT_AIRFLOW_RUN_ID" --trigger airflow --no-summary'
)
#: Added to the worker's environment at run time (rendered per task instance).
TASK_ENV = {"ELT_AIRFLOW_RUN_ID": "airflow__{{ run_id }}"}

with DAG(
    dag_id=DAG_ID,
    description="AirQino -> MongoDB -> marts, tests, forecasts -> PostgreSQL, hourly (airqino-elt)",
    schedule=CronDataIntervalTimetable("5 * * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=CATCHUP,
    max_active_runs=1,
    default_args={
        "retries": RETRIES,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(minutes=50),
    },
    tags=["airqino", "elt"],
) as dag:
    previous = None
    for step in STEPS:
        task = BashOperator(
            task_id=step,
            bash_command=STEP_COMMAND.format(step=step),
            env=TASK_ENV,
            append_env=True,  # inherit the worker's environment: ELT_BIN, ELT_PROJECT_DIR, MONGO_URI, ...
        )
        if previous is not None:
            previous >> task
        previous = task
