"""The forecast tasks on a project's database: train, predict, and the ``elt run`` step (train when due).

These are the programmatic API behind ``elt forecast train|predict|backtest`` and the forecast step of
``elt run``; the CLI only parses options and prints.
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
from elt.forecast.features import HISTORY_HOURS
from elt.forecast.gbm import GbmParams
from elt.forecast.predict import PredictResult, predict_forecasts
from elt.forecast.series import hourly_grid, newest_final_ts, read_staging, utc_hour
from elt.forecast.store import load_latest, save_forecast
from elt.forecast.train import VALIDATE_WEEKS, TrainedForecast, train_forecast

log = logging.getLogger(__name__)

#: Default days between automatic retrains in ``elt run`` (project var ``forecast_retrain_days``).
RETRAIN_DAYS = 7


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
    history = pd.Timedelta(days=params.train_days, weeks=validate_weeks) + pd.Timedelta(hours=HISTORY_HOURS)
    grids = load_grids(db, station_ids, start=(end - history).to_pydatetime(), end=end.to_pydatetime())
    if not grids:
        raise ForecastError(
            f"stg_airqino_hourly has no rows for the enabled stations before {end:%Y-%m-%d %H:00}"
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
    return predict_forecasts(db, latest_or_error(db), station_ids, timezones, at=at)


@dataclass
class ForecastRunResult:
    """The forecast step of ``elt run``: whether it trained, and what predict wrote."""

    trained: str | None = None
    """The new model version when the step retrained, else None."""
    predict: PredictResult | None = None
    ok: bool = True
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        """Counts for the run log."""
        counts: dict[str, Any] = {"trained": self.trained}
        if self.predict is not None:
            counts |= self.predict.counts()
        return counts


def retrain_reason(
    project: Project, db: Database, bundle: TrainedForecast | None, near: datetime | None = None
) -> str | None:
    """Why the model should be retrained now (None when it is current); ``near``: see newest_final_hour."""
    if bundle is None:
        return "no model yet"
    station_ids, _ = project_stations(project)
    unknown = [s for s in station_ids if s not in bundle.station_codes]
    if unknown:
        return f"stations not in the model: {', '.join(unknown)}"
    newest = newest_final_hour(db, station_ids, near)
    days = int(project.config.vars.get("forecast_retrain_days", RETRAIN_DAYS))
    trained_until = utc_hour(bundle.trained_until)
    if newest is not None and newest - trained_until >= pd.Timedelta(days=days):
        return f"model trained on data before {trained_until:%Y-%m-%d}, {days} days or more old"
    return None


def run_forecast(
    project: Project, db: Database, run_id: str | None = None, now: datetime | None = None
) -> ForecastRunResult:
    """``elt run`` step: retrain when due (weekly), then predict from the last observed hour.

    ``now`` (the run window's end) is where the newest final hours are looked for first.
    """
    result = ForecastRunResult()
    bundle = load_latest(db)
    reason = retrain_reason(project, db, bundle, now)
    if reason is not None:
        log.info("training the forecast model (%s)%s", reason, f" in run {run_id}" if run_id else "")
        bundle = train_project(project, db)
        result.trained = bundle.version
    assert bundle is not None
    station_ids, timezones = project_stations(project)
    result.predict = predict_forecasts(db, bundle, station_ids, timezones, near=now)
    return result
