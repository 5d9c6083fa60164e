"""Single-row scoring of the two pipelines training fits, without scikit-learn's per-call overhead.

Pipeline(StandardScaler, IsolationForest).decision_function without joblib's per-tree dispatch, and
Pipeline(StandardScaler, LogisticRegression).predict_proba without input validation (~250 µs of a ~1.2 ms
prediction). Each is built only after it agreed with scikit-learn on random rows; otherwise the caller uses sklearn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

try:  # private: a scikit-learn without it gets the public, slower path
    from sklearn.ensemble._iforest import _average_path_length
except ImportError:  # pragma: no cover
    _average_path_length = None

# sklearn scores one row through ~100 joblib tasks (about 50 µs each); walking the trees directly takes ~3 µs each.
VERIFY_ROWS = 32
VERIFY_TOLERANCE = 1e-9


def _scaler_and(model: Any, kind: type) -> tuple[StandardScaler, Any] | None:
    """The two steps of a Pipeline(StandardScaler, <kind>); None for any other model."""
    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        return None
    scaler, estimator = model.steps[0][1], model.steps[1][1]
    if not isinstance(scaler, StandardScaler) or not isinstance(estimator, kind):
        return None
    return scaler, estimator


def probe_rows(scaler: StandardScaler, n_features: int, seed: int) -> np.ndarray:
    """VERIFY_ROWS random rows around the training data (two standard deviations), to check a scorer against sklearn."""
    rng = np.random.default_rng(seed)
    centre = scaler.mean_ if scaler.with_mean else np.zeros(n_features)
    spread = scaler.scale_ if scaler.with_std else np.ones(n_features)
    return centre + spread * rng.normal(scale=2.0, size=(VERIFY_ROWS, n_features))


def _scaled(X: np.ndarray, mean: np.ndarray | None, scale: np.ndarray | None) -> np.ndarray:
    """StandardScaler.transform of X."""
    x = np.asarray(X, dtype=np.float64)
    if mean is not None:
        x = x - mean
    if scale is not None:
        x = x / scale
    return x


class FastIsolationScorer:
    """The same numbers as pipeline.decision_function(X) for small X; build with `for_pipeline`, which verifies it."""

    def __init__(self, scaler: StandardScaler, forest: IsolationForest) -> None:
        self.mean = scaler.mean_ if scaler.with_mean else None
        self.scale = scaler.scale_ if scaler.with_std else None
        self.n_features = int(forest.n_features_in_)
        subsample = forest._max_features != self.n_features
        self.trees = [
            (est.tree_, np.asarray(feats) if subsample else None, paths + average - 1.0)
            for est, feats, paths, average in zip(
                forest.estimators_,
                forest.estimators_features_,
                forest._decision_path_lengths,
                forest._average_path_length_per_tree,
                strict=True,
            )
        ]
        self.denominator = len(self.trees) * float(_average_path_length([forest._max_samples])[0])
        self.offset = float(forest.offset_)

    @classmethod
    def for_pipeline(cls, model: Any, seed: int = 0) -> FastIsolationScorer | None:
        """A scorer for this model, or None.

        None unless the model is Pipeline(StandardScaler, IsolationForest) and the scorer agrees with sklearn.
        """
        steps = _scaler_and(model, IsolationForest)
        if _average_path_length is None or steps is None:
            return None
        scaler, forest = steps
        try:
            scorer = cls(scaler, forest)
        except (AttributeError, TypeError, ValueError):
            return None  # a scikit-learn whose internals differ: use the public, slower path
        X = probe_rows(scaler, scorer.n_features, seed)
        expected = model.decision_function(X)
        actual = np.array([scorer.decision(X[i : i + 1]) for i in range(VERIFY_ROWS)])
        return scorer if np.allclose(actual, expected, rtol=0, atol=VERIFY_TOLERANCE) else None

    def decision(self, X: np.ndarray) -> float:
        """decision_function for one row X of shape (1, n_features): below 0 is an anomaly."""
        x32 = np.ascontiguousarray(_scaled(X, self.mean, self.scale), dtype=np.float32)
        depth = 0.0
        for tree, features, path in self.trees:
            rows = x32 if features is None else np.ascontiguousarray(x32[:, features])
            depth += path[tree.apply(rows)[0]]
        score = 2.0 ** (-depth / self.denominator) if self.denominator else 1.0
        return -score - self.offset


class FastLogisticScorer:
    """The same number as pipeline.predict_proba(X)[0, positive] for one row; build with `for_pipeline`."""

    def __init__(self, scaler: StandardScaler, classifier: LogisticRegression, positive: int) -> None:
        self.mean = scaler.mean_ if scaler.with_mean else None
        self.scale = scaler.scale_ if scaler.with_std else None
        # Binary: one coefficient row, for classes_[1]; the other class's probability is its complement.
        self.coef = np.ascontiguousarray(classifier.coef_[0], dtype=np.float64)
        self.intercept = float(classifier.intercept_[0])
        self.sign = 1.0 if positive == 1 else -1.0
        self.n_features = int(classifier.n_features_in_)

    @classmethod
    def for_pipeline(cls, model: Any, positive: int | None, seed: int = 0) -> FastLogisticScorer | None:
        """A scorer of the probability of classes_[positive], or None.

        None unless the model is a binary Pipeline(StandardScaler, LogisticRegression) and the scorer agrees with
        sklearn.
        """
        steps = _scaler_and(model, LogisticRegression)
        if positive is None or steps is None:
            return None
        scaler, classifier = steps
        try:
            if len(classifier.classes_) != 2 or classifier.coef_.shape[0] != 1:
                return None
            scorer = cls(scaler, classifier, positive)
        except (AttributeError, TypeError, ValueError, IndexError):
            return None
        X = probe_rows(scaler, scorer.n_features, seed)
        expected = model.predict_proba(X)[:, positive]
        actual = np.array([scorer.probability(X[i : i + 1]) for i in range(VERIFY_ROWS)])
        return scorer if np.allclose(actual, expected, rtol=0, atol=VERIFY_TOLERANCE) else None

    def probability(self, X: np.ndarray) -> float:
        """predict_proba(X)[0, positive] for one row X of shape (1, n_features)."""
        z = float(_scaled(X, self.mean, self.scale)[0] @ self.coef) + self.intercept
        return float(expit(self.sign * z))
