"""Online prediction: the current models, reloaded when the registry's files change, applied to one reading."""
from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pandas as pd
from sqlalchemy import String, select, type_coerce

from core import constants as C
from core.db import Database, HealthMetric
from core.errors import IntegrityError
from core.features import DEFAULT_WINDOW_DAYS, FEATURE_COLUMNS, single_row_features, validate_reading
from core.registry import LoadedModels, Registry
from core.storage import sha256_file

NS_PER_DAY = 86_400_000_000_000
# A promotion or restore swaps three files one after another; a load that saw the middle of it is retried.
LOAD_ATTEMPTS = 3
HISTORY_COLUMNS = ["metric_name", "metric_value", "timestamp"]

FileSignature = tuple[tuple[int, int, int] | None, ...]


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


@dataclass(frozen=True)
class _Cached:
    """Loaded models and the file signature they were loaded from."""

    signature: FileSignature
    metadata_sha256: str
    models: LoadedModels
    positive_index: int | None


def risk_level(probability: float) -> str:
    """low / medium / high by the thresholds in core.constants."""
    if probability >= C.RISK_HIGH_PROBABILITY:
        return "high"
    if probability >= C.RISK_MEDIUM_PROBABILITY:
        return "medium"
    return "low"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


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

    # ------------------------------------------------------------ models
    def _signature(self) -> FileSignature:
        """(inode, size, mtime) of every file of the current set: any promote, restore or hand copy changes it."""
        out: list[tuple[int, int, int] | None] = []
        for name in C.SET_FILES:
            try:
                st = os.stat(self.registry.path(name))
            except FileNotFoundError:
                out.append(None)
                continue
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

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
        for attempt in range(LOAD_ATTEMPTS):
            before = self._signature()
            try:
                models = self.registry.load_models()
            except IntegrityError:
                if attempt + 1 < LOAD_ATTEMPTS and self._signature() != before:
                    continue
                raise
            if self._signature() != before and attempt + 1 < LOAD_ATTEMPTS:
                continue
            columns = list(models.metadata.get("feature_columns") or [])
            if columns != list(FEATURE_COLUMNS):
                raise IntegrityError(
                    f"the current model (version {models.version}) was trained on {len(columns)} feature columns that differ "
                    f"from the {len(FEATURE_COLUMNS)} this service computes; retrain with `python scripts/train_models.py --force`"
                )
            classes = list(getattr(models.failure_model, "classes_", []))
            positive = classes.index(1) if 1 in classes else None
            return _Cached(before, sha256_file(self.registry.path(C.METADATA_FILE)), models, positive)
        raise IntegrityError("the model files kept changing while loading them; try again")  # pragma: no cover

    @property
    def loaded_metadata_sha256(self) -> str | None:
        """The sha256 of the metadata file the cached models were loaded with (None before the first load)."""
        return self._cached.metadata_sha256 if self._cached is not None else None

    # ------------------------------------------------------------ history
    def history(self, device_id: str, at: dt.datetime) -> pd.DataFrame | None:
        """The device's readings in the feature window ending at `at` (index on device_id, timestamp); None if it has none."""
        if self.db is None:
            return None
        at_ns = int(pd.Timestamp(at).value)
        window_start_ns = at_ns - at_ns % NS_PER_DAY - (self.window_days - 1) * NS_PER_DAY
        start = dt.datetime.fromtimestamp(window_start_ns / 1e9, dt.timezone.utc)
        m = HealthMetric.__table__.c
        # SQLite stores text: read it raw so the features parse it vectorised.
        ts = type_coerce(m.timestamp, String) if self.db.dialect == "sqlite" else m.timestamp
        stmt = select(m.metric_name, m.metric_value, ts.label("timestamp")).where(
            m.device_id == device_id, m.timestamp >= start, m.timestamp <= at
        )
        with self.db.session() as session:
            rows = session.execute(stmt).all()
        if not rows:
            return None
        return pd.DataFrame(rows, columns=HISTORY_COLUMNS)

    # ------------------------------------------------------------ predict
    def predict(self, device_id: str, metrics: Mapping[str, Any], at: dt.datetime | None = None) -> Prediction:
        """Validate the reading (InvalidInput names the bad metric), build its features with the device's history, score."""
        reading = validate_reading(metrics)
        at = at or self.clock()
        cached = self._current()
        models = cached.models
        history = self.history(device_id, at)
        X = single_row_features(history, reading, at, window_days=self.window_days)
        # A model that never saw a failure has no positive class: its probability of failure is 0.
        probability = 0.0 if cached.positive_index is None else float(models.failure_model.predict_proba(X)[0][cached.positive_index])
        anomaly_score = -float(models.anomaly_model.decision_function(X)[0])
        return Prediction(
            device_id=device_id,
            failure_probability=round(probability, 6),
            risk_level=risk_level(probability),
            anomaly_score=round(anomaly_score, 6),
            is_anomaly=bool(anomaly_score > 0),
            model_version=models.version,
            predicted_at=at,
            history_points=0 if history is None else len(history),
        )

