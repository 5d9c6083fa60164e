"""One training run end to end: its parameters, lock, load, train, gate, promote, and its row in history."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from core import constants as C
from core.config import Settings
from core.db import Database
from core.errors import Held, IntegrityError, InvalidInput, NotFound, RegistryError, Unchanged
from core.history import History
from core.locking import OperationLock, training_lock
from core.registry import Registry

log = logging.getLogger(__name__)

Progress = Callable[[str, float, str], None]


def parse_days_back(value: object) -> int:
    """days_back as an int in 1..MAX_DAYS_BACK (from an int, or text such as a CLI argument), or InvalidInput."""
    days: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        days = value
    elif isinstance(value, str) and value.strip().lstrip("+").isdigit():
        days = int(value)
    if days is None or not 1 <= days <= C.MAX_DAYS_BACK:
        raise InvalidInput(f"days_back must be a whole number of days between 1 and {C.MAX_DAYS_BACK}, got {value!r}")
    return days


@dataclass(frozen=True)
class TrainingRequest:
    """What to train with, checked once where it enters (CLI, API, dashboard) and passed down as this value."""

    days_back: int = C.DEFAULT_DAYS_BACK
    force: bool = False
    classifier: str = C.DEFAULT_CLASSIFIER
    allow_sample_data: bool = False

    @classmethod
    def parse(
        cls,
        *,
        days_back: object = C.DEFAULT_DAYS_BACK,
        force: bool = False,
        classifier: str | None = None,
        allow_sample_data: bool = False,
        settings: Settings | None = None,
    ) -> TrainingRequest:
        name = classifier or (settings.classifier if settings else C.DEFAULT_CLASSIFIER)
        if name not in C.CLASSIFIERS:
            raise InvalidInput(f"unknown classifier {name!r}; choose one of {', '.join(C.CLASSIFIERS)}")
        return cls(parse_days_back(days_back), bool(force), name, bool(allow_sample_data))

    @property
    def params(self) -> dict[str, Any]:
        """As recorded with the run in history."""
        return {
            "days_back": self.days_back,
            "force": self.force,
            "classifier": self.classifier,
            "allow_sample_data": self.allow_sample_data,
        }

    @property
    def lock_label(self) -> str:
        return f"training (days_back={self.days_back})"


@dataclass(frozen=True)
class TrainOutcome:
    """What a training run ended as."""

    run_id: str | None
    status: str  # promoted | candidate | unchanged | rejected | failed | skipped
    version: str | None
    message: str
    gate: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    duration_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 0 if self.status in ("promoted", "skipped", "candidate", "unchanged") else 1


def training_due(registry: Registry, settings: Settings, now: dt.datetime | None = None) -> tuple[bool, str]:
    """Whether a non-forced run should train: no model, or the model is older than the retraining interval."""
    try:
        current = registry.current()
    except IntegrityError as exc:
        return True, f"current metadata unreadable ({exc.message})"
    if current is None:
        return True, "no current model"
    age = current.age(now)
    interval = dt.timedelta(hours=settings.retrain_interval_hours)
    if age is None or age >= interval:
        return True, "current model is older than the retraining interval"
    hours = age.total_seconds() / 3600
    return False, (
        f"current model {current.version} is {hours:.1f} h old, younger than the "
        f"{settings.retrain_interval_hours:g} h retraining interval"
    )


class Trainer:
    """Runs training for one settings/database/registry triple; the application layer calls it for every interface."""

    def __init__(self, settings: Settings, db: Database, registry: Registry | None = None) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry or Registry.from_settings(settings, db)
        self.history = History(db)
        self.lock: OperationLock = training_lock(settings.models_dir, db.engine)

    def due(self, now: dt.datetime | None = None) -> tuple[bool, str]:
        return training_due(self.registry, self.settings, now)

    def run(
        self,
        request: TrainingRequest,
        *,
        trigger: str = "manual",
        actor: str = "cli",
        progress: Progress | None = None,
        run_id: str | None = None,
        held_lock: ExitStack | None = None,
    ) -> TrainOutcome:
        """Train, gate and (if valid) promote; `held_lock` is a training lock the caller already took."""
        with ExitStack() as stack:
            if held_lock is not None:
                stack.enter_context(held_lock)
            else:
                details = {"trigger": trigger}
                stack.enter_context(self.lock.hold(request.lock_label, actor, timeout=0.5, details=details))
            if not request.force:
                due, why = self.due()
                if not due:
                    if run_id:
                        self.history.finish_run(run_id, status="skipped", duration_seconds=0.0, message=why)
                    else:
                        run_id = self.history.record_skipped(
                            trigger=trigger, actor=actor, params=request.params, reason=why
                        )
                    return TrainOutcome(run_id, "skipped", None, why)
            if run_id is None:
                run_id = self.history.start_run(trigger=trigger, actor=actor, params=request.params)
            return self._train(run_id, request, trigger, actor, progress)

    def _train(
        self, run_id: str, request: TrainingRequest, trigger: str, actor: str, progress: Progress | None
    ) -> TrainOutcome:
        started = time.perf_counter()
        last_write = [0.0]

        run = f"training run {run_id[:8]} ({trigger} by {actor})"

        def report(stage: str, fraction: float, message: str) -> None:
            if progress is not None:
                progress(stage, fraction, message)
            if message:
                log.info("%s: %s: %s", run, stage, message)
            now = time.perf_counter()
            # Stage changes always reach the database; in-stage chatter at most every 0.5 s.
            if message or now - last_write[0] > 0.5:
                last_write[0] = now
                self.history.update_run(run_id, stage=stage, progress=fraction, message=message)

        def finish(status: str, message: str, **fields: Any) -> float:
            duration = time.perf_counter() - started
            self.history.finish_run(run_id, status=status, duration_seconds=duration, message=message, **fields)
            return duration

        try:
            from core.training import load_training_data, train_candidate
            from core.validation import validate_candidate

            report("loading", 0.05, f"loading {request.days_back} days of telemetry")
            features, data_source = load_training_data(
                self.db,
                days_back=request.days_back,
                min_samples=self.settings.thresholds.min_samples,
                allow_sample_data=request.allow_sample_data,
                horizon_days=self.settings.horizon_days,
            )
            report(
                "features", 0.2, f"{len(features.y)} samples, {int(features.y.sum())} positive, source {data_source}"
            )
            candidate = train_candidate(
                features,
                classifier=request.classifier,
                horizon_days=self.settings.horizon_days,
                progress=lambda s, f, m: report(s, 0.2 + 0.6 * f, m),
                data_source=data_source,
                days_back=request.days_back,
            )
            report("validating", 0.85, "running the validation gate")
            current_model, current_columns = self._current_for_gate()
            gate = validate_candidate(candidate, self.settings.thresholds, current_model, current_columns)
            fields = candidate.metadata_fields()
            fields["validation"] = gate.to_dict()
            fields["training_duration_seconds"] = round(time.perf_counter() - started, 3)
            metrics = dict(fields["model_performance"])
            record = {"metrics": metrics, "gate": gate.to_dict(), "data_stats": candidate.training_data_stats}
            failed = [c.name for c in gate.checks if not c.passed]
            if gate.valid:
                log.info("%s: validation passed: %s", run, gate.reason)
            else:
                log.warning(
                    "%s: validation failed (%s): %s; the live model is kept", run, ", ".join(failed), gate.reason
                )
            if not gate.valid:
                duration = finish("rejected", f"rejected: {gate.reason}", model_metadata=fields, **record)
                message = f"candidate rejected by the validation gate: {gate.reason}"
                return TrainOutcome(run_id, "rejected", None, message, gate.to_dict(), metrics, duration)
            report("promoting", 0.95, "backing up the current set and promoting")
            try:
                promoted = self.registry.promote(
                    candidate.failure_model,
                    candidate.anomaly_model,
                    fields,
                    actor=actor,
                    trigger=trigger,
                    run_id=run_id,
                    deadline=time.monotonic() + self.settings.write_deadline_seconds,
                    manual=self.settings.promotion == "manual",
                    unless_identical=True,
                )
            except Unchanged as same:
                message = f"unchanged: {same.message}"
                duration = finish("unchanged", message, model_metadata=fields, **record)
                log.info("%s: %s", run, message)
                return TrainOutcome(run_id, "unchanged", None, message, gate.to_dict(), metrics, duration)
            except Held as held:
                kept = self.registry.keep_candidate(
                    candidate.failure_model,
                    candidate.anomaly_model,
                    fields,
                    actor=actor,
                    trigger=trigger,
                    because=held.message,
                    run_id=run_id,
                )
                message = f"kept as candidate {kept.id}, not promoted: {held.message}"
                duration = finish("candidate", message, model_metadata=fields, **record)
                log.info("%s: %s", run, message)
                return TrainOutcome(run_id, "candidate", None, message, gate.to_dict(), metrics, duration)
            message = f"promoted version {promoted.version}"
            duration = finish("promoted", message, version=promoted.version, model_metadata=promoted.metadata, **record)
            log.info("%s: model version %s promoted in %.1f s", run, promoted.version, duration)
            return TrainOutcome(run_id, "promoted", promoted.version, message, gate.to_dict(), metrics, duration)
        except RegistryError as exc:
            log.error("%s: failed: %s", run, exc.message)
            duration = finish("failed", f"failed: {exc.message}", error=exc.message)
            return TrainOutcome(
                run_id, "failed", None, exc.message, duration_seconds=duration, details={"code": exc.code}
            )
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            log.exception("%s: failed: %s", run, message)
            finish("failed", f"failed: {message}", error=message)
            raise

    def _current_for_gate(self) -> tuple[Any, list[str] | None]:
        """The current failure model for the no-regression check, or (None, None) if there is none usable."""
        try:
            loaded = self.registry.load_models()
        except (NotFound, IntegrityError) as exc:
            log.info("no usable current model for the regression check: %s", exc)
            return None, None
        return loaded.failure_model, list(loaded.metadata.get("feature_columns") or [])
