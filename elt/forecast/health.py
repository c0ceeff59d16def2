"""Forecast health: per station x pollutant, was a forecast written by the last forecast step, or why not.

``series_health`` classifies what predict did (its skip reasons, unchanged) into one status per series:

- ``written``: every horizon forecast from a current origin;
- ``not_enough_history``: the station has less history than training needs (no model, or short in the model);
- ``no_valid_data``: the series had no valid data when the model was trained (or the station has no final hour);
- ``dead_sensor``: as above or a recent gap, and the newest final hours are flagged ``dead``/``stuck`` by QC;
- ``recent_gap``: a value missing in the last hours before the origin, or no new final hour for hours
  (the station is down: forecasts from its old origin are not new);
- ``not_in_model``: a station with enough history the model has not seen (the next run retrains);
- ``no_model`` / ``predictor_failed``: no trained model despite enough history / the predictor gave no value.

``record_health`` keeps one document per series in ``forecast_health`` with ``missing_since`` (the first origin
without a forecast); ``missing_forecasts`` lists the series that should be forecast (``SHOULD_FORECAST``) and
have not been for more than N hours: ``elt status`` shows them as warnings and ``elt run`` alerts.

No numpy/pandas here: ``elt status`` reads this module without the forecast extra.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from pymongo import UpdateOne
from pymongo.database import Database

from elt.config import DEFAULT_VARS
from elt.forecast import HORIZONS
from elt.forecast.reads import newest_final_hours
from elt.owned import FORECAST_HEALTH_COLLECTION as HEALTH_COLLECTION
from elt.utc import as_utc

if TYPE_CHECKING:
    from elt.forecast.predict import PredictResult
    from elt.forecast.train import TrainedForecast

#: Statuses of a series that should have a forecast: a warning when it lasts.
SHOULD_FORECAST = frozenset({"recent_gap", "not_in_model", "no_model", "predictor_failed"})
#: QC flags that mean the sensor itself is broken.
DEAD_FLAGS = frozenset({"dead", "stuck"})
#: A written forecast is current when its origin is at most this many hours before the run's hour.
MAX_ORIGIN_LAG_HOURS = 2


def missing_threshold_hours(vars: dict[str, Any]) -> float:
    """``forecast_missing_hours`` of the project's vars (default in ``elt.config.VAR_DEFAULTS``)."""
    return float(vars.get("forecast_missing_hours", DEFAULT_VARS["forecast_missing_hours"]))


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    return as_utc(value)


def _floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def _sensor_dead(db: Database, station_id: str, pollutant: str, near: datetime, hours: int = 3) -> bool:
    """True when one of the newest ``hours`` final staging hours of the series (looked for back from
    ``near``) is flagged dead or stuck."""
    flag = f"{pollutant}_flag"
    docs = newest_final_hours(db, station_id, near, count=hours, fields=[flag])
    return any(doc.get(flag) in DEAD_FLAGS for doc in docs)


def _classify(
    db: Database,
    bundle: TrainedForecast,
    station_id: str,
    pollutant: str,
    reason: str,
    station_level: bool,
    history: int,
    min_history: int,
    now: datetime,
) -> str:
    """The status of a series predict skipped, from the model's choice and the skip reason."""
    if station_level:
        return "no_valid_data"
    horizon_choices = [bundle.choice(station_id, pollutant, h) for h in HORIZONS]
    choice = next((c for c in horizon_choices if c is not None), None)
    if choice is None:
        return "not_enough_history" if history < min_history else "not_in_model"
    if choice.status == "not_enough_history":
        return "not_enough_history"
    if choice.status != "ok":
        return "dead_sensor" if _sensor_dead(db, station_id, pollutant, now) else "no_valid_data"
    if reason.startswith("predictor"):
        return "predictor_failed"
    return "dead_sensor" if _sensor_dead(db, station_id, pollutant, now) else "recent_gap"


def series_health(
    db: Database,
    bundle: TrainedForecast | None,
    station_ids: Iterable[str],
    pollutants: Sequence[str],
    predict: PredictResult | None,
    history: dict[str, int],
    min_history: int,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """One entry per station x pollutant: ``status``, ``reason`` and the forecast ``origin`` (see module doc)."""
    now = _utc(now) or datetime.now(timezone.utc)
    written: dict[tuple[str, str], list[dict[str, Any]]] = {}
    skipped: dict[tuple[str, str | None], dict[str, Any]] = {}
    if predict is not None:
        for doc in predict.forecasts:
            written.setdefault((doc["station_id"], doc["pollutant"]), []).append(doc)
        for skip in predict.skipped:
            skipped.setdefault((skip["station_id"], skip.get("pollutant")), skip)
    out: list[dict[str, Any]] = []
    for station_id in station_ids:
        hours = history.get(station_id, 0)
        for pollutant in pollutants:
            docs = written.get((station_id, pollutant), [])
            skip = skipped.get((station_id, pollutant)) or skipped.get((station_id, None))
            origin = _utc(docs[0]["issued_at"]) if docs else _utc(skip.get("issued_at")) if skip else None
            entry: dict[str, Any] = {"station_id": station_id, "pollutant": pollutant, "origin": origin,
                                     "history_hours": hours}  # fmt: skip
            if bundle is None:
                enough = hours >= min_history
                entry["status"] = "no_model" if enough else "not_enough_history"
                entry["reason"] = (
                    "no trained forecast model (elt forecast train)" if enough
                    else f"not enough history: {hours} hours since the first data ({min_history} needed)"
                )  # fmt: skip
            elif len(docs) == len(HORIZONS) and skip is None:
                lag = (_floor_hour(now) - origin) / timedelta(hours=1) if origin is not None else 0
                if lag > MAX_ORIGIN_LAG_HOURS:
                    entry["status"] = "recent_gap"
                    entry["reason"] = (
                        f"no new final hour since {origin:%Y-%m-%d %H:00} UTC ({lag:.0f} h): the forecasts "
                        "from that origin are not new"
                    )
                else:
                    entry["status"], entry["reason"] = "written", None
            else:
                reason = str(skip["reason"]) if skip else "not every horizon was forecast"
                entry["status"] = _classify(db, bundle, station_id, pollutant, reason,
                                            skip is not None and skip.get("pollutant") is None, hours,
                                            min_history, now)  # fmt: skip
                entry["reason"] = reason
            out.append(entry)
    return out


def record_health(
    db: Database, health: Iterable[dict[str, Any]], run_id: str | None, now: datetime | None = None
) -> None:
    """Upsert one ``forecast_health`` document per series, keeping ``missing_since`` across runs (one read and
    one bulk write: the embedded server syncs each write to disk)."""
    now = _utc(now) or datetime.now(timezone.utc)
    coll = db[HEALTH_COLLECTION]
    entries = {f"{entry['station_id']}|{entry['pollutant']}": entry for entry in health}
    if not entries:
        return
    stored = {
        doc["_id"]: doc for doc in coll.find({"_id": {"$in": list(entries)}})
    }  # one document per series
    writes: list[UpdateOne] = []
    for key, entry in entries.items():
        before = stored.get(key, {})
        origin = entry.get("origin")
        doc = {**entry, "checked_at": now, "run_id": run_id}
        if entry["status"] == "written":
            doc["missing_since"] = None
            doc["last_written_origin"] = origin
        else:
            doc["missing_since"] = _utc(before.get("missing_since")) or origin or _floor_hour(now)
            doc["last_written_origin"] = _utc(before.get("last_written_origin"))
        writes.append(UpdateOne({"_id": key}, {"$set": doc}, upsert=True))
    coll.bulk_write(writes, ordered=False)


def read_health(db: Database) -> list[dict[str, Any]]:
    """Every ``forecast_health`` document (empty before the first forecast step)."""
    return list(db[HEALTH_COLLECTION].find({}, {"_id": 0}).sort([("station_id", 1), ("pollutant", 1)]))


def missing_hours(doc: dict[str, Any], now: datetime) -> float | None:
    """Hours a series has gone without a forecast it was due (None when it has one).

    ``missing_since`` is the first origin missed; its forecast was due once that hour was final (an hour later).
    """
    since = _utc(doc.get("missing_since"))
    if since is None or doc.get("status") == "written":
        return None
    return round(max(0.0, (now - since) / timedelta(hours=1) - 1), 2)


def missing_forecasts(
    db: Database, now: datetime, threshold_hours: float, station_ids: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Series that should be forecast and have had none for more than ``threshold_hours``."""
    wanted = set(station_ids) if station_ids is not None else None
    out = []
    for doc in read_health(db):
        if wanted is not None and doc["station_id"] not in wanted:
            continue
        hours = missing_hours(doc, now)
        if doc.get("status") in SHOULD_FORECAST and hours is not None and hours > threshold_hours:
            out.append({**doc, "missing_hours": hours, "threshold_hours": threshold_hours})
    return out
