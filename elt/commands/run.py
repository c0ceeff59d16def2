"""``elt run``: load -> transform -> test -> forecast -> publish over one window, under the run lease."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import TYPE_CHECKING

import click

from elt.commands.params import UtcTime, json_option
from elt.run import STEP_NAMES
from elt.utc import jsonable

if TYPE_CHECKING:
    from elt.commands.context import CliContext


@click.command("run")
@click.option("--start", type=UtcTime(), help="Window start (UTC): an explicit window is exact (backfills).")
@click.option("--end", type=UtcTime(), help="Window end, exclusive (UTC; default now). Needs --start.")
@click.option(
    "--step", "steps", multiple=True, type=click.Choice(STEP_NAMES),
    help="Run only this step (repeatable), e.g. one Airflow task per step. Default: all five.",
)  # fmt: skip
@click.option("--run-id", help="Record under this run id (Airflow passes one per DAG run; default: new).")
@click.option(
    "--lookback", type=click.FloatRange(min=0), metavar="HOURS",
    help="Default window only: hours before the last successful run's end to reload (default 48, "
    "env ELT_RUN_LOOKBACK_HOURS).",
)  # fmt: skip
@click.option(
    "--demo", is_flag=True, help="Run against the built-in simulator (offline), into <database>_demo."
)
@click.option("--trigger", default="cli", show_default=True, help="Who started the run (recorded): cli, cron, "
              "airflow, compose.")  # fmt: skip
@click.option(
    "--full-tests", is_flag=True,
    help="Run every data test on everything (default: only on what this run changed, plus one full pass a day).",
)  # fmt: skip
@click.option("--shard", metavar="I/N", help="With --step load/transform: only the stations of shard I of N "
              "(0-based); N such calls run in parallel under one --run-id.")  # fmt: skip
@click.option("--after-shards", is_flag=True, help="After every --shard call of this --run-id: sum their load, "
              "build the models that combine stations, then the later steps.")  # fmt: skip
@click.option("--no-alerts", is_flag=True, help="Do not call the alert webhook (ELT_ALERT_WEBHOOK_URL).")
@click.option("--no-summary", is_flag=True, help="Do not print the one-screen summary.")
@json_option("Print the run record as JSON on stdout (no summary).")
@click.pass_obj
def run(
    obj: CliContext,
    start: datetime | None,
    end: datetime | None,
    steps: tuple[str, ...],
    run_id: str | None,
    lookback: float | None,
    demo: bool,
    trigger: str,
    full_tests: bool,
    shard: str | None,
    after_shards: bool,
    no_alerts: bool,
    no_summary: bool,
    as_json: bool,
) -> None:
    """Run the whole job once: load -> transform -> test -> forecast -> publish, recorded in elt_runs.

    Default window: from the last successful run's end minus the lookback, to now (the first run loads all
    the API returns). Only one run works at a time: a second one exits with code 3 and a message naming the
    holder; a killed run's lease is taken over. Optional steps (forecast without its extra, publish without
    SERVING_DSN) are skipped with the reason. Exit codes: 0 ok, 1 a step failed, 2 usage, 3 busy.

    Examples: elt run --demo; elt run; elt run --start 2024-09-01 --end 2024-09-08;
    elt run --step load --start '2024-09-09T10:00Z' --end '2024-09-09T11:00Z' --run-id airflow-1
    """
    from elt.models.shards import parse_shard
    from elt.run.demo import demo_environment
    from elt.run.status import build_status
    from elt.run.task import RunTask
    from elt.store import open_store

    project = obj.project()
    parsed_shard = parse_shard(shard) if shard is not None else None
    if (parsed_shard or after_shards) and not run_id:
        raise click.UsageError(
            "--shard and --after-shards need --run-id: the shards and what follows them share it"
        )
    with contextlib.ExitStack() as stack:
        if demo:
            project = stack.enter_context(demo_environment(project)).project
        store = stack.enter_context(open_store(project))
        task = RunTask(project, store.db, start=start, end=end, steps=steps, run_id=run_id,
                       lookback_hours=lookback, trigger="demo" if demo and trigger == "cli" else trigger,
                       demo=demo, alerts=not no_alerts, full_tests=full_tests, shard=parsed_shard,
                       after_shards=after_shards)  # fmt: skip
        result = task.run()
        if as_json:
            click.echo(json.dumps(jsonable({**result.record, "alerts": result.alerts}), indent=2))
        elif not no_summary and parsed_shard is None:
            from elt.run.summary import print_summary, summary_console

            report = build_status(project, store.db)
            print_summary(
                summary_console(), result.record, report, store.db, project, store.server_info(), demo
            )
    if not result.ok:
        raise click.exceptions.Exit(result.exit_code)
