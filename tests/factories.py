"""Small real models and metadata for registry, API and dashboard tests (no mocks: real sklearn, real joblib)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from core.domain import ModelVersion
from core.registry import Registry

FEATURES = ["f_a", "f_b", "f_c", "f_d"]


def tiny_models(seed: int = 0, n_features: int = len(FEATURES)) -> tuple[Pipeline, Pipeline]:
    """A fitted failure classifier and anomaly detector on a small random problem."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, n_features))
    y = (X[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    failure = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)
    anomaly = Pipeline(
        [("scaler", StandardScaler()), ("iso", IsolationForest(n_estimators=10, random_state=seed))]
    ).fit(X)
    return failure, anomaly


def metadata_fields(
    *,
    accuracy: float = 0.82,
    precision: float = 0.71,
    recall: float = 0.69,
    f1_score: float = 0.70,
    roc_auc: float = 0.88,
    sample_count: int = 1500,
    days_back: int = 180,
    data_source: str = "database",
    trained_at: dt.datetime | None = None,
    feature_columns: list[str] | None = None,
    classifier: str = "logistic",
) -> dict[str, Any]:
    trained_at = trained_at or dt.datetime.now(dt.UTC)
    return {
        "training_date": trained_at.isoformat(),
        "model_performance": {
            "accuracy": accuracy,
            "precision": precision,
            "recall": recall,
            "f1_score": f1_score,
            "roc_auc": roc_auc,
            "evaluated_at": trained_at.isoformat(),
        },
        "training_data_stats": {
            "sample_count": sample_count,
            "unique_devices": 50,
            "positive_rate": 0.12,
            "date_range": {
                "start": (trained_at - dt.timedelta(days=days_back)).date().isoformat(),
                "end": trained_at.date().isoformat(),
            },
            "days_back": days_back,
        },
        "data_source": data_source,
        "training_duration_seconds": 1.5,
        "feature_columns": list(feature_columns or FEATURES),
        "training_parameters": {"classifier": classifier, "seed": 42, "horizon_days": 7},
        "scikit_learn_version": sklearn.__version__,
        "confusion_matrix": [[100, 10], [8, 20]],
        "feature_importances": {f: 1.0 / (i + 1) for i, f in enumerate(feature_columns or FEATURES)},
        "prediction_latency_ms": {"p50_ms": 0.2, "p99_ms": 0.4},
        "validation": {"valid": True, "reason": "All validation checks passed", "checks": []},
    }


def promote(
    registry: Registry, *, seed: int = 0, actor: str = "tester", trigger: str = "test", **fields: Any
) -> ModelVersion:
    """Promote a freshly fitted tiny model set with the given metadata fields."""
    failure, anomaly = tiny_models(seed)
    return registry.promote(failure, anomaly, metadata_fields(**fields), actor=actor, trigger=trigger)
