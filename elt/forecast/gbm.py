"""Gradient boosting on the change y(t+h) − y(t), absolute-error loss, stations pooled (station is a feature).

One model per pollutant and horizon (direct strategy). Training is single-threaded on purpose: on a busy
2-core machine OpenMP's default threading made one fit hundreds of times slower.

scikit-learn is imported only to fit (``ChangeModel``); a stored model predicts from its trees' arrays with
numpy (``TreeModel``, ``elt.forecast.trees``), so the hourly forecast does not pay scikit-learn's import.
"""

from __future__ import annotations

import functools
import os
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

# Before scikit-learn loads its OpenMP runtime; _one_thread below covers an already-loaded one.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from elt.forecast.features import feature_columns  # noqa: E402
from elt.forecast.trees import TreeEnsemble  # noqa: E402

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import ThreadpoolController


@functools.cache
def _controller() -> ThreadpoolController:
    """The process's thread pools (OpenMP, BLAS), found once: a scan of the loaded libraries costs ~3 ms, as
    much as one prediction, and ``threadpool_limits`` repeats it on every call."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_thread() -> AbstractContextManager[object]:
    """Run the enclosed fit or predict on one thread."""
    return _controller().limit(limits=1)


@dataclass(frozen=True)
class GbmParams:
    """Hyper-parameters of the gradient-boosting model (stored with every trained model)."""

    learning_rate: float = 0.1
    """Shrinkage per boosting iteration."""
    max_iter: int = 150
    """Number of boosting iterations (trees)."""
    max_leaf_nodes: int = 15
    """Leaves per tree."""
    min_samples_leaf: int = 80
    """Smallest leaf; larger is smoother."""
    l2_regularization: float = 1.0
    """L2 penalty on leaf values."""
    max_bins: int = 63
    """Histogram bins per feature (fewer is faster)."""
    train_days: int = 365
    """Training window: origins in the last ``train_days`` days before the refit point."""
    issuable_only: bool = True
    """Train only on origins where a forecast would be issued (last 3 hours valid)."""
    random_state: int = 0
    """Seed (the model is deterministic without subsampling; kept for reproducibility)."""

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form for the model metadata."""
        return asdict(self)


#: The most categories (and histogram bins) scikit-learn's gradient boosting takes for one feature.
MAX_CATEGORIES = 255
#: The ``GbmParams`` fields passed to scikit-learn's estimator as they are (the others shape the training set).
ESTIMATOR_PARAMS = (
    "learning_rate", "max_iter", "max_leaf_nodes", "min_samples_leaf", "l2_regularization", "max_bins", "random_state",
)  # fmt: skip


class ChangeModel:
    """A fitted model of y(t+h) − y(t); ``predict`` returns the level y(t) + change."""

    def __init__(self, params: GbmParams, features: list[str]) -> None:
        from sklearn.ensemble import HistGradientBoostingRegressor

        self.params = params
        self.features = features
        self.estimator = HistGradientBoostingRegressor(
            loss="absolute_error",
            categorical_features=[features.index("station")] if "station" in features else None,
            early_stopping=False,
            **{name: getattr(params, name) for name in ESTIMATOR_PARAMS},
        )

    @classmethod
    def from_fitted(
        cls, params: GbmParams, features: list[str], estimator: HistGradientBoostingRegressor
    ) -> ChangeModel:
        """A model around an already fitted estimator (read back from ``forecast_models``)."""
        model = cls.__new__(cls)
        model.params, model.features, model.estimator = params, list(features), estimator
        return model

    def fit(self, train: pd.DataFrame) -> ChangeModel:
        """Fit on design-matrix rows that have a target change."""
        x = train[self.features].to_numpy(dtype=float, copy=True)  # written to below
        # A feature with no value at all (e.g. the 168 h lag in a first week of data) becomes a constant:
        # scikit-learn's binning fails on an all-missing column.
        x[:, np.isnan(x).all(axis=0)] = 0.0
        self._fit_station_feature(x)
        with _one_thread():
            self.estimator.fit(x, train["delta"].to_numpy(dtype=float))
        return self

    def _fit_station_feature(self, x: np.ndarray) -> None:
        """Keep the station a categorical feature at any station count: scikit-learn needs a categorical
        feature's cardinality within ``max_bins``, so more stations than ``params.max_bins`` raise the bins up
        to scikit-learn's limit (255), and beyond it the station code becomes a plain numeric feature."""
        if "station" not in self.features:
            return
        column = x[:, self.features.index("station")]
        stations = len(np.unique(column[~np.isnan(column)]))
        if stations <= self.params.max_bins:
            return
        if stations <= MAX_CATEGORIES:
            self.estimator.set_params(max_bins=stations)
        else:
            self.estimator.set_params(categorical_features=None)

    def predict(self, matrix: pd.DataFrame) -> pd.Series:
        """Forecast level per row: y(t) plus the predicted change, never below 0 (a concentration)."""
        if matrix.empty:
            return pd.Series(dtype=float, index=matrix.index)
        with _one_thread():
            change = self.estimator.predict(matrix[self.features].to_numpy(dtype=float))
        return _level(matrix, change)


@dataclass(frozen=True)
class TreeModel:
    """A stored ``ChangeModel`` read back as its trees' arrays: the same features and predictions (bit for bit),
    without scikit-learn."""

    params: GbmParams
    features: list[str]
    trees: TreeEnsemble

    def predict(self, matrix: pd.DataFrame) -> pd.Series:
        """Forecast level per row, as ``ChangeModel.predict``."""
        if matrix.empty:
            return pd.Series(dtype=float, index=matrix.index)
        return _level(matrix, self.trees.predict(matrix[self.features].to_numpy(dtype=float)))


def _level(matrix: pd.DataFrame, change: np.ndarray) -> pd.Series:
    """y(t) plus the predicted change, never below 0 (a concentration)."""
    return pd.Series(matrix["y0"].to_numpy() + change, index=matrix.index).clip(lower=0.0)


def training_rows(matrix: pd.DataFrame, refit_at: pd.Timestamp, params: GbmParams) -> pd.DataFrame:
    """Rows a refit at ``refit_at`` may learn from: target hour strictly before it, inside the window."""
    start = refit_at - pd.Timedelta(days=params.train_days)
    keep = (matrix["target_ts"] < refit_at) & (matrix["origin"] >= start) & matrix["delta"].notna()
    if params.issuable_only:
        keep &= matrix["issuable"]
    return matrix[keep]


def fit_change_model(train: pd.DataFrame, params: GbmParams) -> ChangeModel | None:
    """Fit one model on the given rows; ``None`` when there is too little to learn from."""
    if len(train) < max(50, 2 * params.min_samples_leaf):
        return None
    return ChangeModel(params, feature_columns(train)).fit(train)
