"""Training: time-aware split, honest holdout metrics, clear refusals, and metadata the registry can store."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core
from core.config import Settings, Thresholds
from core.errors import DataError, InvalidInput
from core.features import FEATURE_COLUMNS, FeatureSet, build_features, load_telemetry
from core.simulator import simulate_frames
from core.training import (
    CLASSIFIERS,
    DEFAULT_CLASSIFIER,
    load_training_data,
    time_split,
    train_candidate,
)
from tests.core.conftest import FIXED_END, SMALL_FLEET


def test_the_default_fleet_passes_the_default_gate_without_looking_perfect(candidate):
    m = candidate.metrics
    gate = Thresholds()
    assert m["accuracy"] > gate.accuracy and m["precision"] > gate.precision
    assert m["recall"] > gate.recall and m["f1_score"] > gate.f1_score
    # Labels come from failures, not from the features: nowhere near 1.0.
    assert m["accuracy"] < 0.97 and m["f1_score"] < 0.97 and m["roc_auc"] < 0.99
    assert candidate.training_parameters["classifier"] == DEFAULT_CLASSIFIER == Settings().classifier


def test_every_holdout_day_is_later_than_every_training_day(default_features, candidate):
    split = time_split(default_features.day, embargo_days=7)
    train_days, holdout_days = default_features.day[split.train], default_features.day[split.holdout]
    assert train_days.max() < holdout_days.min()
    # The embargo keeps training labels from looking into the holdout period.
    assert holdout_days.min() - train_days.max() >= pd.Timedelta(days=7)
    holdout_share = holdout_days.nunique() / default_features.day.nunique()
    assert 0.15 <= holdout_share <= 0.25
    assert len(candidate.holdout_y) == split.holdout.sum() == candidate.training_data_stats["holdout_samples"]
    assert candidate.training_data_stats["train_samples"] == split.train.sum()
    params = candidate.training_parameters["split"]
    assert params["train_end"] <= params["holdout_start"]


def test_metadata_fields_hold_what_the_registry_stores(candidate):
    fields = candidate.metadata_fields()
    assert set(fields) == {
        "training_date",
        "model_performance",
        "training_data_stats",
        "data_source",
        "training_duration_seconds",
        "feature_columns",
        "training_parameters",
        "scikit_learn_version",
        "confusion_matrix",
        "feature_importances",
        "prediction_latency_ms",
    }
    json.dumps(fields)  # plain JSON types only
    assert dt.datetime.fromisoformat(fields["training_date"]).utcoffset() == dt.timedelta(0)
    perf = fields["model_performance"]
    assert set(perf) == {"accuracy", "precision", "recall", "f1_score", "roc_auc", "evaluated_at"}
    assert all(isinstance(perf[k], float) for k in perf if k != "evaluated_at")
    (tn, fp), (fn, tp) = fields["confusion_matrix"]
    assert tn + fp + fn + tp == len(candidate.holdout_y) and fn + tp == candidate.holdout_y.sum()
    assert perf["precision"] == pytest.approx(tp / (tp + fp)) and perf["recall"] == pytest.approx(tp / (tp + fn))
    stats = fields["training_data_stats"]
    assert stats["sample_count"] == stats["train_samples"] + stats["holdout_samples"] + _embargoed(candidate)
    assert stats["unique_devices"] == 150 and 0 < stats["positive_rate"] < 0.5
    assert stats["date_range"]["start"] < stats["date_range"]["end"]
    assert fields["feature_columns"] == list(FEATURE_COLUMNS)
    assert set(fields["feature_importances"]) == set(FEATURE_COLUMNS)
    assert sum(fields["feature_importances"].values()) == pytest.approx(1.0, abs=1e-4)
    assert set(fields["prediction_latency_ms"]) == {"p50_ms", "p99_ms", "batch_10k_ms"}
    assert 0 < fields["prediction_latency_ms"]["p50_ms"] <= fields["prediction_latency_ms"]["p99_ms"] < 100
    assert fields["training_parameters"]["horizon_days"] == 7 and fields["training_parameters"]["seed"] == 42
    assert fields["data_source"] == "database"


def _embargoed(candidate) -> int:
    """Rows in neither part: the days between training and holdout."""
    stats = candidate.training_data_stats
    return stats["sample_count"] - stats["train_samples"] - stats["holdout_samples"]


def test_the_trained_models_predict_on_single_numpy_rows(candidate):
    row = candidate.holdout_X[:1]
    assert 0.0 <= candidate.failure_model.predict_proba(row)[0, 1] <= 1.0
    assert np.isfinite(candidate.anomaly_model.decision_function(row)).all()
    assert [name for name, _ in candidate.failure_model.steps][0] == "scaler"


def test_an_empty_database_is_refused_with_directions(empty_db):
    with pytest.raises(DataError) as err:
        load_training_data(empty_db, days_back=30, min_samples=100)
    message = err.value.message
    assert "found 0 labelled samples" in message and "need at least 100" in message
    assert "python scripts/seed_telemetry.py" in message and "--allow-sample-data" in message


def test_too_few_samples_are_refused(sim_db):
    features, source = load_training_data(sim_db, days_back=60, min_samples=100, end=FIXED_END)
    assert source == "database" and len(features) >= 100
    with pytest.raises(DataError, match=rf"found {len(features)} labelled samples .* need at least 1000000"):
        load_training_data(sim_db, days_back=60, min_samples=1_000_000, end=FIXED_END)


def test_sample_data_only_when_allowed_and_it_says_so(empty_db, candidate):
    features, source = load_training_data(
        empty_db, days_back=30, min_samples=100, allow_sample_data=True, end=FIXED_END
    )
    assert source == "sample" and len(features) > 1000 and features.y.sum() > 100
    assert dataclasses.replace(candidate, data_source=source).metadata_fields()["data_source"] == "sample"


def test_a_single_class_is_refused_clearly(default_frames):
    metrics, failures, _ = default_frames
    no_failures = build_features(metrics, failures.iloc[0:0])
    with pytest.raises(DataError, match="training part has .* no failures only"):
        train_candidate(no_failures)
    # Failures only in the earliest days: the holdout has none.
    early = failures[failures["failed_at"] < failures["failed_at"].min() + pd.Timedelta(days=30)]
    with pytest.raises(DataError, match="holdout part .* single class"):
        train_candidate(build_features(metrics, early))


def test_unknown_classifier_and_mismatched_horizon_are_invalid(default_features):
    with pytest.raises(InvalidInput, match="unknown classifier 'xgboost'"):
        train_candidate(default_features, classifier="xgboost")
    with pytest.raises(InvalidInput, match="horizon_days=7, not 14"):
        train_candidate(default_features, horizon_days=14)


def test_training_from_database_telemetry_reports_progress(sim_db):
    stages: list[tuple[str, float]] = []
    telemetry = load_telemetry(sim_db, days_back=SMALL_FLEET["days"], end=FIXED_END)
    candidate = train_candidate(telemetry, progress=lambda s, f, m: stages.append((s, f)))
    assert candidate.training_data_stats["days_back"] == SMALL_FLEET["days"]
    assert candidate.training_data_stats["unique_devices"] == SMALL_FLEET["devices"]
    names = [s for s, _ in stages]
    assert [s for i, s in enumerate(names) if s not in names[:i]] == ["loading", "features", "fitting", "evaluating"]
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


@pytest.mark.parametrize("name", [c for c in CLASSIFIERS if c != DEFAULT_CLASSIFIER])
def test_the_other_classifiers_train_too(name):
    metrics, failures, _ = simulate_frames(devices=30, days=45, seed=42, end=FIXED_END)
    candidate = train_candidate(build_features(metrics, failures), classifier=name)
    assert candidate.training_parameters["classifier"] == name
    expected = {"random_forest": "RandomForestClassifier", "hgb": "HistGradientBoostingClassifier"}[name]
    assert type(candidate.failure_model[-1]).__name__ == expected
    assert candidate.metrics["roc_auc"] > 0.6
    assert len(candidate.metrics["feature_importances"]) == len(FEATURE_COLUMNS)


def test_a_feature_set_with_too_few_days_to_split_is_refused():
    one_day = FeatureSet(
        X=pd.DataFrame(np.zeros((4, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS)),
        y=pd.Series([0, 1, 0, 1]),
        day=pd.Series(pd.to_datetime(["2026-01-01"] * 4, utc=True)),
        device_id=pd.Series(["a", "b", "c", "d"]),
    )
    with pytest.raises(DataError, match="at least 2 labelled days"):
        train_candidate(one_day)


def test_core_modules_of_this_work_import_no_interface_libraries():
    root = Path(core.__file__).parent
    for module in ("simulator", "features", "training", "validation"):
        tree = ast.parse((root / f"{module}.py").read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {
            node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not imported & {"streamlit", "fastapi", "argparse"}, module


def test_a_large_feature_matrix_is_float32_and_trains_to_the_same_quality(default_frames, candidate, monkeypatch):
    """Above FLOAT32_FEATURES_BYTES (10,000 devices x 180 days) the features are float32, stay float32 through the fit,
    and the logistic fit uses lbfgs (Newton-Cholesky meets a singular float32 Hessian there and falls back to it with
    a warning); the run's parameters say so. Measured on the default fleet: one holdout sample of 3,351 differs
    (f1 0.7695 vs 0.7688); on 10,000 devices x 180 days f1 agreed to 5 decimals."""
    from core import features as feature_module

    assert feature_module.feature_dtype(100_000) is np.float64  # 1,500 devices x 120 days is ~180,000 rows
    assert feature_module.feature_dtype(1_700_000) is np.float32
    monkeypatch.setattr(feature_module, "FLOAT32_FEATURES_BYTES", 0)
    metrics, failures, _ = default_frames
    lean = build_features(metrics, failures)
    assert (lean.X.dtypes == np.float32).all()
    trained = train_candidate(lean, seed=42)
    assert trained.holdout_X.dtype == np.float32  # no float64 copy of the matrix on the way to the fit
    assert trained.training_parameters["solver"] == "lbfgs"
    assert trained.training_parameters["features_dtype"] == "float32"
    assert "features_dtype" not in candidate.training_parameters
    for key in ("accuracy", "precision", "recall", "f1_score", "roc_auc"):
        assert trained.metrics[key] == pytest.approx(candidate.metrics[key], abs=0.005), key
