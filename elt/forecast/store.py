"""Trained forecasts live in MongoDB, collection ``forecast_models``, one document per version.

Why MongoDB rather than files under ``.elt/``: ``predict`` then works wherever the database is (a cron host,
an Airflow worker, a container) with no shared volume, and the model travels with the data it was trained on.
A document holds the metadata (window, features, parameters, per-series choice and validation metrics) as
plain fields, readable with any Mongo client, and each fitted scikit-learn estimator twice: in the ``skops``
format (``models``, ``model_format: skops``, a zip of JSON and numpy arrays, ~130 kB per estimator), and as
its trees' arrays (``trees``, ``elt.forecast.trees``), which is what predict reads: numpy alone, no
scikit-learn import. A document without ``trees`` (saved by earlier versions) is read through skops.

Loading never executes code from the database: the trees are fixed-dtype numbers whose every index is checked
before use; ``skops.io.loads`` builds only the types listed in ``TRUSTED_TYPES`` (plus the scikit-learn and
numpy types skops trusts by default) and refuses anything else; and a document in any other format (the
pickles of earlier versions included) is never deserialized at all. A refused or unreadable model raises
``ModelRefused``; ``load_for_predict`` then returns a persistence (baseline) forecast so predictions go on, and
the caller reports the refusal. The newest ``KEEP_VERSIONS`` versions are kept.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from bson.binary import Binary
from pymongo import DESCENDING
from pymongo.database import Database

from elt.errors import ForecastError
from elt.forecast import HORIZONS, POLLUTANTS
from elt.forecast.baselines import Blend
from elt.forecast.gbm import ChangeModel, GbmParams, TreeModel
from elt.forecast.train import SeriesChoice, TrainedForecast
from elt.forecast.trees import TreeEnsemble
from elt.owned import FORECAST_MODELS_COLLECTION as MODELS_COLLECTION

log = logging.getLogger(__name__)

#: Versions kept in ``forecast_models`` (older ones are deleted after a successful save).
KEEP_VERSIONS = 5
#: The only storage format that is ever loaded.
MODEL_FORMAT = "skops"
#: Types a stored estimator may contain beyond skops' defaults (scikit-learn estimators, numpy): the fitted
#: trees of HistGradientBoostingRegressor and the validation function it keeps a reference to. Nothing here
#: runs code when constructed; ``functools.partial`` is loaded only if its function and arguments are trusted too.
TRUSTED_TYPES: tuple[str, ...] = (
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
)
#: The predictor every series falls back to when the stored model is refused.
BASELINE_PREDICTOR = "persistence"


class ModelRefused(ForecastError):
    """A stored model that is not loaded: wrong format, untrusted types, or unreadable."""


def _key(pollutant: str, horizon: int) -> str:
    return f"{pollutant}|{horizon}"


def _unkey(key: str) -> tuple[str, int]:
    pollutant, horizon = key.split("|")
    return pollutant, int(horizon)


def _dump_estimator(model: ChangeModel) -> Binary:
    import sklearn
    import skops.io as sio

    data = sio.dumps(model.estimator, compression=zipfile.ZIP_DEFLATED)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:  # would be refused when loaded: fail at training time instead
        raise ForecastError(
            f"the fitted estimator contains types not in elt.forecast.store.TRUSTED_TYPES: {', '.join(untrusted)} "
            f"(scikit-learn {sklearn.__version__}); review them and add them to the list"
        )
    return Binary(data)


def _dump_trees(model: ChangeModel) -> dict[str, Any]:
    try:
        return TreeEnsemble.from_estimator(model.estimator).to_document()
    except (AttributeError, KeyError, ValueError) as exc:  # scikit-learn's private tree arrays changed
        import sklearn

        raise ForecastError(
            f"cannot store the fitted estimator's trees (scikit-learn {sklearn.__version__}): "
            f"{type(exc).__name__}: {exc}; elt.forecast.trees reads scikit-learn's tree arrays, which changed"
        ) from None


def to_document(bundle: TrainedForecast) -> dict[str, Any]:
    """The stored form of a trained forecast."""
    import sklearn

    fitted = {_key(*key): model for key, model in bundle.models.items() if isinstance(model, ChangeModel)}
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
        "model_format": MODEL_FORMAT,
        "models": {key: _dump_estimator(model) for key, model in fitted.items()},
        "trees": {key: _dump_trees(model) for key, model in fitted.items()},
        "sklearn_version": sklearn.__version__,
    }


def _load_estimator(model_id: Any, key: str, data: Any) -> Any:
    """One estimator through skops with the trusted-type list; ``ModelRefused`` for anything else.

    ``skops.io.loads`` audits the file's types against ``trusted`` before it builds anything, so one parse both
    checks and loads (a separate ``get_untrusted_types`` would read every file twice)."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    if not isinstance(data, bytes):
        raise ModelRefused(
            f"forecast model {model_id}: models.{key} is {type(data).__name__}, not binary data"
        )
    try:
        return sio.loads(data, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        found = str(exc).splitlines()[0].removeprefix("Untrusted types found in the file: ")
        raise ModelRefused(
            f"forecast model {model_id}: models.{key} contains untrusted types {found[:300]}"
        ) from None
    except (zipfile.BadZipFile, KeyError) as exc:  # not a skops file at all (no zip, no schema)
        raise ModelRefused(
            f"forecast model {model_id}: models.{key} is not a readable skops file ({type(exc).__name__})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure means the same thing: not loaded
        raise ModelRefused(
            f"forecast model {model_id}: models.{key} cannot be loaded: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None


def _tree_models(
    model_id: Any, doc: dict[str, Any], params: GbmParams, features: dict[str, list[str]]
) -> dict[tuple[str, int], TreeModel]:
    """The fitted models from their trees' arrays (numpy only); ``ModelRefused`` naming the first bad one."""
    trees = dict(doc["trees"])
    if set(trees) != set(dict(doc.get("models", {}))):
        raise ModelRefused(f"forecast model {model_id}: trees and models hold different series")
    models: dict[tuple[str, int], TreeModel] = {}
    for key, data in trees.items():
        if key not in features:
            raise ModelRefused(f"forecast model {model_id}: trees.{key} has no features list")
        try:
            ensemble = TreeEnsemble.from_document(data)
        except (ValueError, TypeError) as exc:
            raise ModelRefused(
                f"forecast model {model_id}: trees.{key} is malformed: {str(exc)[:200]}"
            ) from None
        if ensemble.n_features != len(features[key]):
            raise ModelRefused(
                f"forecast model {model_id}: trees.{key} takes {ensemble.n_features} features, "
                f"its features list has {len(features[key])}"
            )
        models[_unkey(key)] = TreeModel(params, features[key], ensemble)
    return models


def _skops_models(
    model_id: Any, doc: dict[str, Any], params: GbmParams, features: dict[str, list[str]]
) -> dict[tuple[str, int], ChangeModel]:
    """The fitted estimators through skops (documents saved before ``trees`` existed)."""
    import sklearn

    if doc.get("sklearn_version") != sklearn.__version__:
        log.warning(
            "forecast model %s was trained with scikit-learn %s, this is %s: retrain with elt forecast train",
            model_id,
            doc.get("sklearn_version"),
            sklearn.__version__,
        )
    models: dict[tuple[str, int], ChangeModel] = {}
    for key, data in dict(doc.get("models", {})).items():
        if key not in features:
            raise ModelRefused(f"forecast model {model_id}: models.{key} has no features list")
        models[_unkey(key)] = ChangeModel.from_fitted(
            params, features[key], _load_estimator(model_id, key, data)
        )
    return models


def from_document(doc: dict[str, Any]) -> TrainedForecast:
    """Inverse of ``to_document``; ``ModelRefused`` when the stored model is not loaded (never executed)."""
    model_id = doc.get("_id")
    retrain = f" in {MODELS_COLLECTION}; it was not loaded. Retrain with: elt forecast train"
    if doc.get("model_format") != MODEL_FORMAT:
        found = doc.get("model_format") or "pickle (earlier versions)"
        raise ModelRefused(
            f"forecast model {model_id} is stored as {str(found)[:40]!r}, not {MODEL_FORMAT!r}; formats that can "
            f"run code when read are never loaded{retrain}"
        )
    try:
        features = {str(k): [str(f) for f in v] for k, v in dict(doc.get("features", {})).items()}
        params = GbmParams(**doc["params"])
        if "trees" in doc:
            models = _tree_models(model_id, doc, params, features)
        else:
            models = _skops_models(model_id, doc, params, features)
        return TrainedForecast(
            version=str(doc["version"]),
            created_at=doc["created_at"],
            trained_until=doc["trained_until"],
            train_start=doc["window"]["start"],
            params=params,
            station_codes={str(k): int(v) for k, v in doc["station_codes"].items()},
            timezones={str(k): str(v) for k, v in dict(doc.get("timezones", {})).items()},
            models={key: models.get(key) for key in map(_unkey, doc.get("blends", {}))},
            blends={_unkey(k): Blend.from_dict(v) for k, v in doc.get("blends", {}).items()},
            choices=[SeriesChoice(**row) for row in doc.get("series", [])],
            validation=dict(doc.get("validation", {})),
        )
    except ModelRefused as exc:
        raise ModelRefused(f"{exc}{retrain}") from None
    except Exception as exc:  # noqa: BLE001 - malformed metadata: refused like a malformed estimator
        raise ModelRefused(
            f"forecast model {model_id} is malformed ({type(exc).__name__}: {str(exc)[:200]}){retrain}"
        ) from None


def baseline_forecast(station_ids: list[str], timezones: dict[str, str], reason: str) -> TrainedForecast:
    """A model-free forecast: persistence for every series (what predict uses when the stored model is refused)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    choices = [
        SeriesChoice(station_id, pollutant, horizon, "ok", BASELINE_PREDICTOR, reason=reason)
        for station_id in station_ids
        for pollutant in POLLUTANTS
        for horizon in HORIZONS
    ]
    return TrainedForecast(
        version=f"baseline-{BASELINE_PREDICTOR}",
        created_at=now,
        trained_until=now,
        train_start=now,
        params=GbmParams(),
        station_codes={station_id: code for code, station_id in enumerate(sorted(station_ids))},
        timezones={s: timezones.get(s, "UTC") for s in station_ids},
        models={},
        blends={},
        choices=choices,
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


def load_latest(db: Database, parsed: TrainedForecast | None = None) -> TrainedForecast | None:
    """The newest trained forecast, or None when nothing was trained yet (``ModelRefused`` when not loadable).

    ``parsed``: a model this process loaded a moment ago (``elt run`` loads it in the background while load and
    transform run, ``elt.run.steps.start_forecast_import``); it is used, without parsing the estimators
    again, when it is still the newest stored version (same version and creation time).
    """
    if parsed is not None:
        newest = latest_document(db, metadata_only=True)
        if newest and (newest.get("_id"), newest.get("created_at")) == (parsed.version, parsed.created_at):
            return parsed
    doc = latest_document(db)
    return from_document(doc) if doc else None


def load_for_predict(
    db: Database, station_ids: list[str], timezones: dict[str, str], parsed: TrainedForecast | None = None
) -> tuple[TrainedForecast | None, str | None]:
    """(model, refusal): the newest model, or the persistence baseline and why the stored model was refused.

    The refusal is logged as an error here; the caller reports it (``elt forecast predict`` exits 1, the
    forecast step of ``elt run`` fails with it) after writing the baseline forecasts. ``parsed``: see
    ``load_latest``.
    """
    try:
        return load_latest(db, parsed), None
    except ModelRefused as exc:
        refusal = f"{exc}. Forecasts fell back to {BASELINE_PREDICTOR}"
        log.error("%s", refusal)
        return baseline_forecast(station_ids, timezones, "stored model refused"), refusal


def trained_at(db: Database) -> datetime | None:
    """When the newest model was created (None when there is none)."""
    doc = latest_document(db, metadata_only=True)
    return doc["created_at"] if doc else None
