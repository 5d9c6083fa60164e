"""Training runs and registry events in the database: the history that survives backup clean-up."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.db import Database, RegistryEvent, RegistryHold, TrainingRun, utcnow
from core.domain import EventRecord, Hold, RunRecord

log = logging.getLogger(__name__)

MAX_LOG_LINES = 200
# Called (without arguments, after the commit) whenever this process records an event: wakes the notifier.
_listeners: list[Callable[[], None]] = []


def on_event(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` after every event this process records; returns what removes it again."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def announce() -> None:
    """Tell the listeners (the notifier) that this process recorded an event; call it after the commit."""
    for listener in list(_listeners):
        try:
            listener()
        except Exception:  # a listener never fails the write it follows
            log.exception("history: an event listener failed")


# A run that ended in one of these trained a model that passed the gate.
SUCCESSFUL_RUN_STATUSES: tuple[str, ...] = ("promoted", "candidate")


@dataclass(frozen=True)
class RunSummary:
    """How many training runs ended in each status, and when the newest successful one finished."""

    counts: dict[str, int]
    last_success_at: dt.datetime | None


def _clean(text: str | None, limit: int | None) -> str | None:
    """Text as every backend stores it: no NUL characters, at most `limit` characters (its column's size)."""
    if text is None:
        return None
    text = str(text).replace("\x00", "")
    return text[:limit] if limit else text


def _run_record(row: TrainingRun) -> RunRecord:
    return RunRecord(
        id=row.id,
        status=row.status,
        trigger=row.trigger,
        actor=row.actor,
        version=row.version,
        stage=row.stage,
        progress=row.progress or 0.0,
        params=dict(row.params or {}),
        metrics=row.metrics,
        gate=row.gate,
        data_stats=row.data_stats,
        log=tuple(row.log or ()),
        duration_seconds=row.duration_seconds,
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
        model_metadata=row.model_metadata,
    )


def _event_record(row: RegistryEvent) -> EventRecord:
    return EventRecord(
        id=row.id,
        kind=row.kind,
        actor=row.actor,
        at=row.at,
        from_version=row.from_version,
        to_version=row.to_version,
        reason=row.reason,
        details=dict(row.details or {}),
    )


class History:
    """Reads and writes training_runs and registry_events."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # training runs
    def start_run(self, *, trigger: str, actor: str, params: dict[str, Any], run_id: str | None = None) -> str:
        run_id = run_id or uuid.uuid4().hex
        with self.db.session() as s:
            s.add(
                TrainingRun(
                    id=run_id,
                    status="running",
                    trigger=_clean(trigger, 32) or "unknown",
                    actor=_clean(actor, 128) or "unknown",
                    stage="queued",
                    progress=0.0,
                    params=params,
                    log=[],
                    started_at=utcnow(),
                )
            )
        return run_id

    def update_run(self, run_id: str, *, stage: str, progress: float, message: str | None = None) -> None:
        with self.db.session() as s:
            row = s.get(TrainingRun, run_id)
            if row is None:
                return
            row.stage = stage
            row.progress = float(progress)
            if message:
                line = {"at": utcnow().isoformat(timespec="seconds"), "stage": stage, "message": _clean(message, 2000)}
                row.log = (list(row.log or []) + [line])[-MAX_LOG_LINES:]

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        version: str | None = None,
        metrics: dict[str, Any] | None = None,
        gate: dict[str, Any] | None = None,
        data_stats: dict[str, Any] | None = None,
        model_metadata: dict[str, Any] | None = None,
        duration_seconds: float | None = None,
        error: str | None = None,
        message: str | None = None,
    ) -> None:
        with self.db.session() as s:
            row = s.get(TrainingRun, run_id)
            if row is None:
                return
            row.status = status
            row.stage = "done"
            row.progress = 1.0
            row.version = version
            row.metrics = metrics
            row.gate = gate
            row.data_stats = data_stats
            row.model_metadata = model_metadata
            row.duration_seconds = duration_seconds
            row.error = _clean(error, None)
            row.finished_at = utcnow()
            if message:
                line = {"at": utcnow().isoformat(timespec="seconds"), "stage": "done", "message": _clean(message, 2000)}
                row.log = (list(row.log or []) + [line])[-MAX_LOG_LINES:]
            # A rejection is an event too (the outbox notifies from events), recorded with the run: both or neither.
            if status == "rejected":
                s.add(_reject_event(row, message))
        if status == "rejected":
            announce()

    def record_skipped(self, *, trigger: str, actor: str, params: dict[str, Any], reason: str) -> str:
        run_id = self.start_run(trigger=trigger, actor=actor, params=params)
        self.finish_run(run_id, status="skipped", duration_seconds=0.0, error=None, message=reason)
        return run_id

    def mark_abandoned(self, older_than: dt.datetime, reason: str) -> int:
        """Runs left 'running' by a process that died are closed as failed."""
        with self.db.session() as s:
            result = s.execute(
                update(TrainingRun)
                .where(TrainingRun.status == "running", TrainingRun.started_at < older_than)
                .values(status="failed", error=reason, stage="done", finished_at=utcnow())
            )
            return int(result.rowcount or 0)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self.db.session() as s:
            row = s.get(TrainingRun, run_id)
            return _run_record(row) if row else None

    def runs(
        self, *, limit: int = 100, statuses: Sequence[str] | None = None, triggers: Sequence[str] | None = None
    ) -> list[RunRecord]:
        stmt = select(TrainingRun).order_by(TrainingRun.started_at.desc()).limit(limit)
        if statuses:
            stmt = stmt.where(TrainingRun.status.in_(list(statuses)))
        if triggers:
            stmt = stmt.where(TrainingRun.trigger.in_(list(triggers)))
        with self.db.session() as s:
            return [_run_record(r) for r in s.scalars(stmt)]

    def run_summary(self) -> RunSummary:
        """Runs per status and the newest successful finish, in two small queries (runs by every process count)."""
        runs = TrainingRun.__table__.c
        with self.db.session() as s:
            counts = {str(k): int(n) for k, n in s.execute(select(runs.status, func.count()).group_by(runs.status))}
            last = s.scalar(
                select(func.max(TrainingRun.finished_at)).where(TrainingRun.status.in_(SUCCESSFUL_RUN_STATUSES))
            )
        return RunSummary(counts, last)

    def first_run_at(self) -> dt.datetime | None:
        """When the oldest recorded training run started (of any trigger), or None before the first."""
        with self.db.session() as s:
            return s.scalar(select(func.min(TrainingRun.started_at)))

    # registry events
    def record_event(
        self,
        kind: str,
        *,
        actor: str,
        from_version: str | None = None,
        to_version: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        at: dt.datetime | None = None,
    ) -> EventRecord:
        with self.db.session() as s:
            row = event_row(
                kind,
                actor=actor,
                from_version=from_version,
                to_version=to_version,
                reason=reason,
                details=details,
                at=at,
            )
            s.add(row)
            # A hold placed or released by a change is recorded with its event, in one transaction: both or neither.
            extra = details or {}
            if extra.get("release_hold") or (kind == "hold" and extra.get("action") == "released"):
                _release_holds(s, actor, reason, row.at)
            if to_version and (extra.get("hold") or (kind == "hold" and extra.get("action") == "placed")):
                _place_hold(s, to_version, actor, reason, row.at)
            s.flush()
            record = _event_record(row)
        announce()
        return record

    def events(
        self,
        *,
        limit: int = 500,
        kinds: Iterable[str] | None = None,
        actor: str | None = None,
        since: dt.datetime | None = None,
        ascending: bool = False,
    ) -> list[EventRecord]:
        order = RegistryEvent.at.asc() if ascending else RegistryEvent.at.desc()
        stmt = (
            select(RegistryEvent)
            .order_by(order, RegistryEvent.id.asc() if ascending else RegistryEvent.id.desc())
            .limit(limit)
        )
        kinds = list(kinds or [])
        if kinds:
            stmt = stmt.where(RegistryEvent.kind.in_(kinds))
        if actor:
            stmt = stmt.where(RegistryEvent.actor == actor)
        if since:
            stmt = stmt.where(RegistryEvent.at >= since)
        with self.db.session() as s:
            return [_event_record(r) for r in s.scalars(stmt)]

    def versions_seen(self) -> set[str]:
        """Versions the registry itself promoted or restored (a version a hand-made change showed is not one)."""
        ours = RegistryEvent.kind.in_(["promote", "restore"])
        with self.db.session() as s:
            runs = set(s.scalars(select(TrainingRun.version).where(TrainingRun.version.is_not(None))))
            to_v = set(s.scalars(select(RegistryEvent.to_version).where(ours, RegistryEvent.to_version.is_not(None))))
            from_v = set(
                s.scalars(select(RegistryEvent.from_version).where(ours, RegistryEvent.from_version.is_not(None)))
            )
        return {v for v in runs | to_v | from_v if v}

    def has_operation(self, op_id: str, kind: str) -> bool:
        """Whether the event of this registry operation (by its journal's op_id) is recorded already."""
        recent = self.events(kinds=[kind], limit=200)
        return any((e.details or {}).get("op_id") == op_id for e in recent)

    def ping(self) -> None:
        """Unavailable unless the database answers now (checked before a change is applied)."""
        with self.db.session() as s:
            s.execute(select(1))

    # holds
    def active_hold(self) -> Hold | None:
        with self.db.session() as s:
            row = s.scalar(
                select(RegistryHold).where(RegistryHold.released_at.is_(None)).order_by(RegistryHold.id.desc()).limit(1)
            )
            return Hold(row.id, row.version, row.placed_by, row.placed_at, row.reason) if row else None

    def place_hold(self, version: str, *, by: str, reason: str | None) -> Hold:
        """Hold `version` (any earlier hold is released: one hold at a time, on the live version)."""
        with self.db.session() as s:
            return _place_hold(s, version, by, reason, utcnow())

    def release_hold(self, *, by: str, reason: str | None) -> Hold | None:
        """Release the active hold; what was released, or None when nothing was held."""
        with self.db.session() as s:
            released = _release_holds(s, by, reason, utcnow())
            return released[-1] if released else None

    def count_events(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(RegistryEvent)) or 0)

    def actors(self) -> list[str]:
        """Everyone who appears in the audit trail, sorted."""
        with self.db.session() as s:
            return sorted(a for a in s.scalars(select(RegistryEvent.actor).distinct()) if a)

    def stamp(self) -> tuple[str, ...]:
        """Changes whenever a run starts or ends or an event is recorded (a cache key, one query)."""
        runs = TrainingRun.__table__.c
        events = RegistryEvent.__table__.c
        stmt = select(
            select(func.max(events.id)).scalar_subquery().label("event"),
            select(func.count()).select_from(RegistryEvent).scalar_subquery().label("events"),
            select(func.max(runs.started_at)).scalar_subquery().label("started"),
            select(func.max(runs.finished_at)).scalar_subquery().label("finished"),
        )
        with self.db.session() as s:
            row = s.execute(stmt).one()
        return tuple(str(x) for x in row)


def _reject_event(run: TrainingRun, message: str | None) -> RegistryEvent:
    """The `reject` event of a run the validation gate rejected: its reason, failed checks and headline metrics."""
    gate = run.gate or {}
    failed = [c.get("name") for c in gate.get("checks") or [] if isinstance(c, dict) and not c.get("passed")]
    metrics = {k: v for k, v in (run.metrics or {}).items() if k in ("accuracy", "precision", "recall", "f1_score")}
    return RegistryEvent(
        kind="reject",
        actor=run.actor,
        at=run.finished_at or utcnow(),
        reason=_clean(gate.get("reason") or message, None),
        details={"run_id": run.id, "trigger": run.trigger, "failed_checks": failed, "metrics": metrics},
    )


def event_row(
    kind: str,
    *,
    actor: str,
    from_version: str | None = None,
    to_version: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> RegistryEvent:
    """An event row to add in the caller's transaction (a change and its audit row: both or neither)."""
    return RegistryEvent(
        kind=kind,
        actor=_clean(actor, 128) or "unknown",
        at=at or utcnow(),
        from_version=_clean(from_version, 32),
        to_version=_clean(to_version, 32),
        reason=_clean(reason, None),
        details=details or {},
    )


def _release_holds(s: Session, by: str, reason: str | None, now: dt.datetime) -> list[Hold]:
    released = []
    for row in s.scalars(select(RegistryHold).where(RegistryHold.released_at.is_(None)).order_by(RegistryHold.id)):
        row.released_by, row.released_at, row.release_reason = _clean(by, 128), now, _clean(reason, None)
        released.append(Hold(row.id, row.version, row.placed_by, row.placed_at, row.reason))
    return released


def _place_hold(s: Session, version: str, by: str, reason: str | None, now: dt.datetime) -> Hold:
    _release_holds(s, by, f"replaced by a hold on {version}", now)
    row = RegistryHold(version=version, placed_by=_clean(by, 128), placed_at=now, reason=_clean(reason, None))
    s.add(row)
    s.flush()
    return Hold(row.id, row.version, row.placed_by, row.placed_at, row.reason)
