"""Airflow 3 DAG: the hourly airqino-elt run over the DAG run's data interval, load and staging mapped over
station shards.

Each task calls the project's CLI (``elt run --step ... --start <interval start> --end <interval end>``) in the
project's own virtualenv, so Airflow never imports airqino-elt and their dependencies never meet. All tasks of
one DAG run share ``--run-id airflow__<run_id>``: ``elt status`` shows them as one run.

Tasks (``shards`` decides how many mapped instances there are, when the DAG run starts)::

    shards -> load_shard[0..N-1] -> transform_shard[0..N-1] -> marts -> test -> forecast -> publish

- ``shards``: N from the Airflow Variable ``airqino_elt_shards``, else the worker's ``ELT_AIRFLOW_SHARDS``,
  else 1; returns one environment per shard (``ELT_SHARD=i/N`` and the run id).
- ``load_shard`` / ``transform_shard`` (dynamic task mapping, ``.partial(...).expand(env=...)``):
  ``elt run --step load|transform --shard i/N``: the shard's stations are fetched and their staging rows
  built; the shards of one step run in parallel (one lease per shard), each retried on its own.
- ``marts``: ``elt run --step load --step transform --after-shards``, once every shard succeeded (the default
  ``all_success`` trigger rule): the load step sums the shards' records, the transform builds the models that
  combine stations. ``test``, ``forecast`` and ``publish`` follow, one task each, as before.

N = 1 (the default) is the unsharded run of earlier releases, in one load and one transform task. In production
the shards only run in parallel on an executor with several workers: CeleryExecutor (a worker pool on a queue;
``worker_concurrency`` per worker) or KubernetesExecutor (a pod per task instance); each worker needs the
project installed (``ELT_BIN``) and the environment below. ``max_active_tis_per_dagrun`` caps the shards running
at once (``ELT_AIRFLOW_MAX_PARALLEL_SHARDS``, default 16).

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
``ELT_PROJECT_DIR`` (the project directory, default ``/opt/airqino-elt``), ``ELT_AIRFLOW_SHARDS``, plus what
``elt`` itself reads (``MONGO_URI``, ``AIRQINO_TOKEN``, ``SERVING_DSN``, ``ELT_ALERT_WEBHOOK_URL``...): the tasks
inherit the worker's environment (``append_env=True``) and the bash command expands ``${ELT_BIN:-elt}`` itself.

Scheduling settings are the DAG's own and so are read where the DAG is parsed: ``ELT_AIRFLOW_START_DATE``,
``ELT_AIRFLOW_CATCHUP``, ``ELT_AIRFLOW_RETRIES`` (default 3), ``ELT_AIRFLOW_MAX_PARALLEL_SHARDS``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Variable, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

DAG_ID = "airqino_elt_hourly"
STEPS = ("load", "transform", "test", "forecast", "publish")
#: Airflow Variable, then worker environment variable, giving the number of station shards (default 1).
SHARDS_VARIABLE = "airqino_elt_shards"
SHARDS_ENV = "ELT_AIRFLOW_SHARDS"

START_DATE = datetime.fromisoformat(os.environ.get("ELT_AIRFLOW_START_DATE", "2024-01-01T00:00:00+00:00"))
if START_DATE.tzinfo is None:
    START_DATE = START_DATE.replace(tzinfo=timezone.utc)
CATCHUP = os.environ.get("ELT_AIRFLOW_CATCHUP", "false").strip().lower() in ("1", "true", "yes")
RETRIES = int(os.environ.get("ELT_AIRFLOW_RETRIES", "3"))
MAX_PARALLEL_SHARDS = int(os.environ.get("ELT_AIRFLOW_MAX_PARALLEL_SHARDS", "16"))

# Rendered by Airflow: the data interval (ISO with offset, which `elt run` parses) and one run id per DAG run.
# ELT_BIN and ELT_PROJECT_DIR are expanded by bash in the task's process: the worker's environment decides.
STEP_COMMAND = (
    '"${{ELT_BIN:-elt}}" --project-dir "${{ELT_PROJECT_DIR:-/opt/airqino-elt}}" run {steps} '
    '--start "{{{{ data_interval_start }}}}" --end "{{{{ data_interval_end }}}}" '
    '--run-id "$ELT_AIRFLOW_RUN_ID" --trigger airflow --no-summary'
)
#: Added to the worker's environment at run time (rendered per task instance).
TASK_ENV = {"ELT_AIRFLOW_RUN_ID": "airflow__{{ run_id }}"}


def shard_count(variable: str | None, environ: str | None) -> int:
    """The number of shards: the Variable, else the environment, else 1 (a clear error for a bad value)."""
    raw = variable if variable not in (None, "") else environ
    if raw in (None, ""):
        return 1
    try:
        count = int(str(raw).strip())
    except ValueError:
        raise ValueError(
            f"{SHARDS_VARIABLE}/{SHARDS_ENV}={raw!r}: expected a whole number of shards >= 1"
        ) from None
    if count < 1:
        raise ValueError(f"{SHARDS_VARIABLE}/{SHARDS_ENV}={raw!r}: expected a whole number of shards >= 1")
    return count


@task(task_id="shards")
def shard_envs() -> list[dict[str, str]]:
    """One environment per station shard (``ELT_SHARD=i/N`` and the DAG run's elt run id), read at run time."""
    count = shard_count(Variable.get(SHARDS_VARIABLE, default=None), os.environ.get(SHARDS_ENV))
    run_id = f"airflow__{get_current_context()['run_id']}"
    return [{"ELT_SHARD": f"{i}/{count}", "ELT_AIRFLOW_RUN_ID": run_id} for i in range(count)]


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
    envs = shard_envs()
    sharded = [
        BashOperator.partial(
            task_id=f"{step}_shard",
            bash_command=STEP_COMMAND.format(steps=f'--step {step} --shard "$ELT_SHARD"'),
            append_env=True,  # inherit the worker's environment: ELT_BIN, ELT_PROJECT_DIR, MONGO_URI, ...
            max_active_tis_per_dagrun=MAX_PARALLEL_SHARDS,
        ).expand(env=envs)
        for step in ("load", "transform")
    ]
    later = [
        BashOperator(
            task_id=task_id,
            bash_command=STEP_COMMAND.format(steps=steps),
            env=TASK_ENV,
            append_env=True,
        )
        for task_id, steps in (
            ("marts", "--step load --step transform --after-shards"),
            ("test", "--step test"),
            ("forecast", "--step forecast"),
            ("publish", "--step publish"),
        )
    ]
    order = [*sharded, *later]  # each mapped step waits for every instance of the one before
    for upstream, downstream in zip(order, order[1:], strict=False):
        upstream >> downstream
