"""The forecast tasks on a project's database: train, predict, and the ``elt run`` step (train when due).

These are the programmatic API behind ``elt forecast train|predict|backtest`` and the forecast step of
``elt run``; the CLI only parses options and prints.

Training cadence of ``elt run``: the first model as soon as one enabled station has ``MIN_HISTORY_HOURS`` of
history (never before: a model fitted on too little data would be kept for days); again as soon as a station
that was short (or is new) reaches it; then every ``forecast_retrain_days`` (project var, default 7).

Forecast health: after each predict, every enabled station x pollutant gets one document in
``forecast_health``: ``written``, or why not (``not_enough_history``, ``no_valid_data``, ``dead_sensor``,
``recent_gap``, ``not_in_model``, ``no_model``), with ``missing_since`` (the first forecast origin missed).
``elt status`` warns (and ``elt run`` alerts) when a series that should be forecast (status ``recent_gap``,
``not_in_model``, ``no_model`` or ``predictor_failed``) has had none for more than ``forecast_missing_hours``
(project var, default 6).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from pymongo.database import Database

from elt.config import Project
from elt.errors import ForecastError
from elt.forecast import POLLUTANTS
from elt.forecast.features import HISTORY_HOURS
from elt.forecast.gbm import GbmParams
from elt.forecast.health import record_health, series_health
from elt.forecast.predict import PredictResult, predict_forecasts
from elt.forecast.reads import first_hours
from elt.forecast.series import STAGING_COLLECTION, hourly_grid, newest_final_ts, read_staging, utc_hour
from elt.forecast.store import load_for_predict, load_latest, save_forecast
from elt.forecast.train import (
    MIN_HISTORY_HOURS,
    NOT_ENOUGH_HISTORY,
    VALIDATE_WEEKS,
    TrainedForecast,
    train_forecast,
)

log = logging.getLogger(__name__)


def project_stations(project: Project) -> tuple[list[str], dict[str, str]]:
    """Enabled station ids and their timezones."""
    stations = project.enabled_stations()
    return [s.id for s in stations], {s.id: s.timezone for s in stations}


def newest_final_hour(
    db: Database, station_ids: Iterable[str], near: datetime | None = None
) -> pd.Timestamp | None:
    """The newest non-provisional hour in staging over the given stations (per-station indexed range reads
    backwards from ``near``, default now: never a scan of the history)."""
    hours = [newest_final_ts(db, str(s), near) for s in station_ids]
    found = [h for h in hours if h is not None]
    return utc_hour(max(found)) if found else None


def station_history_hours(
    db: Database, station_ids: Iterable[str], end: pd.Timestamp | None = None, near: datetime | None = None
) -> dict[str, int]:
    """Per station: hours from its first staging hour to ``end`` (default: after the newest final hour,
    looked for from ``near`` as in newest_final_hour)."""
    station_ids = list(station_ids)
    if end is None:
        newest = newest_final_hour(db, station_ids, near)
        if newest is None:
            return {s: 0 for s in station_ids}
        end = newest + pd.Timedelta(hours=1)
    hours: dict[str, int] = {}
    for station_id, first_ts in first_hours(db, station_ids, end.to_pydatetime(), MIN_HISTORY_HOURS).items():
        first = utc_hour(first_ts) if first_ts is not None else None
        hours[station_id] = max(0, int((end - first) / pd.Timedelta(hours=1))) if first is not None else 0
    return hours


def load_grids(
    db: Database, station_ids: list[str], start: datetime | None = None, end: datetime | None = None
) -> dict[str, pd.DataFrame]:
    """Hourly grids of the stations from ``stg_airqino_hourly`` over [start, end) (all when None)."""
    frame = read_staging(db, station_ids, start=start, end=end)
    return hourly_grid(frame)


def train_project(
    project: Project,
    db: Database,
    until: datetime | None = None,
    validate_weeks: int = VALIDATE_WEEKS,
    params: GbmParams | None = None,
) -> TrainedForecast:
    """Train on the project's staging data before ``until`` (default: after the newest final hour) and save."""
    params = params or GbmParams()
    station_ids, timezones = project_stations(project)
    end = utc_hour(until) if until is not None else newest_final_hour(db, station_ids)
    if end is None:
        raise ForecastError(
            "no final hour in stg_airqino_hourly for the enabled stations: run elt load and elt transform first"
        )
    if until is None:
        end = end + pd.Timedelta(hours=1)
    have = station_history_hours(db, station_ids, end)
    if max(have.values(), default=0) < MIN_HISTORY_HOURS:
        shown = ", ".join(f"{s}: {h} h" for s, h in have.items())
        raise ForecastError(
            f"not enough history to train a forecast model before {end:%Y-%m-%d %H:00} ({shown}); at least "
            f"{MIN_HISTORY_HOURS} hours of staging data are needed for one enabled station: load more history "
            "(elt load) or wait"
        )
    history = pd.Timedelta(days=params.train_days, weeks=validate_weeks) + pd.Timedelta(hours=HISTORY_HOURS)
    grids = load_grids(db, station_ids, start=(end - history).to_pydatetime(), end=end.to_pydatetime())
    if not grids:
        raise ForecastError(
            f"{STAGING_COLLECTION} has no rows for the enabled stations before {end:%Y-%m-%d %H:00}"
        )
    grids = {
        s: g.reindex(pd.date_range(g.index.min(), end - pd.Timedelta(hours=1), freq="h", name="ts"))
        for s, g in grids.items()
    }
    bundle = train_forecast(grids, timezones, until=end, validate_weeks=validate_weeks, params=params)
    save_forecast(db, bundle)
    log.info("trained forecast model %s on data before %s", bundle.version, f"{end:%Y-%m-%d %H:00}")
    return bundle


def latest_or_error(db: Database) -> TrainedForecast:
    """The newest trained model, or a ForecastError telling how to train one."""
    bundle = load_latest(db)
    if bundle is None:
        raise ForecastError("no trained forecast model in this database: run elt forecast train first")
    return bundle


def predict_project(project: Project, db: Database, at: datetime | None = None) -> PredictResult:
    """Forecast every enabled station with the newest model."""
    station_ids, timezones = project_stations(project)
    bundle, refusal = load_for_predict(db, station_ids, timezones)
    if bundle is None:
        raise ForecastError("no trained forecast model in this database: run elt forecast train first")
    result = predict_forecasts(db, bundle, station_ids, timezones, at=at)
    result.refusal = refusal
    return result


@dataclass
class ForecastRunResult:
    """The forecast step of ``elt run``: whether it trained, and what predict wrote."""

    trained: str | None = None
    """The new model version when the step retrained, else None."""
    predict: PredictResult | None = None
    ok: bool = True
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)
    """Per enabled station x pollutant: ``status`` (written or why not) and ``reason``."""

    def counts(self) -> dict[str, Any]:
        """Counts for the run log: the model, what predict wrote, and the series per health status."""
        counts: dict[str, Any] = {"trained": self.trained}
        if self.predict is not None:
            counts |= self.predict.counts()
        counts["series"] = len(self.health)
        counts["series_written"] = sum(1 for h in self.health if h["status"] == "written")
        counts["series_missing"] = {
            f"{h['station_id']}/{h['pollutant']}": h["status"]
            for h in self.health
            if h["status"] != "written"
        }
        return counts


def retrain_reason(
    project: Project,
    db: Database,
    bundle: TrainedForecast | None,
    history: dict[str, int] | None = None,
    near: datetime | None = None,
    newest: pd.Timestamp | None = None,
) -> str | None:
    """Why the model should be retrained now (None when it is current).

    No model yet; a station that is new or was short of history when the model was trained and now has
    ``MIN_HISTORY_HOURS``; or the model is ``forecast_retrain_days`` old. ``history``: station -> hours
    (``station_history_hours``; read here when not given); ``near``: see newest_final_hour; ``newest``: the
    newest final hour over the stations when the caller has it (read here when not given).
    """
    if bundle is None:
        return "no model yet"
    station_ids, _ = project_stations(project)
    history = history if history is not None else station_history_hours(db, station_ids, near=near)
    short = {c.station_id for c in bundle.choices if c.status == NOT_ENOUGH_HISTORY}
    ready = [
        s for s in station_ids
        if (s not in bundle.station_codes or s in short) and history.get(s, 0) >= MIN_HISTORY_HOURS
    ]  # fmt: skip
    if ready:
        return f"enough history now for stations not modelled yet: {', '.join(ready)}"
    newest = newest if newest is not None else newest_final_hour(db, station_ids, near)
    days = int(project.config.vars["forecast_retrain_days"])
    trained_until = utc_hour(bundle.trained_until)
    if newest is not None and newest - trained_until >= pd.Timedelta(days=days):
        return f"model trained on data before {trained_until:%Y-%m-%d}, {days} days or more old"
    return None


def run_forecast(
    project: Project,
    db: Database,
    run_id: str | None = None,
    now: datetime | None = None,
    parsed: TrainedForecast | None = None,
) -> ForecastRunResult:
    """``elt run`` step: train when due (see the module docstring), predict from the last observed hour,
    and record per station x pollutant whether a forecast was written, or why not. ``parsed``: the stored
    model as loaded earlier in this process (``store.load_latest``)."""
    result = ForecastRunResult()
    station_ids, timezones = project_stations(project)
    origins = {s: newest_final_ts(db, s, now) for s in station_ids}  # read once for the whole step
    newest = max((utc_hour(ts) for ts in origins.values() if ts is not None), default=None)
    history = (station_history_hours(db, station_ids, end=newest + pd.Timedelta(hours=1))
               if newest is not None else dict.fromkeys(station_ids, 0))  # fmt: skip
    # A refused (tampered/unreadable) model is never run nor silently replaced: baseline forecasts, step fails.
    bundle, refusal = load_for_predict(db, station_ids, timezones, parsed)
    reason = retrain_reason(project, db, bundle, history, now, newest) if refusal is None else None
    if reason is not None and max(history.values(), default=0) >= MIN_HISTORY_HOURS:
        log.info("training the forecast model (%s)%s", reason, f" in run {run_id}" if run_id else "")
        bundle = train_project(project, db)
        result.trained = bundle.version
    elif bundle is None:
        shown = ", ".join(f"{s}: {h} h" for s, h in history.items())
        note = f"no forecast model yet: not enough history ({shown}; {MIN_HISTORY_HOURS} h needed)"
        log.warning(note)
        result.notes.append(note)
    if bundle is not None:
        result.predict = predict_forecasts(db, bundle, station_ids, timezones, near=now, origins=origins)
        if refusal is not None:
            result.predict.refusal = refusal
            result.ok, result.error = False, refusal
    result.health = series_health(
        db, bundle, station_ids, POLLUTANTS, result.predict, history, MIN_HISTORY_HOURS, now
    )
    record_health(db, result.health, run_id, now)
    return result
