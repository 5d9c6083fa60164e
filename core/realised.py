"""Realised performance: logged predictions joined with the failures that happened, once the horizon has passed."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from core.features import NS_PER_DAY

# Below these, a realised figure says more about chance than about the model: shown as "too few outcomes yet".
MIN_OUTCOMES = 30
MIN_POSITIVES = 3
METRICS: tuple[str, ...] = ("precision", "recall", "f1_score", "roc_auc")


@dataclass(frozen=True)
class Realised:
    """Realised metrics over `outcomes` device-days whose horizon has passed (`positives` of them failed)."""

    outcomes: int
    positives: int
    predicted_positive: int
    precision: float | None
    recall: float | None
    f1_score: float | None
    roc_auc: float | None
    note: str | None  # why a figure is missing or not yet meaningful

    @property
    def enough(self) -> bool:
        return self.outcomes >= MIN_OUTCOMES and self.positives >= MIN_POSITIVES

    def get(self, metric: str) -> float | None:
        return getattr(self, metric) if metric in METRICS else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcomes": self.outcomes,
            "positives": self.positives,
            "predicted_positive": self.predicted_positive,
            "precision": self.precision,
            "recall": self.recall,
            "f1_score": self.f1_score,
            "roc_auc": self.roc_auc,
            "enough_outcomes": self.enough,
            "note": self.note,
        }


@dataclass(frozen=True)
class WeekFigures:
    week: dt.date  # the Monday the week starts on (UTC days)
    realised: Realised
    predictions: int

    def to_dict(self) -> dict[str, Any]:
        return {"week": self.week.isoformat(), "predictions": self.predictions, **self.realised.to_dict()}


@dataclass(frozen=True)
class VersionFigures:
    """One model's realised figures: overall and per week, with how many predictions are still waiting."""

    model_version: str
    role: str  # live | shadow (a candidate, scored but never served)
    predictions: int
    awaiting: int  # logged device-days whose horizon has not passed yet (days a device failed on count in neither)
    first_day: dt.date | None
    last_day: dt.date | None
    total: Realised
    weeks: tuple[WeekFigures, ...]
    holdout: dict[str, float]  # the version's holdout metrics when it was trained ({} for a candidate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "role": self.role,
            "predictions": self.predictions,
            "awaiting_outcome": self.awaiting,
            "first_day": self.first_day.isoformat() if self.first_day else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "realised": self.total.to_dict(),
            "holdout": self.holdout,
            "weeks": [w.to_dict() for w in self.weeks],
        }


@dataclass(frozen=True)
class RealisedReport:
    """Realised performance of every logged version as of a moment, and the rules it was computed by."""

    as_of: dt.datetime
    horizon_days: int
    versions: tuple[VersionFigures, ...]
    live_version: str | None
    seconds: float

    def version(self, name: str) -> VersionFigures | None:
        return next((v for v in self.versions if v.model_version == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "horizon_days": self.horizon_days,
            "min_outcomes": MIN_OUTCOMES,
            "min_positives": MIN_POSITIVES,
            "live_version": self.live_version,
            "label": (
                f"a device-day is positive when device_failures records a failure of the device on one of the "
                f"{self.horizon_days} following days (as in training); its outcome is known once those days passed"
            ),
            "versions": [v.to_dict() for v in self.versions],
        }


@dataclass(frozen=True)
class ShadowFigures:
    """A candidate's realised figures beside the live version's on the same device-days."""

    candidate_id: str
    live_version: str | None
    shared_outcomes: int
    candidate: Realised
    live: Realised | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate_id": self.candidate_id,
            "live_version": self.live_version,
            "shared_outcomes": self.shared_outcomes,
            "candidate": self.candidate.to_dict(),
            "live": self.live.to_dict() if self.live else None,
        }


def horizon_labels(
    device_ids: Sequence[str] | pd.Series,
    days: pd.Series,
    failures: pd.DataFrame,
    horizon_days: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(label, usable) per (device, day), by the rule core.features.build_features trains on.

    label: a failure of the device falls on one of the days day+1 .. day+horizon (UTC calendar days).
    usable: the device did not fail on the day itself (training drops those rows).
    """
    day_idx = np.asarray(days.to_numpy(dtype="datetime64[ns]")).view(np.int64) // NS_PER_DAY
    if failures is None or len(failures) == 0:
        return np.zeros(len(day_idx), dtype=bool), np.ones(len(day_idx), dtype=bool)
    stamps = pd.to_datetime(failures["failed_at"], utc=True, format="ISO8601")
    fail_day = np.asarray(stamps.to_numpy(dtype="datetime64[ns]")).view(np.int64) // NS_PER_DAY
    codes, uniques = pd.factorize(
        pd.Index(np.asarray(device_ids, dtype=object)).append(
            pd.Index(failures["device_id"].astype(str).to_numpy(dtype=object))
        )
    )
    n = len(day_idx)
    span = int(max(day_idx.max(initial=0), fail_day.max(initial=0))) + horizon_days + 2
    pred_key = codes[:n].astype(np.int64) * span + day_idx
    fail_key = np.sort(codes[n:].astype(np.int64) * span + fail_day)
    after = np.searchsorted(fail_key, pred_key + horizon_days, side="right") - np.searchsorted(
        fail_key, pred_key + 1, side="left"
    )
    same_day = np.searchsorted(fail_key, pred_key, side="right") - np.searchsorted(fail_key, pred_key, side="left")
    return after > 0, same_day == 0


def figures(y: np.ndarray, proba: np.ndarray, decided: np.ndarray) -> Realised:
    """Realised precision, recall, F1 and AUC of decisions and probabilities against outcomes y."""
    n, positives = len(y), int(y.sum())
    flagged = int(decided.sum())
    if n == 0:
        return Realised(0, 0, 0, None, None, None, None, "no outcomes yet: the horizon has not passed")
    hits = int(np.count_nonzero((y == 1) & (decided == 1)))
    precision = hits / flagged if flagged else None
    recall = hits / positives if positives else None
    f1 = 2 * hits / (flagged + positives) if positives or flagged else None
    notes: list[str] = []
    if positives == 0:
        auc = None
        notes.append("no device failed within the horizon: recall and AUC are undefined")
    elif positives == n:
        auc = None
        notes.append("every device failed within the horizon: AUC is undefined with one class")
    else:
        auc = float(roc_auc_score(y, proba))
    if flagged == 0:
        notes.append("no failure was predicted: precision is undefined")
    if n < MIN_OUTCOMES or positives < MIN_POSITIVES:
        notes.insert(
            0, f"too few outcomes yet ({n} outcomes, {positives} failures; needs {MIN_OUTCOMES} and {MIN_POSITIVES})"
        )
    return Realised(n, positives, flagged, precision, recall, f1, auc, "; ".join(notes) or None)


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)


def labelled(
    predictions: pd.DataFrame, failures: pd.DataFrame, *, as_of: dt.datetime, horizon_days: int
) -> pd.DataFrame:
    """One row per (version, device, day) (its latest prediction), with `passed` (the horizon is over), `known`
    (passed, and the device did not fail that day: training drops those days too) and `label` columns."""
    if len(predictions) == 0:
        return predictions.assign(
            known=pd.Series(dtype=bool), passed=pd.Series(dtype=bool), label=pd.Series(dtype=bool)
        )
    # Rows are numbered as they were written: the highest id of a (version, device, day) is its latest prediction.
    latest = predictions.sort_values("id").drop_duplicates(["model_version", "device_id", "day"], keep="last")
    latest = latest.reset_index(drop=True)
    label, usable = horizon_labels(latest["device_id"].astype(str), latest["day"], failures, horizon_days)
    # Known once every day of the horizon has ended (the same rule training applies to the data's end).
    horizon_end = latest["day"] + pd.Timedelta(days=horizon_days + 1)
    passed = (horizon_end <= pd.Timestamp(as_of)).to_numpy()
    return latest.assign(label=label, passed=passed, known=passed & usable)


def build_report(
    predictions: pd.DataFrame,
    failures: pd.DataFrame,
    *,
    as_of: dt.datetime,
    horizon_days: int,
    live_version: str | None,
    holdout: dict[str, dict[str, float]],
    roles: dict[str, str] | None = None,
    seconds_so_far: float = 0.0,
) -> RealisedReport:
    """Realised figures per version (overall and per week), from logged predictions and recorded failures."""
    import time

    started = time.perf_counter()
    rows = labelled(predictions, failures, as_of=as_of, horizon_days=horizon_days)
    roles = roles or {}
    versions: list[VersionFigures] = []
    if len(rows):
        rows = rows.assign(week=(rows["day"] - pd.to_timedelta(rows["day"].dt.day_of_week, unit="D")).dt.date)
        for version, group in rows.groupby("model_version", sort=False, observed=True):
            done = group[group["known"]]
            weeks = tuple(
                WeekFigures(
                    week,
                    _rounded(figures(w["label"].to_numpy(), w["probability"].to_numpy(), w["decision"].to_numpy())),
                    int((group["week"] == week).sum()),
                )
                for week, w in done.groupby("week", sort=True, observed=True)
            )
            total = _rounded(
                figures(done["label"].to_numpy(), done["probability"].to_numpy(), done["decision"].to_numpy())
            )
            role = roles.get(str(version), "live")
            versions.append(
                VersionFigures(
                    str(version),
                    role,
                    len(group),
                    int((~group["passed"]).sum()),
                    group["day"].min().date(),
                    group["day"].max().date(),
                    total,
                    weeks,
                    dict(holdout.get(str(version), {})),
                )
            )
    versions.sort(key=lambda v: (v.model_version != live_version, v.role != "live", v.last_day or dt.date.min))
    return RealisedReport(
        as_of, horizon_days, tuple(versions), live_version, seconds_so_far + time.perf_counter() - started
    )


def shadow_beside_live(
    predictions: pd.DataFrame,
    failures: pd.DataFrame,
    *,
    as_of: dt.datetime,
    horizon_days: int,
    candidate_version: str,
    candidate_id: str,
    live_version: str | None,
) -> ShadowFigures:
    """A candidate's realised figures and the live version's on exactly the device-days both scored."""
    rows = labelled(predictions, failures, as_of=as_of, horizon_days=horizon_days)
    rows = rows[rows["known"]] if len(rows) else rows
    mine = rows[rows["model_version"] == candidate_version] if len(rows) else rows
    theirs = rows[rows["model_version"] == live_version] if len(rows) and live_version else rows.iloc[0:0]
    keys = ["device_id", "day"]
    shared = mine.merge(theirs, on=keys, suffixes=("", "_live")) if len(mine) and len(theirs) else None
    if shared is None or len(shared) == 0:
        return ShadowFigures(
            candidate_id, live_version, 0, _rounded(figures(np.zeros(0), np.zeros(0), np.zeros(0))), None
        )
    y = shared["label"].to_numpy()
    return ShadowFigures(
        candidate_id,
        live_version,
        len(shared),
        _rounded(figures(y, shared["probability"].to_numpy(), shared["decision"].to_numpy())),
        _rounded(figures(y, shared["probability_live"].to_numpy(), shared["decision_live"].to_numpy())),
    )


def _rounded(r: Realised) -> Realised:
    return Realised(
        r.outcomes,
        r.positives,
        r.predicted_positive,
        _round(r.precision),
        _round(r.recall),
        _round(r.f1_score),
        _round(r.roc_auc),
        r.note,
    )


def load_failures(db: Any, *, until: dt.datetime) -> pd.DataFrame:
    """Recorded failures up to `until` (device_id, failed_at)."""
    from sqlalchemy import select

    from core.db import DeviceFailure

    stmt = select(DeviceFailure.device_id, DeviceFailure.failed_at).where(DeviceFailure.failed_at <= until)
    with db.engine.connect() as conn:
        frame = pd.read_sql(stmt, conn)
    frame["failed_at"] = pd.to_datetime(frame["failed_at"], utc=True, format="ISO8601")
    return frame
