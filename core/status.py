"""The one answer to "how is the live model?": what every interface shows as status, health and problems."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from core.alerts import Alert, last_finished_run, model_alerts, overall_level
from core.config import Settings
from core.domain import CandidateSet, EventRecord, Health, Hold, ModelVersion, RunRecord
from core.errors import IntegrityError, Unavailable
from core.history import History
from core.journal import JournalEntry
from core.locking import LockInfo
from core.registry import Registry
from core.schedule import ScheduleReport, read_schedule
from core.trends import LIVE_EVENT_KINDS
from core.versions import Version

log = logging.getLogger(__name__)
RECENT_RUNS = 20
# A run row this old whose process holds no training lock any more was left behind by a killed process.
ABANDONED_AFTER = dt.timedelta(seconds=5)


@dataclass(frozen=True)
class StatusReport:
    """The live model, its files, how it became live, the last and the running training run, and every alert."""

    current: ModelVersion | None
    current_error: str | None
    health: Health
    alerts: tuple[Alert, ...]
    level: str  # green | amber | red
    last_run: RunRecord | None
    running: RunRecord | None
    live_event: EventRecord | None  # the promote, restore or hand-made change that made the live files live
    database_error: str | None
    pending: JournalEntry | None  # a change in progress, or applied with its audit event still to record
    files_changed_at: dt.datetime | None  # when a file of the current set last changed
    checked_at: dt.datetime
    hold: Hold | None = None  # the live version held in place (by a restore, or an admin)
    candidates: tuple[CandidateSet, ...] = ()  # gate-passing runs waiting for approval
    newer_versions: tuple[str, ...] = ()  # versions promoted once that are newer than the live one
    schedule: ScheduleReport | None = None  # the training schedule, judged against the scheduled runs

    @property
    def problems(self) -> tuple[str, ...]:
        """Every alert as one sentence, most severe first (what `problems` holds on every interface)."""
        return tuple(a.message for a in self.alerts)

    @property
    def ok(self) -> bool:
        return not self.alerts


def build_status(
    registry: Registry,
    history: History | None,
    settings: Settings,
    *,
    health: Health,
    database_error: str | None,
    pending: JournalEntry | None = None,
    training_holder: LockInfo | None = None,
    now: dt.datetime | None = None,
) -> StatusReport:
    """Gather the report.

    The caller first settles an interrupted change and reconciles hand-made ones, then checks the files (`health`).
    """
    now = now or dt.datetime.now(dt.UTC)
    runs: list[RunRecord] = []
    live: EventRecord | None = None
    hold: Hold | None = None
    promoted: list[str] = []
    if history is not None:
        try:
            runs = history.runs(limit=RECENT_RUNS)
            if training_holder is None and any(r.status == "running" for r in runs):
                reason = "the process running this training stopped before it finished (killed?)"
                if history.mark_abandoned(now - ABANDONED_AFTER, reason):
                    log.warning("training: closed runs left running by a process that stopped")
                    runs = history.runs(limit=RECENT_RUNS)
            # From the registry's event index: the promotions' metadata is parsed once per process, not per call.
            events = registry.event_index or history
            live = next(iter(events.events(kinds=LIVE_EVENT_KINDS, limit=1)), None)
            hold = history.active_hold()
            promoted = [e.to_version for e in events.events(kinds=["promote"], limit=200) if e.to_version]
        except Unavailable as exc:
            database_error, runs, live, hold, promoted = exc.message, [], None, None, []
    current, current_error = None, None
    try:
        current = registry.current()
    except IntegrityError as exc:
        current_error = exc.message
    last_run = last_finished_run(runs)
    schedule = read_schedule(settings, history, now=now, database_error=database_error)
    alerts = model_alerts(
        current,
        health,
        settings,
        last_run=last_run,
        last_live_event=live,
        current_error=current_error,
        database_error=database_error,
        pending=pending,
        schedule=schedule,
        now=now,
    )
    return StatusReport(
        current=current,
        current_error=current_error,
        health=health,
        alerts=tuple(alerts),
        level=overall_level(alerts),
        last_run=last_run,
        running=next((r for r in runs if r.status == "running"), None),
        live_event=live,
        database_error=database_error,
        pending=pending,
        files_changed_at=registry.files_changed_at(),
        checked_at=now,
        hold=hold,
        candidates=tuple(registry.candidates()),
        newer_versions=_newer(promoted, current),
        schedule=schedule,
    )


def _newer(promoted: list[str], current: ModelVersion | None) -> tuple[str, ...]:
    """Promoted versions newer than the live one (after a restore: what is not live any more), newest first."""
    if current is None or not Version.is_valid(current.version):
        return ()
    live = Version.parse(current.version)
    newer = {Version.parse(v) for v in promoted if Version.is_valid(v) and Version.parse(v) > live}
    return tuple(str(v) for v in sorted(newer, reverse=True))
