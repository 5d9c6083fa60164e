"""Daily fleet scoring: every device-day's features (as training builds them) scored by the live model and, in
the shadow, by every waiting candidate; the scores go to the prediction log."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core import constants as C
from core import prediction_log as P
from core.artifacts import load_checked
from core.db import Database
from core.domain import CandidateSet, artifact_checksums
from core.errors import IntegrityError, InvalidInput
from core.features import DEFAULT_WINDOW_DAYS, FEATURE_COLUMNS, daily_features, load_telemetry
from core.registry import Registry

log = logging.getLogger(__name__)

MAX_SCORING_DAYS = 400
SHADOW_PREFIX = "candidate:"


@dataclass(frozen=True)
class ScoredModel:
    """One model the fleet was scored with: the live version or a shadow candidate."""

    model_version: str
    role: str  # live | shadow
    rows: int
    candidate_id: str | None = None


@dataclass(frozen=True)
class ScoringRun:
    """What one fleet scoring did."""

    days: tuple[dt.date, ...]
    as_of: dt.datetime
    device_days: int
    models: tuple[ScoredModel, ...]
    skipped: tuple[str, ...] = field(default=())  # candidates that could not be scored, and why
    pruned: int = 0
    seconds: float = 0.0
    auto_rollback: dict[str, Any] | None = None  # what automatic rollback decided after this scoring (if on)

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": [d.isoformat() for d in self.days],
            "as_of": self.as_of.isoformat(),
            "device_days": self.device_days,
            "models": [
                {"model_version": m.model_version, "role": m.role, "rows": m.rows, "candidate_id": m.candidate_id}
                for m in self.models
            ],
            "skipped": list(self.skipped),
            "pruned": self.pruned,
            "seconds": round(self.seconds, 3),
            "auto_rollback": self.auto_rollback,
        }


def shadow_version(candidate_id: str) -> str:
    """How a candidate's shadow predictions are named in the log."""
    return f"{SHADOW_PREFIX}{candidate_id}"


def scoring_days(
    *,
    as_of: dt.datetime,
    start: dt.date | None = None,
    end: dt.date | None = None,
    days: int | None = None,
) -> tuple[dt.date, ...]:
    """The calendar days to score: [start, end], or the `days` days up to as_of's, or as_of's day alone."""
    last = as_of.astimezone(dt.UTC).date()
    if days is not None and (start is not None or end is not None):
        raise InvalidInput("give either --days or --from/--to, not both")
    if days is not None:
        if days < 1 or days > MAX_SCORING_DAYS:
            raise InvalidInput(f"--days must be 1 to {MAX_SCORING_DAYS}, got {days}")
        return tuple(last - dt.timedelta(days=i) for i in range(days - 1, -1, -1))
    first, final = start or end or last, end or last
    if final > last:
        raise InvalidInput(f"cannot score {final} as of {last}: that day has not happened yet (pass --as-of)")
    if first > final:
        raise InvalidInput(f"--from {first} is after --to {final}")
    count = (final - first).days + 1
    if count > MAX_SCORING_DAYS:
        raise InvalidInput(f"{count} days asked; score at most {MAX_SCORING_DAYS} at a time")
    return tuple(first + dt.timedelta(days=i) for i in range(count))


def _candidate_model(registry: Registry, chosen: CandidateSet) -> Any:
    """A candidate's failure model, unpickled only after its checksum and provenance were checked."""
    if list(chosen.metadata.get("feature_columns") or []) != list(FEATURE_COLUMNS):
        raise IntegrityError("it was trained on other feature columns than this service computes")
    name = C.FAILURE_MODEL_FILE
    if name not in chosen.files:
        raise IntegrityError(f"{name} is missing")
    expected = (artifact_checksums(chosen.metadata).get(name) or {}).get("sha256")
    return load_checked(name, chosen.files[name].read_bytes(), expected, registry.provenance)


def _probabilities(model: Any, X: np.ndarray) -> np.ndarray:
    """The failure-class probability per row (0 for a model that never saw a failure)."""
    classes = list(getattr(model, "classes_", []))
    if 1 not in classes:
        return np.zeros(len(X))
    return model.predict_proba(X)[:, classes.index(1)]


def score_fleet(
    db: Database,
    registry: Registry,
    days: tuple[dt.date, ...],
    *,
    as_of: dt.datetime,
    keep_days: int,
    window_days: int = DEFAULT_WINDOW_DAYS,
    shadow: bool = True,
) -> ScoringRun:
    """Score every device-day of `days` with the live model and each waiting candidate; log the scores.

    Features come from telemetry up to the end of each day (and never after as_of), exactly as training builds
    them; scoring the same day again replaces its earlier batch rows.
    """
    started = time.perf_counter()
    if not days:
        raise InvalidInput("no day to score")
    as_of = as_of.astimezone(dt.UTC)
    live = registry.load_models()  # checksums and provenance checked
    if list(live.metadata.get("feature_columns") or []) != list(FEATURE_COLUMNS):
        raise IntegrityError(
            f"the live model (version {live.version}) was trained on other feature columns than this service "
            "computes; retrain with `python scripts/train_models.py --force`"
        )
    models: list[tuple[str, str, str | None, Any]] = [(live.version, "live", None, live.failure_model)]
    skipped: list[str] = []
    if shadow:
        for chosen in registry.candidates():
            try:
                models.append((shadow_version(chosen.id), "shadow", chosen.id, _candidate_model(registry, chosen)))
            except IntegrityError as exc:
                skipped.append(f"candidate {chosen.id}: {exc.message}")
                log.warning("fleet scoring: candidate %s not scored: %s", chosen.id, exc.message)

    first = dt.datetime.combine(days[0], dt.time(), tzinfo=dt.UTC)
    end = min(as_of, dt.datetime.combine(days[-1], dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=1, microseconds=-1))
    telemetry = load_telemetry(db, days_back=(end - first).days + window_days + 1, end=end)
    features = daily_features(telemetry.metrics_long, window_days=window_days)
    wanted = pd.DatetimeIndex([pd.Timestamp(d, tz="UTC") for d in days])
    features = features[features["day"].isin(wanted)].reset_index(drop=True)
    X = features[list(FEATURE_COLUMNS)].to_numpy(dtype=float)
    day_ends = features["day"] + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    predicted_at = [min(t.to_pydatetime(), as_of) for t in day_ends]
    day_values = [t.to_pydatetime() for t in features["day"]]
    device_ids = features["device_id"].astype(str).tolist()

    rows: list[dict[str, Any]] = []
    scored: list[ScoredModel] = []
    for version, role, candidate_id, model in models:
        tick = time.perf_counter()
        proba = _probabilities(model, X) if len(X) else np.zeros(0)
        per_row_ms = (time.perf_counter() - tick) * 1000 / max(1, len(X))
        rows.extend(
            P._row(dev, at, version, p, per_row_ms, role=role, source="batch", day=day)
            for dev, at, day, p in zip(device_ids, predicted_at, day_values, proba.tolist(), strict=True)
        )
        scored.append(ScoredModel(version, role, len(X), candidate_id))
    day_keys = [dt.datetime.combine(d, dt.time(), tzinfo=dt.UTC) for d in days]
    P.replace_batch(db, rows, day_keys, [m[0] for m in models])
    pruned = P.prune(db, keep_days, now=as_of)
    run = ScoringRun(days, as_of, len(X), tuple(scored), tuple(skipped), pruned, time.perf_counter() - started)
    log.info(
        "fleet scoring: %d device-days over %d days (%s to %s) scored by version %s and %d shadow candidates in %.1f s",
        run.device_days,
        len(days),
        days[0],
        days[-1],
        live.version,
        len(scored) - 1,
        run.seconds,
    )
    return run
