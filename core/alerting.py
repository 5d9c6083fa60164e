"""The alert engine: conditions (core/alerts.py) become episodes that fire once, resolve, and can be acknowledged
or silenced; every transition is a History event and one log line."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError as UniqueViolation

from core.alerts import LEVELS, Alert, ErrorRate, drift_alerts, error_rate_alerts, realised_alerts
from core.db import AlertEpisode, Database, utcnow
from core.errors import Conflict, DataError, InvalidInput, NotFound, RegistryError, Unavailable
from core.history import announce, event_row

if TYPE_CHECKING:
    from core.modelops import ModelOps

log = logging.getLogger(__name__)

ENGINE_ACTOR = "alert-engine"  # who History names for fired and resolved alerts
RECENT_RESOLVED = 50  # resolved episodes listed below the open ones
MAX_MESSAGE = 2000
MAX_SILENCE = dt.timedelta(days=30)
STATES: tuple[str, ...] = ("firing", "acknowledged", "silenced", "resolved")


@dataclass(frozen=True)
class AlertRecord:
    """One episode of a rule, as stored; its state depends on the time it is looked at (a silence expires)."""

    id: int
    rule: str
    kind: str
    level: str
    message: str
    fired_at: dt.datetime
    resolved_at: dt.datetime | None
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None
    acknowledge_reason: str | None
    silenced_until: dt.datetime | None
    silenced_by: str | None
    silence_reason: str | None

    def state(self, now: dt.datetime) -> str:
        """resolved, silenced (until a time still ahead), acknowledged, or firing."""
        if self.resolved_at is not None:
            return "resolved"
        if self.silenced_until is not None and self.silenced_until > now:
            return "silenced"
        return "acknowledged" if self.acknowledged_at is not None else "firing"

    def to_dict(self, now: dt.datetime) -> dict[str, Any]:
        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "rule": self.rule,
            "kind": self.kind,
            "level": self.level,
            "state": self.state(now),
            "message": self.message,
            "fired_at": iso(self.fired_at),
            "resolved_at": iso(self.resolved_at),
            "acknowledged": {
                "by": self.acknowledged_by,
                "at": iso(self.acknowledged_at),
                "reason": self.acknowledge_reason,
            }
            if self.acknowledged_at
            else None,
            "silenced": {"by": self.silenced_by, "until": iso(self.silenced_until), "reason": self.silence_reason}
            if self.silenced_until
            else None,
        }


@dataclass(frozen=True)
class AlertBoard:
    """Open episodes (most severe, then newest first) and recently resolved ones, as of `now`."""

    open: tuple[AlertRecord, ...]
    resolved: tuple[AlertRecord, ...]
    now: dt.datetime
    evaluated_at: dt.datetime | None  # this process's last evaluation (None: not evaluated here yet)

    def in_state(self, state: str) -> list[AlertRecord]:
        return [a for a in self.open if a.state(self.now) == state]

    @property
    def firing(self) -> list[AlertRecord]:
        """Open and neither acknowledged nor silenced: what pages someone."""
        return self.in_state("firing")

    def to_dict(self) -> dict[str, Any]:
        counts = {state: len(self.in_state(state)) for state in STATES[:3]}
        return {
            "firing": counts["firing"],
            "counts": counts,
            "alerts": [a.to_dict(self.now) for a in self.open],
            "recent": [a.to_dict(self.now) for a in self.resolved],
            "evaluated_at": self.evaluated_at.isoformat() if self.evaluated_at else None,
            "now": self.now.isoformat(),
        }


@dataclass(frozen=True)
class Transition:
    """What one evaluation changes: fire a rule (`alert`), or resolve an open episode (`episode`)."""

    action: str  # fire | resolve | relevel (an open episode's level or message changed: stored, no new event)
    rule: str
    alert: Alert | None = None
    episode: AlertRecord | None = None


@dataclass(frozen=True)
class Evaluation:
    """What an evaluation did: the episodes it opened and resolved, and the rules it could not judge."""

    fired: tuple[AlertRecord, ...]
    resolved: tuple[AlertRecord, ...]
    unknown: tuple[str, ...]
    conditions: int
    at: dt.datetime
    unsilenced: tuple[AlertRecord, ...] = ()  # open episodes whose silence ran out

    def to_dict(self) -> dict[str, Any]:
        return {
            "fired": [a.rule for a in self.fired],
            "resolved": [a.rule for a in self.resolved],
            "unsilenced": [a.rule for a in self.unsilenced],
            "unknown": list(self.unknown),
            "conditions": self.conditions,
            "at": self.at.isoformat(),
        }


def _record(row: AlertEpisode) -> AlertRecord:
    return AlertRecord(
        row.id,
        row.rule,
        row.kind,
        row.level,
        row.message,
        row.fired_at,
        row.resolved_at,
        row.acknowledged_by,
        row.acknowledged_at,
        row.acknowledge_reason,
        row.silenced_until,
        row.silenced_by,
        row.silence_reason,
    )


def merge(conditions: Iterable[Alert]) -> dict[str, Alert]:
    """One condition per rule: several of one rule (integrity problems) become one, at the most severe level."""
    merged: dict[str, Alert] = {}
    for alert in conditions:
        seen = merged.get(alert.rule)
        if seen is None:
            merged[alert.rule] = alert
            continue
        level = max(seen.level, alert.level, key=LEVELS.index)
        message = seen.message if alert.message in seen.message else f"{seen.message} {alert.message}"
        merged[alert.rule] = Alert(level, seen.kind, message[:MAX_MESSAGE], seen.subject)
    return merged


def plan(
    conditions: Iterable[Alert], open_episodes: Sequence[AlertRecord], unknown: Iterable[str] = ()
) -> list[Transition]:
    """Fire each rule holding now without an open episode; resolve each open episode whose rule no longer holds.

    An episode of a kind that could not be judged this time (`unknown`: its input failed) stays open. An open
    episode whose rule now holds at another level (more scheduled runs missed) or says something else (the model
    is older, another version is live) takes that level and message: the page never shows a stale reason.
    """
    holding = merge(conditions)
    skip = set(unknown)
    opened = {e.rule: e for e in open_episodes}
    changes = [Transition("fire", rule, alert=a) for rule, a in holding.items() if rule not in opened]
    changes += [
        Transition("relevel", rule, alert=holding[rule], episode=e)
        for rule, e in opened.items()
        if rule in holding and _changed(holding[rule], e)
    ]
    changes += [
        Transition("resolve", rule, episode=e)
        for rule, e in opened.items()
        if rule not in holding and e.kind not in skip
    ]
    return changes


def _changed(alert: Alert, episode: AlertRecord) -> bool:
    """The condition holds at another level or with another message than its open episode stores."""
    return alert.level != episode.level or alert.message[:MAX_MESSAGE] != episode.message


def _details(episode: AlertRecord, **extra: Any) -> dict[str, Any]:
    return {"rule": episode.kind, "level": episode.level, "message": episode.message, "alert_id": episode.id, **extra}


class AlertEngine:
    """Episodes in alert_episodes; each transition and its History event in one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open_episodes(self) -> list[AlertRecord]:
        with self.db.session() as s:
            rows = s.scalars(select(AlertEpisode).where(AlertEpisode.open_key.is_not(None)))
            return [_record(r) for r in rows]

    def board(self, *, include_resolved: bool, now: dt.datetime, evaluated_at: dt.datetime | None) -> AlertBoard:
        opened = sorted(self.open_episodes(), key=lambda a: a.fired_at, reverse=True)
        opened.sort(key=lambda a: LEVELS.index(a.level) if a.level in LEVELS else 0, reverse=True)
        resolved: list[AlertRecord] = []
        if include_resolved:
            stmt = (
                select(AlertEpisode)
                .where(AlertEpisode.open_key.is_(None))
                .order_by(AlertEpisode.resolved_at.desc(), AlertEpisode.id.desc())
                .limit(RECENT_RESOLVED)
            )
            with self.db.session() as s:
                resolved = [_record(r) for r in s.scalars(stmt)]
        return AlertBoard(tuple(opened), tuple(resolved), now, evaluated_at)

    def evaluate(
        self,
        conditions: Sequence[Alert],
        *,
        unknown: Iterable[str] = (),
        now: dt.datetime,
        opened: Sequence[AlertRecord] | None = None,
    ) -> Evaluation:
        """Apply what the conditions holding now change; a transition another evaluator made first is skipped.

        `opened`: the open episodes as read BEFORE the conditions were gathered. An episode another evaluator fires
        meanwhile is then not in it, so conditions gathered before that episode's cause never resolve it.
        """
        unknown = tuple(sorted(set(unknown)))
        fired: list[AlertRecord] = []
        resolved: list[AlertRecord] = []
        for change in plan(conditions, self.open_episodes() if opened is None else opened, unknown):
            if change.action == "fire" and change.alert is not None:
                done = self.fire(change.alert, now=now)
                fired += [done] if done else []
            elif change.action == "relevel" and change.alert is not None and change.episode is not None:
                self.relevel(change.episode, change.alert)
            elif change.episode is not None:
                done = self.resolve(change.episode, now=now)
                resolved += [done] if done else []
        unsilenced = self.end_silences(now=now)
        return Evaluation(tuple(fired), tuple(resolved), unknown, len(conditions), now, tuple(unsilenced))

    def end_silences(self, *, now: dt.datetime) -> list[AlertRecord]:
        """Open episodes whose silence has run out: clear it and record alert_unsilenced, once.

        The alert counts as firing again (or acknowledged, if someone acknowledged it), so the scripts and the
        webhooks page about it; the History event keeps who silenced it, until when and why. Of two evaluators,
        the one whose conditional update clears the silence records the event.
        """
        ended: list[AlertRecord] = []
        for episode in self.open_episodes():
            if episode.silenced_until is None or episode.silenced_until > now:
                continue
            with self.db.session() as s:
                cleared = s.execute(
                    update(AlertEpisode)
                    .where(
                        AlertEpisode.id == episode.id,
                        AlertEpisode.open_key.is_not(None),
                        AlertEpisode.silenced_until <= now,
                    )
                    .values(silenced_until=None, silenced_by=None, silence_reason=None)
                )
                if cleared.rowcount != 1:
                    continue  # another evaluator ended it, or someone silenced it again meanwhile
                record = _record(s.get(AlertEpisode, episode.id))
                until = episode.silenced_until.isoformat()
                details = _details(record, until=until, silenced_by=episode.silenced_by, reason=episode.silence_reason)
                why = f"the silence set by {episode.silenced_by} ended at {until}"
                s.add(event_row("alert_unsilenced", actor=ENGINE_ACTOR, reason=why, details=details))
            announce()
            log.info("alert: %s %s again (alert %d): %s", record.rule, record.state(now), record.id, why)
            ended.append(record)
        return ended

    def fire(self, alert: Alert, *, now: dt.datetime) -> AlertRecord | None:
        """Open an episode and record alert_fired; None when another evaluator opened this rule's episode first."""
        message = alert.message[:MAX_MESSAGE]
        try:
            with self.db.session() as s:
                row = AlertEpisode(
                    rule=alert.rule,
                    open_key=alert.rule,
                    kind=alert.kind,
                    level=alert.level,
                    message=message,
                    fired_at=now,
                )
                s.add(row)
                s.flush()  # the unique open_key refuses a second open episode of the rule here
                record = _record(row)
                s.add(event_row("alert_fired", actor=ENGINE_ACTOR, reason=message, details=_details(record)))
        except UniqueViolation:
            return None
        announce()  # the notifier sends it now, not at its next poll
        log.info("alert: %s fired (%s, alert %d): %s", record.rule, record.level, record.id, record.message)
        return record

    def relevel(self, episode: AlertRecord, alert: Alert) -> None:
        """An open episode's condition holds at another level or with another message now: keep the episode, store
        both; a level change is logged (a message alone changes as time passes: "the model is 8.1 days old")."""
        with self.db.session() as s:
            s.execute(
                update(AlertEpisode)
                .where(AlertEpisode.id == episode.id, AlertEpisode.open_key.is_not(None))
                .values(level=alert.level, message=alert.message[:MAX_MESSAGE])
            )
        if alert.level != episode.level:
            log.info("alert: %s now %s (alert %d): %s", episode.rule, alert.level, episode.id, alert.message)

    def resolve(self, episode: AlertRecord, *, now: dt.datetime) -> AlertRecord | None:
        """Close an open episode and record alert_resolved; None when another evaluator closed it first."""
        with self.db.session() as s:
            closed = s.execute(
                update(AlertEpisode)
                .where(AlertEpisode.id == episode.id, AlertEpisode.open_key.is_not(None))
                .values(open_key=None, resolved_at=now)
            )
            if closed.rowcount != 1:
                return None
            record = _record(s.get(AlertEpisode, episode.id))
            s.add(
                event_row(
                    "alert_resolved", actor=ENGINE_ACTOR, reason="the condition cleared", details=_details(record)
                )
            )
        announce()
        log.info("alert: %s resolved (alert %d, open since %s)", record.rule, record.id, record.fired_at.isoformat())
        return record

    def acknowledge(self, alert_id: int, *, actor: str, reason: str, now: dt.datetime) -> AlertRecord:
        """Someone is on it: the open episode stops counting as firing (until it resolves)."""
        with self.db.session() as s:
            done = s.execute(
                update(AlertEpisode)
                .where(
                    AlertEpisode.id == alert_id,
                    AlertEpisode.open_key.is_not(None),
                    AlertEpisode.acknowledged_at.is_(None),
                )
                .values(acknowledged_by=actor, acknowledged_at=now, acknowledge_reason=reason)
            )
            row = s.get(AlertEpisode, alert_id)
            if done.rowcount != 1:
                raise _refusal(row, alert_id, "acknowledge")
            record = _record(row)
            s.add(event_row("alert_acknowledged", actor=actor, reason=reason, details=_details(record)))
        log.info("alert: %s acknowledged by %s (alert %d): %s", record.rule, actor, record.id, reason)
        return record

    def silence(self, alert_id: int, *, until: dt.datetime, actor: str, reason: str, now: dt.datetime) -> AlertRecord:
        """The open episode stops counting as firing until `until` (a later silence replaces it)."""
        if until <= now:
            raise InvalidInput("a silence must end in the future")
        if until - now > MAX_SILENCE:
            raise InvalidInput(f"a silence lasts at most {MAX_SILENCE.days} days")
        with self.db.session() as s:
            done = s.execute(
                update(AlertEpisode)
                .where(AlertEpisode.id == alert_id, AlertEpisode.open_key.is_not(None))
                .values(silenced_until=until, silenced_by=actor, silence_reason=reason)
            )
            row = s.get(AlertEpisode, alert_id)
            if done.rowcount != 1:
                raise _refusal(row, alert_id, "silence")
            record = _record(row)
            details = _details(record, until=until.isoformat())
            s.add(event_row("alert_silenced", actor=actor, reason=reason, details=details))
        log.info(
            "alert: %s silenced by %s until %s (alert %d): %s", record.rule, actor, until.isoformat(), alert_id, reason
        )
        return record


def gather_conditions(ops: ModelOps, now: dt.datetime, *, fresh_drift: bool) -> tuple[list[Alert], set[str]]:
    """Every condition holding now (status, realised performance, drift, error rate), and the kinds whose input
    could not be read this time (their open episodes stay as they are)."""
    report = ops.status()
    if report.database_error is not None:
        raise Unavailable(f"alerts live in the database, which is unreachable ({report.database_error})")
    conditions, unknown = list(report.alerts), set[str]()
    s = ops.settings
    try:
        days = s.alert_realised_days
        since = (now - dt.timedelta(days=s.horizon_days + days)).date()
        realised = ops.realised_performance(as_of=now, since=since)
        live = realised.version(realised.live_version) if realised.live_version else None
        conditions += realised_alerts(live.total if live else None, realised.live_version, s, days)
    except RegistryError as exc:
        unknown |= {"realised_f1_low", "realised_recall_low"}
        log.warning("alerts: realised performance not judged: %s", exc.message)
    try:
        drift = ops.drift(cached_only=not fresh_drift) if report.current is not None else None
        conditions += drift_alerts(drift, s) if drift is not None else []
    except (NotFound, DataError) as exc:  # no training window, no recent telemetry, or not computed yet
        unknown.add("drift_significant")
        log.debug("alerts: drift not judged: %s", exc.message)
    except RegistryError as exc:
        unknown.add("drift_significant")
        log.warning("alerts: drift not judged: %s", exc.message)
    try:
        conditions += error_rate_alerts(_error_rate(ops, now), s)
    except RegistryError as exc:
        unknown.add("prediction_error_rate")
        log.warning("alerts: error rate not judged: %s", exc.message)
    return conditions, unknown


def _error_rate(ops: ModelOps, now: dt.datetime) -> ErrorRate:
    minutes = ops.settings.alert_error_window_minutes
    errors, served = ops.predict_requests(since=now - dt.timedelta(minutes=minutes))
    return ErrorRate(errors, served, minutes)


def _refusal(row: AlertEpisode | None, alert_id: int, verb: str) -> Exception:
    if row is None:
        return NotFound(f"no alert {alert_id}; `alerts` lists the open ones with their ids")
    if row.open_key is None:
        return Conflict(f"alert {alert_id} ({row.rule}) is resolved already; there is nothing to {verb}")
    return Conflict(
        f"alert {alert_id} ({row.rule}) was acknowledged already by {row.acknowledged_by} "
        f"at {row.acknowledged_at:%Y-%m-%d %H:%M} UTC"
    )


def now_utc(now: dt.datetime | None) -> dt.datetime:
    """`now` as aware UTC (the present by default)."""
    return (now or utcnow()).astimezone(dt.UTC)
