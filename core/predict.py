"""Online prediction: the current models, reloaded when the registry's files change, applied to one reading."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, String, bindparam, select, type_coerce
from sqlalchemy.exc import OperationalError
from threadpoolctl import ThreadpoolController

from core import constants as C
from core.db import Database, HealthMetric, unavailable
from core.errors import IntegrityError, InvalidInput
from core.fastscore import FastIsolationScorer, FastLogisticScorer
from core.features import DEFAULT_WINDOW_DAYS, FEATURE_COLUMNS, single_row_features, validate_reading
from core.registry import LoadedModels, Registry
from core.storage import FileSignature, set_signature

NS_PER_DAY = 86_400_000_000_000
# A promotion or restore swaps three files one after another; a load that saw the middle of it is retried.
LOAD_RETRY_SECONDS = 5.0
LOAD_RETRY_PAUSE = 0.02
NS_PER_SECOND = 1_000_000_000
# One row through a multi-threaded (OpenMP) model costs more in thread wake-ups than it saves.
_THREADPOOLS = ThreadpoolController()
_METRIC_CODES = {name: i for i, name in enumerate(C.METRIC_NAMES)}
_METRIC_DTYPE = pd.CategoricalDtype(categories=list(C.METRIC_NAMES))


# Advice from the reading itself: (metric, limit, below?, what to say given the value).
ADVICE: tuple[tuple[str, float, bool, str], ...] = (
    ("battery_level", 20.0, True, "Battery at {v:.0f}%: replace or charge the battery"),
    ("error_rate", 0.1, False, "Error rate {v:.0%}: check the device's connectivity and configuration"),
    ("signal_strength", -80.0, True, "Signal at {v:.0f} dBm: move the device closer or add a repeater"),
    ("response_time", 1000.0, False, "Responses take {v:.0f} ms: check the device's load, or plan to replace it"),
    ("connection_drops", 10.0, False, "{v:.0f} connection drops: check the network path to the device"),
    ("temperature", 60.0, False, "Running at {v:.0f} C: check cooling and ventilation"),
)


def recommendations(probability: float, reading: Mapping[str, float], anomaly_score: float) -> tuple[str, ...]:
    """Maintenance advice: from the risk level first, then from each metric past its limit."""
    out: list[str] = []
    level = risk_level(probability)
    if level == "high":
        out.append(f"Schedule maintenance now: a failure within 7 days is likely ({probability:.0%})")
    elif level == "medium":
        out.append(f"Plan an inspection this week: the failure risk is elevated ({probability:.0%})")
    for name, limit, below, text in ADVICE:
        value = reading.get(name)
        if value is not None and (value < limit if below else value > limit):
            out.append(text.format(v=value))
    if anomaly_score > 0:
        out.append(f"Readings are unusual for this fleet (anomaly score {anomaly_score:.2f}): investigate the device")
    return tuple(out) or ("Device operating normally: keep monitoring",)


@dataclass(frozen=True)
class Prediction:
    """The models' answer for one reading of one device."""

    device_id: str
    failure_probability: float
    risk_level: str
    anomaly_score: float
    is_anomaly: bool
    model_version: str
    predicted_at: dt.datetime
    history_points: int
    filled: dict[str, tuple[float, dt.datetime]]  # metrics not sent, taken from the device's latest readings
    recommendations: tuple[str, ...]

    @property
    def failure_probability_percent(self) -> float:
        """The original service's scale: 0 to 100."""
        return round(self.failure_probability * 100, 2)


@dataclass(frozen=True)
class _Cached:
    """Loaded models and the file signature they were loaded from."""

    signature: FileSignature
    models: LoadedModels
    positive_index: int | None
    failure_scorer: FastLogisticScorer | None
    anomaly_scorer: FastIsolationScorer | None


def risk_level(probability: float) -> str:
    """low / medium / high by the thresholds in core.constants."""
    if probability >= C.RISK_HIGH_PROBABILITY:
        return "high"
    if probability >= C.RISK_MEDIUM_PROBABILITY:
        return "medium"
    return "low"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Predictor:
    """Scores readings with the current model set; safe to share across threads."""

    def __init__(
        self,
        registry: Registry,
        db: Database | None,
        *,
        window_days: int = DEFAULT_WINDOW_DAYS,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.registry = registry
        self.db = db
        self.window_days = window_days
        self.clock = clock
        self._cached: _Cached | None = None
        self._lock = threading.Lock()
        self._sqlite = db is not None and db.dialect == "sqlite"
        self._history_stmt = _history_statement(self._sqlite)

    # ------------------------------------------------------------ models
    def _signature(self) -> FileSignature:
        return set_signature(self.registry.models_dir)

    def models(self) -> LoadedModels:
        """The current models, loaded (checksums verified) only when the set's files changed since the last load."""
        return self._current().models

    def _current(self) -> _Cached:
        cached = self._cached
        if cached is not None and cached.signature == self._signature():
            return cached
        with self._lock:
            cached = self._cached
            if cached is None or cached.signature != self._signature():
                cached = self._cached = self._load()
            return cached

    def _load(self) -> _Cached:
        """Load and check the current set.

        Cached under the signature seen before loading, so a change meanwhile reloads.
        """
        deadline = time.monotonic() + LOAD_RETRY_SECONDS
        healed = False
        while True:
            before = self._signature()
            try:
                models = self.registry.load_models()  # checksums match the metadata: the set is consistent
                break
            except IntegrityError:
                if not healed:
                    # A hand-made copy (the guide's `cp` restore) is completed from its backup, if it can be.
                    healed = True
                    self.registry.reconcile()
                    continue
                # A promote or restore swaps the files one by one under the registry lock:
                # wait for the finished set.
                changing = self._signature() != before or self.registry.lock.holder() is not None
                if not changing or time.monotonic() > deadline:
                    raise
                time.sleep(LOAD_RETRY_PAUSE)
        columns = list(models.metadata.get("feature_columns") or [])
        if columns != list(FEATURE_COLUMNS):
            raise IntegrityError(
                f"the current model (version {models.version}) was trained on {len(columns)} "
                f"feature columns that differ from the {len(FEATURE_COLUMNS)} this service computes; "
                "retrain with `python scripts/train_models.py --force`"
            )
        classes = list(getattr(models.failure_model, "classes_", []))
        positive = classes.index(1) if 1 in classes else None
        return _Cached(
            before,
            models,
            positive,
            FastLogisticScorer.for_pipeline(models.failure_model, positive),
            FastIsolationScorer.for_pipeline(models.anomaly_model),
        )

    # ------------------------------------------------------------ history
    def history(self, device_id: str, at: dt.datetime) -> pd.DataFrame | None:
        """The device's readings in the feature window ending at `at`; None if it has none.

        The query uses the index on device_id, timestamp.
        """
        if self.db is None:
            return None
        at_ns = int(pd.Timestamp(at).value)
        window_start_ns = at_ns - at_ns % NS_PER_DAY - (self.window_days - 1) * NS_PER_DAY
        start = dt.datetime.fromtimestamp(window_start_ns // NS_PER_SECOND, dt.UTC)
        try:
            with self.db.engine.connect() as conn:
                rows = conn.execute(self._history_stmt, {"device_id": device_id, "start": start, "end": at}).all()
        except OperationalError as exc:
            raise unavailable(exc, self.db.url) from None
        if not rows:
            return None
        names, values, stamps = zip(*rows, strict=True)
        # Categorical names: the feature code maps 11 categories instead of every row (unknown names become NaN).
        codes = np.fromiter((_METRIC_CODES.get(n, -1) for n in names), dtype=np.int8, count=len(names))
        return pd.DataFrame(
            {
                "metric_name": pd.Categorical.from_codes(codes, dtype=_METRIC_DTYPE),
                "metric_value": np.array(values, dtype=float),
                "timestamp": _utc_index(stamps, self._sqlite),
            }
        )

    # ------------------------------------------------------------ predict
    def predict(self, device_id: str, metrics: Mapping[str, Any], at: dt.datetime | None = None) -> Prediction:
        """Validate the reading, build its features with the device's history, score.

        An invalid reading raises InvalidInput, which names the bad metric.
        """
        given = validate_reading(metrics, partial=True)
        at = at or self.clock()
        cached = self._current()
        models = cached.models
        history = self.history(device_id, at)
        filled = self._fill(given, history)
        reading = {**{name: value for name, (value, _) in filled.items()}, **given}
        X = single_row_features(history, reading, at, window_days=self.window_days)
        if cached.failure_scorer is not None and cached.anomaly_scorer is not None:
            probability = cached.failure_scorer.probability(X)
            anomaly_score = -cached.anomaly_scorer.decision(X)
        else:
            probability, anomaly_score = self._sklearn_scores(cached, X)
        return Prediction(
            device_id=device_id,
            failure_probability=round(probability, 6),
            risk_level=risk_level(probability),
            anomaly_score=round(anomaly_score, 6),
            is_anomaly=bool(anomaly_score > 0),
            model_version=models.version,
            predicted_at=at,
            history_points=0 if history is None else len(history),
            filled=filled,
            recommendations=recommendations(probability, reading, anomaly_score),
        )

    @staticmethod
    def _sklearn_scores(cached: _Cached, X: np.ndarray) -> tuple[float, float]:
        """Failure probability and anomaly score through scikit-learn, for the models the fast scorers do not take."""
        models = cached.models
        with _THREADPOOLS.limit(limits=1, user_api="openmp"):
            # A model that never saw a failure has no positive class: its probability of failure is 0.
            probability = (
                0.0
                if cached.positive_index is None
                else float(models.failure_model.predict_proba(X)[0][cached.positive_index])
            )
            if cached.anomaly_scorer is not None:
                anomaly_score = -cached.anomaly_scorer.decision(X)
            else:
                anomaly_score = -float(models.anomaly_model.decision_function(X)[0])
        return probability, anomaly_score

    def _fill(self, given: Mapping[str, float], history: pd.DataFrame | None) -> dict[str, tuple[float, dt.datetime]]:
        """The device's latest reading of each metric not given; InvalidInput naming those with none."""
        missing = [m for m in C.METRIC_NAMES if m not in given]
        if not missing:
            return {}
        latest: dict[str, tuple[float, dt.datetime]] = {}
        if history is not None and len(history):
            last = history.sort_values("timestamp").groupby("metric_name", observed=True).last()
            latest = {str(n): (float(r.metric_value), r.timestamp.to_pydatetime()) for n, r in last.iterrows()}
        unknown = [m for m in missing if m not in latest]
        if unknown:
            them = "it" if len(unknown) == 1 else "them"
            raise InvalidInput(
                f"no value for {', '.join(unknown)}: not in the request, and the device has no reading of {them} "
                f"in the last {self.window_days} days; send {them} with the request"
            )
        return {m: latest[m] for m in missing}


def _history_statement(sqlite: bool) -> Select:
    """One device's readings between two instants, built once (ix_metrics_device_timestamp serves it)."""
    m = HealthMetric.__table__.c
    # SQLite stores text: read it raw so it is parsed in one vectorised call.
    ts = type_coerce(m.timestamp, String) if sqlite else m.timestamp
    return select(m.metric_name, m.metric_value, ts).where(
        m.device_id == bindparam("device_id"),
        m.timestamp >= bindparam("start", type_=m.timestamp.type),
        m.timestamp <= bindparam("end", type_=m.timestamp.type),
    )


def _utc_index(stamps: tuple[Any, ...], sqlite_text: bool) -> pd.DatetimeIndex:
    """Timestamps as UTC; SQLite's stored text ('YYYY-MM-DD HH:MM:SS.ffffff', UTC) is parsed by numpy in one call."""
    if sqlite_text:
        try:
            return pd.DatetimeIndex(np.array(stamps, dtype="datetime64[us]")).tz_localize("UTC")
        except ValueError:
            pass  # written by another tool in another format: let pandas work it out
    return pd.DatetimeIndex(pd.to_datetime(list(stamps), utc=True, format="ISO8601"))
