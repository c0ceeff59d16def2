"""Features at a forecast origin t, built only from data at or before t.

Every column is a backward shift or a trailing window on the hourly grid, so a value at origin t never reads
an hour after t (``tests/forecast/test_forecast_leakage.py`` perturbs the future to prove it). Horizon-specific columns
look back from the target hour t+h, always at least 22 hours before it, so they are still ≤ t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Lags (hours before the origin) of the forecast pollutant.
TARGET_LAGS: tuple[int, ...] = (*range(0, 25), 48, 72, 168)
#: Trailing windows (hours) for rolling means of the pollutant.
MEAN_WINDOWS: tuple[int, ...] = (3, 6, 12, 24, 72, 168)
#: Covariates read at the origin: the other pollutant, PM10, NO2, O3, temperature, humidity.
COVARIATES: tuple[str, ...] = ("co", "pm25", "pm10", "no2", "o3", "t", "rh")
#: Days before the target whose same hour ``y_season<24*d>`` reads.
SEASON_DAYS: tuple[int, ...] = (1, 2, 7)
#: Days of same-hour history averaged by the climatology columns ``y_clim<d>``.
CLIMATOLOGY_DAYS: tuple[int, ...] = (7, 28)
#: Hours of history the features need before an origin (the longest lag plus a margin for the windows).
HISTORY_HOURS = 24 * 29
#: Minimum valid hours in a trailing window for its mean to count.
_MIN_FRACTION = 0.5


def _rolling(series: pd.Series, hours: int, how: str) -> pd.Series:
    """Trailing window statistic over the ``hours`` hours ending at the origin (inclusive)."""
    window = series.rolling(hours, min_periods=max(1, int(hours * _MIN_FRACTION)))
    return getattr(window, how)()


def _hour_climatology(series: pd.Series, horizon: int, days: int) -> pd.Series:
    """Mean of the pollutant at the target's hour of day over the previous ``days`` days (all ≤ origin)."""
    values = series.to_numpy(dtype=float)
    same_hour = np.full((len(values), days), np.nan)
    for k in range(1, days + 1):  # column k-1: the value 24k - horizon hours back (a shift, NaN-filled)
        lag = 24 * k - horizon
        if lag < len(values):
            same_hour[lag:, k - 1] = values[: len(values) - lag]
    valid = np.isfinite(same_hour).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(same_hour, axis=1) / valid
    return pd.Series(np.where(valid >= max(1, days // 2), mean, np.nan), index=series.index)


def origin_hours(horizons: tuple[int, ...]) -> list[tuple[int, int]]:
    """The hours before an origin that its feature rows (for ``horizons``) read, as ``(newest, oldest)`` offsets
    in hours (0 = the origin), merged into ranges: the last week in one block, then two or so hours a day for the
    28-day climatology. Reading only these gives the origin the same features as the whole history
    (``tests/forecast/test_forecast_leakage.py``)."""
    week = max(*TARGET_LAGS, *(hours - 1 for hours in MEAN_WINDOWS), *(24 * d for d in SEASON_DAYS))
    offsets = set(range(week + 1))
    offsets |= {24 * k - h for h in horizons for k in range(1, max(CLIMATOLOGY_DAYS) + 1)}
    ranges: list[list[int]] = []
    for offset in sorted(offsets):
        if ranges and ranges[-1][1] == offset - 1:
            ranges[-1][1] = offset
        else:
            ranges.append([offset, offset])
    return [(newest, oldest) for newest, oldest in ranges]


def pollutant_features(
    grid: pd.DataFrame, pollutant: str
) -> tuple[dict[str, pd.Series], dict[str, pd.Series]]:
    """The columns of ``origin_features`` that do not depend on the horizon, in two ordered parts: those of the
    pollutant's own history (before the horizon's seasonal columns) and the covariates (after them).

    Computed once per station and pollutant, they serve every horizon (``design_matrices``).
    """
    y = grid[pollutant]
    own: dict[str, pd.Series] = {}
    for lag in TARGET_LAGS:
        own[f"y_lag{lag}"] = y.shift(lag)
    for lag in (1, 2, 3, 6):
        own[f"y_diff{lag}"] = y - y.shift(lag)
    for hours in MEAN_WINDOWS:
        own[f"y_mean{hours}"] = _rolling(y, hours, "mean")
    for hours in (6, 24):
        own[f"y_std{hours}"] = _rolling(y, hours, "std")
    own["y_min24"] = _rolling(y, 24, "min")
    own["y_max24"] = _rolling(y, 24, "max")
    own["y_anomaly24"] = y - own["y_mean24"]
    own["y_valid24"] = y.notna().astype(float).rolling(24, min_periods=1).sum()
    covariates: dict[str, pd.Series] = {}
    for name in COVARIATES:
        if name == pollutant:
            continue
        x = grid[name]
        covariates[f"{name}_lag0"] = x
        covariates[f"{name}_diff1"] = x - x.shift(1)
        covariates[f"{name}_diff3"] = x - x.shift(3)
        covariates[f"{name}_mean24"] = _rolling(x, 24, "mean")
    covariates["pm_ratio"] = grid["pm25"] / grid["pm10"].where(grid["pm10"] > 0)
    return own, covariates


def origin_features(
    grid: pd.DataFrame,
    pollutant: str,
    horizon: int,
    timezone: str = "UTC",
    shared: tuple[dict[str, pd.Series], dict[str, pd.Series]] | None = None,
) -> pd.DataFrame:
    """Feature matrix for one station, one pollutant and one horizon, indexed by origin hour (UTC).

    ``grid`` is one station's full hourly grid from ``series.hourly_grid`` (NaN = no valid value); ``shared``
    is ``pollutant_features(grid, pollutant)`` when the caller already has it.
    """
    own, covariates = shared if shared is not None else pollutant_features(grid, pollutant)
    y = grid[pollutant]
    cols: dict[str, pd.Series] = dict(own)
    # The same hours one day and one week before the target, and how the pollutant moved then.
    for back in (24 * d for d in SEASON_DAYS):
        cols[f"y_season{back}"] = y.shift(back - horizon)
    cols["y_season_delta24"] = y.shift(24 - horizon) - y.shift(24)
    cols["y_season_delta168"] = y.shift(168 - horizon) - y.shift(168)
    for days in CLIMATOLOGY_DAYS:
        clim = _hour_climatology(y, horizon, days)
        cols[f"y_clim{days}"] = clim
        cols[f"y_clim{days}_gap"] = clim - y
    cols.update(covariates)
    target_local = (grid.index + pd.Timedelta(hours=horizon)).tz_localize("UTC").tz_convert(timezone)
    cols["target_hour"] = pd.Series(target_local.hour, index=grid.index).astype(float)
    cols["target_dow"] = pd.Series(target_local.day_of_week, index=grid.index).astype(float)
    angle = 2 * np.pi * cols["target_hour"] / 24
    cols["target_hour_sin"] = np.sin(angle)
    cols["target_hour_cos"] = np.cos(angle)
    return pd.DataFrame(cols, index=grid.index)


def target_change(grid: pd.DataFrame, pollutant: str, horizon: int) -> pd.Series:
    """The training target at origin t: y(t+h) − y(t) (NaN when either end is missing)."""
    y = grid[pollutant]
    return y.shift(-horizon) - y


def issuable(grid: pd.DataFrame, pollutant: str, recent_hours: int = 3) -> pd.Series:
    """True at origins whose last ``recent_hours`` hours (t, t−1, …) all have a valid value."""
    valid = grid[pollutant].notna().astype(int)
    return valid.rolling(recent_hours, min_periods=recent_hours).sum().eq(recent_hours)


def design_matrix(
    grids: dict[str, pd.DataFrame],
    pollutant: str,
    horizon: int,
    station_codes: dict[str, int],
    timezones: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Pooled rows of every station: features, ``station`` code, and the bookkeeping columns.

    Bookkeeping columns (not features): ``station_id``, ``origin``, ``target_ts``, ``y0`` (value at the origin),
    ``observed`` (value at the target), ``delta`` (the training target) and ``issuable``.
    """
    return design_matrices(grids, pollutant, (horizon,), station_codes, timezones)[horizon]


def design_matrices(
    grids: dict[str, pd.DataFrame],
    pollutant: str,
    horizons: tuple[int, ...],
    station_codes: dict[str, int],
    timezones: dict[str, str] | None = None,
) -> dict[int, pd.DataFrame]:
    """``design_matrix`` for each of ``horizons``, the horizon-free features computed once per station."""
    if not horizons:
        return {}
    timezones = timezones or {}
    frames: dict[int, list[pd.DataFrame]] = {horizon: [] for horizon in horizons}
    for station_id, grid in grids.items():
        shared = pollutant_features(grid, pollutant)
        for horizon in horizons:
            features = origin_features(grid, pollutant, horizon, timezones.get(station_id, "UTC"), shared)
            features.insert(0, "station", float(station_codes.get(station_id, -1)))
            features["station_id"] = station_id
            features["origin"] = grid.index
            features["target_ts"] = grid.index + pd.Timedelta(hours=horizon)
            features["y0"] = grid[pollutant]
            features["observed"] = grid[pollutant].shift(-horizon)
            features["delta"] = target_change(grid, pollutant, horizon)
            features["issuable"] = issuable(grid, pollutant)
            frames[horizon].append(features.reset_index(drop=True))
    return {horizon: pd.concat(parts, ignore_index=True) for horizon, parts in frames.items()}


#: Columns of ``design_matrix`` that are bookkeeping, not model inputs.
BOOKKEEPING: tuple[str, ...] = ("station_id", "origin", "target_ts", "y0", "observed", "delta", "issuable")


def feature_columns(matrix: pd.DataFrame) -> list[str]:
    """The model input columns of a design matrix, in a stable order."""
    return [c for c in matrix.columns if c not in BOOKKEEPING]
