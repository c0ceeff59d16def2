"""The stored trees' arrays: predictions bit-for-bit the estimator's, no scikit-learn to predict, tampering refused.

``forecast_models`` keeps each fitted estimator as skops and as its trees' arrays (``elt.forecast.trees``);
predict reads the arrays with numpy alone. These tests train one real model on synthetic staging and check that
the arrays predict exactly what scikit-learn predicts (also on rows scikit-learn treats specially: missing
values, unseen and out-of-range categories), that a fresh process predicts without importing scikit-learn, that
a document saved before the arrays existed still loads through skops, and that a tampered array is refused
(``ModelRefused``), never followed.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import bson
import numpy as np
import pandas as pd
import pytest
from bson.binary import Binary

from elt.forecast.features import design_matrix
from elt.forecast.gbm import ChangeModel, TreeModel
from elt.forecast.series import hourly_grid
from elt.forecast.store import ModelRefused, from_document, to_document
from elt.forecast.train import TrainedForecast, train_forecast
from elt.forecast.trees import ARRAY_DTYPES, TreeEnsemble
from tests.forecast.forecast_helpers import synthetic_staging

pytest.importorskip("sklearn", reason="the forecast extra (scikit-learn) is not installed")
pytest.importorskip("skops", reason="the forecast extra (skops) is not installed")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained() -> tuple[TrainedForecast, dict[str, pd.DataFrame]]:
    grids = hourly_grid(synthetic_staging(days=21))
    return train_forecast(grids, validate_weeks=1), grids


def _fitted(bundle: TrainedForecast) -> dict[tuple[str, int], ChangeModel]:
    fitted = {key: model for key, model in bundle.models.items() if isinstance(model, ChangeModel)}
    assert fitted, "the synthetic history should give at least one fitted model"
    return fitted


def _matrix(bundle: TrainedForecast, grids: dict[str, pd.DataFrame], key: tuple[str, int]) -> pd.DataFrame:
    return design_matrix(grids, *key, bundle.station_codes, {}).dropna(subset=["y0"])


def test_stored_trees_predict_bit_for_bit_what_the_estimator_predicts(trained) -> None:
    bundle, grids = trained
    loaded = from_document(to_document(bundle))
    for key, model in _fitted(bundle).items():
        assert isinstance(loaded.models[key], TreeModel) and loaded.models[key].features == model.features
        matrix = _matrix(bundle, grids, key)
        pd.testing.assert_series_equal(
            loaded.models[key].predict(matrix), model.predict(matrix), check_exact=True
        )


def test_missing_values_and_unknown_categories_follow_the_estimator(trained) -> None:
    bundle, grids = trained
    key, model = next(iter(_fitted(bundle).items()))
    x = _matrix(bundle, grids, key)[model.features].to_numpy(dtype=float)
    rng = np.random.default_rng(3)
    x[rng.random(x.shape) < 0.2] = np.nan  # missing values in every column
    station = model.features.index("station")
    x[: len(x) // 2, station] = rng.choice([0.0, 1.0, 5.0, 2.5, -1.0, 300.0, np.nan], size=len(x) // 2)
    trees = TreeEnsemble.from_estimator(model.estimator)
    assert np.array_equal(trees.predict(x), model.estimator.predict(x))


def test_a_fresh_process_predicts_from_the_trees_without_importing_scikit_learn(
    trained, tmp_path: Path
) -> None:
    bundle, grids = trained
    key, model = next(iter(_fitted(bundle).items()))
    matrix = _matrix(bundle, grids, key)
    (tmp_path / "model.bson").write_bytes(bson.encode(to_document(bundle)))
    matrix.to_pickle(tmp_path / "matrix.pkl")
    script = (
        "import json, sys, bson, pandas as pd\n"
        "from elt.forecast.store import from_document\n"
        f"doc = bson.decode(open({str(tmp_path / 'model.bson')!r}, 'rb').read())\n"
        f"model = from_document(doc).models[{key!r}]\n"
        f"values = model.predict(pd.read_pickle({str(tmp_path / 'matrix.pkl')!r})).tolist()\n"
        "print(json.dumps({'sklearn': 'sklearn' in sys.modules, 'skops': 'skops' in sys.modules, 'values': values}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    out = json.loads(done.stdout)
    assert out["sklearn"] is False and out["skops"] is False
    assert out["values"] == model.predict(matrix).tolist()


def test_a_document_saved_before_the_trees_loads_through_skops_with_the_same_predictions(trained) -> None:
    bundle, grids = trained
    doc = to_document(bundle)
    del doc["trees"]
    loaded = from_document(doc)
    for key, model in _fitted(bundle).items():
        assert isinstance(loaded.models[key], ChangeModel)
        matrix = _matrix(bundle, grids, key)
        assert loaded.models[key].predict(matrix).equals(model.predict(matrix))


def _array(trees: dict[str, Any], name: str) -> np.ndarray:
    return np.frombuffer(trees[name], dtype=ARRAY_DTYPES[name]).copy()


def _set(trees: dict[str, Any], name: str, index: int, value: Any) -> None:
    array = _array(trees, name)
    array[index] = value
    trees[name] = Binary(array.tobytes())


def _tamper(kind: str, trees: dict[str, Any]) -> None:
    split = int(np.flatnonzero(_array(trees, "is_leaf") == 0)[0])
    if kind == "child-points-back":  # a loop: the walk would never end
        _set(trees, "left", split, split)
    elif kind == "child-in-another-tree":
        _set(trees, "left", split, len(_array(trees, "value")) - 1)
    elif kind == "feature-out-of-range":
        _set(trees, "feature", split, 10_000)
    elif kind == "bitset-out-of-range":
        _set(trees, "bitset", 0, 1 << 20)
    elif kind == "leaf-value-nan":
        _set(trees, "value", 0, np.nan)
    elif kind == "root-out-of-range":
        _set(trees, "tree_starts", 0, 5)
    elif kind == "truncated-array":
        trees["threshold"] = Binary(bytes(trees["threshold"])[:-3])
    elif kind == "not-binary":
        trees["right"] = [1, 2, 3]
    elif kind == "unknown-format":
        trees["format"] = "pickle"


TAMPERED = (
    "child-points-back", "child-in-another-tree", "feature-out-of-range", "bitset-out-of-range", "leaf-value-nan",
    "root-out-of-range", "truncated-array", "not-binary", "unknown-format",
)  # fmt: skip


@pytest.mark.parametrize("kind", TAMPERED)
def test_tampered_trees_are_refused_naming_the_series(trained, kind: str) -> None:
    bundle, _ = trained
    doc = copy.deepcopy(to_document(bundle))
    key = sorted(doc["trees"])[0]
    _tamper(kind, doc["trees"][key])
    with pytest.raises(ModelRefused, match=rf"trees\.{key.replace('|', '[|]')} .*it was not loaded"):
        from_document(doc)


def test_trees_that_leave_out_a_fitted_series_are_refused(trained) -> None:
    bundle, _ = trained
    doc = to_document(bundle)
    del doc["trees"][sorted(doc["trees"])[0]]
    with pytest.raises(ModelRefused, match="trees and models hold different series"):
        from_document(doc)
