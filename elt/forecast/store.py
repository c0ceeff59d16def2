"""Trained forecasts live in MongoDB, collection ``forecast_models``, one document per version.

Why MongoDB rather than files under ``.elt/``: ``predict`` then works wherever the database is (a cron host,
an Airflow worker, a container) with no shared volume, and the model travels with the data it was trained on.
A document holds the metadata (window, features, parameters, per-series choice and validation metrics) as
plain fields, readable with any Mongo client, and the fitted estimators as zlib-compressed pickles (a few
hundred kB). Pickles execute code when loaded: only ``elt forecast train`` should be able to write this
collection. The newest ``KEEP_VERSIONS`` versions are kept.
"""

from __future__ import annotations

import logging
import pickle
import zlib
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sklearn
from bson.binary import Binary
from pymongo import DESCENDING
from pymongo.database import Database

from elt.errors import ForecastError
from elt.forecast.baselines import Blend
from elt.forecast.gbm import GbmParams
from elt.forecast.train import SeriesChoice, TrainedForecast

log = logging.getLogger(__name__)

MODELS_COLLECTION = "forecast_models"
#: Versions kept in ``forecast_models`` (older ones are deleted after a successful save).
KEEP_VERSIONS = 5


def _key(pollutant: str, horizon: int) -> str:
    return f"{pollutant}|{horizon}"


def _unkey(key: str) -> tuple[str, int]:
    pollutant, horizon = key.split("|")
    return pollutant, int(horizon)


def to_document(bundle: TrainedForecast) -> dict[str, Any]:
    """The stored form of a trained forecast."""
    return {
        "_id": bundle.version,
        "version": bundle.version,
        "created_at": bundle.created_at,
        "trained_until": bundle.trained_until,
        "window": {"start": bundle.train_start, "end": bundle.trained_until},
        "params": bundle.params.to_dict(),
        "station_codes": bundle.station_codes,
        "timezones": bundle.timezones,
        "features": bundle.features(),
        "series": [asdict(choice) for choice in bundle.choices],
        "validation": bundle.validation,
        "blends": {_key(*key): blend.to_dict() for key, blend in bundle.blends.items()},
        "models": {
            _key(*key): Binary(zlib.compress(pickle.dumps(model, protocol=4), 6))
            for key, model in bundle.models.items()
            if model is not None
        },
        "sklearn_version": sklearn.__version__,
    }


def from_document(doc: dict[str, Any]) -> TrainedForecast:
    """Inverse of ``to_document``; a ForecastError when the stored estimators cannot be loaded here."""
    if doc.get("sklearn_version") != sklearn.__version__:
        log.warning(
            "forecast model %s was trained with scikit-learn %s, this is %s: retrain with elt forecast train",
            doc["_id"],
            doc.get("sklearn_version"),
            sklearn.__version__,
        )
    try:
        models = {
            _unkey(k): pickle.loads(zlib.decompress(bytes(v))) for k, v in doc.get("models", {}).items()
        }
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ForecastError(
            f"cannot load forecast model {doc['_id']} from {MODELS_COLLECTION}: {type(exc).__name__}: {exc}. "
            "Retrain it with: elt forecast train"
        ) from None
    return TrainedForecast(
        version=doc["version"],
        created_at=doc["created_at"],
        trained_until=doc["trained_until"],
        train_start=doc["window"]["start"],
        params=GbmParams(**doc["params"]),
        station_codes={str(k): int(v) for k, v in doc["station_codes"].items()},
        timezones=dict(doc.get("timezones", {})),
        models={key: models.get(key) for key in map(_unkey, doc.get("blends", {}))},
        blends={_unkey(k): Blend.from_dict(v) for k, v in doc.get("blends", {}).items()},
        choices=[SeriesChoice(**row) for row in doc.get("series", [])],
        validation=dict(doc.get("validation", {})),
    )


def save_forecast(db: Database, bundle: TrainedForecast) -> str:
    """Store (idempotently, by version) and prune old versions; returns the version."""
    doc = to_document(bundle)
    db[MODELS_COLLECTION].replace_one({"_id": doc["_id"]}, doc, upsert=True)
    keep = [d["_id"] for d in db[MODELS_COLLECTION].find({}, {"_id": 1}).sort("created_at", DESCENDING)]
    if len(keep) > KEEP_VERSIONS:
        db[MODELS_COLLECTION].delete_many({"_id": {"$in": keep[KEEP_VERSIONS:]}})
    return bundle.version


def latest_document(db: Database, metadata_only: bool = False) -> dict[str, Any] | None:
    """The newest stored model document (without the estimators when ``metadata_only``)."""
    projection = {"models": 0} if metadata_only else None
    return db[MODELS_COLLECTION].find_one(
        {}, projection, sort=[("created_at", DESCENDING), ("_id", DESCENDING)]
    )


def load_latest(db: Database) -> TrainedForecast | None:
    """The newest trained forecast, or None when nothing was trained yet."""
    doc = latest_document(db)
    return from_document(doc) if doc else None


def trained_at(db: Database) -> datetime | None:
    """When the newest model was created (None when there is none)."""
    doc = latest_document(db, metadata_only=True)
    return doc["created_at"] if doc else None
