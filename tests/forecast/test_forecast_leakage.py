"""No look-ahead: what the forecast knows at origin t depends only on data at or before t."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from elt.forecast import HORIZONS
from elt.forecast.backtest import run_backtest
from elt.forecast.features import design_matrix, feature_columns, origin_hours
from elt.forecast.gbm import GbmParams, training_rows
from elt.forecast.series import MEASURES, hourly_grid
from tests.forecast.forecast_helpers import synthetic_staging

CODES = {"283164601": 0, "283181971": 1}
SMALL = GbmParams(max_iter=30, train_days=30, min_samples_leaf=20)


@pytest.fixture(scope="module")
def grids() -> dict[str, pd.DataFrame]:
    return hourly_grid(synthetic_staging(days=42))


def perturbed_after(
    grids: dict[str, pd.DataFrame], after: pd.Timestamp, seed: int = 1
) -> dict[str, pd.DataFrame]:
    """Every measure of every station scrambled at hours strictly after ``after`` (values stay valid)."""
    rng = np.random.default_rng(seed)
    out = {}
    for station_id, grid in grids.items():
        grid = grid.copy()
        future = grid.index > after
        for measure in MEASURES:
            grid.loc[future, measure] = grid.loc[future, measure] * rng.uniform(0.2, 3.0, future.sum()) + 1.0
        out[station_id] = grid
    return out


def features_at(
    grids: dict[str, pd.DataFrame], origin: pd.Timestamp, pollutant: str, horizon: int
) -> pd.DataFrame:
    matrix = design_matrix(grids, pollutant, horizon, CODES)
    rows = matrix[matrix["origin"] == origin]
    return rows[feature_columns(matrix) + ["station_id", "y0"]].reset_index(drop=True)


@pytest.mark.parametrize("pollutant", ["co", "pm25"])
@pytest.mark.parametrize("horizon", [1, 2])
def test_features_at_origin_ignore_everything_after_it(grids, pollutant, horizon):
    origin = pd.Timestamp("2024-06-01 13:00")
    before = features_at(grids, origin, pollutant, horizon)
    after = features_at(perturbed_after(grids, origin), origin, pollutant, horizon)
    assert len(before) == 2
    pd.testing.assert_frame_equal(before, after)


def test_features_do_change_when_the_origin_hour_itself_changes(grids):
    """The check above is sensitive: scrambling from t−1 on changes the features at t."""
    origin = pd.Timestamp("2024-06-01 13:00")
    before = features_at(grids, origin, "pm25", 1)
    after = features_at(perturbed_after(grids, origin - pd.Timedelta(hours=1)), origin, "pm25", 1)
    assert not before.equals(after)
    assert (before["y0"] != after["y0"]).all()


def only_hours(grids: dict[str, pd.DataFrame], kept: set[pd.Timestamp]) -> dict[str, pd.DataFrame]:
    """Every measure of every station blanked (NaN) at the hours not in ``kept``."""
    out = {}
    for station_id, grid in grids.items():
        grid = grid.copy()
        grid.loc[~grid.index.isin(sorted(kept))] = np.nan
        out[station_id] = grid
    return out


@pytest.mark.parametrize("pollutant", ["co", "pm25"])
def test_features_at_origin_read_only_the_origin_hours(grids, pollutant):
    """``elt forecast predict`` reads only ``origin_hours`` (about 210 of 697): with every other hour blanked,
    the origin's features are the same; blanking the oldest of them too changes them."""
    origin = max(grid.index.max() for grid in grids.values()) - pd.Timedelta(hours=3)
    offsets = [offset for newest, oldest in origin_hours(HORIZONS) for offset in range(newest, oldest + 1)]
    kept = {origin - pd.Timedelta(hours=offset) for offset in offsets}
    assert 200 < len(kept) < 250
    for horizon in HORIZONS:
        full = features_at(grids, origin, pollutant, horizon)
        assert len(full) == 2
        pd.testing.assert_frame_equal(full, features_at(only_hours(grids, kept), origin, pollutant, horizon))
    oldest = origin - pd.Timedelta(hours=max(offsets))  # the 28th day's hour for the shortest horizon
    fewer = features_at(only_hours(grids, kept - {oldest}), origin, pollutant, min(HORIZONS))
    assert not fewer.equals(features_at(grids, origin, pollutant, min(HORIZONS)))


def test_training_rows_for_a_refit_use_no_target_at_or_after_it(grids):
    refit_at = pd.Timestamp("2024-06-05 00:00")
    for horizon in (1, 2):
        matrix = design_matrix(grids, "pm25", horizon, CODES)
        train = training_rows(matrix, refit_at, SMALL)
        assert len(train) > 500
        assert train["target_ts"].max() < refit_at
        assert train["origin"].max() == refit_at - pd.Timedelta(hours=horizon + 1)
        # The rows, targets included, are identical when everything from the refit point on is scrambled.
        scrambled = design_matrix(
            perturbed_after(grids, refit_at - pd.Timedelta(hours=1)), "pm25", horizon, CODES
        )
        pd.testing.assert_frame_equal(train, training_rows(scrambled, refit_at, SMALL))


def test_backtest_forecasts_at_t_are_unchanged_when_the_data_after_t_changes(grids):
    """End to end: refit at T, forecast at origin t ≥ T; scrambling data after t leaves every forecast at t."""
    refit_at = pd.Timestamp("2024-06-03 00:00")
    origin = pd.Timestamp("2024-06-04 09:00")
    end = origin + pd.Timedelta(hours=1)
    columns = [
        "station_id",
        "pollutant",
        "horizon_h",
        "origin",
        "persistence",
        "seasonal_naive",
        "blend",
        "gbm",
    ]

    def forecasts(data):
        rows = run_backtest(data, refit_at, end, params=SMALL).predictions
        return rows[rows["origin"] == origin].sort_values(columns[:3]).reset_index(drop=True)

    original = forecasts(grids)
    scrambled = forecasts(perturbed_after(grids, origin))
    assert len(original) == 8  # 2 stations x 2 pollutants x 2 horizons
    pd.testing.assert_frame_equal(original[columns], scrambled[columns])
    # the observed targets did change, so the comparison had something to miss
    assert not np.allclose(original["observed"], scrambled["observed"])
