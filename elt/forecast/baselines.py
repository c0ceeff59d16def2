"""The honest baselines a forecast must beat: persistence, seasonal naive (24 h) and a persistence–climatology blend.

All three work on a design matrix from ``features.design_matrix`` (rows = station × origin) and read only
columns that are known at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Candidate persistence weights for the blend (0 = pure climatology, 1 = pure persistence).
BLEND_WEIGHTS: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))


def persistence(matrix: pd.DataFrame) -> pd.Series:
    """ŷ(t+h) = y(t): the last valid observation."""
    return matrix["y0"]


def seasonal_naive(matrix: pd.DataFrame) -> pd.Series:
    """ŷ(t+h) = y(t+h−24): the same hour yesterday."""
    return matrix["y_season24"]


@dataclass
class Blend:
    """ŷ = w·y(t) + (1−w)·c(station, hour of target): persistence pulled toward the hourly climatology.

    The climatology ``c`` is the mean per station and target hour of day over the training rows; the weight
    ``w`` per station minimizes the absolute error on those rows.
    """

    climatology: dict[str, dict[int, float]] = field(default_factory=dict)
    """Mean observed value per station id and local hour of day (0–23)."""
    weights: dict[str, float] = field(default_factory=dict)
    """Persistence weight per station id."""

    @classmethod
    def fit(cls, train: pd.DataFrame) -> Blend:
        """Fit the climatology and the weight per station on rows with an observed target."""
        blend = cls()
        rows = train[train["observed"].notna()]
        weights = np.asarray(BLEND_WEIGHTS)[:, None]
        for station_id, group in rows.groupby("station_id"):
            clim = group.groupby(group["target_hour"].astype(int))["observed"].mean()
            blend.climatology[str(station_id)] = {int(h): float(v) for h, v in clim.items()}
            usable = group[group["y0"].notna()]
            c = blend._climatology_values(usable).to_numpy()
            y0, observed = usable["y0"].to_numpy(), usable["observed"].to_numpy()
            if len(usable) == 0:
                blend.weights[str(station_id)] = 1.0
                continue
            errors = np.nanmean(np.abs(weights * y0 + (1 - weights) * c - observed), axis=1)
            blend.weights[str(station_id)] = float(BLEND_WEIGHTS[int(np.nanargmin(errors))])
        return blend

    def _climatology_values(self, matrix: pd.DataFrame) -> pd.Series:
        """Climatology at each row's target hour; NaN when the station or the hour has none."""
        values = np.full(len(matrix), np.nan)
        hours = matrix["target_hour"].to_numpy()
        for station_id, index in matrix.groupby("station_id").indices.items():
            clim = self.climatology.get(str(station_id), {})
            table = np.array([clim.get(h, np.nan) for h in range(24)])
            station_hours = hours[index]
            known = np.isfinite(station_hours)
            values[index[known]] = table[station_hours[known].astype(int)]
        return pd.Series(values, index=matrix.index)

    def predict(self, matrix: pd.DataFrame) -> pd.Series:
        """Blend forecast per row; falls back to persistence where the climatology is unknown."""
        c = self._climatology_values(matrix)
        w = matrix["station_id"].map(lambda s: self.weights.get(str(s), 1.0)).astype(float)
        blended = w * matrix["y0"] + (1 - w) * c
        return blended.fillna(matrix["y0"])

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form for the model metadata."""
        return {
            "climatology": {s: {str(h): v for h, v in c.items()} for s, c in self.climatology.items()},
            "weights": dict(self.weights),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Blend:
        """Inverse of ``to_dict``."""
        climatology = data.get("climatology", {})
        weights = data.get("weights", {})
        assert isinstance(climatology, dict) and isinstance(weights, dict)
        return cls(
            climatology={s: {int(h): float(v) for h, v in c.items()} for s, c in climatology.items()},
            weights={s: float(w) for s, w in weights.items()},
        )
