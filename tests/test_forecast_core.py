"""The pieces under the forecast: grid, QC of recorded responses, baselines, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elt.forecast.backtest import _score, refit_points, series_status
from elt.forecast.baselines import Blend
from elt.forecast.features import design_matrix, issuable
from elt.forecast.recorded import qc_station_rows, read_recorded_response
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


def test_qc_of_recorded_rows_flags_like_staging() -> None:
    ts = pd.date_range("2024-01-01", periods=40, freq="h")
    co = [0.0] * 30 + [0.2, 0.3, -0.1, 60.0, 0.4, 0.0, 0.0, 0.5, 0.6, 0.7]
    pm25 = [5.0] * 6 + [5.0 + i for i in range(34)]
    rows = pd.DataFrame({"ts": ts, "co": co, "pm25": pm25})
    rows.loc[37, "pm25"] = None
    out = qc_station_rows(rows)
    assert out["co_flag"].iloc[:30].eq("dead").all()  # 30 zeros in a row
    assert out["co_flag"].iloc[32] == "negative"
    assert out["co_flag"].iloc[33] == "out_of_range"
    assert out["co_flag"].iloc[35:37].isna().all()  # two zeros: a valid low reading
    assert out["pm25_flag"].iloc[:7].eq("stuck").all()  # 7 equal non-zero values (5.0 then 5.0 + 0)
    assert out["pm25_flag"].iloc[37] == "missing"
    assert out["pm25_flag"].iloc[39] == "provisional" and bool(out["provisional"].iloc[39])
    assert out["pm25_valid"].sum() == 40 - 7 - 1 - 1


def test_read_recorded_response_names_the_station_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "123.json"
    data = [
        {"timestamp": f"2024-01-01 0{h}:00:00", "CO": 0.1 * (h + 1), "PM2.5": 3.0 + h, "RH": 70.0}
        for h in range(3)
    ]
    path.write_text(json.dumps({"header": {}, "data": data}))
    frame = read_recorded_response(path)
    assert frame["station_id"].unique().tolist() == ["123"]
    assert frame["pm25"].tolist() == [3.0, 4.0, 5.0]
    assert frame["pm25_valid"].tolist() == [True, True, False]
    assert frame["t_flag"].eq("missing").all()


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
