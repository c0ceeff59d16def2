"""``elt status``: the last runs, the lease, per-station and per-pollutant freshness, and the stale stations.

Freshness comes from the ``station_freshness`` mart (transform) when it exists, else straight from
``raw_airqino_hourly`` (before the first transform). A station is stale when its newest hour is older than its
``stale_after_hours`` (or when it never reported); a pollutant is stale when its newest *valid* hour is (a dead
sensor, like SMART188's CO, shows here while the station itself keeps reporting).

Forecasts: the last forecast step's health per station x pollutant (``forecast_health``: written, or why not)
and the series that should be forecast but have had none for more than ``forecast_missing_hours`` (project
var, default 6): ``forecast_warnings`` in ``--json``, a warning in the text output, an alert from ``elt run``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from pymongo.database import Database

from elt.config import Project
from elt.owned import FRESHNESS_MODEL as FRESHNESS_COLLECTION
from elt.owned import RAW_HOURLY_COLLECTION as RAW_COLLECTION
from elt.run.lock import read_lease
from elt.run.runlog import last_successful_run, recent_runs
from elt.utc import as_utc_or_none, jsonable

#: Pollutants whose freshness is shown (the marts' pollutants).
POLLUTANTS: tuple[str, ...] = ("co", "pm25")


def _age_hours(ts: datetime | None, now: datetime) -> float | None:
    return None if ts is None else round((now - ts).total_seconds() / 3600, 2)


@dataclass
class PollutantFreshness:
    """The newest hour and the newest valid hour of one pollutant at one station."""

    pollutant: str
    last_ts: datetime | None
    last_valid_ts: datetime | None
    age_hours: float | None
    """Hours since the start of the newest valid hour (None: never valid)."""
    stale: bool


@dataclass
class StationStatus:
    """One configured station's freshness."""

    station_id: str
    name: str
    enabled: bool
    stale_after_hours: int
    last_ts: datetime | None
    age_hours: float | None
    """Hours since the start of the station's newest hour (None: no data yet)."""
    stale: bool
    pollutants: list[PollutantFreshness] = field(default_factory=list)


@dataclass
class StatusReport:
    """Everything ``elt status`` shows."""

    now: datetime
    project: str
    database: str
    freshness_source: str
    lease: dict[str, Any] | None
    last_success: dict[str, Any] | None
    runs: list[dict[str, Any]]
    stations: list[StationStatus]
    forecasts: list[dict[str, Any]] = field(default_factory=list)
    """Per station x pollutant: the last forecast step's status (written or why not) and hours missing."""
    forecast_warnings: list[dict[str, Any]] = field(default_factory=list)
    """Series that should be forecast and have had none for more than ``forecast_missing_hours``."""

    @property
    def stale_stations(self) -> list[StationStatus]:
        """Enabled stations beyond their staleness threshold."""
        return [s for s in self.stations if s.enabled and s.stale]

    @property
    def last_run(self) -> dict[str, Any] | None:
        """The newest run record, if any."""
        return self.runs[0] if self.runs else None

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` document (datetimes as ISO 8601 UTC)."""
        return jsonable({
            "now": self.now,
            "project": self.project,
            "database": self.database,
            "freshness_source": self.freshness_source,
            "lease": self.lease,
            "last_run": _run_brief(self.last_run),
            "last_success": _run_brief(self.last_success),
            "runs": [_run_brief(r) for r in self.runs],
            "stations": [asdict(s) for s in self.stations],
            "stale_stations": [s.station_id for s in self.stale_stations],
            "forecasts": self.forecasts,
            "forecast_warnings": self.forecast_warnings,
        })  # fmt: skip


def _run_brief(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    keys = ("status", "full", "trigger", "started_at", "finished_at", "seconds", "window", "error", "demo")
    brief = {"run_id": run.get("_id"), **{k: run.get(k) for k in keys}}
    brief["steps"] = [
        {k: s.get(k) for k in ("name", "status", "seconds", "counts", "reason", "error")}
        for s in run.get("steps", [])
    ]
    return brief


def _freshness_from_mart(db: Database) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (str(d["station_id"]), str(d["pollutant"])): d
        for d in db[FRESHNESS_COLLECTION].find(
            {}, {"_id": 0, "station_id": 1, "pollutant": 1, "last_ts": 1, "last_valid_ts": 1}
        )  # fmt: skip
    }


def _freshness_from_raw(db: Database) -> dict[tuple[str, str], dict[str, Any]]:
    """Newest hour per station, and newest hour with a non-null value per pollutant (not QC'd: no mart yet)."""
    group: dict[str, Any] = {"_id": "$station_id", "last_ts": {"$max": "$ts"}}
    for p in POLLUTANTS:
        group[p] = {"$max": {"$cond": [{"$isNumber": f"${p}"}, "$ts", None]}}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for row in db[RAW_COLLECTION].aggregate([{"$group": group}]):
        for p in POLLUTANTS:
            out[(str(row["_id"]), p)] = {"last_ts": row["last_ts"], "last_valid_ts": row.get(p)}
    return out


def build_status(project: Project, db: Database, now: datetime | None = None, runs: int = 5) -> StatusReport:
    """Read the run log, the lease and the freshness of every configured station."""
    now = as_utc_or_none(now) or datetime.now(timezone.utc)
    names = set(db.list_collection_names())
    if FRESHNESS_COLLECTION in names and db[FRESHNESS_COLLECTION].estimated_document_count():
        source, fresh = FRESHNESS_COLLECTION, _freshness_from_mart(db)
    else:
        source, fresh = RAW_COLLECTION, _freshness_from_raw(db) if RAW_COLLECTION in names else {}
    stations = []
    for cfg in project.config.stations:
        threshold = cfg.stale_after_hours
        pollutants = []
        for p in POLLUTANTS:
            doc = fresh.get((cfg.id, p), {})
            valid = as_utc_or_none(doc.get("last_valid_ts"))
            age = _age_hours(valid, now)
            pollutants.append(PollutantFreshness(p, as_utc_or_none(doc.get("last_ts")), valid, age,
                                                 age is None or age > threshold))  # fmt: skip
        last = max((p.last_ts for p in pollutants if p.last_ts is not None), default=None)
        age = _age_hours(last, now)
        stations.append(StationStatus(cfg.id, cfg.name, cfg.enabled, threshold, last, age,
                                      age is None or age > threshold, pollutants))  # fmt: skip
    forecasts, warnings = _forecast_health(project, db, now, names)
    return StatusReport(
        now=now,
        project=project.config.name,
        database=db.name,
        freshness_source=source,
        lease=read_lease(db),
        last_success=last_successful_run(db),
        runs=recent_runs(db, runs),
        stations=stations,
        forecasts=forecasts,
        forecast_warnings=warnings,
    )


def _forecast_health(
    project: Project, db: Database, now: datetime, names: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The health of every enabled series and the missing-forecast warnings (both empty before any forecast)."""
    from elt.forecast.health import (
        HEALTH_COLLECTION,
        missing_forecasts,
        missing_hours,
        missing_threshold_hours,
        read_health,
    )

    if HEALTH_COLLECTION not in names:
        return [], []
    enabled = {s.id for s in project.enabled_stations()}
    keys = ("station_id", "pollutant", "status", "reason", "origin", "missing_since", "last_written_origin")
    forecasts = [
        {**{k: doc.get(k) for k in keys}, "missing_hours": missing_hours(doc, now)}
        for doc in read_health(db)
        if doc["station_id"] in enabled
    ]
    threshold = missing_threshold_hours(project.config.vars)
    warnings = [
        {k: doc.get(k) for k in (*keys, "missing_hours", "threshold_hours")}
        for doc in missing_forecasts(db, now, threshold, enabled)
    ]
    return forecasts, warnings
