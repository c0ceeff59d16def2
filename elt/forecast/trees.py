"""A fitted gradient-boosting model as plain numeric arrays, and its prediction without scikit-learn.

Why: the hourly forecast used to import scikit-learn (with scipy, about 1.3 s of CPU) and parse four skops files
(0.5 s) to predict a few rows per station. At 2 stations that was half of an hourly ``elt run``. Training stores
each fitted ``HistGradientBoostingRegressor`` twice: as skops (``models``, the estimator itself) and as the
arrays of its trees (``trees``, this module), which ``predict`` reads with numpy alone.

The arrays are scikit-learn's own: per node its value, feature, threshold, children, missing-value direction
and categorical bitset (``TreePredictor.nodes``, ``raw_left_cat_bitsets``), plus the known categories of each
categorical feature and the baseline. ``TreeEnsemble.predict`` walks them the way scikit-learn's
``_predict_one_from_raw_data`` does (missing values and unknown categories follow ``missing_go_to_left``) and
adds the trees to the baseline one after the other in scikit-learn's order, so predictions are bit-for-bit the
estimator's (tested). Reading stored arrays never runs code: each is decoded with a fixed dtype, and
``from_document`` checks every index (features, bitsets, children after their parent inside their own tree)
before the arrays are used, so a tampered document is refused, and a walk always ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from bson.binary import Binary

#: The stored layout's name (``trees.<key>.format``); any other is refused.
TREES_FORMAT = "hgb-arrays-1"
#: Array fields and their fixed storage dtypes (little-endian).
ARRAY_DTYPES: dict[str, str] = {
    "tree_starts": "<i4",
    "value": "<f8",
    "feature": "<i4",
    "threshold": "<f8",
    "left": "<i4",
    "right": "<i4",
    "is_leaf": "u1",
    "is_categorical": "u1",
    "missing_left": "u1",
    "bitset": "<i4",
    "left_bitsets": "<u4",
    "known_bitsets": "<u4",
    "known_row": "<i4",
}
#: Per-node arrays: one entry per node of every tree.
NODE_ARRAYS = ("value", "feature", "threshold", "left", "right", "is_leaf", "is_categorical", "missing_left", "bitset")  # fmt: skip
#: 32-bit words per categorical bitset (256 categories), as in scikit-learn.
BITSET_WORDS = 8


@dataclass(frozen=True)
class TreeEnsemble:
    """The trees of one fitted regressor, concatenated. Node indices are global; a leaf's children are itself."""

    baseline: float
    """The constant the trees' values are added to."""
    n_features: int
    """Columns the model takes."""
    tree_starts: np.ndarray
    """Index of each tree's root, in boosting order."""
    value: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    is_categorical: np.ndarray
    missing_left: np.ndarray
    """Where a missing value (or an unknown category) goes at each split."""
    bitset: np.ndarray
    """Row of ``left_bitsets`` of each categorical split (0, a zero row, elsewhere)."""
    left_bitsets: np.ndarray
    """Categories sent left, one row of 8 words per categorical split (plus a zero row)."""
    known_bitsets: np.ndarray
    """Categories seen in training, one row per categorical feature (plus a zero row)."""
    known_row: np.ndarray
    """Row of ``known_bitsets`` of each feature."""

    @classmethod
    def from_estimator(cls, estimator: Any) -> TreeEnsemble:
        """The arrays of a fitted ``HistGradientBoostingRegressor`` (one tree per iteration)."""
        known, known_row = estimator._bin_mapper.make_known_categories_bitsets()
        parts: dict[str, list[np.ndarray]] = {name: [] for name in NODE_ARRAYS}
        # a zero row first (left) and last (known): rows that non-categorical nodes and features may point at
        zero_row = np.zeros((1, BITSET_WORDS), np.uint32)
        starts, left_bitsets, offset, bitset_offset = [], [zero_row], 0, 1
        for (predictor,) in estimator._predictors:
            nodes = predictor.nodes
            own = np.arange(offset, offset + len(nodes))
            leaf = nodes["is_leaf"].astype(bool)
            categorical = nodes["is_categorical"].astype(bool) & ~leaf
            parts["value"].append(nodes["value"])
            parts["feature"].append(np.where(leaf, 0, nodes["feature_idx"]))
            parts["threshold"].append(np.where(leaf, 0.0, nodes["num_threshold"]))
            parts["left"].append(np.where(leaf, own, nodes["left"].astype(np.int64) + offset))
            parts["right"].append(np.where(leaf, own, nodes["right"].astype(np.int64) + offset))
            parts["is_leaf"].append(leaf)
            parts["is_categorical"].append(categorical)
            parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
            parts["bitset"].append(
                np.where(categorical, nodes["bitset_idx"].astype(np.int64) + bitset_offset, 0)
            )
            left_bitsets.append(
                np.asarray(predictor.raw_left_cat_bitsets, np.uint32).reshape(-1, BITSET_WORDS)
            )
            starts.append(offset)
            offset += len(nodes)
            bitset_offset += len(left_bitsets[-1])
        arrays = {name: np.concatenate(values) for name, values in parts.items()}
        return cls(
            baseline=float(np.asarray(estimator._baseline_prediction).ravel()[0]),
            n_features=int(estimator.n_features_in_),
            tree_starts=np.asarray(starts, np.int64),
            left_bitsets=np.concatenate(left_bitsets),
            known_bitsets=np.concatenate([np.asarray(known, np.uint32).reshape(-1, BITSET_WORDS), zero_row]),
            known_row=np.asarray(known_row, np.int64),
            **arrays,
        )

    def to_document(self) -> dict[str, Any]:
        """The stored form: fixed-dtype binaries, plus the format, baseline and feature count."""
        doc: dict[str, Any] = {
            "format": TREES_FORMAT,
            "baseline": self.baseline,
            "n_features": self.n_features,
        }
        for name, dtype in ARRAY_DTYPES.items():
            doc[name] = Binary(np.ascontiguousarray(getattr(self, name), dtype=dtype).tobytes())
        return doc

    @classmethod
    def from_document(cls, doc: Any) -> TreeEnsemble:
        """Decode and check stored arrays; ``ValueError`` naming what is wrong (nothing else is ever run)."""
        if not isinstance(doc, dict) or doc.get("format") != TREES_FORMAT:
            raise ValueError(f"not a {TREES_FORMAT!r} document")
        arrays: dict[str, np.ndarray] = {}
        for name, dtype in ARRAY_DTYPES.items():
            data = doc.get(name)
            if not isinstance(data, bytes):
                raise ValueError(f"{name} is {type(data).__name__}, not binary data")
            array = np.frombuffer(data, dtype=dtype)
            arrays[name] = array.astype(bool if dtype == "u1" else np.int64 if "i" in dtype else array.dtype)
        for name in ("left_bitsets", "known_bitsets"):
            if len(arrays[name]) % BITSET_WORDS or not len(arrays[name]):
                raise ValueError(f"{name} is not rows of {BITSET_WORDS} words")
            arrays[name] = arrays[name].reshape(-1, BITSET_WORDS)
        trees = cls(baseline=float(doc.get("baseline")), n_features=int(doc.get("n_features")), **arrays)
        trees._check()
        return trees

    def _check(self) -> None:
        """Every index in range, children after their parent in the parent's own tree: a walk always ends."""
        nodes = len(self.value)
        if any(len(getattr(self, name)) != nodes for name in NODE_ARRAYS):
            raise ValueError("the node arrays differ in length")
        starts = self.tree_starts
        if not len(starts) or starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= nodes:
            raise ValueError("tree_starts are not increasing roots inside the node arrays")
        if not (np.isfinite(self.baseline) and np.isfinite(self.value).all() and self.n_features > 0):
            raise ValueError("the baseline, a leaf value or the feature count is not a finite number")
        if np.isnan(self.threshold).any() or len(self.known_row) != self.n_features:
            raise ValueError("a split threshold is NaN, or known_row does not match the feature count")
        own = np.arange(nodes)
        tree_end = np.append(starts[1:], nodes)[np.searchsorted(starts, own, side="right") - 1]
        split = ~self.is_leaf
        for name in ("left", "right"):
            child = getattr(self, name)
            if np.any(np.where(split, (child <= own) | (child >= tree_end), child != own)):
                raise ValueError(f"a {name} child is outside its tree or not after its parent")
        # every node's feature and bitset are read while walking (a leaf's and a numeric split's too)
        if np.any((self.feature < 0) | (self.feature >= self.n_features)):
            raise ValueError("a node's feature is out of range")
        if np.any((self.bitset < 0) | (self.bitset >= len(self.left_bitsets))):
            raise ValueError("a node's bitset is out of range")
        if np.any((self.known_row < 0) | (self.known_row >= len(self.known_bitsets))):
            raise ValueError("known_row is out of range")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The summed tree values for each row of ``x`` (n rows × ``n_features``), as scikit-learn's ``predict``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} feature columns, got shape {x.shape}")
        rows = np.arange(len(x))[None, :]
        node = np.repeat(self.tree_starts[:, None], len(x), axis=1)  # trees × rows
        for _ in range(len(self.value)):  # children come after parents: at most this many steps
            if self.is_leaf[node].all():
                break
            feature = self.feature[node]
            value = x[rows, feature]
            missing_left = self.missing_left[node]
            numeric_left = value <= self.threshold[node]
            # a category is a whole number below 256; anything else is unknown, as in scikit-learn
            whole = (value >= 0) & (value < 32 * BITSET_WORDS) & (value == np.floor(value))
            category = np.where(whole, value, -1).astype(np.int64)
            in_left = _in_bitset(self.left_bitsets, self.bitset[node], category)
            known = _in_bitset(self.known_bitsets, self.known_row[feature], category)
            categorical_left = np.where(category < 0, missing_left, in_left | (~known & missing_left))
            go_left = np.where(
                np.isnan(value),
                missing_left,
                np.where(self.is_categorical[node], categorical_left, numeric_left),
            )
            node = np.where(go_left, self.left[node], self.right[node])
        leaf_values = self.value[node]
        # Added one tree after the other onto the baseline, as scikit-learn does (cumsum is sequential).
        return np.cumsum(np.vstack([np.full(len(x), self.baseline), leaf_values]), axis=0)[-1]


def _in_bitset(bitsets: np.ndarray, row: np.ndarray, category: np.ndarray) -> np.ndarray:
    """Whether ``category`` (-1: none) is set in ``bitsets[row]``, elementwise."""
    safe = np.maximum(category, 0)
    return (category >= 0) & ((bitsets[row, safe >> 5] >> (safe & 31).astype(np.uint32)) & 1).astype(bool)
