"""core.predict and core.fastscore.

The feature window read from the database, and the fast anomaly scorer agreeing with sklearn.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from core import constants as C
from core.db import Device, HealthMetric
from core.fastscore import FastIsolationScorer, FastLogisticScorer
from core.features import FEATURE_COLUMNS, single_row_features
from core.predict import Predictor
from tests.factories import metadata_fields, tiny_models

AT = dt.datetime(2026, 3, 10, 15, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "scaler, forest",
    [
        (StandardScaler(), IsolationForest(n_estimators=40, random_state=1)),
        (StandardScaler(with_mean=False), IsolationForest(n_estimators=25, max_features=0.5, random_state=2)),
        (StandardScaler(), IsolationForest(n_estimators=30, max_samples=7, contamination=0.1, random_state=3)),
    ],
)
def test_fast_scorer_matches_sklearn(scaler, forest):
    rng = np.random.default_rng(0)
    X = rng.normal(loc=5.0, scale=3.0, size=(300, 12))
    model = Pipeline([("scaler", scaler), ("iso", forest)]).fit(X)
    scorer = FastIsolationScorer.for_pipeline(model)
    assert scorer is not None
    probe = rng.normal(loc=5.0, scale=6.0, size=(50, 12))
    expected = model.decision_function(probe)
    assert [scorer.decision(probe[i : i + 1]) for i in range(50)] == pytest.approx(list(expected), abs=1e-12)


def test_fast_scorer_declines_other_models():
    X = np.random.default_rng(0).normal(size=(100, 3))
    y = (X[:, 0] > 0).astype(int)
    assert FastIsolationScorer.for_pipeline(Pipeline([("clf", LogisticRegression())]).fit(X, y)) is None
    assert FastIsolationScorer.for_pipeline(IsolationForest(n_estimators=5).fit(X)) is None


@pytest.mark.parametrize(
    "scaler, classifier, labels",
    [
        (StandardScaler(), LogisticRegression(), (0, 1)),
        (StandardScaler(with_mean=False), LogisticRegression(C=0.1, class_weight="balanced"), (0, 1)),
        (StandardScaler(), LogisticRegression(solver="newton-cholesky", max_iter=200), (1, 2)),  # 1 is classes_[0]
    ],
)
def test_fast_logistic_scorer_matches_sklearn(scaler, classifier, labels):
    rng = np.random.default_rng(4)
    X = rng.normal(loc=3.0, scale=2.0, size=(400, 9))
    y = np.where(X[:, 0] + X[:, 3] + rng.normal(size=400) > 6.0, labels[1], labels[0])
    model = Pipeline([("scaler", scaler), ("clf", classifier)]).fit(X, y)
    positive = list(model.classes_).index(1)
    scorer = FastLogisticScorer.for_pipeline(model, positive)
    assert scorer is not None
    probe = rng.normal(loc=3.0, scale=5.0, size=(60, 9))
    expected = model.predict_proba(probe)[:, positive]
    assert [scorer.probability(probe[i : i + 1]) for i in range(60)] == pytest.approx(list(expected), abs=1e-12)


def test_fast_logistic_scorer_declines_other_models_and_disagreement():
    X = np.random.default_rng(0).normal(size=(150, 3))
    y = (X[:, 0] > 0).astype(int)
    assert FastLogisticScorer.for_pipeline(Pipeline([("clf", LogisticRegression())]).fit(X, y), 1) is None
    forest = Pipeline([("s", StandardScaler()), ("rf", RandomForestClassifier(n_estimators=3))]).fit(X, y)
    assert FastLogisticScorer.for_pipeline(forest, 1) is None
    three = Pipeline([("s", StandardScaler()), ("clf", LogisticRegression())]).fit(X, np.digitize(X[:, 1], [-0.5, 0.5]))
    assert FastLogisticScorer.for_pipeline(three, 1) is None
    model = Pipeline([("s", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)
    assert FastLogisticScorer.for_pipeline(model, None) is None  # no positive class: the probability is 0
    assert FastLogisticScorer.for_pipeline(model, 1) is not None
    # A model that scores differently from its coefficients (here: a subclass) is left to sklearn.
    shifted = Pipeline([("s", StandardScaler()), ("clf", _Shifted())]).fit(X, y)
    assert FastLogisticScorer.for_pipeline(shifted, 1) is None


class _Shifted(LogisticRegression):
    def predict_proba(self, X):
        return np.clip(super().predict_proba(X) + 1e-6, 0, 1)


def _reading(fraction: float) -> dict[str, float]:
    """Every metric at `fraction` of the way through its plausible range."""
    return {m: low + fraction * (high - low) for m, (low, high) in C.METRIC_RANGES.items()}


def test_history_covers_the_window_days_ending_at_the_reading(db, registry):
    with db.session() as s:
        s.add(Device(id="dev", name="dev", device_type="sensor", installed_at=AT - dt.timedelta(days=100)))
        for at, value in (
            (AT, 1.0),  # the same instant: included
            (AT - dt.timedelta(hours=20), 2.0),
            (dt.datetime(2026, 3, 4, 0, 0, tzinfo=dt.UTC), 3.0),  # first day of the 7-day window
            (dt.datetime(2026, 3, 3, 23, 59, tzinfo=dt.UTC), 4.0),  # the day before: excluded
            (AT + dt.timedelta(seconds=1), 5.0),  # after the reading: excluded
        ):
            for name in C.METRIC_NAMES:
                s.add(
                    HealthMetric(device_id="dev", metric_name=name, metric_value=value, metric_unit="u", timestamp=at)
                )
    history = Predictor(registry, db).history("dev", AT)
    assert sorted(set(history["metric_value"])) == [1.0, 2.0, 3.0]
    assert len(history) == 3 * len(C.METRIC_NAMES)
    assert str(history["timestamp"].dt.tz) == "UTC"
    assert Predictor(registry, db).history("someone-else", AT) is None


def test_predictor_scores_with_the_fast_path_and_the_same_numbers(db, registry):
    failure, anomaly = tiny_models(5, n_features=len(FEATURE_COLUMNS))
    registry.promote(failure, anomaly, metadata_fields(feature_columns=list(FEATURE_COLUMNS)), actor="t", trigger="t")
    predictor = Predictor(registry, db)
    out = predictor.predict("dev", _reading(0.3), at=AT)
    assert predictor._current().anomaly_scorer is not None and predictor._current().failure_scorer is not None
    X = single_row_features(None, _reading(0.3), AT)
    assert out.anomaly_score == pytest.approx(-anomaly.decision_function(X)[0], abs=1e-6)
    assert out.is_anomaly == bool(anomaly.predict(X)[0] == -1)
    assert out.failure_probability == pytest.approx(failure.predict_proba(X)[0][1], abs=1e-6)
