"""A crafted document in ``forecast_models`` never runs: predict and ``elt run`` refuse it and fall back.

Each crafted model would create a marker file if it were deserialized with pickle (or if skops built the
untrusted function it names). ``elt forecast predict`` and the forecast step of ``elt run`` must leave no
marker, report the refusal (exit 1, the step ``failed`` with the reason) and still write persistence forecasts.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from bson.binary import Binary
from click.testing import CliRunner
from pymongo.database import Database

from elt.cli import main
from elt.forecast.store import MODEL_FORMAT, MODELS_COLLECTION, from_document
from elt.run.runlog import RUNS_COLLECTION
from tests.forecast.forecast_helpers import staging_documents, synthetic_staging

pytest.importorskip("skops", reason="the forecast extra (skops) is not installed")


class _CreatesFile:
    """Unpickling this calls ``os.system('touch <marker>')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _pickle_payload(marker: Path) -> Binary:
    return Binary(zlib.compress(pickle.dumps(_CreatesFile(marker), protocol=4), 6))


def _skops_payload(marker: Path) -> Binary:
    import skops.io as sio

    # a trusted container (functools.partial) around an untrusted function: skops must refuse the function
    return Binary(sio.dumps(functools.partial(os.system, f"touch {marker}")))


def _document(models: dict[str, Binary], model_format: str | None) -> dict[str, Any]:
    now = datetime(2024, 6, 1, tzinfo=timezone.utc)
    doc: dict[str, Any] = {
        "_id": "crafted", "version": "crafted", "created_at": now, "trained_until": now,
        "window": {"start": now, "end": now}, "params": {}, "station_codes": {"283181971": 0},
        "timezones": {}, "features": {"co|1": ["station"], "pm25|1": ["station"]}, "series": [],
        "validation": {}, "blends": {}, "models": models, "sklearn_version": "0",
    }  # fmt: skip
    if model_format is not None:
        doc["model_format"] = model_format
    return doc


CRAFTED = {
    # the format of earlier versions: a pickle, never deserialized at all
    "pickle-document": lambda marker: _document({"co|1": _pickle_payload(marker)}, None),
    # claims to be skops but holds a pickle
    "pickle-labelled-skops": lambda marker: _document({"co|1": _pickle_payload(marker)}, MODEL_FORMAT),
    # a real skops file naming os.system
    "skops-untrusted-function": lambda marker: _document({"pm25|1": _skops_payload(marker)}, MODEL_FORMAT),
}


def elt(project_dir: Path, *args: str):
    return CliRunner().invoke(main, ["--project-dir", str(project_dir), *args], catch_exceptions=False)


@pytest.mark.parametrize("crafted", sorted(CRAFTED))
def test_crafted_model_is_refused_never_run_and_forecasts_fall_back(
    crafted: str, project_dir: Path, mongo_db: Database, tmp_path: Path
) -> None:
    mongo_db.stg_airqino_hourly.insert_many(staging_documents(synthetic_staging(days=10)))
    marker = tmp_path / f"pwned-{crafted}"
    mongo_db[MODELS_COLLECTION].insert_one(CRAFTED[crafted](marker))

    predicted = elt(project_dir, "forecast", "predict", "--json")
    assert not marker.exists(), "the crafted model ran during elt forecast predict"
    assert predicted.exit_code == 1, predicted.output
    assert "forecast model crafted" in predicted.stderr and "not loaded" in predicted.stderr
    assert "fell back to persistence" in predicted.stderr
    payload = json.loads(predicted.stdout)
    assert payload["model_version"] == "baseline-persistence" and "model_refused" in payload
    forecasts = list(mongo_db.forecasts.find({}, {"_id": 0}))
    assert forecasts and {d["model"] for d in forecasts} == {"persistence"}
    assert {d["station_id"] for d in forecasts} == {"283164601", "283181971"}

    run = elt(project_dir, "run", "--step", "forecast", "--json", "--no-alerts")
    assert not marker.exists(), "the crafted model ran during elt run"
    assert run.exit_code == 1, run.output
    record = mongo_db[RUNS_COLLECTION].find_one(sort=[("started_at", -1)])
    step = next(s for s in record["steps"] if s["name"] == "forecast")
    assert step["status"] == "failed" and "forecast model crafted" in step["error"]
    assert "fell back to persistence" in step["error"]
    assert step["counts"]["model_version"] == "baseline-persistence"
    # the crafted document is left for inspection; nothing retrained over it silently
    assert mongo_db[MODELS_COLLECTION].count_documents({}) == 1


def test_a_trained_model_round_trips_through_skops(mongo_db: Database) -> None:
    from elt.forecast.features import design_matrix
    from elt.forecast.series import hourly_grid
    from elt.forecast.store import save_forecast, to_document
    from elt.forecast.train import train_forecast

    grids = hourly_grid(synthetic_staging(days=21))
    bundle = train_forecast(grids, validate_weeks=1)
    doc = to_document(bundle)
    assert doc["model_format"] == "skops" and doc["models"]
    assert all(bytes(blob)[:2] == b"PK" for blob in doc["models"].values())  # a zip, not a pickle
    save_forecast(mongo_db, bundle)
    loaded = from_document(mongo_db[MODELS_COLLECTION].find_one({"_id": bundle.version}))
    assert loaded.models.keys() == bundle.models.keys()
    fitted = {key: model for key, model in bundle.models.items() if model is not None}
    assert fitted
    for (pollutant, horizon), model in fitted.items():
        matrix = design_matrix(grids, pollutant, horizon, bundle.station_codes, {}).dropna(subset=["y0"])
        assert loaded.models[(pollutant, horizon)].features == model.features
        assert loaded.models[(pollutant, horizon)].predict(matrix).equals(model.predict(matrix))
