"""What an operator should look at now: metrics below thresholds, a stale model, integrity, failed runs, hand edits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core import constants as C
from core.config import Settings
from core.domain import EventRecord, Health, ModelVersion, RunRecord
from core.journal import JournalEntry
from core.schedule import ScheduleReport

if TYPE_CHECKING:
    from core.drift import DriftReport
    from core.realised import Realised

LEVELS: tuple[str, ...] = ("green", "amber", "red")


@dataclass(frozen=True)
class Alert:
    """One thing that needs attention; `level` is amber (look soon) or red (act now)."""

    level: str
    kind: str
    message: str
    subject: str = ""  # what it is about, when one kind can hold for several things at once (a metric's name)

    @property
    def rule(self) -> str:
        """The alert engine's key: at most one open episode per rule."""
        return f"{self.kind}:{self.subject}" if self.subject else self.kind


def last_finished_run(runs: Iterable[RunRecord]) -> RunRecord | None:
    """The newest run that trained something (skipped runs and still-running ones left out)."""
    return next((r for r in runs if r.status in ("promoted", "candidate", "rejected", "failed")), None)


def model_alerts(
    current: ModelVersion | None,
    health: Health | None,
    settings: Settings,
    *,
    last_run: RunRecord | None = None,
    last_live_event: EventRecord | None = None,
    current_error: str | None = None,
    database_error: str | None = None,
    pending: JournalEntry | None = None,
    schedule: ScheduleReport | None = None,
    now: dt.datetime | None = None,
) -> list[Alert]:
    """Every alert for the current model, most severe first."""
    now = now or dt.datetime.now(dt.UTC)
    alerts: list[Alert] = []
    if pending is not None and pending.event_pending:
        who = pending.event.actor if pending.event else "?"
        alerts.append(
            Alert(
                "red",
                "audit_pending",
                f"The {pending.op} by {who} ({pending.at[:19]} UTC) was applied, but its audit event is not recorded "
                f"yet ({pending.event_error}); it is recorded as soon as the database answers, and no other change "
                "is made until then.",
            )
        )
    if database_error is not None:
        alerts.append(
            Alert(
                "red",
                "database_unreachable",
                f"The database is unreachable ({database_error}): history, retraining and predictions are unavailable.",
            )
        )
    if current_error is not None:
        alerts.append(Alert("red", "integrity", current_error))
    elif current is None:
        alerts.append(Alert("red", "no_model", "No model has been trained yet: start a training run."))
    else:
        for name in C.GATED_METRICS:
            threshold = settings.thresholds.for_metric(name)
            value = current.performance.get(name)
            if threshold is None:
                continue
            if value is None:
                alerts.append(
                    Alert(
                        "amber",
                        "metric_missing",
                        f"{name} is not recorded in the metadata of version {current.version}.",
                        name,
                    )
                )
            elif value <= threshold:
                alerts.append(
                    Alert(
                        "red",
                        "metric_below_threshold",
                        f"{name} is {value:.3f}, not above its threshold {threshold:g}.",
                        name,
                    )
                )
        age = current.age(now)
        interval = dt.timedelta(hours=settings.retrain_interval_hours)
        if age is None:
            alerts.append(Alert("amber", "model_stale", "The model has no training date, so its age is unknown."))
        elif age >= interval:
            alerts.append(
                Alert(
                    "amber",
                    "model_stale",
                    f"The model is {age.total_seconds() / 86400:.1f} days old, "
                    f"past the {settings.retrain_interval_hours:g} h retraining interval.",
                )
            )
        if current.data_source == "sample":
            alerts.append(
                Alert("amber", "sample_data", "The model was trained on sample data, not on the fleet's telemetry.")
            )
    if health is not None and current is not None:
        for problem in health.problems:
            alerts.append(Alert("red", "integrity", problem))
    if last_run is not None and last_run.status in ("failed", "rejected"):
        newer = current is None or current.training_date is None or last_run.started_at >= current.training_date
        if newer:
            why = last_run.error or (last_run.gate or {}).get("reason") or "see the run's log"
            alerts.append(
                Alert(
                    "amber",
                    f"last_run_{last_run.status}",
                    f"The last training run ({last_run.started_at:%Y-%m-%d %H:%M} UTC by {last_run.actor}) "
                    f"was {last_run.status}: {why}",
                )
            )
    if last_live_event is not None and last_live_event.kind == "external_change":
        alerts.append(
            Alert(
                "amber",
                "external_change",
                f"The model files were changed by hand on disk ({last_live_event.at:%Y-%m-%d %H:%M} UTC, "
                f"{last_live_event.from_version or '?'} → {last_live_event.to_version or '?'}); "
                "the registry did not make this change.",
            )
        )
    if schedule is not None:
        alerts.extend(schedule_alerts(schedule))
    alerts.sort(key=lambda a: LEVELS.index(a.level), reverse=True)
    return alerts


def schedule_alerts(schedule: ScheduleReport) -> list[Alert]:
    """A scheduled run that did not start in time (red once two in a row are missed), or that failed."""
    found: list[Alert] = []
    if schedule.missed and schedule.deciding_due is not None:
        many = schedule.missed_count > 1
        count = f"{schedule.missed_count}{'+' if schedule.missed_count >= 10 else ''} scheduled runs" if many else "it"
        found.append(
            Alert(
                "red" if many else "amber",
                "schedule_missed",
                f"The scheduled training due {schedule.deciding_due:%Y-%m-%d %H:%M} UTC ({schedule.expression}) "
                f"did not start within {schedule.grace_minutes} min; no scheduled run has started since "
                f"({count} missed): check the cron job, CronJob or trainer container.",
            )
        )
    run = schedule.last_run
    if schedule.failed and run is not None:
        found.append(
            Alert(
                "amber",
                "schedule_failed",
                f"The last scheduled training run ({run.started_at:%Y-%m-%d %H:%M} UTC) failed: "
                f"{run.error or 'see its log'}",
            )
        )
    return found


def overall_level(alerts: Iterable[Alert]) -> str:
    """green when nothing needs attention, else the most severe alert's level."""
    worst = 0
    for alert in alerts:
        worst = max(worst, LEVELS.index(alert.level))
    return LEVELS[worst]


# ------------------------------------------------------------------ monitoring conditions (alert engine, issue 13)
# Computed by the alert engine only (not on every status read): they read the prediction log and the drift report.
@dataclass(frozen=True)
class ErrorRate:
    """Failed predict requests among all predict requests of the last `minutes`."""

    errors: int
    served: int
    minutes: int

    @property
    def requests(self) -> int:
        return self.errors + self.served

    @property
    def rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


REALISED_RULES: tuple[tuple[str, str, str], ...] = (
    ("f1_score", "realised_f1_low", "F1"),
    ("recall", "realised_recall_low", "recall"),
)


def realised_alerts(figures: Realised | None, version: str | None, settings: Settings, days: int) -> list[Alert]:
    """The live version's realised F1 and recall over recent outcomes, below ALERT_REALISED_F1 / _RECALL."""
    if figures is None or version is None or figures.outcomes < settings.alert_min_outcomes:
        return []  # too few outcomes to judge: silence is not an all-clear, but it is not an alert either
    alerts = []
    for metric, kind, label in REALISED_RULES:
        threshold = settings.alert_realised_f1 if metric == "f1_score" else settings.alert_realised_recall
        value = figures.get(metric)
        if value is not None and value < threshold:
            alerts.append(
                Alert(
                    "red",
                    kind,
                    f"Realised {label} of version {version} is {value:.3f} over the last {days} days of known "
                    f"outcomes ({figures.outcomes} device-days, {figures.positives} failures), below {threshold:g}.",
                )
            )
    return alerts


def drift_alerts(report: DriftReport, settings: Settings) -> list[Alert]:
    """Significant drift (PSI above the significant band) on at least ALERT_DRIFT_FEATURES features."""
    if settings.alert_drift_features < 1:
        return []
    drifted = [f.name for f in report.features if f.band == "significant"]
    if len(drifted) < settings.alert_drift_features:
        return []
    names = ", ".join(drifted[:5]) + (f" and {len(drifted) - 5} more" if len(drifted) > 5 else "")
    return [
        Alert(
            "amber",
            "drift_significant",
            f"{len(drifted)} features of version {report.version} drifted significantly over the last "
            f"{report.window_days} days against its training window ({names}).",
        )
    ]


def error_rate_alerts(rate: ErrorRate, settings: Settings) -> list[Alert]:
    """Failed predict requests above ALERT_ERROR_RATE over the last ALERT_ERROR_WINDOW_MINUTES."""
    if rate.requests < settings.alert_error_min_requests or rate.rate <= settings.alert_error_rate:
        return []
    return [
        Alert(
            "red",
            "prediction_error_rate",
            f"{rate.errors} of {rate.requests} predict requests failed in the last {rate.minutes} minutes "
            f"({rate.rate:.1%}, above {settings.alert_error_rate:.1%}).",
        )
    ]
