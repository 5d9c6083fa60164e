"""The validation gate: thresholds, sample count, smoke prediction and the no-regression check."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from core.config import Thresholds
from core.features import FEATURE_COLUMNS, FeatureSet
from core.training import Candidate, failure_pipeline, time_split, train_candidate
from core.validation import GateResult, validate_candidate


@pytest.fixture(scope="module")
def worse(default_features: FeatureSet) -> Candidate:
    """A real candidate trained on shuffled training labels: the same, true holdout, but no signal learnt."""
    split = time_split(default_features.day, embargo_days=7)
    y = default_features.y.to_numpy().copy()
    y[~split.holdout] = np.random.default_rng(0).permutation(y[~split.holdout])
    return train_candidate(dataclasses.replace(default_features, y=pd.Series(y, name="label")))


def test_the_worse_candidate_shares_the_holdout(candidate, worse):
    np.testing.assert_array_equal(worse.holdout_X, candidate.holdout_X)
    np.testing.assert_array_equal(worse.holdout_y, candidate.holdout_y)


def test_a_good_candidate_passes_every_check(candidate):
    gate = validate_candidate(candidate, Thresholds())
    assert gate.valid and gate.reason == "All validation checks passed"  # the original service's words
    assert [c.name for c in gate.checks] == [
        "accuracy",
        "precision",
        "recall",
        "f1_score",
        "sample_count",
        "smoke_prediction",
        "no_regression",
    ]
    assert all(c.passed for c in gate.checks)
    assert gate.check("f1_score").value == candidate.metrics["f1_score"] and gate.check("f1_score").threshold == 0.6
    assert gate.check("no_regression").detail == "no current model to compare against"
    assert 0.0 <= gate.check("smoke_prediction").value <= 1.0


def test_to_dict_is_plain_json(candidate):
    out = validate_candidate(candidate, Thresholds()).to_dict()
    assert set(out) == {"valid", "reason", "checks"}
    assert all(set(c) == {"name", "value", "threshold", "passed", "detail"} for c in out["checks"])
    assert json.loads(json.dumps(out)) == out


def test_a_bad_candidate_fails_and_the_reason_lists_what_failed(worse):
    gate = validate_candidate(worse, Thresholds())
    assert not gate.valid
    f1 = worse.metrics["f1_score"]
    assert f"F1 score {f1:.3f} below threshold 0.6" in gate.reason.split("; ")  # as the original worded it
    assert "below threshold" in gate.reason.lower()
    assert not gate.check("f1_score").passed and not gate.check("precision").passed
    assert gate.check("smoke_prediction").passed  # it predicts; it just predicts badly


def test_metrics_must_be_strictly_greater_than_their_threshold(candidate):
    at_threshold = Thresholds(accuracy=candidate.metrics["accuracy"])
    gate = validate_candidate(candidate, at_threshold)
    value = candidate.metrics["accuracy"]
    assert not gate.valid and gate.reason == f"Accuracy {value:.3f} below threshold {round(value, 4):g}"


def test_too_few_samples_fail_the_gate(candidate):
    count = candidate.training_data_stats["sample_count"]
    gate = validate_candidate(candidate, Thresholds(min_samples=count + 1))
    assert not gate.valid and f"Sample count {count} below minimum {count + 1}" in gate.reason
    assert validate_candidate(candidate, Thresholds(min_samples=count)).valid


def test_a_model_that_cannot_predict_fails_the_smoke_check(candidate):
    unfitted = dataclasses.replace(candidate, failure_model=failure_pipeline("logistic"))
    gate = validate_candidate(unfitted, Thresholds())
    smoke = gate.check("smoke_prediction")
    assert not gate.valid and not smoke.passed and "NotFittedError" in smoke.detail
    assert gate.reason.startswith("Prediction test failed: ")


def test_the_regression_check_catches_a_worse_candidate(candidate, worse):
    gate = validate_candidate(
        worse, Thresholds(accuracy=0, precision=0, recall=0, f1_score=0), candidate.failure_model, list(FEATURE_COLUMNS)
    )
    check = gate.check("no_regression")
    assert not gate.valid and not check.passed
    assert check.value == worse.metrics["f1_score"]
    assert check.threshold == pytest.approx(candidate.metrics["f1_score"] - 0.02)
    assert "current f1" in check.detail and gate.reason.startswith("No regression check failed: ")


def test_the_regression_check_lets_an_equal_or_better_candidate_through(candidate, worse):
    gate = validate_candidate(candidate, Thresholds(), worse.failure_model, list(FEATURE_COLUMNS))
    assert gate.valid and gate.check("no_regression").passed
    same = validate_candidate(candidate, Thresholds(), candidate.failure_model, list(FEATURE_COLUMNS))
    assert same.check("no_regression").threshold == pytest.approx(candidate.metrics["f1_score"] - 0.02)


def test_changed_feature_columns_are_not_compared(candidate, worse):
    gate = validate_candidate(
        worse, Thresholds(accuracy=0, precision=0, recall=0, f1_score=0), candidate.failure_model, ["f_a", "f_b"]
    )
    check = gate.check("no_regression")
    assert check.passed and check.detail == "feature columns changed; not comparable"
    assert isinstance(gate, GateResult) and gate.valid
