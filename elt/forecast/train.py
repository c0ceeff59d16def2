"""Training: choose the deployed predictor per series from a recent backtest, then fit on all recent data.

Per station, pollutant and horizon the deployed predictor is the one with the lowest MAE over the last
``validate_weeks`` weeks (rolling origin, weekly refit, exactly as ``elt forecast backtest``). Persistence is
always a candidate, so the deployed predictor is never worse than persistence on that backtest.

A station with less than ``MIN_HISTORY_HOURS`` of history (first staging hour to the training end) gets no
predictor (status ``not_enough_history``): a model is never fitted on too little data and kept. ``elt run``
trains as soon as one station has the minimum, and again as soon as a short station reaches it (see
``elt.forecast.run.retrain_reason``).
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from elt import __version__
from elt.forecast import HORIZONS, POLLUTANTS
from elt.forecast.backtest import MIN_VALID_HOURS, BacktestResult, SeriesResult, run_backtest, series_status
from elt.forecast.baselines import Blend
from elt.forecast.features import design_matrix
from elt.forecast.gbm import ChangeModel, GbmParams, TreeModel, fit_change_model, training_rows
from elt.forecast.series import utc_hour

log = logging.getLogger(__name__)

#: Weeks of recent data the deployed predictor is chosen on.
VALIDATE_WEEKS = 4
#: Hours of history (first staging hour to the training end) a station needs before it is modelled: the
#: backtest's minimum of valid hours, so a station can only qualify once it has them.
MIN_HISTORY_HOURS = MIN_VALID_HOURS
#: Choice status of a station with less than ``MIN_HISTORY_HOURS`` of history.
NOT_ENOUGH_HISTORY = "not_enough_history"


def history_hours(grid: pd.DataFrame, end: pd.Timestamp) -> int:
    """Hours from the grid's first hour (the station's first staging hour) to ``end`` (exclusive).

    The same measure as ``elt.forecast.run.station_history_hours``, so a station the run finds ready is never
    found short by training (which would retrain every hour)."""
    if grid.empty:
        return 0
    return max(0, int((end - grid.index.min()) / pd.Timedelta(hours=1)))


@dataclass
class SeriesChoice:
    """What is deployed for one station, pollutant and horizon, and why."""

    station_id: str
    pollutant: str
    horizon_h: int
    status: str
    """``ok`` (forecast), ``no_valid_data`` or ``not_enough_history`` (no forecast)."""
    predictor: str | None = None
    """gbm, blend, seasonal_naive or persistence; None when not forecast."""
    reason: str | None = None
    metrics: dict[str, object] = field(default_factory=dict)
    """The validation backtest row of this series."""


@dataclass
class TrainedForecast:
    """Everything ``predict`` needs: fitted models, blends, choices, and the metadata stored with them."""

    version: str
    created_at: datetime
    trained_until: datetime
    """Exclusive: every training target hour is before this instant."""
    train_start: datetime
    params: GbmParams
    station_codes: dict[str, int]
    timezones: dict[str, str]
    models: dict[tuple[str, int], ChangeModel | TreeModel | None]
    """Fitted models (``TreeModel`` when read back from ``forecast_models``)."""
    blends: dict[tuple[str, int], Blend]
    choices: list[SeriesChoice]
    validation: dict[str, object] = field(default_factory=dict)

    def choice(self, station_id: str, pollutant: str, horizon_h: int) -> SeriesChoice | None:
        """The choice for one series (None for a station the model has never seen)."""
        for row in self.choices:
            if (row.station_id, row.pollutant, row.horizon_h) == (station_id, pollutant, horizon_h):
                return row
        return None

    def features(self) -> dict[str, list[str]]:
        """Input columns of each fitted model, keyed ``<pollutant>|<horizon>``."""
        return {f"{p}|{h}": m.features for (p, h), m in self.models.items() if m is not None}


def _choose(row: SeriesResult, model: ChangeModel | None) -> str:
    """The validated best predictor, falling back to persistence when it cannot be used."""
    if row.status != "ok" or row.best is None:
        return "persistence"
    if row.best == "gbm" and model is None:
        return "persistence"
    return row.best


def _version(trained_until: datetime, models: dict, choices: list[SeriesChoice]) -> str:
    digest = hashlib.sha256()
    for key in sorted(models):
        digest.update(repr(key).encode())
        digest.update(pickle.dumps(models[key], protocol=4))
    digest.update(repr([(c.station_id, c.pollutant, c.horizon_h, c.predictor) for c in choices]).encode())
    return f"{trained_until:%Y%m%dT%H}Z-{digest.hexdigest()[:8]}"


def train_forecast(
    grids: dict[str, pd.DataFrame],
    timezones: dict[str, str] | None = None,
    *,
    until: datetime | None = None,
    validate_weeks: int = VALIDATE_WEEKS,
    params: GbmParams | None = None,
    pollutants: tuple[str, ...] = POLLUTANTS,
    horizons: tuple[int, ...] = HORIZONS,
) -> TrainedForecast:
    """Validate on the last ``validate_weeks`` weeks, choose per series, then fit on data before ``until``.

    ``until`` (exclusive) defaults to the hour after the newest hour of any grid.
    """
    params = params or GbmParams()
    timezones = timezones or {}
    newest = max(g.index.max() for g in grids.values())
    end = utc_hour(until) if until is not None else newest + pd.Timedelta(hours=1)
    validation_start = end - pd.Timedelta(weeks=validate_weeks)
    backtest: BacktestResult = run_backtest(
        grids,
        validation_start,
        end,
        pollutants=pollutants,
        horizons=horizons,
        timezones=timezones,
        params=params,
    )
    codes = {station_id: code for code, station_id in enumerate(sorted(grids))}
    train_start = end - pd.Timedelta(days=params.train_days)
    history = {station_id: history_hours(grid, end) for station_id, grid in grids.items()}
    short = {s: h for s, h in history.items() if h < MIN_HISTORY_HOURS}
    models: dict[tuple[str, int], ChangeModel | None] = {}
    blends: dict[tuple[str, int], Blend] = {}
    choices: list[SeriesChoice] = []
    for pollutant in pollutants:
        status = series_status(grids, pollutant, train_start, end)
        usable = [s for s, reason in status.items() if reason is None and s not in short]
        for horizon in horizons:
            matrix = design_matrix(grids, pollutant, horizon, codes, timezones)
            train = training_rows(matrix[matrix["station_id"].isin(usable)], end, params)
            models[(pollutant, horizon)] = fit_change_model(train, params)
            blends[(pollutant, horizon)] = Blend.fit(train)
            for station_id in sorted(grids):
                row = backtest.result(station_id, pollutant, horizon)
                if station_id in short:
                    choice = SeriesChoice(
                        station_id, pollutant, horizon, NOT_ENOUGH_HISTORY,
                        reason=f"not enough history: {short[station_id]} hours since the first data "
                        f"(at least {MIN_HISTORY_HOURS} needed; retrained as soon as they exist)",
                    )  # fmt: skip
                elif status[station_id] is not None:
                    choice = SeriesChoice(
                        station_id, pollutant, horizon, "no_valid_data", reason=status[station_id]
                    )
                else:
                    choice = SeriesChoice(
                        station_id, pollutant, horizon, "ok", _choose(row, models[(pollutant, horizon)])
                    )
                choice.metrics = row.to_json()
                choices.append(choice)
                log.info("%s %s +%dh: %s", station_id, pollutant, horizon, choice.predictor or choice.reason)
    return TrainedForecast(
        version=_version(end.to_pydatetime(), models, choices),
        created_at=datetime.now(timezone.utc).replace(microsecond=0),
        trained_until=end.to_pydatetime().replace(tzinfo=timezone.utc),
        train_start=train_start.to_pydatetime().replace(tzinfo=timezone.utc),
        params=params,
        station_codes=codes,
        timezones={s: timezones.get(s, "UTC") for s in grids},
        models=models,
        blends=blends,
        choices=choices,
        validation={
            "start": validation_start.to_pydatetime().replace(tzinfo=timezone.utc),
            "end": end.to_pydatetime().replace(tzinfo=timezone.utc),
            "refits": backtest.refits,
            "history_hours": history,
            "min_history_hours": MIN_HISTORY_HOURS,
            "seconds": round(backtest.seconds, 1),
            "elt_version": __version__,
        },
    )
