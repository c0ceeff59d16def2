"""``elt status``: last runs, the run lease, per-station and per-pollutant freshness, stale stations."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from elt.commands.params import json_option
from elt.errors import EXIT_FAILED

if TYPE_CHECKING:
    from rich.console import Console

    from elt.commands.context import CliContext
    from elt.run.status import StatusReport


def _window_text(window: dict) -> str:
    start, end = window.get("start"), window.get("end")
    if end is None:
        return "-"
    return f"{f'{start:%m-%d %H:%M}' if start else 'all'} -> {end:%m-%d %H:%M} ({window.get('mode', '?')})"


def _print_report(console: Console, report: StatusReport) -> None:
    from rich.table import Table
    from rich.text import Text

    from elt.run.summary import run_line, stations_table

    console.print(f"[bold]{report.project}[/] · database {report.database} · freshness from "
                  f"{report.freshness_source} · now {report.now:%Y-%m-%d %H:%M} UTC")  # fmt: skip
    if report.lease:
        owner = report.lease.get("owner") or {}
        console.print(f"[cyan]running:[/] run {report.lease.get('run_id')} on {owner.get('host')} "
                      f"(pid {owner.get('pid')}), lease until {report.lease.get('expires_at'):%H:%M:%S} UTC")  # fmt: skip
    if report.last_run:
        console.print(run_line(report.last_run))
    else:
        console.print("no run recorded yet: elt run (or elt run --demo)")
    runs = Table(title="Recent runs", title_justify="left")
    for col in ("run", "status", "trigger", "started (UTC)", "seconds", "window"):
        runs.add_column(col)
    for r in report.runs:
        status_text = Text(str(r.get("status")), style="green" if r.get("status") == "success" else "red")
        started = f"{r['started_at']:%Y-%m-%d %H:%M}" if r.get("started_at") else "-"
        runs.add_row(str(r["_id"]), status_text, str(r.get("trigger")), started, f"{r.get('seconds') or 0:.1f}",
                     _window_text(r.get("window") or {}))  # fmt: skip
    console.print(runs)
    console.print(stations_table(report))
    for station in report.stations:
        dead = [p.pollutant for p in station.pollutants if p.stale and not station.stale]
        if dead and station.enabled:
            console.print(f"[yellow]{station.name}: no valid {', '.join(dead)} for over "
                          f"{station.stale_after_hours} h while the station reports (sensor fault?)[/]")  # fmt: skip
    if report.stale_stations:
        console.print(f"[bold red]stale: {', '.join(s.name for s in report.stale_stations)}[/]")
    missing = [f for f in report.forecasts if f.get("status") != "written"]
    if missing:
        console.print("forecasts not written by the last forecast step: " + "; ".join(
            f"{f['station_id']} {f['pollutant']}: {f['status']}" for f in missing))  # fmt: skip
    for warning in report.forecast_warnings:
        console.print(f"[bold yellow]no forecast for {warning['station_id']} {warning['pollutant']} for "
                      f"{warning['missing_hours']:.0f} h ({warning['status']}: {warning['reason']})[/]")  # fmt: skip


@click.command("status")
@json_option("Print the status as JSON on stdout.")
@click.option("--demo", is_flag=True, help="Show the demo database (<database>_demo) of `elt run --demo`.")
@click.option(
    "--alert",
    is_flag=True,
    help="Call the alert webhook (ELT_ALERT_WEBHOOK_URL) for stale stations and missing forecasts.",
)
@click.option(
    "--check", is_flag=True, help="Exit 1 when a station is stale or the last run failed (monitoring)."
)
@click.pass_obj
def status(obj: CliContext, as_json: bool, demo: bool, alert: bool, check: bool) -> None:
    """Show the last runs, the lease, per-station and per-pollutant freshness and the stale stations.

    A station is stale when its newest hour is older than its stale_after_hours (config/elt.yml).

    Examples: elt status; elt status --json; elt status --check --alert   (from a monitoring cron)
    """
    from elt.run.alerts import alert_missing_forecasts, alert_stale_stations
    from elt.run.demo import demo_database_project
    from elt.run.status import build_status
    from elt.store import open_store

    project = obj.project()
    if demo:
        project = demo_database_project(project)
    with open_store(project) as store:
        report = build_status(project, store.db)
        delivery = None
        if alert and report.stale_stations:
            stale = [{"station_id": s.station_id, "name": s.name, "last_ts": s.last_ts, "age_hours": s.age_hours,
                      "stale_after_hours": s.stale_after_hours} for s in report.stale_stations]  # fmt: skip
            delivery = alert_stale_stations(store.db, project.config.name, stale, report.now)
        if alert and report.forecast_warnings:
            delivery = (
                alert_missing_forecasts(store.db, project.config.name, report.forecast_warnings, report.now)
                or delivery
            )
    if as_json:
        doc = report.as_json()
        if doc.get("lease"):
            doc["lease"].get("owner", {}).pop("token", None)
        doc["alert"] = delivery.as_dict() if delivery else None
        click.echo(json.dumps(doc, indent=2))
    else:
        from elt.run.summary import summary_console

        _print_report(summary_console(), report)
        if delivery is not None:
            click.echo(f"alert {'sent' if delivery.sent else 'NOT sent: ' + str(delivery.error)}", err=True)
    last = report.last_run
    if last is None and not demo:
        from elt.run.demo import demo_hint

        hint = demo_hint(project, "status")
        if hint:
            click.echo(f"no run in database {report.database}{hint}", err=True)
    if check and (
        report.stale_stations or (last is not None and last.get("status") in ("failed", "aborted"))
    ):
        raise click.exceptions.Exit(EXIT_FAILED)
