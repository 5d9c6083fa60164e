"""Training a candidate failure model and anomaly model from telemetry, with holdout metrics.

Classifier choice: README.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest, RandomForestClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from core.constants import (
    CLASSIFIERS,
    DEFAULT_CLASSIFIER,
    DEFAULT_HORIZON_DAYS,
    DEFAULT_MIN_SAMPLES,
    PERFORMANCE_METRICS,
)
from core.daily_aggregates import daily_training_features
from core.db import Database
from core.errors import DataError, InvalidInput
from core.features import FeatureSet, Telemetry, build_features
from core.simulator import simulate_frames

HOLDOUT_FRACTION = 0.2
LATENCY_CALLS = 200
BATCH_ROWS = 10_000
IMPORTANCE_ROWS = 200
SAMPLE_FLEET = {"devices": 150, "days": 120, "interval_hours": 6.0, "seed": 42}

Progress = Callable[[str, float, str], None]


def _classifier(name: str, seed: int, lean: bool = False) -> tuple[Any, dict[str, Any]]:
    """The estimator for a classifier name and the hyper-parameters worth recording (`lean`: float32 features)."""
    if name == "random_forest":
        params = {"n_estimators": 100, "min_samples_leaf": 3, "class_weight": "balanced", "n_jobs": 1}
        return RandomForestClassifier(random_state=seed, **params), params
    if name == "hgb":
        params = {
            "max_iter": 100,
            "learning_rate": 0.1,
            "max_leaf_nodes": 15,
            "min_samples_leaf": 40,
            "l2_regularization": 1.0,
            # Weighted binning is slow in scikit-learn 1.9 (one weighted percentile per bin edge): fewer bins.
            "max_bins": 63,
            "class_weight": "balanced",
            # Early stopping would hold out a random (not time-aware) slice.
            "early_stopping": False,
        }
        return HistGradientBoostingClassifier(random_state=seed, **params), params
    if name == "logistic":
        # Newton-Cholesky suits many samples and few features: the same fit as lbfgs, several times faster here.
        params = {"C": 1.0, "solver": "newton-cholesky", "max_iter": 200, "class_weight": "balanced"}
        if lean:
            # In float32 the Hessian of the 66 features (day_delta = day_mean - win_mean: collinear) is singular to
            # float32 precision; Newton-Cholesky warns and falls back to lbfgs after its first step (measured on
            # 10,000 devices x 180 days: same f1 to 5 decimals as float64). lbfgs from the start says so.
            params["solver"] = "lbfgs"
        return LogisticRegression(**params), params
    raise InvalidInput(f"unknown classifier {name!r}; choose one of {', '.join(CLASSIFIERS)}")


def failure_pipeline(name: str, seed: int = 42, lean: bool = False) -> Pipeline:
    """An unfitted Pipeline(StandardScaler, classifier) for a classifier name (`lean`: for float32 features)."""
    estimator, _ = _classifier(name, seed, lean)
    return Pipeline([("scaler", StandardScaler()), ("classifier", estimator)])


def anomaly_pipeline(seed: int = 42) -> Pipeline:
    """An unfitted Pipeline(StandardScaler, IsolationForest)."""
    return Pipeline([("scaler", StandardScaler()), ("isolation_forest", IsolationForest(random_state=seed, n_jobs=1))])


@dataclass
class Candidate:
    """A trained but not yet promoted model pair with everything the gate and the registry need."""

    failure_model: Pipeline
    anomaly_model: Pipeline
    feature_columns: list[str]
    metrics: dict[str, Any]
    holdout_X: np.ndarray
    holdout_y: np.ndarray
    training_data_stats: dict[str, Any]
    training_parameters: dict[str, Any]
    data_source: str
    training_duration_seconds: float
    latency: dict[str, float]
    trained_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def metadata_fields(self) -> dict[str, Any]:
        """The model_metadata.json keys this candidate owns."""
        performance = {k: self.metrics[k] for k in PERFORMANCE_METRICS}
        return {
            "training_date": _iso(self.trained_at),
            "model_performance": {**performance, "evaluated_at": self.metrics["evaluated_at"]},
            "training_data_stats": dict(self.training_data_stats),
            "data_source": self.data_source,
            "training_duration_seconds": self.training_duration_seconds,
            "feature_columns": list(self.feature_columns),
            "training_parameters": dict(self.training_parameters),
            "scikit_learn_version": sklearn.__version__,
            "confusion_matrix": [list(row) for row in self.metrics["confusion_matrix"]],
            "feature_importances": dict(self.metrics["feature_importances"]),
            "prediction_latency_ms": dict(self.latency),
        }


def _iso(moment: dt.datetime) -> str:
    """ISO 8601 UTC with a 'Z' suffix."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def load_training_data(
    db: Database | None,
    *,
    days_back: int,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    allow_sample_data: bool = False,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    end: dt.datetime | None = None,
) -> tuple[FeatureSet, str]:
    """Labelled features from the database, or from a simulated sample fleet.

    The sample fleet is used when allowed and the database has too few.
    """
    found = 0
    if db is not None:
        # Device-days from the aggregate table (refreshed first), not every reading: see core.daily_aggregates.
        features = daily_training_features(db, days_back=days_back, end=end, horizon_days=horizon_days)
        if len(features) >= min_samples:
            return features, "database"
        found = len(features)
    if allow_sample_data:
        metrics, failures, _ = simulate_frames(**SAMPLE_FLEET, end=end)
        return build_features(metrics, failures, horizon_days=horizon_days), "sample"
    raise DataError(
        f"not enough telemetry to train: found {found} labelled samples in the last {days_back} days, "
        f"need at least {min_samples}; seed telemetry with `python scripts/seed_telemetry.py` "
        "or pass --allow-sample-data"
    )


@dataclass(frozen=True)
class TimeSplit:
    """Row masks of a time-aware split and where it cuts."""

    train: np.ndarray
    holdout: np.ndarray
    train_end: pd.Timestamp
    holdout_start: pd.Timestamp
    embargo_days: int


def time_split(days: pd.Series, *, holdout_fraction: float = HOLDOUT_FRACTION, embargo_days: int = 0) -> TimeSplit:
    """Hold out the latest days; drop the embargo_days before them from training so no label looks into the holdout."""
    unique = np.sort(days.unique())
    if len(unique) < 2:
        raise DataError(f"need telemetry on at least 2 labelled days to split train and holdout, found {len(unique)}")
    n_holdout = min(len(unique) - 1, max(1, round(len(unique) * holdout_fraction)))
    holdout_start = pd.Timestamp(unique[-n_holdout])
    train_end = holdout_start - pd.Timedelta(days=embargo_days)
    train = (days < train_end).to_numpy()
    if not train.any():
        raise DataError(
            f"only {len(unique)} labelled days: too few to keep {embargo_days} days between training and holdout; "
            "load more days (days_back)"
        )
    return TimeSplit(train, (days >= holdout_start).to_numpy(), train_end, holdout_start, embargo_days)


def _rows(X: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """X's rows under the mask: a view when they form one run (a time split of day-sorted rows), else a copy."""
    picked = np.flatnonzero(mask)
    if len(picked) and picked[-1] - picked[0] + 1 == len(picked):
        return X[picked[0] : picked[-1] + 1]
    return X[mask]


def _require_both_classes(y: np.ndarray, part: str) -> None:
    """DataError when a part of the split holds a single class."""
    classes = np.unique(y)
    if len(classes) < 2:
        only = "failures" if classes[0] == 1 else "no failures"
        raise DataError(
            f"the {part} part has {len(y)} samples with {only} only (a single class); "
            "train on more days of telemetry (days_back) or a fleet with recorded failures"
        )


def _latency(model: Pipeline, X: np.ndarray, seed: int) -> dict[str, float]:
    """Single-row predict_proba p50/p99 over LATENCY_CALLS calls and the median of 3 BATCH_ROWS-row batches, in ms.

    Measured as core.predict serves the model: with one OpenMP thread.
    """
    with threadpool_limits(1, user_api="openmp"):
        return _timed_predictions(model, X, seed)


def _timed_predictions(model: Pipeline, X: np.ndarray, seed: int) -> dict[str, float]:
    """The timings behind _latency."""
    row = np.ascontiguousarray(X[:1])
    for _ in range(10):
        model.predict_proba(row)
    times = np.empty(LATENCY_CALLS)
    for i in range(LATENCY_CALLS):
        started = time.perf_counter()
        model.predict_proba(row)
        times[i] = time.perf_counter() - started
    batch = X[np.random.default_rng(seed).integers(0, len(X), BATCH_ROWS)]
    batches = []
    for _ in range(3):
        started = time.perf_counter()
        model.predict_proba(batch)
        batches.append(time.perf_counter() - started)
    return {
        "p50_ms": round(float(np.percentile(times, 50)) * 1000, 4),
        "p99_ms": round(float(np.percentile(times, 99)) * 1000, 4),
        "batch_10k_ms": round(float(np.median(batches)) * 1000, 3),
    }


def _importances(model: Pipeline, X: np.ndarray, y: np.ndarray, columns: list[str], seed: int) -> dict[str, float]:
    """Feature importances summing to 1, largest first: the model's own, |coef| or a small permutation test."""
    estimator = model[-1]
    if hasattr(estimator, "feature_importances_"):
        raw = np.asarray(estimator.feature_importances_, dtype=float)
    elif hasattr(estimator, "coef_"):
        raw = np.abs(np.asarray(estimator.coef_, dtype=float)).ravel()
    else:
        rng = np.random.default_rng(seed)
        # Keep both classes in the subsample so roc_auc is defined, and the cost bounded.
        picks = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: IMPORTANCE_ROWS // 2] for c in (0, 1)])
        # One OpenMP thread: many tiny predictions are slower with a thread team, badly so on a busy host.
        with threadpool_limits(1, user_api="openmp"):
            result = permutation_importance(
                model, X[picks], y[picks], scoring="roc_auc", n_repeats=1, random_state=seed
            )
        raw = np.clip(result.importances_mean, 0.0, None)
    total = raw.sum()
    share = raw / total if total > 0 else np.full(len(raw), 1.0 / len(raw))
    order = np.argsort(-share, kind="stable")
    return {columns[i]: round(float(share[i]), 6) for i in order}


def _evaluate(model: Pipeline, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Holdout classification metrics."""
    probabilities = model.predict_proba(X)
    proba = probabilities[:, 1]
    # What predict() returns, without a second pass over the holdout.
    predicted = model.classes_[np.argmax(probabilities, axis=1)]
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1_score": float(f1_score(y, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, proba)),
        "confusion_matrix": confusion_matrix(y, predicted, labels=[0, 1]).astype(int).tolist(),
    }


def _data_stats(features: FeatureSet, split: TimeSplit, days_back: int | None) -> dict[str, Any]:
    """training_data_stats for the metadata."""
    return {
        "sample_count": int(len(features)),
        "unique_devices": int(features.device_id.nunique()),
        "positive_rate": round(float(features.y.mean()), 6),
        "date_range": {
            "start": _iso(features.day.min().to_pydatetime()),
            "end": _iso(features.day.max().to_pydatetime()),
        },
        "days_back": days_back,
        "train_samples": int(split.train.sum()),
        "holdout_samples": int(split.holdout.sum()),
    }


def _parameters(classifier: str, seed: int, features: FeatureSet, split: TimeSplit, lean: bool) -> dict[str, Any]:
    """training_parameters for the metadata: the classifier's key hyper-parameters and how the data was split."""
    _, params = _classifier(classifier, seed, lean)
    return {
        "classifier": classifier,
        **params,
        **({"features_dtype": "float32"} if lean else {}),
        "seed": seed,
        "horizon_days": features.horizon_days,
        "window_days": features.window_days,
        "split": {
            "method": "time",
            "holdout_fraction": HOLDOUT_FRACTION,
            "embargo_days": split.embargo_days,
            "train_end": _iso(split.train_end.to_pydatetime()),
            "holdout_start": _iso(split.holdout_start.to_pydatetime()),
        },
    }


def _notify(progress: Progress | None, stage: str, fraction: float, message: str) -> None:
    """Report progress when someone listens."""
    if progress is not None:
        progress(stage, fraction, message)


def _features_of(
    data: Telemetry | FeatureSet, horizon_days: int, progress: Progress | None
) -> tuple[FeatureSet, int | None]:
    """The FeatureSet to train on, and days_back when known."""
    if isinstance(data, Telemetry):
        _notify(progress, "features", 0.15, f"building features from {len(data.metrics_long):,} metric rows")
        return build_features(data.metrics_long, data.failures, horizon_days=horizon_days), data.days_back
    if isinstance(data, FeatureSet):
        if data.horizon_days != horizon_days:
            raise InvalidInput(f"the feature set was built with horizon_days={data.horizon_days}, not {horizon_days}")
        return data, None
    raise InvalidInput(f"train_candidate needs Telemetry or a FeatureSet, got {type(data).__name__}")


def train_candidate(
    data: Telemetry | FeatureSet,
    *,
    classifier: str = DEFAULT_CLASSIFIER,
    seed: int = 42,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    progress: Progress | None = None,
    data_source: str = "database",
    days_back: int | None = None,
) -> Candidate:
    """Fit the failure and anomaly models on the earlier days and measure them on the latest days."""
    started = time.perf_counter()
    _classifier(classifier, seed)
    _notify(progress, "loading", 0.0, "preparing training data")
    features, known_days_back = _features_of(data, horizon_days, progress)
    days_back = days_back if days_back is not None else known_days_back
    _notify(
        progress, "features", 0.3, f"{len(features):,} labelled samples from {features.device_id.nunique()} devices"
    )
    if len(features) == 0:
        raise DataError("no labelled samples to train on; seed telemetry with `python scripts/seed_telemetry.py`")
    split = time_split(features.day, embargo_days=horizon_days)
    X = features.X.to_numpy()
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    lean = X.dtype == np.float32  # a large set: see core.features.FLOAT32_FEATURES_BYTES
    y = features.y.to_numpy(dtype=np.int64)
    X_train, y_train, X_hold, y_hold = _rows(X, split.train), y[split.train], _rows(X, split.holdout), y[split.holdout]
    _require_both_classes(y_train, "training")
    _require_both_classes(y_hold, "holdout")

    _notify(progress, "fitting", 0.4, f"fitting {classifier} on {len(y_train):,} samples")
    # One BLAS thread: the products here have 66 columns; on a busy host a BLAS thread team spins and made the
    # logistic fit of 121k samples 20x slower (measured: benchmarks/bench_training.py --scaling).
    with threadpool_limits(1, user_api="blas"):
        failure_model = failure_pipeline(classifier, seed, lean).fit(X_train, y_train)
        _notify(progress, "fitting", 0.7, "fitting the anomaly model")
        anomaly_model = anomaly_pipeline(seed).fit(X_train[y_train == 0])

    _notify(progress, "evaluating", 0.8, f"scoring {len(y_hold):,} holdout samples")
    columns = list(features.X.columns)
    metrics = _evaluate(failure_model, X_hold, y_hold)
    metrics["feature_importances"] = _importances(failure_model, X_hold, y_hold, columns, seed)
    latency = _latency(failure_model, X_hold, seed)
    metrics["prediction_latency_ms"] = latency
    metrics["evaluated_at"] = _iso(dt.datetime.now(dt.UTC))
    duration = round(time.perf_counter() - started, 3)
    _notify(progress, "evaluating", 1.0, f"f1 {metrics['f1_score']:.3f}, accuracy {metrics['accuracy']:.3f}")
    return Candidate(
        failure_model=failure_model,
        anomaly_model=anomaly_model,
        feature_columns=columns,
        metrics=metrics,
        holdout_X=X_hold,
        holdout_y=y_hold,
        training_data_stats=_data_stats(features, split, days_back),
        training_parameters=_parameters(classifier, seed, features, split, lean),
        data_source=data_source,
        training_duration_seconds=duration,
        latency=latency,
    )
