"""The training schedule: its cron expression, the next runs, and whether the last due run started and how it ended."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from croniter import croniter

from core.domain import RunRecord
from core.errors import InvalidInput, Unavailable

if TYPE_CHECKING:  # core.config imports this module (to check its setting): these are for annotations only
    from core.config import Settings
    from core.history import History

SCHEDULE_TRIGGER = "schedule"  # the trigger scheduled runs record (train_models.py --trigger schedule)
DEFAULT_SCHEDULE = "0 2 * * 0"  # the guide's weekly retraining: Sundays at 02:00 UTC
DEFAULT_GRACE_MINUTES = 60
OFF = ("off", "none", "-")  # TRAINING_SCHEDULE=off: training only by hand, nothing is due and nothing is missed
MAX_GRACE_MINUTES = 7 * 24 * 60
NEXT_RUNS = 5
RECENT_SCHEDULED_RUNS = 10
MAX_MISSED_COUNTED = 10
# cron starts on the minute; a run recorded a little before its due time (clocks of two hosts) still counts.
EARLY_SLACK = dt.timedelta(minutes=2)
# Only what both crontab(5) and Kubernetes CronJob accept: numbers, *, ranges, steps, lists, month and day names.
_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_NAMES = {*_MONTHS, "sun", "mon", "tue", "wed", "thu", "fri", "sat"}
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def parse_schedule(expression: str, name: str = "TRAINING_SCHEDULE") -> str:
    """The expression as five space-separated fields (macros expanded), or InvalidInput saying what is wrong."""
    text = " ".join(str(expression).split())
    text = _MACROS.get(text.lower(), text)
    fields = text.split(" ")
    example = f"e.g. {DEFAULT_SCHEDULE!r} (Sundays at 02:00 UTC) or '0 2 1 * *' (the 1st of each month)"
    if len(fields) != 5:
        raise InvalidInput(
            f"{name}={expression!r} is not a cron expression: it needs 5 fields (minute hour day-of-month month "
            f"day-of-week), got {len([f for f in fields if f])}; {example}"
        )
    for field in fields:
        words = {w.lower() for w in re.findall(r"[A-Za-z]+", field)}
        if not _FIELD.match(field) or not words <= _NAMES:
            raise InvalidInput(
                f"{name}={expression!r}: field {field!r} uses syntax crontab and Kubernetes do not both accept "
                f"(only numbers, *, a-b, */n, lists and month/day names); {example}"
            )
    if not croniter.is_valid(text):
        raise InvalidInput(f"{name}={expression!r} is not a valid cron expression (a value out of range?); {example}")
    return text


def parse_schedule_setting(raw: str) -> str | None:
    """TRAINING_SCHEDULE as set: None when turned off, else the checked expression."""
    return None if raw.strip().lower() in OFF else parse_schedule(raw)


def parse_grace_minutes(value: int) -> int:
    """How late a scheduled run may start before it counts as missed, checked."""
    if not 1 <= value <= MAX_GRACE_MINUTES:
        raise InvalidInput(f"SCHEDULE_GRACE_MINUTES must be from 1 to {MAX_GRACE_MINUTES} (a week), got {value}")
    return value


def describe(expression: str) -> str | None:
    """The common shapes in words ("Sundays at 02:00 UTC"); None for anything else (the expression says it)."""
    minute, hour, dom, month, dow = expression.split(" ")
    if not (minute.isdigit() and hour.isdigit()) or month != "*":
        return None
    at = f"at {int(hour):02d}:{int(minute):02d} UTC"
    if dom == "*" and dow == "*":
        return f"every day {at}"
    if dom == "*" and dow.isdigit() and int(dow) <= 7:
        return f"every {_DAYS[int(dow)]} {at}"
    if dow == "*" and dom.isdigit():
        return f"on day {int(dom)} of every month {at}"
    return None


def next_runs(expression: str, after: dt.datetime, count: int = NEXT_RUNS) -> tuple[dt.datetime, ...]:
    """The next `count` scheduled times strictly after `after` (UTC)."""
    it = croniter(expression, after.astimezone(dt.UTC))
    return tuple(it.get_next(dt.datetime).replace(fold=0) for _ in range(count))


def due_times_before(expression: str, before: dt.datetime, count: int) -> list[dt.datetime]:
    """Up to `count` scheduled times at or before `before`, newest first."""
    start = before.astimezone(dt.UTC)
    it = croniter(expression, start + dt.timedelta(seconds=1))
    return [it.get_prev(dt.datetime).replace(fold=0) for _ in range(count)]


def crontab_line(expression: str, script: str) -> str:
    """The crontab(5) line that runs the schedule wrapper at these times."""
    return f"{expression} {script}"


def k8s_schedule_line(expression: str) -> str:
    """The CronJob's `schedule:` line (Kubernetes reads it in the controller's time zone: UTC on most clusters)."""
    return f'schedule: "{expression}"'


@dataclass(frozen=True)
class ScheduleReport:
    """When training is scheduled, the scheduled runs recorded, and whether the last due run was missed or failed."""

    expression: str | None  # None: TRAINING_SCHEDULE=off (nothing is due, nothing judged)
    description: str | None
    grace_minutes: int
    checked_at: dt.datetime
    next_runs: tuple[dt.datetime, ...]
    last_due: dt.datetime | None  # the newest scheduled time at or before checked_at
    deciding_due: dt.datetime | None  # the newest due time whose grace period is over: a run must have started
    last_run: RunRecord | None  # the newest run recorded with trigger "schedule"
    recent_runs: tuple[RunRecord, ...]
    missed: bool  # a due run did not start within the grace period (and none started since)
    missed_count: int  # due times passed without a scheduled run since the last one (capped)
    failed: bool  # the last scheduled run failed
    history_error: str | None = None  # the database could not be read: runs unknown, nothing judged

    @property
    def outcome(self) -> str | None:
        """What the last scheduled run did: promoted, candidate, rejected, failed, skipped or running."""
        return self.last_run.status if self.last_run else None

    @property
    def seconds_until_next(self) -> int | None:
        """Whole seconds until the next scheduled time (at least 1): what a sleeping trainer waits; None when off."""
        if not self.next_runs:
            return None
        return max(1, math.ceil((self.next_runs[0] - self.checked_at).total_seconds()))

    def to_dict(self) -> dict[str, Any]:
        run = self.last_run
        return {
            "expression": self.expression,
            "enabled": self.expression is not None,
            "description": self.description,
            "timezone": "UTC",
            "grace_minutes": self.grace_minutes,
            "checked_at": self.checked_at.isoformat(),
            "next_runs": [t.isoformat() for t in self.next_runs],
            "seconds_until_next": self.seconds_until_next,
            "last_due": self.last_due.isoformat() if self.last_due else None,
            "deciding_due": self.deciding_due.isoformat() if self.deciding_due else None,
            "last_scheduled_run": _run_summary(run) if run else None,
            "outcome": self.outcome,
            "missed": self.missed,
            "missed_count": self.missed_count,
            "failed": self.failed,
            "recent_runs": [_run_summary(r) for r in self.recent_runs],
            "history_error": self.history_error,
        }


def _run_summary(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "trigger": run.trigger,
        "actor": run.actor,
        "version": run.version,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error": run.error,
    }


def build_schedule(
    expression: str | None,
    grace_minutes: int,
    scheduled_runs: Sequence[RunRecord],
    *,
    first_activity: dt.datetime | None,
    now: dt.datetime,
    history_error: str | None = None,
) -> ScheduleReport:
    """Judge the schedule from the scheduled runs (newest first) and when the history first saw any run.

    Due times before `first_activity` (the earliest run of any kind) are not judged: nothing was installed then.
    """
    now = now.astimezone(dt.UTC)
    last_run = scheduled_runs[0] if scheduled_runs else None
    if expression is None:  # off: the scheduled runs recorded are still listed, nothing is expected
        return ScheduleReport(
            expression=None,
            description=None,
            grace_minutes=grace_minutes,
            checked_at=now,
            next_runs=(),
            last_due=None,
            deciding_due=None,
            last_run=last_run,
            recent_runs=tuple(scheduled_runs),
            missed=False,
            missed_count=0,
            failed=False,
            history_error=history_error,
        )
    grace = dt.timedelta(minutes=grace_minutes)
    [last_due] = due_times_before(expression, now, 1)
    [deciding] = due_times_before(expression, now - grace, 1)
    missed_count = 0
    if history_error is None and first_activity is not None:
        # Every due time whose grace is over, newer than the last scheduled run's start and than the first activity.
        since = first_activity if last_run is None else max(first_activity, last_run.started_at + EARLY_SLACK)
        for due in due_times_before(expression, now - grace, MAX_MISSED_COUNTED):
            if due < since:
                break
            missed_count += 1
    return ScheduleReport(
        expression=expression,
        description=describe(expression),
        grace_minutes=grace_minutes,
        checked_at=now,
        next_runs=next_runs(expression, now),
        last_due=last_due,
        deciding_due=deciding,
        last_run=last_run,
        recent_runs=tuple(scheduled_runs),
        missed=missed_count > 0,
        missed_count=missed_count,
        failed=last_run is not None and last_run.status == "failed",
        history_error=history_error,
    )


def read_schedule(
    settings: Settings, history: History | None, *, now: dt.datetime, database_error: str | None = None
) -> ScheduleReport:
    """The report for these settings from the recorded runs; without the database, the times alone, saying why."""
    runs: list[RunRecord] = []
    first: dt.datetime | None = None
    error = database_error
    if history is not None and error is None:
        try:
            runs = history.runs(limit=RECENT_SCHEDULED_RUNS, triggers=[SCHEDULE_TRIGGER])
            first = history.first_run_at()
        except Unavailable as exc:
            error = exc.message
    elif error is None:
        error = "the database is unreachable"
    return build_schedule(
        settings.training_schedule,
        settings.schedule_grace_minutes,
        runs,
        first_activity=first,
        now=now,
        history_error=error,
    )


def recipes(expression: str | None, repo_dir: Path) -> dict[str, str]:
    """The deploy lines for this expression: crontab, Kubernetes CronJob, docker compose (all read as UTC)."""
    if expression is None:
        raise InvalidInput("TRAINING_SCHEDULE is off: there is no schedule to deploy; set it to a cron expression")
    return {
        "crontab": crontab_line(expression, str(repo_dir / "scripts" / "schedule_model_training.sh")),
        "k8s": k8s_schedule_line(expression),
        "compose": f"TRAINING_SCHEDULE='{expression}' docker compose -f deploy/docker-compose.yml up -d",
    }
