"""Rolling-origin backtest: every hour of the range is a forecast origin; the model is refit weekly.

A refit at T learns only from rows whose target hour is strictly before T (and inside the training window);
it then forecasts every origin in [T, T + 7 days). Baselines are scored on exactly the same origins: those
where a forecast would be issued (the last 3 hours valid) and the target hour has a valid observation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from elt.forecast import HORIZONS, POLLUTANTS
from elt.forecast.baselines import Blend, persistence, seasonal_naive
from elt.forecast.features import HISTORY_HOURS, design_matrix
from elt.forecast.gbm import GbmParams, fit_change_model, training_rows
from elt.forecast.series import utc_hour

log = logging.getLogger(__name__)

#: Predictors compared per series, simplest first (a tie goes to the simpler one).
PREDICTORS: tuple[str, ...] = ("persistence", "seasonal_naive", "blend", "gbm")
#: A series needs at least this many valid hours in the training and evaluation window to be modelled.
MIN_VALID_HOURS = 168
#: Days between refits.
REFIT_DAYS = 7
#: Hours read after the last origin: its +2 h target and a margin.
TARGET_MARGIN_HOURS = 3


@dataclass(frozen=True)
class BacktestWindow:
    """What a backtest of origins in [start, end) scores and reads.

    ``start``/``end``: the origin hours (UTC); ``read_start``/``read_end``: the hourly data it needs, from the
    first refit's training window and the features' history before ``start`` to the last targets after ``end``.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    read_start: datetime
    read_end: datetime

    @property
    def refits(self) -> list[pd.Timestamp]:
        """The weekly refit instants."""
        return refit_points(self.start, self.end)


def backtest_window(start: datetime, end: datetime, params: GbmParams | None = None) -> BacktestWindow:
    """The window of a backtest from ``start`` to ``end`` (UTC); ValueError when start is not before end."""
    if start >= end:
        raise ValueError(f"start ({start:%Y-%m-%d %H:%M}) must be before end ({end:%Y-%m-%d %H:%M})")
    params = params or GbmParams()
    history = pd.Timedelta(days=params.train_days) + pd.Timedelta(hours=HISTORY_HOURS)
    return BacktestWindow(
        start=utc_hour(start),
        end=utc_hour(end),
        read_start=start - history.to_pytimedelta(),
        read_end=end + pd.Timedelta(hours=TARGET_MARGIN_HOURS).to_pytimedelta(),
    )


@dataclass
class SeriesResult:
    """Backtest score of one station, pollutant and horizon (the ``--json`` row)."""

    station_id: str
    pollutant: str
    horizon_h: int
    n: int = 0
    mae_model: float | None = None
    mae_persistence: float | None = None
    mae_blend: float | None = None
    mae_seasonal_naive: float | None = None
    skill: float | None = None
    """1 − mae_model / mae_persistence."""
    skill_blend: float | None = None
    """1 − mae_blend / mae_persistence."""
    best: str | None = None
    """The predictor with the lowest MAE (what ``train`` deploys)."""
    status: str = "ok"
    """``ok``, ``no_valid_data`` or ``no_scored_hours``."""
    reason: str | None = None

    def to_json(self) -> dict[str, object]:
        """The result as a JSON object with rounded numbers."""
        row = asdict(self)
        for key, value in row.items():
            if isinstance(value, float):
                row[key] = round(value, 4)
        return row


@dataclass
class BacktestResult:
    """All series scores plus the per-origin predictions (for plots)."""

    start: datetime
    end: datetime
    results: list[SeriesResult]
    predictions: pd.DataFrame
    params: GbmParams
    refits: int = 0
    seconds: float = 0.0
    blends: dict[tuple[str, int], Blend] = field(default_factory=dict)

    def result(self, station_id: str, pollutant: str, horizon_h: int) -> SeriesResult:
        """The score of one series."""
        for row in self.results:
            if (row.station_id, row.pollutant, row.horizon_h) == (station_id, pollutant, horizon_h):
                return row
        raise KeyError((station_id, pollutant, horizon_h))


def valid_hours(grid: pd.DataFrame, pollutant: str, start: datetime, end: datetime) -> int:
    """Valid hours of a pollutant in [start, end)."""
    window = grid.loc[(grid.index >= start) & (grid.index < end), pollutant]
    return int(window.notna().sum())


def series_status(
    grids: dict[str, pd.DataFrame], pollutant: str, start: datetime, end: datetime
) -> dict[str, str | None]:
    """Per station: ``None`` when the series can be modelled, else why not ("no valid data …")."""
    status: dict[str, str | None] = {}
    for station_id, grid in grids.items():
        hours = valid_hours(grid, pollutant, start, end)
        status[station_id] = (
            None
            if hours >= MIN_VALID_HOURS
            else f"no valid data: {hours} valid hours between {start:%Y-%m-%d} and {end:%Y-%m-%d} "
            f"(at least {MIN_VALID_HOURS} needed)"
        )
    return status


def refit_points(start: datetime, end: datetime, days: int = REFIT_DAYS) -> list[pd.Timestamp]:
    """Refit instants start, start + 7 d, … before end."""
    return list(pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=f"{days}D", inclusive="left"))


def _score(station_id: str, pollutant: str, horizon: int, rows: pd.DataFrame) -> SeriesResult:
    """MAE of every predictor on the same scored rows."""
    result = SeriesResult(station_id, pollutant, horizon, n=len(rows))
    if rows.empty:
        result.status, result.reason = (
            "no_scored_hours",
            "no origin with 3 valid hours and an observed target",
        )
        return result
    mae = {name: float(np.mean(np.abs(rows[name] - rows["observed"]))) for name in PREDICTORS}
    result.mae_model, result.mae_persistence = mae["gbm"], mae["persistence"]
    result.mae_blend, result.mae_seasonal_naive = mae["blend"], mae["seasonal_naive"]
    if mae["persistence"] > 0:
        result.skill = 1 - mae["gbm"] / mae["persistence"]
        result.skill_blend = 1 - mae["blend"] / mae["persistence"]
    result.best = min(PREDICTORS, key=lambda name: (mae[name], PREDICTORS.index(name)))
    return result


def run_backtest(
    grids: dict[str, pd.DataFrame],
    start: datetime,
    end: datetime,
    *,
    pollutants: tuple[str, ...] = POLLUTANTS,
    horizons: tuple[int, ...] = HORIZONS,
    timezones: dict[str, str] | None = None,
    params: GbmParams | None = None,
    on_refit: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Backtest every station, pollutant and horizon over origins in [start, end) with weekly refits."""
    params = params or GbmParams()
    started = time.monotonic()
    start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    codes = {station_id: code for code, station_id in enumerate(sorted(grids))}
    refits = refit_points(start_ts, end_ts)
    results: list[SeriesResult] = []
    predictions: list[pd.DataFrame] = []
    blends: dict[tuple[str, int], Blend] = {}
    for pollutant in pollutants:
        status = series_status(grids, pollutant, start_ts - pd.Timedelta(days=params.train_days), end_ts)
        usable = [s for s, reason in status.items() if reason is None]
        for horizon in horizons:
            matrix = design_matrix(grids, pollutant, horizon, codes, timezones)
            matrix = matrix[matrix["station_id"].isin(usable)]
            scored = []
            for k, refit_at in enumerate(refits):
                until = min(refits[k + 1] if k + 1 < len(refits) else end_ts, end_ts)
                train = training_rows(matrix, refit_at, params)
                model = fit_change_model(train, params)
                blend = Blend.fit(train)
                blends[(pollutant, horizon)] = blend
                rows = matrix[
                    (matrix["origin"] >= refit_at)
                    & (matrix["origin"] < until)
                    & matrix["issuable"]
                    & matrix["observed"].notna()
                ].copy()
                rows["persistence"] = persistence(rows)
                rows["seasonal_naive"] = seasonal_naive(rows).fillna(rows["persistence"])
                rows["blend"] = blend.predict(rows)
                rows["gbm"] = model.predict(rows) if model is not None else rows["persistence"]
                rows["refit_at"] = refit_at
                scored.append(rows)
                if on_refit is not None:
                    on_refit(f"{pollutant} +{horizon}h refit {refit_at:%Y-%m-%d}: {len(train)} training rows")
            scored_rows = pd.concat(scored, ignore_index=True) if scored else matrix.iloc[0:0]
            keep = ["station_id", "origin", "target_ts", "observed", *PREDICTORS, "refit_at"]
            for station_id in sorted(grids):
                if status[station_id] is not None:
                    results.append(
                        SeriesResult(
                            station_id, pollutant, horizon, status="no_valid_data", reason=status[station_id]
                        )
                    )
                    continue
                rows = scored_rows[scored_rows["station_id"] == station_id]
                results.append(_score(station_id, pollutant, horizon, rows))
                predictions.append(rows[keep].assign(pollutant=pollutant, horizon_h=horizon))
    frame = pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame()
    seconds = time.monotonic() - started
    log.info("backtest %s → %s: %d refits in %.1f s", start_ts, end_ts, len(refits), seconds)
    return BacktestResult(start, end, results, frame, params, len(refits), seconds, blends)
