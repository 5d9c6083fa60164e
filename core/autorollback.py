"""Automatic rollback: put the previous live version back when the live one's realised F1 falls behind it.

The live version's realised F1 (its logged predictions joined with the failures that followed, once the horizon
passed) is set beside the previous live version's F1 on the same labelled days: from the prediction log when the
previous version scored those device-days too, else from the same-data scorer (its newest complete backup set,
scored on the window). One decision per live episode (the live version going live once), recorded in History.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from core import constants as C
from core.config import Settings
from core.domain import BackupSet, EventRecord
from core.errors import Conflict, DataError, IntegrityError, InvalidInput, NotFound, RegistryError, Unavailable
from core.identity import is_rule, rule_principal
from core.storage import atomic_write_json
from core.trends import LIVE_EVENT_KINDS

if TYPE_CHECKING:
    from core.history import History
    from core.modelops import ModelOps
    from core.realised import Realised

log = logging.getLogger(__name__)

RULE = rule_principal("auto-rollback")
EVENT_KIND = "auto_rollback"
# What a decision says (the CLI prints it, Status shows the last one).
OFF, ACTED, WOULD_ACT = "off", "acted", "would act"
TOO_FEW, WITHIN_MARGIN = "not enough outcomes", "within margin"
HELD, ALREADY = "held by a person", "already acted this episode"
NOTHING_TO_ROLL_BACK_TO, CANNOT_COMPARE = "nothing to roll back to", "cannot compare"
CHANGED = "live version changed meanwhile"


@dataclass(frozen=True)
class Figures:
    """The live version's realised F1 and the previous version's F1 on the same labelled days."""

    live_version: str
    live_f1: float
    outcomes: int
    positives: int
    previous_version: str
    previous_f1: float
    previous_source: str  # prediction log | same-data
    previous_samples: int
    window_start: dt.date
    window_end: dt.date
    margin: float

    @property
    def drop(self) -> float:
        return round(self.previous_f1 - self.live_f1, 4)

    @property
    def worse(self) -> bool:
        """The live F1 is below the previous version's by more than the margin."""
        return self.live_f1 < self.previous_f1 - self.margin

    def describe(self) -> str:
        """The reason recorded with a rollback, e.g. 'realised F1 0.41 on 1,234 outcomes (...) vs v1.2.0 0.62 ...'."""
        return (
            f"realised F1 {self.live_f1:.2f} of v{self.live_version} on {self.outcomes:,} outcomes "
            f"({self.window_start}..{self.window_end}) vs v{self.previous_version} {self.previous_f1:.2f} on the same "
            f"days ({self.previous_source}, {self.previous_samples:,} device-days); margin {self.margin:g}"
        )

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body.update(window_start=self.window_start.isoformat(), window_end=self.window_end.isoformat(), drop=self.drop)
        return body


@dataclass(frozen=True)
class Decision:
    """What one evaluation decided, and why."""

    mode: str  # off | dry-run | on
    decision: str  # one of the phrases above
    message: str
    decided_at: dt.datetime
    live_version: str | None = None
    previous_version: str | None = None
    figures: Figures | None = None
    event_id: int | None = None  # the auto_rollback History event recorded by this evaluation

    @property
    def line(self) -> str:
        """The decision in one line, e.g. 'acted: restored v1.0.0 (backup ...) and held it: realised F1 ...'."""
        return f"{self.decision}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "decision": self.decision,
            "message": self.message,
            "decided_at": self.decided_at.isoformat(),
            "live_version": self.live_version,
            "previous_version": self.previous_version,
            "figures": self.figures.to_dict() if self.figures else None,
            "event_id": self.event_id,
        }


@dataclass(frozen=True)
class State:
    """The AUTO_ROLLBACK setting and the last decision any process recorded (as Decision.to_dict wrote it)."""

    mode: str
    last: dict[str, Any] | None

    def describe(self) -> str:
        """One line for Status."""
        said = f"Automatic rollback: {self.mode}"
        if self.mode == OFF:
            said += " (AUTO_ROLLBACK=dry-run or on to let it watch the live version's realised F1)"
        if not self.last:
            return said + ("; not evaluated yet (it runs after fleet scoring)" if self.mode != OFF else "")
        when = str(self.last.get("decided_at", "?"))[:16].replace("T", " ")
        return f"{said}; last decision ({when} UTC): {self.last.get('decision')}: {self.last.get('message')}"


def state(settings: Settings) -> State:
    """The setting and the last decision, read from the models directory (shared by every process)."""
    import json

    try:
        found = json.loads((settings.models_dir / C.AUTO_ROLLBACK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        found = None
    return State(settings.auto_rollback, found if isinstance(found, dict) else None)


def evaluate(ops: ModelOps, *, now: dt.datetime) -> Decision:
    """Decide (and in mode `on`, act): at most one rollback per episode, never over a person's hold."""
    mode = ops.settings.auto_rollback
    if mode == OFF:
        return Decision(mode, OFF, "automatic rollback is off (AUTO_ROLLBACK=off)", now)
    decision = _decide(ops, mode, now)
    atomic_write_json(ops.settings.models_dir / C.AUTO_ROLLBACK_FILE, decision.to_dict())
    log.info("auto-rollback (%s): %s", mode, decision.line)
    return decision


def _decide(ops: ModelOps, mode: str, now: dt.datetime) -> Decision:
    history = _history(ops)
    live = ops.registry.current()
    if live is None:
        return Decision(mode, NOTHING_TO_ROLL_BACK_TO, "there is no live version", now)
    episode = next(iter(history.events(kinds=LIVE_EVENT_KINDS, limit=1)), None)
    if episode is None or episode.to_version != live.version:
        why = f"History does not record how v{live.version} went live (a hand-made change not reconciled yet?)"
        return Decision(mode, NOTHING_TO_ROLL_BACK_TO, why, now, live.version)
    previous = episode.from_version
    said = {"live_version": live.version, "previous_version": previous}
    done = _acted_in(history, episode, dry_run=mode == "dry-run")
    if done is not None:
        return Decision(mode, ALREADY, done, now, **said)
    hold = history.active_hold()
    if hold is not None and not is_rule(hold.placed_by):
        why = f"v{hold.version} is held by {hold.placed_by} since {hold.placed_at:%Y-%m-%d %H:%M} UTC"
        return Decision(mode, HELD, why + (f" ({hold.reason})" if hold.reason else ""), now, **said)
    if not previous or previous == live.version:
        why = f"v{live.version} replaced no other version when it went live ({episode.kind} by {episode.actor})"
        return Decision(mode, NOTHING_TO_ROLL_BACK_TO, why, now, **said)
    backup = restorable(ops, previous)
    if backup is None:
        why = f"no complete backup set holds v{previous}, the version live before v{live.version}"
        return Decision(mode, NOTHING_TO_ROLL_BACK_TO, why, now, **said)
    try:
        figures = measure(ops, live.version, previous, now=now)
    except (DataError, IntegrityError, InvalidInput, NotFound) as exc:
        return Decision(mode, CANNOT_COMPARE, exc.message, now, **said)
    if isinstance(figures, str):
        return Decision(mode, TOO_FEW, figures, now, **said)
    if not figures.worse:
        return Decision(mode, WITHIN_MARGIN, figures.describe(), now, **said, figures=figures)
    if mode == "dry-run":
        event = _record(ops, figures, episode, mode, backup=backup)
        why = f"would restore v{previous} (backup {backup.timestamp}): {figures.describe()}"
        return Decision(mode, WOULD_ACT, why, now, **said, figures=figures, event_id=event.id)
    try:
        ops.restore(
            backup.timestamp,
            actor=RULE,
            reason=figures.describe(),
            during_training=True,
            expect_live=live.version,
            yield_to_holds=True,
        )
    except Conflict as exc:  # somebody changed the live version since it was read: their change stands
        return Decision(mode, CHANGED, exc.message, now, **said, figures=figures)
    event = _record(ops, figures, episode, mode, backup=backup)
    why = f"restored v{previous} (backup {backup.timestamp}) and held it: {figures.describe()}"
    return Decision(mode, ACTED, why, now, **said, figures=figures, event_id=event.id)


def _history(ops: ModelOps) -> History:
    if ops.history is None:
        raise Unavailable(f"History is in the database, which is unreachable ({ops.database_error})")
    return ops.history


def _acted_in(history: History, episode: EventRecord, *, dry_run: bool) -> str | None:
    """Why the rule does nothing more in this episode, or None: it put this version back itself (it rolls back
    again only after a new version goes live), or, in dry-run, it recorded what it would do already."""
    if episode.kind == "restore" and episode.actor == RULE.name:
        return (
            f"v{episode.to_version} was put back by this rule at {episode.at:%Y-%m-%d %H:%M} UTC; it rolls back "
            "again only after a new version goes live"
        )
    if dry_run:  # a dry run is no rollback: switched on later in the same episode, the rule may still act
        for event in history.events(kinds=[EVENT_KIND], since=episode.at, limit=50):
            if event.details.get("episode") == episode.id:
                return f"the dry run recorded what it would do at {event.at:%Y-%m-%d %H:%M} UTC (event {event.id})"
    return None


def restorable(ops: ModelOps, version: str) -> BackupSet | None:
    """The newest complete, intact backup set holding `version`, or None."""
    return next(
        (s for s in ops.registry.backups() if s.version == version and s.complete and s.integrity == "ok"),
        None,
    )


def measure(ops: ModelOps, live: str, previous: str, *, now: dt.datetime) -> Figures | str:
    """The live version's realised F1 and the previous version's on the same labelled days (a str: too few yet)."""
    from core import prediction_log as P
    from core.realised import figures, labelled, load_failures
    from core.samedata import latest_labelled_day

    if ops.db is None:
        raise Unavailable(f"realised figures need the database, which is unreachable ({ops.database_error})")
    settings, margin = ops.settings, ops.settings.auto_rollback_margin
    rows = labelled(
        P.read_frame(ops.db), load_failures(ops.db, until=now), as_of=now, horizon_days=settings.horizon_days
    )
    rows = rows[rows["known"]] if len(rows) else rows
    mine = rows[rows["model_version"] == live] if len(rows) else rows
    need = settings.auto_rollback_min_outcomes
    if len(mine) < need or not mine["label"].any():
        return (
            f"v{live} has {len(mine):,} outcomes ({int(mine['label'].sum()) if len(mine) else 0} failures) whose "
            f"{settings.horizon_days}-day horizon has passed; needs {need:,} (AUTO_ROLLBACK_MIN_OUTCOMES)"
        )
    start, end = mine["day"].min().date(), mine["day"].max().date()
    theirs = rows[rows["model_version"] == previous]
    shared = mine.merge(theirs, on=["device_id", "day"], suffixes=("", "_prev")) if len(theirs) else pd.DataFrame()
    same = {"previous_version": previous, "window_start": start, "window_end": end, "margin": margin}
    if len(shared) >= need:
        # The previous version scored these device-days too (in the shadow): both on exactly those.
        y = shared["label"].to_numpy()
        ours = figures(y, shared["probability"].to_numpy(), shared["decision"].to_numpy())
        prev = figures(y, shared["probability_prev"].to_numpy(), shared["decision_prev"].to_numpy())
        return Figures(
            **_ours(live, ours),
            previous_f1=_f1(prev),
            previous_source="prediction log",
            previous_samples=len(shared),
            **same,
        )
    # The same-data scorer labels from the telemetry: its window ends where the telemetry proves the horizon passed.
    last = min(end, latest_labelled_day(ops.db, settings.horizon_days))
    mine = mine[mine["day"].dt.date <= last]
    if len(mine) < need:
        raise DataError(f"the telemetry does not yet prove the horizon of v{live}'s labelled days ({start}..{end})")
    ours = figures(mine["label"].to_numpy(), mine["probability"].to_numpy(), mine["decision"].to_numpy())
    scored = ops.compare_same_data(previous, live, window_start=start, window_end=last)
    return Figures(
        **_ours(live, ours),
        previous_f1=round(scored.a.metrics["f1_score"], 4),
        previous_source="same-data",
        previous_samples=scored.sample_count,
        **{**same, "window_end": last},
    )


def _f1(r: Realised) -> float:
    return round(r.f1_score or 0.0, 4)


def _ours(live: str, r: Realised) -> dict[str, Any]:
    return {"live_version": live, "live_f1": _f1(r), "outcomes": r.outcomes, "positives": r.positives}


def _record(ops: ModelOps, figures: Figures, episode: EventRecord, mode: str, *, backup: BackupSet) -> EventRecord:
    """The auto_rollback History event (the notification helper delivers it)."""
    return _history(ops).record_event(
        EVENT_KIND,
        actor=RULE.name,
        from_version=figures.live_version,
        to_version=figures.previous_version,
        reason=figures.describe(),
        details={
            "mode": mode,
            "dry_run": mode == "dry-run",
            "episode": episode.id,
            "restored_from": backup.timestamp,
            **figures.to_dict(),
        },
    )


def safely(ops: ModelOps, *, now: dt.datetime) -> Decision | None:
    """After fleet scoring: evaluate, and say (never raise) when it could not."""
    try:
        return evaluate(ops, now=now)
    except RegistryError as exc:
        log.error("auto-rollback: not evaluated: %s", exc.message)
    except Exception:  # the scoring is done and logged: its result stands, and the next scoring tries again
        log.exception("auto-rollback: not evaluated")
    return None
