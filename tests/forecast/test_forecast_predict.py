"""predict writes contract documents into ``forecasts`` (real wire server), idempotently, and says why it skips."""

from __future__ import annotations

import logging
from datetime import timedelta

import pandas as pd
import pytest
from pymongo.database import Database

from elt.forecast.gbm import GbmParams
from elt.forecast.predict import predict_forecasts
from elt.forecast.series import hourly_grid
from elt.forecast.store import MODELS_COLLECTION, load_latest, save_forecast
from elt.forecast.train import TrainedForecast, train_forecast
from tests.forecast.forecast_helpers import START, staging_documents, synthetic_staging

LIVE, DEAD_CO = "283181971", "283164601"
STATIONS = [DEAD_CO, LIVE]
DAYS = 35
SMALL = GbmParams(max_iter=40, train_days=60, min_samples_leaf=20)
CONTRACT_FIELDS = {"_id", "station_id", "pollutant", "issued_at", "target_ts", "horizon_h", "value", "model",
                   "model_version"}  # fmt: skip
LAST_FINAL = START + timedelta(hours=DAYS * 24 - 2)


@pytest.fixture(scope="module")
def staging() -> pd.DataFrame:
    return synthetic_staging(days=DAYS, dead_co=(DEAD_CO,))


@pytest.fixture(scope="module")
def bundle(staging: pd.DataFrame) -> TrainedForecast:
    return train_forecast(hourly_grid(staging), validate_weeks=1, params=SMALL)


@pytest.fixture
def db(mongo_db: Database, staging: pd.DataFrame, bundle: TrainedForecast) -> Database:
    mongo_db.stg_airqino_hourly.insert_many(staging_documents(staging))
    save_forecast(mongo_db, bundle)
    return mongo_db


def dump(db: Database) -> list[dict]:
    return list(
        db.forecasts.find({}, {"_id": 0}).sort([("station_id", 1), ("pollutant", 1), ("horizon_h", 1)])
    )


def test_predict_writes_contract_documents_from_the_last_final_hour(
    db: Database, bundle: TrainedForecast
) -> None:
    result = predict_forecasts(db, bundle, STATIONS)
    docs = list(db.forecasts.find())
    assert {(d["station_id"], d["pollutant"], d["horizon_h"]) for d in docs} == {
        (LIVE, "co", 1), (LIVE, "co", 2), (LIVE, "pm25", 1), (LIVE, "pm25", 2), (DEAD_CO, "pm25", 1),
        (DEAD_CO, "pm25", 2),
    }  # fmt: skip
    for doc in docs:
        assert set(doc) == CONTRACT_FIELDS | {"_loaded_at"}  # when written: what forecast_pairs tracks
        assert doc["issued_at"] == LAST_FINAL
        assert doc["target_ts"] == LAST_FINAL + timedelta(hours=doc["horizon_h"])
        assert doc["model"] in {"gbm", "blend", "seasonal_naive", "persistence"}
        assert doc["model_version"] == bundle.version
        assert isinstance(doc["value"], float) and doc["value"] >= 0
    pm25 = [d["value"] for d in docs if d["pollutant"] == "pm25"]
    assert all(1 <= v <= 60 for v in pm25)  # the synthetic PM2.5 lives in ~1..40
    assert (result.inserted, result.updated, result.unchanged) == (6, 0, 0)
    assert db.forecasts.index_information()["station_id_pollutant_issued_at_horizon_h"]["unique"]


def test_rerun_changes_nothing(db: Database, bundle: TrainedForecast) -> None:
    predict_forecasts(db, bundle, STATIONS)
    before = dump(db)
    again = predict_forecasts(db, bundle, STATIONS)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 6)
    assert dump(db) == before


def test_dead_co_series_gets_no_forecast_and_says_no_valid_data(
    db: Database, bundle: TrainedForecast, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="elt.forecast.predict")
    result = predict_forecasts(db, bundle, STATIONS)
    reasons = {(s["station_id"], s["pollutant"], s["horizon_h"]): s["reason"] for s in result.skipped}
    assert set(reasons) == {(DEAD_CO, "co", 1), (DEAD_CO, "co", 2)}
    assert all(r.startswith("no valid data") for r in reasons.values())
    assert db.forecasts.count_documents({"station_id": DEAD_CO, "pollutant": "co"}) == 0
    assert f"{DEAD_CO} co +1h: no forecast: no valid data" in caplog.text


def test_a_missing_hour_among_the_last_three_means_no_forecast_for_that_station(
    db: Database, bundle: TrainedForecast, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="elt.forecast.predict")
    gap = LAST_FINAL - timedelta(hours=2)
    db.stg_airqino_hourly.delete_one({"station_id": LIVE, "ts": gap})
    result = predict_forecasts(db, bundle, STATIONS)
    assert db.forecasts.count_documents({"station_id": LIVE}) == 0
    assert db.forecasts.count_documents({"station_id": DEAD_CO, "pollutant": "pm25"}) == 2
    live = [s for s in result.skipped if s["station_id"] == LIVE]
    assert len(live) == 4
    assert all(f"no valid value at {gap:%Y-%m-%d %H:00} UTC" in s["reason"] for s in live)
    assert f"{LIVE} pm25 +2h: no forecast: no valid value at {gap:%Y-%m-%d %H:00}" in caplog.text


def test_stored_model_round_trips_and_predicts_the_same(db: Database, bundle: TrainedForecast) -> None:
    loaded = load_latest(db)
    assert loaded is not None and loaded.version == bundle.version
    stored = db[MODELS_COLLECTION].find_one({"_id": bundle.version})
    assert stored["window"] == {"start": bundle.train_start, "end": bundle.trained_until}
    assert stored["features"]["pm25|1"][:3] == ["station", "y_lag0", "y_lag1"]
    assert {s["predictor"] for s in stored["series"] if s["status"] == "ok"} <= {"gbm", "blend", "seasonal_naive",
                                                                                  "persistence"}  # fmt: skip
    assert {
        (s["station_id"], s["pollutant"]) for s in stored["series"] if s["status"] == "no_valid_data"
    } == {(DEAD_CO, "co")}
    assert "mae_persistence" in stored["series"][0]["metrics"]
    first = predict_forecasts(db, bundle, STATIONS)
    second = predict_forecasts(db, loaded, STATIONS)
    assert [d["value"] for d in first.forecasts] == [d["value"] for d in second.forecasts]
    assert second.unchanged == 6


def test_deployed_predictor_is_never_worse_than_persistence_on_validation(bundle: TrainedForecast) -> None:
    for choice in bundle.choices:
        if choice.status != "ok":
            continue
        m = choice.metrics
        chosen = m["mae_model"] if choice.predictor == "gbm" else m[f"mae_{choice.predictor}"]
        assert chosen <= m["mae_persistence"]


@pytest.mark.parametrize("silent_hours", [4, 200])
def test_a_sensor_silent_for_hours_is_reported_since_when(
    db: Database, bundle: TrainedForecast, silent_hours: int
) -> None:
    """Predict reads the last week and a few hours a day before it; a pollutant with no valid value in that week
    (200 hours) gets the whole window read, so that the reason names its last valid hour, not one of those read."""
    silent_from = LAST_FINAL - timedelta(hours=silent_hours)
    db.stg_airqino_hourly.update_many(
        {"station_id": LIVE, "ts": {"$gte": silent_from}}, {"$set": {"co_valid": False, "co_flag": "stuck"}}
    )
    result = predict_forecasts(db, bundle, STATIONS)
    reasons = {s["reason"] for s in result.skipped if s["station_id"] == LIVE}
    last_valid = silent_from - timedelta(hours=1)
    assert reasons == {
        f"no valid value since {last_valid:%Y-%m-%d %H:00} UTC (the last 3 hours must be valid)"
    }
    assert db.forecasts.count_documents({"station_id": LIVE, "pollutant": "pm25"}) == 2
