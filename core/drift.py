"""Data drift between the live version's training window and a recent window: PSI and KS per metric, feature, score."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from core.constants import (
    DEFAULT_DRIFT_WINDOW_DAYS,
    DEFAULT_HORIZON_DAYS,
    DRIFT_BANDS,
    KS_ALPHA,
    KS_MIN_STATISTIC,
    MAX_DRIFT_WINDOW_DAYS,
    METRIC_NAMES,
    PSI_MODERATE,
    PSI_SIGNIFICANT,
)
from core.constants import DRIFT_SCORE_NAME as SCORE_NAME
from core.db import Database, Device, DeviceFailure, HealthMetric
from core.errors import DataError, InvalidInput
from core.features import DEFAULT_WINDOW_DAYS, FEATURE_COLUMNS, build_features, daily_features, load_telemetry

log = logging.getLogger(__name__)

PSI_BINS = 10  # quantile bins of the reference window
PSI_EPSILON = 1e-4  # a bin's share when it is empty, so an empty bin does not make PSI infinite
DRIFT_CACHE_SECONDS = 600  # a report is reused this long for the same live set, window and telemetry
HISTORY_DAYS = 28  # drift over time: one PSI per day over this many recent days
HIST_BINS = 30  # bins of the overlaid distributions
NO_WINDOW = "the live version {version} records no training window (training_data_stats.date_range): retrain to get one"


@dataclass(frozen=True)
class Histogram:
    """Two distributions on shared bins: each bin's share of the reference and of the current sample."""

    edges: tuple[float, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


@dataclass(frozen=True)
class DriftScore:
    """How far one variable's recent distribution moved from its training distribution."""

    name: str
    kind: str  # metric | feature | score
    psi: float
    band: str  # stable | moderate | significant (by PSI)
    ks_statistic: float
    ks_pvalue: float
    reference_count: int
    current_count: int
    reference_median: float
    current_median: float

    @property
    def ks_drift(self) -> bool:
        """KS calls drift: significant (p < KS_ALPHA) and not trivial (statistic >= KS_MIN_STATISTIC)."""
        return self.ks_pvalue < KS_ALPHA and self.ks_statistic >= KS_MIN_STATISTIC


@dataclass(frozen=True)
class DailyDrift:
    """One day's PSI of one raw metric's readings against the training window."""

    day: dt.datetime
    metric: str
    psi: float
    count: int


@dataclass(frozen=True)
class DriftReport:
    """Drift of the 11 metrics, the model's features and its scores, recent window vs the live version's training."""

    version: str
    reference_start: dt.datetime
    reference_end: dt.datetime
    current_start: dt.datetime
    current_end: dt.datetime
    window_days: int
    metrics: tuple[DriftScore, ...]  # most drifted first
    features: tuple[DriftScore, ...]  # most drifted first
    score: DriftScore | None
    over_time: tuple[DailyDrift, ...]
    histograms: Mapping[str, Histogram]  # by metric, feature or SCORE_NAME
    notes: tuple[str, ...]
    computed_at: dt.datetime
    seconds: float

    def counts(self, scores: Sequence[DriftScore]) -> dict[str, int]:
        """How many of these scores fall in each band."""
        return {band: sum(s.band == band for s in scores) for band in DRIFT_BANDS}


# ------------------------------------------------------------------ statistics
def band(psi: float) -> str:
    """stable below 0.1, moderate up to 0.25, significant above."""
    if psi > PSI_SIGNIFICANT:
        return "significant"
    if psi >= PSI_MODERATE:
        return "moderate"
    return "stable"


def _clean(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def bin_edges(reference: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Interior edges at the reference's quantiles; ties (a count that is mostly 0) merge bins instead of emptying."""
    return np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each right-closed bin's share of the values: (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi_from_shares(reference: np.ndarray, current: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index: sum over bins of (current - reference) * ln(current / reference)."""
    r, c = np.maximum(reference, epsilon), np.maximum(current, epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def psi(reference: Any, current: Any, bins: int = PSI_BINS) -> float:
    """PSI of `current` against `reference`, on quantile bins of the reference."""
    ref, cur = _clean(reference), _clean(current)
    if len(ref) == 0 or len(cur) == 0:
        raise DataError("PSI needs values in both windows")
    edges = bin_edges(ref, bins)
    return psi_from_shares(bin_shares(ref, edges), bin_shares(cur, edges))


def ks_test(reference: Any, current: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: (statistic, p-value)."""
    from scipy.stats import ks_2samp

    result = ks_2samp(_clean(reference), _clean(current))
    return float(result.statistic), float(result.pvalue)


def histogram(reference: np.ndarray, current: np.ndarray, bins: int = HIST_BINS) -> Histogram:
    """Shares on shared bins spanning both samples' 0.5-99.5 percentiles (outliers go to the end bins)."""
    both = np.concatenate([reference, current])
    low, high = (float(v) for v in np.quantile(both, [0.005, 0.995]))
    if not high > low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)

    def shares(values: np.ndarray) -> tuple[float, ...]:
        idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
        return tuple((np.bincount(idx, minlength=bins) / max(len(values), 1)).round(6).tolist())

    return Histogram(tuple(float(e) for e in edges), shares(reference), shares(current))


def score(name: str, kind: str, reference: Any, current: Any) -> DriftScore:
    """PSI, its band and KS for one variable."""
    ref, cur = _clean(reference), _clean(current)
    value = psi(ref, cur)
    statistic, pvalue = ks_test(ref, cur)
    return DriftScore(
        name=name,
        kind=kind,
        psi=round(value, 6),
        band=band(value),
        ks_statistic=round(statistic, 6),
        ks_pvalue=pvalue,
        reference_count=len(ref),
        current_count=len(cur),
        reference_median=float(np.median(ref)),
        current_median=float(np.median(cur)),
    )


def ranked(scores: Sequence[DriftScore]) -> tuple[DriftScore, ...]:
    """Most drifted first: by PSI, then by KS statistic."""
    return tuple(sorted(scores, key=lambda s: (-s.psi, -s.ks_statistic, s.name)))


# ------------------------------------------------------------------ windows
def _parse_utc(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def training_window(metadata: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the days the version was trained on, from training_data_stats.date_range (last day included)."""
    stats = metadata.get("training_data_stats")
    date_range = stats.get("date_range") if isinstance(stats, Mapping) else None
    start = _parse_utc(date_range.get("start")) if isinstance(date_range, Mapping) else None
    last = _parse_utc(date_range.get("end")) if isinstance(date_range, Mapping) else None
    if start is None or last is None or last < start:
        raise DataError(NO_WINDOW.format(version=metadata.get("version", "?")))
    return start, last + dt.timedelta(days=1)


def parse_window_days(value: object) -> int:
    """The recent window's length in whole days, 1..MAX_DRIFT_WINDOW_DAYS, or InvalidInput."""
    if isinstance(value, bool):
        value = None
    try:
        days = int(str(value).strip()) if isinstance(value, str) else int(value)  # type: ignore[arg-type]
        ok = not isinstance(value, float) or float(value).is_integer()
    except (TypeError, ValueError, OverflowError):
        days, ok = 0, False
    if not ok or not 1 <= days <= MAX_DRIFT_WINDOW_DAYS:
        raise InvalidInput(
            f"the drift window must be a whole number of days between 1 and {MAX_DRIFT_WINDOW_DAYS}, got {value!r}"
        )
    return days


def data_stamp(db: Database) -> tuple[str, ...]:
    """Changes when telemetry, failures or devices are added or removed (a cache key, one query)."""
    m, f = HealthMetric.__table__.c, DeviceFailure.__table__.c
    stmt = select(
        select(func.max(m.id)).scalar_subquery(),
        select(func.max(m.timestamp)).scalar_subquery(),
        select(func.max(f.id)).scalar_subquery(),
        select(func.count()).select_from(DeviceFailure).scalar_subquery(),
        select(func.count()).select_from(Device).scalar_subquery(),
    )
    with db.engine.connect() as conn:
        row = conn.execute(stmt).one()
    return tuple(str(x) for x in row)


# ------------------------------------------------------------------ the report
def _floor_day(moment: dt.datetime) -> dt.datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _load(db: Database, start: dt.datetime, end: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Readings (at least those with start <= timestamp <= end) and failures up to end."""
    days = max(1, math.ceil((end - start) / dt.timedelta(days=1)))
    telemetry = load_telemetry(db, days_back=days, end=end)
    return telemetry.metrics_long, telemetry.failures


def _between(frame: pd.DataFrame, column: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    values = frame[column]
    return frame[(values >= pd.Timestamp(start)) & (values < pd.Timestamp(end))]


def _readings(metrics_long: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each metric's values."""
    names = metrics_long["metric_name"].astype(str).to_numpy()
    values = metrics_long["metric_value"].to_numpy(dtype=float)
    return {name: values[names == name] for name in METRIC_NAMES}


def _over_time(
    recent: pd.DataFrame, reference: Mapping[str, np.ndarray], start: dt.datetime, end: dt.datetime
) -> list[DailyDrift]:
    """PSI per day and metric for the days in [start, end), each against the reference's bins."""
    frame = _between(recent, "timestamp", start, end)
    if frame.empty:
        return []
    days = frame["timestamp"].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    names = frame["metric_name"].astype(str).to_numpy()
    values = frame["metric_value"].to_numpy(dtype=float)
    out: list[DailyDrift] = []
    for name in METRIC_NAMES:
        ref = reference.get(name)
        mine = names == name
        if ref is None or len(ref) == 0 or not mine.any():
            continue
        edges = bin_edges(ref)
        ref_shares = bin_shares(ref, edges)
        for day in np.unique(days[mine]):
            today = _clean(values[mine & (days == day)])
            if len(today):
                share = psi_from_shares(ref_shares, bin_shares(today, edges))
                moment = pd.Timestamp(day).tz_localize("UTC").to_pydatetime()
                out.append(DailyDrift(moment, name, round(share, 6), len(today)))
    return out


def _scores(kind: str, reference: Mapping[str, np.ndarray], current: Mapping[str, np.ndarray]) -> list[DriftScore]:
    return [
        score(name, kind, reference[name], current[name])
        for name in reference
        if len(_clean(reference[name])) and len(_clean(current.get(name, [])))
    ]


def _probabilities(model: Any, X: pd.DataFrame) -> np.ndarray:
    classes = list(getattr(model, "classes_", []))
    if 1 not in classes:
        return np.zeros(len(X))
    return model.predict_proba(X.to_numpy(dtype=float))[:, classes.index(1)]


@dataclass(frozen=True)
class Windows:
    """The days compared, and the telemetry to load for them (feature warm-up and label horizon included)."""

    reference_start: dt.datetime
    reference_end: dt.datetime
    current_start: dt.datetime
    history_start: dt.datetime
    feature_days: int
    horizon_days: int
    reference_load: tuple[dt.datetime, dt.datetime]
    recent_load: tuple[dt.datetime, dt.datetime]


def windows(
    metadata: Mapping[str, Any], *, window_days: int, now: dt.datetime, history_days: int = HISTORY_DAYS
) -> Windows:
    """The training window (labelled rows, as training saw them, need the horizon after it) and the recent one."""
    ref_start, ref_end = training_window(metadata)
    params = metadata.get("training_parameters")
    params = params if isinstance(params, Mapping) else {}
    feature_days = int(params.get("window_days") or DEFAULT_WINDOW_DAYS)
    horizon = int(params.get("horizon_days") or DEFAULT_HORIZON_DAYS)
    warm_up = dt.timedelta(days=feature_days - 1)
    cur_start = now - dt.timedelta(days=window_days)
    hist_start = _floor_day(now) - dt.timedelta(days=max(history_days, window_days) - 1)
    return Windows(
        reference_start=ref_start,
        reference_end=ref_end,
        current_start=cur_start,
        history_start=hist_start,
        feature_days=feature_days,
        horizon_days=horizon,
        reference_load=(ref_start - warm_up, min(ref_end + dt.timedelta(days=horizon + 1), now)),
        recent_load=(min(cur_start, hist_start) - warm_up, now),
    )


def compute_drift(
    db: Database,
    metadata: Mapping[str, Any],
    failure_model: Any | None,
    *,
    window_days: int = DEFAULT_DRIFT_WINDOW_DAYS,
    now: dt.datetime | None = None,
    history_days: int = HISTORY_DAYS,
) -> DriftReport:
    """Drift of the last `window_days` days against the live version's training window.

    `failure_model` (loaded through the checked loader) scores both windows' feature rows; None skips score drift.
    DataError when the version records no training window or a window holds no telemetry.
    """
    started = time.perf_counter()
    window_days = parse_window_days(window_days)
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    version = str(metadata.get("version", "?"))
    w = windows(metadata, window_days=window_days, now=now, history_days=history_days)
    ref_start, ref_end, cur_start = w.reference_start, w.reference_end, w.current_start
    notes: list[str] = []
    if cur_start < ref_end:
        notes.append(
            f"the last {window_days} days overlap the training window (which ends {ref_end:%Y-%m-%d}): "
            "drift is diluted; it shows fully once the window holds only days after training"
        )

    ref_long, ref_failures = _load(db, *w.reference_load)
    ref_readings = _readings(_between(ref_long, "timestamp", ref_start, ref_end))
    if not any(len(v) for v in ref_readings.values()):
        raise DataError(
            f"no telemetry in the training window of version {version} ({ref_start:%Y-%m-%d} to "
            f"{ref_end - dt.timedelta(days=1):%Y-%m-%d}): it was deleted since; retrain to measure drift against "
            "the data there is now"
        )
    recent_long, _ = _load(db, *w.recent_load)
    cur_readings = _readings(_between(recent_long, "timestamp", cur_start, now + dt.timedelta(microseconds=1)))
    if not any(len(v) for v in cur_readings.values()):
        raise DataError(
            f"no telemetry in the last {window_days} days (since {cur_start:%Y-%m-%d %H:%M} UTC): "
            "nothing to compare with the training window; check that devices are reporting, or widen the window"
        )

    metrics = _scores("metric", ref_readings, cur_readings)
    ref_features = build_features(ref_long, ref_failures, horizon_days=w.horizon_days, window_days=w.feature_days)
    in_window = (ref_features.day >= pd.Timestamp(ref_start)) & (ref_features.day < pd.Timestamp(ref_end))
    ref_X = ref_features.X[in_window.to_numpy()]
    cur_rows = daily_features(recent_long, window_days=w.feature_days)
    cur_X = cur_rows.loc[cur_rows["day"] >= pd.Timestamp(_floor_day(cur_start)), list(FEATURE_COLUMNS)]
    features: list[DriftScore] = []
    score_drift: DriftScore | None = None
    ref_scores = cur_scores = None
    if len(ref_X) and len(cur_X):
        features = _scores(
            "feature",
            {c: ref_X[c].to_numpy() for c in FEATURE_COLUMNS},
            {c: cur_X[c].to_numpy(dtype=float) for c in FEATURE_COLUMNS},
        )
        columns = metadata.get("feature_columns")
        if failure_model is None:
            notes.append("prediction-score drift needs the live model's files, which could not be loaded")
        elif columns is not None and list(columns) != list(FEATURE_COLUMNS):
            notes.append(f"version {version} was trained on other features: retrain to measure its score drift")
        else:
            ref_scores = _probabilities(failure_model, ref_X)
            cur_scores = _probabilities(failure_model, cur_X.astype(float))
            score_drift = score(SCORE_NAME, "score", ref_scores, cur_scores)
    else:
        notes.append(
            "no device reported all 11 metrics on a day of "
            + ("the training window" if not len(ref_X) else f"the last {window_days} days")
            + ": feature and prediction-score drift need complete device-days"
        )

    histograms: dict[str, Histogram] = {}
    for name in METRIC_NAMES:
        if len(ref_readings[name]) and len(cur_readings[name]):
            histograms[name] = histogram(_clean(ref_readings[name]), _clean(cur_readings[name]))
    for s in features:
        histograms[s.name] = histogram(_clean(ref_X[s.name]), _clean(cur_X[s.name].to_numpy(dtype=float)))
    if ref_scores is not None and cur_scores is not None:
        histograms[SCORE_NAME] = histogram(ref_scores, cur_scores)

    report = DriftReport(
        version=version,
        reference_start=ref_start,
        reference_end=ref_end,
        current_start=cur_start,
        current_end=now,
        window_days=window_days,
        metrics=ranked(metrics),
        features=ranked(features),
        score=score_drift,
        over_time=tuple(_over_time(recent_long, ref_readings, w.history_start, now + dt.timedelta(microseconds=1))),
        histograms=histograms,
        notes=tuple(notes),
        computed_at=dt.datetime.now(dt.UTC),
        seconds=round(time.perf_counter() - started, 3),
    )
    counts = report.counts(report.metrics)
    log.info(
        "drift: version %s, training window %s..%s vs the last %d days: metrics %d significant, %d moderate, "
        "%d stable; features %d significant; score %s in %.2f s",
        version,
        f"{ref_start:%Y-%m-%d}",
        f"{ref_end - dt.timedelta(days=1):%Y-%m-%d}",
        window_days,
        counts["significant"],
        counts["moderate"],
        counts["stable"],
        report.counts(report.features)["significant"],
        f"PSI {score_drift.psi:.3f} ({score_drift.band})" if score_drift else "not measured",
        report.seconds,
    )
    return report
