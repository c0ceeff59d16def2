"""Issue the +1 h and +2 h forecasts from the last observed hour of each station into ``forecasts``.

One document per station, pollutant, issue hour and horizon (the contract), upserted on that key: a rerun with
the same data and model changes nothing. A series gets no forecast, with the reason logged, when it had no valid
data at training time, or when any of the last 3 hours before the origin lacks a valid value.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from pymongo import UpdateOne
from pymongo.database import Database

from elt.forecast import HORIZONS, POLLUTANTS
from elt.forecast.features import HISTORY_HOURS, design_matrices, origin_hours
from elt.forecast.series import (
    MEASURES,
    hourly_grid,
    newest_final_ts,
    read_staging,
    read_staging_ranges,
    utc_hour,
)
from elt.forecast.train import TrainedForecast
from elt.owned import FORECASTS_COLLECTION
from elt.store import ensure_unique_index
from elt.utc import as_utc

log = logging.getLogger(__name__)

#: The contract's unique key of ``forecasts``.
FORECAST_KEY: tuple[str, ...] = ("station_id", "pollutant", "issued_at", "horizon_h")
#: A forecast needs a valid value in each of the last this many hours (the origin included).
RECENT_HOURS = 3


@dataclass
class PredictResult:
    """What one ``elt forecast predict`` did."""

    model_version: str
    forecasts: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    refusal: str | None = None
    """Why the stored model was refused (these forecasts then come from the persistence baseline)."""

    def counts(self) -> dict[str, Any]:
        """Counts for run logs and ``--json``."""
        return {
            "model_version": self.model_version,
            **({"model_refused": self.refusal} if self.refusal else {}),
            "written": len(self.forecasts),
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": len(self.skipped),
        }


def last_final_hour(db: Database, station_id: str, near: datetime | None = None) -> datetime | None:
    """The newest non-provisional hour of a station in staging (the forecast origin), found by indexed range
    reads backwards from ``near`` (default now; see ``series.newest_final_ts``)."""
    return newest_final_ts(db, station_id, near)


def _recent_gap(grid: pd.DataFrame, pollutant: str, origin: pd.Timestamp) -> str | None:
    """Why the last ``RECENT_HOURS`` hours do not allow a forecast (None when they all have a valid value)."""
    hours = [origin - pd.Timedelta(hours=k) for k in range(RECENT_HOURS)]
    values = grid[pollutant].reindex(hours)
    missing = [h for h in hours if pd.isna(values.loc[h])]
    if not missing:
        return None
    rule = f"(the last {RECENT_HOURS} hours must be valid)"
    if len(missing) < RECENT_HOURS:
        return f"no valid value at {', '.join(f'{h:%Y-%m-%d %H:00}' for h in missing)} UTC {rule}"
    history = grid.loc[grid.index <= origin, pollutant].dropna()
    if history.empty:
        return f"no valid data in the last {HISTORY_HOURS // 24} days {rule}"
    return f"no valid value since {history.index[-1]:%Y-%m-%d %H:00} UTC {rule}"


def _predict_value(
    bundle: TrainedForecast, predictor: str, pollutant: str, horizon: int, row: pd.DataFrame
) -> float:
    if predictor == "persistence":
        value = row["y0"]
    elif predictor == "seasonal_naive":
        value = row["y_season24"].fillna(row["y0"])
    elif predictor == "blend":
        value = bundle.blends[(pollutant, horizon)].predict(row)
    else:
        model = bundle.models.get((pollutant, horizon))
        value = model.predict(row) if model is not None else row["y0"]
    return float(value.iloc[0])


def _utc(ts: pd.Timestamp) -> datetime:
    return ts.to_pydatetime().replace(tzinfo=timezone.utc)


def forecast_station(
    bundle: TrainedForecast, station_id: str, grid: pd.DataFrame, origin: pd.Timestamp, timezone_name: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Forecast documents and skip reasons for one station at one origin (pure: no database)."""
    docs: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for pollutant in POLLUTANTS:
        gap = _recent_gap(grid, pollutant, origin)
        choices = {horizon: bundle.choice(station_id, pollutant, horizon) for horizon in HORIZONS}
        reasons: dict[int, str | None] = {}
        for horizon, choice in choices.items():
            if choice is None:
                reasons[horizon] = f"station not in model {bundle.version}: retrain with elt forecast train"
            elif choice.status != "ok" or choice.predictor is None:
                reasons[horizon] = choice.reason or "no valid data"
            else:
                reasons[horizon] = gap
        matrices = design_matrices(  # the horizon-free features once for both horizons
            {station_id: grid}, pollutant, tuple(h for h, reason in reasons.items() if reason is None),
            bundle.station_codes, {station_id: timezone_name},
        )  # fmt: skip
        for horizon in HORIZONS:
            choice, reason = choices[horizon], reasons[horizon]
            if reason is None:
                matrix = matrices[horizon]
                row = matrix[matrix["origin"] == origin]
                value = _predict_value(bundle, choice.predictor, pollutant, horizon, row)
                if math.isnan(value):
                    reason = f"predictor {choice.predictor} gave no value"
            if reason is not None:
                skipped.append(
                    {
                        "station_id": station_id,
                        "pollutant": pollutant,
                        "horizon_h": horizon,
                        "issued_at": _utc(origin),
                        "reason": reason,
                    }
                )
                continue
            docs.append(
                {
                    "station_id": station_id,
                    "pollutant": pollutant,
                    "issued_at": _utc(origin),
                    "target_ts": _utc(origin + pd.Timedelta(hours=horizon)),
                    "horizon_h": horizon,
                    "value": round(value, 4),
                    "model": choice.predictor,
                    "model_version": bundle.version,
                }
            )
    return docs, skipped


def origin_grid(db: Database, station_id: str, origin: pd.Timestamp) -> pd.DataFrame:
    """The station's hourly grid ending at ``origin`` with the hours its features read (``origin_hours``: the
    last week and about two hours a day before it, ~210 of ``HISTORY_HOURS``; the others are NaN), in one indexed
    query per range. When a pollutant has no valid value in that week, the whole window is read instead: its
    skip reason names the last valid hour, which may lie between the hours read."""
    hour = pd.Timedelta(hours=1)
    ranges = origin_hours(HORIZONS)
    frame = read_staging_ranges(
        db,
        station_id,
        [(_utc(origin - oldest * hour), _utc(origin - (newest - 1) * hour)) for newest, oldest in ranges],
    )
    grid = _grid(frame, station_id, origin)
    week = grid.loc[grid.index >= origin - ranges[0][1] * hour]
    if any(week[pollutant].isna().all() for pollutant in POLLUTANTS):
        frame = read_staging(
            db, [station_id], start=_utc(origin - HISTORY_HOURS * hour), end=_utc(origin + hour)
        )
        grid = _grid(frame, station_id, origin)
    return grid


def _grid(frame: pd.DataFrame, station_id: str, origin: pd.Timestamp) -> pd.DataFrame:
    grids = hourly_grid(frame, end=origin)
    if station_id in grids:
        return grids[station_id]
    return pd.DataFrame(index=pd.DatetimeIndex([origin], name="ts"), columns=list(MEASURES), dtype=float)


def _forecast_key(doc: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(as_utc(doc[name]) if isinstance(doc[name], datetime) else doc[name] for name in FORECAST_KEY)


def _same(stored: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether the stored forecast holds every field of ``doc`` with the same value (times compared in UTC)."""
    for name, value in doc.items():
        old = stored.get(name)
        if isinstance(value, datetime) and isinstance(old, datetime):
            old, value = as_utc(old), as_utc(value)
        if old != value:
            return False
    return True


def write_forecasts(db: Database, docs: Iterable[dict[str, Any]], result: PredictResult) -> None:
    """Upsert on the contract key (its unique index made by ``predict_forecasts``), in one bulk request: the
    stored versions are read first (one index range per station, pollutant and issue hour) and an identical one
    is left untouched. A new or changed forecast gets ``_loaded_at`` (now): the change field ``forecast_pairs``
    tracks to verify only new forecasts. (One request, not one per forecast: the embedded server syncs each
    write to disk, ~7 ms.)"""
    docs = list(docs)
    collection = db[FORECASTS_COLLECTION]
    stored: dict[tuple[Any, ...], dict[str, Any]] = {}
    for station_id, pollutant, issued_at in dict.fromkeys(
        (d["station_id"], d["pollutant"], d["issued_at"]) for d in docs
    ):
        for old in collection.find(
            {"station_id": station_id, "pollutant": pollutant, "issued_at": issued_at}
        ):
            stored[_forecast_key(old)] = old
    now = datetime.now(timezone.utc)
    writes: list[UpdateOne] = []
    for doc in docs:
        old = stored.get(_forecast_key(doc))
        result.forecasts.append(doc)
        if old is not None and _same(old, doc):
            result.unchanged += 1
            continue
        if old is None:
            result.inserted += 1
        else:
            result.updated += 1
        key = {name: doc[name] for name in FORECAST_KEY}
        writes.append(UpdateOne(key, {"$set": {**doc, "_loaded_at": now}}, upsert=True))
    if writes:
        collection.bulk_write(writes, ordered=False)


def predict_forecasts(
    db: Database,
    bundle: TrainedForecast,
    station_ids: Iterable[str],
    timezones: dict[str, str] | None = None,
    at: datetime | None = None,
    near: datetime | None = None,
    origins: dict[str, datetime | None] | None = None,
) -> PredictResult:
    """Forecast every station from its last final hour (or from ``at``) and write ``forecasts``.

    ``near`` (e.g. the run window's end) is where the newest final hour is looked for first; reads are the
    hours the origin's features use (``origin_grid``), never the whole history. ``origins``: each station's
    last final hour when the caller already read it.
    """
    timezones = timezones or {}
    result = PredictResult(bundle.version)
    ensure_unique_index(db[FORECASTS_COLLECTION], FORECAST_KEY)  # write_forecasts upserts on it
    issued: list[dict[str, Any]] = []
    for station_id in station_ids:
        if at is not None:
            newest = at
        elif origins is not None and station_id in origins:
            newest = origins[station_id]
        else:
            newest = last_final_hour(db, station_id, near)
        if newest is None:
            reason = "no final hour in stg_airqino_hourly (run elt load and elt transform first)"
            result.skipped.append({"station_id": station_id, "reason": reason})
            log.warning("%s: no forecast: %s", station_id, reason)
            continue
        origin = utc_hour(newest)
        grid = origin_grid(db, station_id, origin)
        docs, skipped = forecast_station(bundle, station_id, grid, origin, timezones.get(station_id, "UTC"))
        for skip in skipped:
            log.warning(
                "%s %s +%dh: no forecast: %s",
                station_id,
                skip["pollutant"],
                skip["horizon_h"],
                skip["reason"],
            )
        result.skipped.extend(skipped)
        issued.extend(docs)
    write_forecasts(db, issued, result)
    log.info(
        "forecasts: %d written (%d new, %d updated, %d unchanged), %d skipped, model %s",
        len(result.forecasts),
        result.inserted,
        result.updated,
        result.unchanged,
        len(result.skipped),
        bundle.version,
    )
    return result
