"""The pieces under the forecast: grid, recorded responses through the staging model, baselines, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymongo.database import Database

from elt.config import load_project
from elt.forecast.backtest import _score, refit_points, series_status
from elt.forecast.baselines import Blend
from elt.forecast.features import design_matrix, issuable
from elt.forecast.recorded import read_recorded_dir
from elt.forecast.series import hourly_grid


def staging_rows(values: list[float | None], valid: list[bool] | None = None, provisional_last: bool = False):
    ts = pd.date_range("2024-01-01", periods=len(values), freq="h", tz="UTC")
    frame = pd.DataFrame({"station_id": "S", "ts": ts, "pm25": values})
    frame["pm25_valid"] = valid if valid is not None else [v is not None for v in values]
    frame["provisional"] = [provisional_last and i == len(values) - 1 for i in range(len(values))]
    return frame


def test_grid_keeps_only_valid_final_values_and_fills_missing_hours() -> None:
    frame = staging_rows(
        [1.0, 2.0, 3.0, 4.0, 5.0], valid=[True, False, True, True, True], provisional_last=True
    )
    frame = frame.drop(index=2)  # an absent hour
    grid = hourly_grid(frame)["S"]
    assert list(grid.index) == list(pd.date_range("2024-01-01", periods=5, freq="h"))
    assert grid["pm25"].iloc[0] == 1.0
    assert np.isnan(grid["pm25"].iloc[1])  # flagged invalid
    assert np.isnan(grid["pm25"].iloc[2])  # absent hour
    assert grid["pm25"].iloc[3] == 4.0
    assert np.isnan(grid["pm25"].iloc[4])  # provisional
    assert grid["co"].isna().all()  # a measure staging never had


def test_issuable_needs_the_last_three_hours() -> None:
    grid = hourly_grid(staging_rows([1.0, 2.0, None, 4.0, 5.0, 6.0]))["S"]
    assert issuable(grid, "pm25").tolist() == [False, False, False, False, False, True]


def test_recorded_responses_get_their_qc_from_the_staging_model(
    project_dir: Path, mongo_db: Database
) -> None:
    """The backtest-on-archives path lands the files in a scratch database and runs stg_airqino_hourly there:
    a dead CO sensor across an outage hour is invalid, a bad value costs only itself, the newest hour is
    provisional; the scratch database is gone afterwards and the project's database untouched."""
    archive = project_dir.parent / "recorded"
    archive.mkdir()
    data = []
    for h in range(40):
        row: dict = {"timestamp": f"2024-01-0{1 + h // 24} {h % 24:02d}:00:00", "CO": 0.0 if h < 30 else 0.1 * h,
                     "PM2.5": 3.0 + h, "RH": 70.0}  # fmt: skip
        if h == 6:
            continue  # the outage hour
        if h == 33:
            row["PM2.5"] = "n/a"
        data.append(row)
    (archive / "123.json").write_text(json.dumps({"header": {}, "data": data}))
    client = mongo_db.client
    before = set(client.list_database_names())
    frame = read_recorded_dir(load_project(project_dir), client, archive)
    assert set(client.list_database_names()) <= before  # the scratch database is dropped
    assert "raw_airqino_hourly" not in mongo_db.list_collection_names()
    frame = frame.sort_values("ts").reset_index(drop=True)
    assert frame["station_id"].unique().tolist() == ["123"] and len(frame) == 39
    assert (
        not frame["co_valid"].iloc[:29].any()
    )  # 29 zeros around the missing 06:00: one dead run of 29 hours
    assert frame["co_valid"].iloc[29:38].all()
    bad = frame[frame["ts"] == pd.Timestamp("2024-01-02 09:00", tz="UTC")].iloc[0]
    assert not bad["pm25_valid"] and bad["co_valid"]  # PM2.5 "n/a" costs only itself
    assert bool(frame["provisional"].iloc[-1]) and not frame["provisional"].iloc[:-1].any()
    assert frame["t_valid"].eq(False).all()  # no T in the responses: missing
    grid = hourly_grid(frame)["123"]
    assert grid["co"].iloc[:30].isna().all() and grid["pm25"].notna().sum() == 39 - 1 - 1


def test_blend_learns_the_weight_that_minimizes_absolute_error() -> None:
    rng = np.random.default_rng(0)
    n = 24 * 30
    hours = np.arange(n) % 24
    clim = 10 + 5 * np.sin(2 * np.pi * hours / 24)
    y0 = clim + rng.normal(0, 3, n)
    observed = 0.3 * y0 + 0.7 * clim  # exactly a 0.3 blend
    train = pd.DataFrame(
        {"station_id": "S", "target_hour": hours.astype(float), "y0": y0, "observed": observed}
    )
    blend = Blend.fit(train)
    assert blend.weights["S"] == pytest.approx(0.3, abs=0.051)
    restored = Blend.from_dict(json.loads(json.dumps(blend.to_dict())))
    np.testing.assert_allclose(restored.predict(train), blend.predict(train))
    unknown = train.assign(station_id="X").head(3)
    np.testing.assert_allclose(blend.predict(unknown), unknown["y0"])  # unknown station: persistence


def test_score_compares_every_predictor_on_the_same_rows() -> None:
    rows = pd.DataFrame({"observed": [10.0, 12.0], "persistence": [9.0, 9.0], "seasonal_naive": [10.0, 15.0],
                         "blend": [10.0, 10.0], "gbm": [10.5, 11.5]})  # fmt: skip
    result = _score("S", "pm25", 1, rows)
    assert (result.n, result.mae_persistence, result.mae_model, result.mae_blend) == (2, 2.0, 0.5, 1.0)
    assert result.mae_seasonal_naive == 1.5
    assert result.skill == pytest.approx(0.75)
    assert result.best == "gbm"


def test_series_with_too_few_valid_hours_is_no_valid_data() -> None:
    grids = hourly_grid(staging_rows([1.0] * 100 + [None] * 100))
    status = series_status(grids, "pm25", pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01"))
    assert status["S"].startswith("no valid data: 100 valid hours")


def test_refits_are_weekly_from_the_start() -> None:
    points = refit_points(pd.Timestamp("2024-07-15"), pd.Timestamp("2024-08-01"))
    assert [f"{p:%m-%d}" for p in points] == ["07-15", "07-22", "07-29"]


def test_design_matrix_targets_are_the_change_over_the_horizon() -> None:
    grids = hourly_grid(staging_rows([1.0, 2.0, 4.0, 7.0, 11.0]))
    matrix = design_matrix(grids, "pm25", 2, {"S": 0})
    assert matrix["delta"].tolist()[:3] == [3.0, 5.0, 7.0]
    assert matrix["observed"].tolist()[:3] == [4.0, 7.0, 11.0]
    assert matrix["y_lag1"].tolist()[1:3] == [1.0, 2.0]


@pytest.mark.parametrize("stations", [10, 100, 300])
def test_the_model_trains_at_any_station_count(stations: int) -> None:
    # the station code is a categorical feature: beyond max_bins (63) stations scikit-learn refused it
    from elt.forecast.gbm import ChangeModel, GbmParams

    rng = np.random.default_rng(0)
    rows = 20 * stations
    train = pd.DataFrame({"station": rng.integers(0, stations, rows).astype(float), "y0": rng.random(rows),
                          "delta": rng.normal(size=rows)})  # fmt: skip
    model = ChangeModel(GbmParams(max_iter=5, min_samples_leaf=5), ["station", "y0"]).fit(train)
    assert model.predict(train.head(3)).notna().all()
