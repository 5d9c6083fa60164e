"""The validation gate: metric thresholds, sample count, a smoke prediction and no regression."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from core.config import Thresholds
from core.constants import GATED_METRICS
from core.training import Candidate


@dataclass(frozen=True)
class Check:
    """One gate check: what was measured, against what, and whether it passed."""

    name: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The check as plain JSON types."""
        return {
            "name": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "passed": self.passed,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict with every check."""

    valid: bool
    reason: str
    checks: tuple[Check, ...]

    def to_dict(self) -> dict[str, Any]:
        """{"valid", "reason", "checks": [...]} as stored in model_metadata.json."""
        return {"valid": self.valid, "reason": self.reason, "checks": [c.to_dict() for c in self.checks]}

    def check(self, name: str) -> Check:
        """The check of that name."""
        return next(c for c in self.checks if c.name == name)


def _fmt(value: float) -> str:
    """A metric value, short."""
    return f"{round(value, 4):g}"


ALL_PASSED = "All validation checks passed"  # the original service's wording, which its clients match
LABELS = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1_score": "F1 score"}


def _metric_check(name: str, value: float, threshold: float) -> Check:
    """The metric must be strictly greater than its threshold (worded as the original service did)."""
    passed = value > threshold
    where = "above" if passed else "below"
    detail = f"{LABELS.get(name, name)} {value:.3f} {where} threshold {_fmt(threshold)}"
    return Check(name, float(value), float(threshold), passed, detail)


def _sample_check(candidate: Candidate, min_samples: int) -> Check:
    """Enough labelled samples behind the candidate."""
    count = int(candidate.training_data_stats.get("sample_count", 0))
    passed = count >= min_samples
    detail = f"Sample count {count} {'at or above' if passed else 'below'} minimum {min_samples}"
    return Check("sample_count", float(count), float(min_samples), passed, detail)


def _smoke_check(candidate: Candidate) -> Check:
    """Both models answer on one holdout row: a probability in [0, 1] and a finite anomaly score."""
    try:
        row = np.asarray(candidate.holdout_X[:1], dtype=float)
        probability = float(candidate.failure_model.predict_proba(row)[0, 1])
        score = float(candidate.anomaly_model.decision_function(row)[0])
    except Exception as exc:
        return Check("smoke_prediction", None, None, False, f"prediction raised {type(exc).__name__}: {exc}")
    ok_probability = math.isfinite(probability) and 0.0 <= probability <= 1.0
    ok_score = math.isfinite(score)
    detail = f"failure probability {_fmt(probability)}, anomaly score {_fmt(score)}"
    if not ok_probability:
        detail += "; probability is not a finite value in [0, 1]"
    if not ok_score:
        detail += "; anomaly score is not finite"
    return Check("smoke_prediction", probability, None, ok_probability and ok_score, detail)


def _regression_check(
    candidate: Candidate, current_model: Any, current_columns: Sequence[str] | None, tolerance: float
) -> Check:
    """Candidate f1 >= current f1 - tolerance, both scored on the candidate's holdout."""
    candidate_f1 = float(candidate.metrics["f1_score"])
    if current_model is None:
        return Check("no_regression", candidate_f1, None, True, "no current model to compare against")
    if current_columns is None or list(current_columns) != list(candidate.feature_columns):
        return Check("no_regression", candidate_f1, None, True, "feature columns changed; not comparable")
    try:
        predicted = current_model.predict(np.asarray(candidate.holdout_X, dtype=float))
        current_f1 = float(f1_score(candidate.holdout_y, predicted, zero_division=0))
    except Exception as exc:
        detail = f"current model could not be scored ({type(exc).__name__}: {exc})"
        return Check("no_regression", candidate_f1, None, True, detail)
    floor = current_f1 - tolerance
    passed = candidate_f1 >= floor
    detail = (
        f"candidate f1 {_fmt(candidate_f1)} vs current f1 {_fmt(current_f1)} on the same holdout "
        f"(tolerance {_fmt(tolerance)})"
    )
    return Check("no_regression", candidate_f1, floor, passed, detail)


def validate_candidate(
    candidate: Candidate,
    thresholds: Thresholds,
    current_model: Any = None,
    current_feature_columns: Sequence[str] | None = None,
) -> GateResult:
    """Run every gate check; the candidate is valid only when all pass."""
    checks = [_metric_check(m, float(candidate.metrics[m]), float(getattr(thresholds, m))) for m in GATED_METRICS]
    checks.append(_sample_check(candidate, thresholds.min_samples))
    checks.append(_smoke_check(candidate))
    checks.append(_regression_check(candidate, current_model, current_feature_columns, thresholds.regression_tolerance))
    failed = [c for c in checks if not c.passed]
    reason = ALL_PASSED if not failed else "; ".join(_failure_text(c) for c in failed)
    return GateResult(valid=not failed, reason=reason, checks=tuple(checks))


def _failure_text(check: Check) -> str:
    """How a failed check reads in the reason."""
    if check.name == "no_regression":
        return f"No regression check failed: {check.detail}"
    if check.name == "smoke_prediction":
        return f"Prediction test failed: {check.detail}"
    return check.detail
