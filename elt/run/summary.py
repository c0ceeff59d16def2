"""The one-screen summary printed after ``elt run``: the run, the stations, the last days' CO and PM2.5 means
with completeness, the next two hours' forecasts, and where the data is."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from elt.config import Project
from elt.owned import DAILY_MODEL, FORECASTS_COLLECTION, RAW_HOURLY_COLLECTION, RUNS_COLLECTION, STAGING_MODEL
from elt.run.status import StatusReport
from elt.utc import as_utc

#: How many local days of daily means the summary shows per station.
SUMMARY_DAYS = 3
_STEP_STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow", "aborted": "red", "running": "cyan"}


def _fmt(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _utc(value: datetime | None) -> str:
    if value is None:
        return "-"
    return f"{as_utc(value):%Y-%m-%d %H:%M}"


def run_line(record: dict[str, Any]) -> Text:
    """``run <id> success in 12.3 s: load ok (1440 rows) · transform ok · ... · publish skipped (reason)``."""
    status = record.get("status", "?")
    text = Text(f"run {record.get('_id')} ", style="bold")
    text.append(status, style="bold green" if status == "success" else "bold red")
    text.append(f" in {record.get('seconds') or 0:.1f} s\n")
    for i, step in enumerate(record.get("steps", [])):
        text.append(" · " if i else "  ")
        text.append(f"{step['name']} ")
        text.append(step["status"], style=_STEP_STYLE.get(step["status"], ""))
        detail = step.get("reason") or step.get("error")
        if step["name"] == "load" and step.get("counts"):
            c = step["counts"]
            detail = (
                detail
                or f"{c.get('inserted', 0)} new, {c.get('updated', 0)} changed, {c.get('unchanged', 0)} same"
            )
        if detail:
            text.append(f" ({str(detail)[:120]})", style="dim")
    return text


def stations_table(report: StatusReport) -> Table:
    """Per station: newest hour, age, fresh or stale, and the newest valid CO / PM2.5 hour."""
    table = Table(title="Stations", title_justify="left", expand=False)
    for col in (
        "station",
        "name",
        "newest hour (UTC)",
        "age h",
        "state",
        "last valid CO",
        "last valid PM2.5",
    ):
        table.add_column(col, justify="right" if col == "age h" else "left")
    for s in report.stations:
        valid = {p.pollutant: p for p in s.pollutants}
        state = Text("stale", style="bold red") if s.stale else Text("fresh", style="green")
        if not s.enabled:
            state = Text("disabled", style="dim")
        table.add_row(s.station_id, s.name, _utc(s.last_ts), _fmt(s.age_hours, 1), state,
                      _utc(valid["co"].last_valid_ts), _utc(valid["pm25"].last_valid_ts))  # fmt: skip
    return table


def daily_table(db: Database, project: Project, days: int = SUMMARY_DAYS) -> Table:
    """The last ``days`` local days of ``daily_sensor_averages`` per station."""
    table = Table(title=f"Daily means, last {days} days (valid hours / complete?)", title_justify="left")
    for col in ("station", "day", "CO mg/m³", "CO hours", "PM2.5 µg/m³", "PM2.5 hours", "AQI (PM2.5)"):
        table.add_column(col, justify="left" if col in ("station", "day", "AQI (PM2.5)") else "right",
                         no_wrap=col in ("station", "day"))  # fmt: skip
    names = {s.id: s.name for s in project.config.stations}
    for station in project.enabled_stations():
        rows = list(db[DAILY_MODEL].find({"station_id": station.id}, sort=[("day", DESCENDING)],
                                         limit=days))  # fmt: skip
        for row in reversed(rows):
            table.add_row(names.get(station.id, station.id), str(row.get("day")), _fmt(row.get("co_mean"), 3),
                          _hours(row, "co"), _fmt(row.get("pm25_mean"), 1), _hours(row, "pm25"),
                          str(row.get("pm25_aqi_category") or "-"))  # fmt: skip
        if not rows:
            table.add_row(names.get(station.id, station.id), "no data yet", "-", "-", "-", "-", "-")
    return table


def _hours(row: dict[str, Any], pollutant: str) -> Text:
    hours = row.get(f"{pollutant}_hours")
    complete = row.get(f"{pollutant}_complete")
    if hours is None:
        return Text("-")
    return Text(f"{hours}/24 " + ("✓" if complete else "✗"), style="green" if complete else "yellow")


def forecast_table(db: Database, project: Project) -> Table:
    """The newest forecast per station and pollutant: +1 h and +2 h."""
    table = Table(title="Next two hours (forecast)", title_justify="left")
    for col in ("station", "pollutant", "issued (UTC)", "+1 h", "+2 h", "model"):
        table.add_column(col, justify="right" if col.startswith("+") else "left")
    for station in project.enabled_stations():
        for pollutant, unit in (("co", "mg/m³"), ("pm25", "µg/m³")):
            latest = db[FORECASTS_COLLECTION].find_one({"station_id": station.id, "pollutant": pollutant},
                                                        sort=[("issued_at", DESCENDING)])  # fmt: skip
            if latest is None:
                continue
            by_h = {
                d["horizon_h"]: d
                for d in db[FORECASTS_COLLECTION].find(
                    {"station_id": station.id, "pollutant": pollutant, "issued_at": latest["issued_at"]}
                )  # fmt: skip
            }
            digits = 3 if pollutant == "co" else 1
            table.add_row(station.name, f"{'CO' if pollutant == 'co' else 'PM2.5'} {unit}",
                          _utc(latest["issued_at"]), _fmt((by_h.get(1) or {}).get("value"), digits),
                          _fmt((by_h.get(2) or {}).get("value"), digits), str(latest.get("model", "-")))  # fmt: skip
    if not table.row_count:
        table.add_row("-", "no forecasts (forecast step skipped or not run)", "-", "-", "-", "-")
    return table


def where_text(server: dict[str, Any], db: Database, project: Project, demo: bool) -> Text:
    """Where the data is, how many documents each collection holds, and what to run next."""
    counts = {name: db[name].estimated_document_count()
              for name in (RAW_HOURLY_COLLECTION, STAGING_MODEL, DAILY_MODEL, FORECASTS_COLLECTION,
                           RUNS_COLLECTION)}  # fmt: skip
    where = Text("Data: ", style="bold")
    location = f"embedded {server['name']} under {project.embedded_dir}" if server.get("embedded") else (
        f"{server['name']} {server.get('version', '')}"
    )  # fmt: skip
    where.append(f"{location} ({server['uri']}), database {db.name}\n")
    where.append("  " + ", ".join(f"{name} {n}" for name, n in counts.items()) + "\n")
    flag = " --demo" if demo else ""
    where.append(f"Next: elt status{flag}   ·   elt show daily_sensor_averages{flag} -n 5   ·   ")
    where.append(f"elt publish{flag} (SERVING_DSN) for Superset")
    if server.get("embedded"):
        where.append("   ·   elt server stop")
    return where


def summary_console() -> Console:
    """stdout; 110 columns when it is not a terminal (a pipe or a log file), so no table is squeezed."""
    console = Console()
    return console if console.is_terminal else Console(width=110)


def print_summary(
    console: Console, record: dict[str, Any], report: StatusReport, db: Database, project: Project,
    server: dict[str, Any], demo: bool = False,
) -> None:  # fmt: skip
    """Print the whole summary (fits one screen for a handful of stations)."""
    title = f"airqino-elt · {project.config.name}" + (" · demo (simulated data)" if demo else "")
    console.print(Panel(run_line(record), title=title, title_align="left"))
    console.print(Group(stations_table(report), daily_table(db, project), forecast_table(db, project)))
    console.print(where_text(server, db, project, demo))
