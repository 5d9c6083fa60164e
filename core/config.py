"""Settings from environment variables, with defaults that run on a fresh checkout."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from core import constants as C
from core.errors import InvalidInput
from core.schedule import DEFAULT_GRACE_MINUTES, DEFAULT_SCHEDULE, parse_grace_minutes, parse_schedule_setting

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"{name}={raw!r} is not a number; set it to e.g. {default}") from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name}={raw!r} is not an integer; set it to e.g. {default}") from None


def _path_or_none(env: Mapping[str, str], name: str, default: Path | None) -> Path | None:
    """A path setting; set but empty (or "-") turns it off."""
    if name not in env:
        return default
    raw = env[name].strip()
    return None if raw in ("", "-") else Path(raw)


# Notifications by webhook: the History event kinds sent when WEBHOOK_EVENTS is not set.
DEFAULT_WEBHOOK_EVENTS: tuple[str, ...] = (
    "alert_fired",
    "alert_resolved",
    "promote",
    "reject",
    "restore",
    "auto_rollback",
)
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


SECRET_PREFIX = "WEBHOOK_SECRET_"


def secret_variable(target: str) -> str:
    """The environment variable holding one target's own secret: WEBHOOK_SECRET_ and its name, upper-cased, with
    '.' and '-' as '_' (target pager-duty: WEBHOOK_SECRET_PAGER_DUTY)."""
    return SECRET_PREFIX + target.upper().replace(".", "_").replace("-", "_")


def parse_webhook_secrets(env: Mapping[str, str], targets: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Each target's own secret, where set; one that names no target is refused (a typo would leave it unsigned)."""
    by_variable = {secret_variable(name): name for name, _ in targets}
    unknown = sorted(k for k, v in env.items() if k.startswith(SECRET_PREFIX) and v and k not in by_variable)
    if unknown:
        known = ", ".join(sorted(by_variable)) or "none: WEBHOOK_URLS is empty"
        raise InvalidInput(f"{unknown[0]} names no webhook target; per-target secrets here: {known}")
    return tuple((name, env[var]) for var, name in by_variable.items() if env.get(var))


def parse_webhook_urls(raw: str) -> tuple[tuple[str, str], ...]:
    """WEBHOOK_URLS: comma-separated `url` or `name=url`; a target without a name is named after its host."""
    targets: list[tuple[str, str]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, _, url = item.partition("=") if "=" in item.split("://", 1)[0] else ("", "", item)
        name, url = name.strip(), url.strip()
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InvalidInput(f"WEBHOOK_URLS: {_shown(url)!r} is not an http(s) URL; write name=https://host/path")
        if name and (len(name) > 64 or not set(name) <= _NAME_CHARS):
            raise InvalidInput(f"WEBHOOK_URLS: target name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
        base = name or parsed.hostname
        taken = {n for n, _ in targets}
        if name and name in taken:
            raise InvalidInput(f"WEBHOOK_URLS: two targets are named {name!r}; names must be unique")
        unique, n = base, 2
        while unique in taken:
            unique, n = f"{base}-{n}", n + 1
        targets.append((unique, url))
    return tuple(targets)


def _shown(url: str) -> str:
    """A URL as an error may show it: scheme and host only (its path or query may hold a token)."""
    parsed = urlsplit(url)
    return f"{parsed.scheme}://{parsed.hostname}/..." if parsed.hostname else "<not a URL>"


def _webhook_events(raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return DEFAULT_WEBHOOK_EVENTS
    kinds = tuple(k.strip() for k in raw.split(",") if k.strip())
    bad = [k for k in kinds if len(k) > 32 or not set(k) <= set("abcdefghijklmnopqrstuvwxyz_")]
    if bad:
        raise InvalidInput(f"WEBHOOK_EVENTS: {bad[0]!r} is not an event kind (e.g. promote,restore,alert_fired)")
    return kinds


@dataclass(frozen=True)
class Thresholds:
    """Validation-gate thresholds (a metric must be strictly greater)."""

    accuracy: float = C.DEFAULT_THRESHOLDS["accuracy"]
    precision: float = C.DEFAULT_THRESHOLDS["precision"]
    recall: float = C.DEFAULT_THRESHOLDS["recall"]
    f1_score: float = C.DEFAULT_THRESHOLDS["f1_score"]
    min_samples: int = C.DEFAULT_MIN_SAMPLES
    regression_tolerance: float = 0.02

    def for_metric(self, name: str) -> float | None:
        return getattr(self, name, None) if name in C.GATED_METRICS else None


@dataclass(frozen=True)
class Settings:
    """Everything configurable, read once from the environment."""

    database_url: str = f"sqlite:///{PROJECT_ROOT / 'data' / 'device_intelligence.db'}"
    models_dir: Path = PROJECT_ROOT / "models"
    thresholds: Thresholds = field(default_factory=Thresholds)
    keep_backups: int = C.DEFAULT_KEEP_BACKUPS
    auto_cleanup: bool = True  # keep only keep_backups sets after each promotion
    retrain_interval_hours: float = C.DEFAULT_RETRAIN_INTERVAL_HOURS
    lock_timeout_seconds: float = 10.0
    db_timeout_seconds: float = 5.0  # connect, statement (PostgreSQL) and busy-lock (SQLite) limit
    write_deadline_seconds: float = 30.0  # a registry change not applied by then is abandoned, unapplied
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")  # Host headers accepted on writes
    classifier: str = C.DEFAULT_CLASSIFIER
    horizon_days: int = C.DEFAULT_HORIZON_DAYS
    training_log: Path | None = PROJECT_ROOT / "training.log"  # runs started by the server append here too
    session_hours: float = 8.0  # a dashboard login lasts this long
    promotion: str = "auto"  # auto: a gate-passing run goes live unless held; manual: it waits for an admin
    api_key: str | None = None
    api_key_name: str = "api"
    drift_window_days: int = C.DEFAULT_DRIFT_WINDOW_DAYS  # Drift compares the last this-many days with training
    same_data_days: int = 14  # Compare's "score both on the same window": default window length, in days
    prediction_log: bool = True  # record every prediction served and scored (PREDICTION_LOG=0 turns it off)
    prediction_log_days: int = 180  # logged predictions older than this are pruned
    # Notifications by webhook (core/notify.py): targets as (name, url), the signing secret (never shown back).
    webhook_urls: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # a URL's path may hold a token
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_secrets: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # a target's own, over the shared
    webhook_events: tuple[str, ...] = DEFAULT_WEBHOOK_EVENTS
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 8
    # Training schedule: when scheduled runs are due (cron, UTC) and how late one may start before it is missed.
    training_schedule: str | None = DEFAULT_SCHEDULE  # None: off
    schedule_grace_minutes: int = DEFAULT_GRACE_MINUTES
    # Automatic rollback (issue 13): off | dry-run | on; the F1 drop that triggers it, and the outcomes it needs.
    auto_rollback: str = "off"
    auto_rollback_margin: float = 0.05
    auto_rollback_min_outcomes: int = 200
    # Metrics for Prometheus: drift and realised performance are recomputed in the background at most this often.
    metrics_refresh_seconds: float = 300.0
    # Alert engine (issue 13): monitoring rules' thresholds, and how often the server evaluates every rule.
    alert_realised_f1: float = 0.4  # the live version's realised F1 below this fires realised_f1_low
    alert_realised_recall: float = 0.4  # ... realised recall below this fires realised_recall_low
    alert_min_outcomes: int = 200  # known outcomes needed before a realised figure can fire
    alert_realised_days: int = 14  # realised figures over the predictions of this many recent labelled days
    alert_drift_features: int = 3  # features drifted significantly to fire drift_significant (0: off)
    alert_error_rate: float = 0.05  # failed share of predict requests above this fires prediction_error_rate
    alert_error_window_minutes: int = 15
    alert_error_min_requests: int = 20  # fewer requests than this in the window: no rate is judged
    alert_evaluate_seconds: float = 30.0  # the server's background evaluation interval (0: off)

    def webhook_secret_for(self, target: str) -> str | None:
        """The secret that signs messages to this target: its own (WEBHOOK_SECRET_<NAME>), else WEBHOOK_SECRET."""
        return dict(self.webhook_secrets).get(target, self.webhook_secret)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        base = cls()
        thresholds = Thresholds(
            accuracy=_float(env, "GATE_ACCURACY", base.thresholds.accuracy),
            precision=_float(env, "GATE_PRECISION", base.thresholds.precision),
            recall=_float(env, "GATE_RECALL", base.thresholds.recall),
            f1_score=_float(env, "GATE_F1", base.thresholds.f1_score),
            min_samples=_int(env, "GATE_MIN_SAMPLES", base.thresholds.min_samples),
            regression_tolerance=_float(env, "GATE_REGRESSION_TOLERANCE", base.thresholds.regression_tolerance),
        )
        settings = cls(
            database_url=env.get("DATABASE_URL") or base.database_url,
            models_dir=Path(env.get("MODELS_DIR") or base.models_dir),
            thresholds=thresholds,
            keep_backups=_int(env, "KEEP_BACKUPS", base.keep_backups),
            auto_cleanup=(env.get("AUTO_CLEANUP") or "1").strip().lower() not in ("0", "false", "no", "off"),
            retrain_interval_hours=_float(env, "RETRAIN_INTERVAL_HOURS", base.retrain_interval_hours),
            lock_timeout_seconds=_float(env, "LOCK_TIMEOUT_SECONDS", base.lock_timeout_seconds),
            db_timeout_seconds=_float(env, "DB_TIMEOUT_SECONDS", base.db_timeout_seconds),
            write_deadline_seconds=_float(env, "WRITE_DEADLINE_SECONDS", base.write_deadline_seconds),
            allowed_hosts=tuple(h.strip().lower() for h in env["ALLOWED_HOSTS"].split(",") if h.strip())
            if env.get("ALLOWED_HOSTS")
            else base.allowed_hosts,
            classifier=env.get("CLASSIFIER") or base.classifier,
            horizon_days=_int(env, "HORIZON_DAYS", base.horizon_days),
            training_log=_path_or_none(env, "TRAINING_LOG", base.training_log),
            session_hours=_float(env, "SESSION_HOURS", base.session_hours),
            promotion=(env.get("PROMOTION") or base.promotion).strip().lower(),
            api_key=env.get("API_KEY") or None,
            api_key_name=env.get("API_KEY_NAME") or base.api_key_name,
            drift_window_days=_int(env, "DRIFT_WINDOW_DAYS", base.drift_window_days),
            same_data_days=_int(env, "SAME_DATA_DAYS", base.same_data_days),
            prediction_log=(env.get("PREDICTION_LOG") or "1").strip().lower() not in ("0", "false", "no", "off"),
            prediction_log_days=_int(env, "PREDICTION_LOG_DAYS", base.prediction_log_days),
            # Notifications by webhook
            webhook_urls=(webhook_urls := parse_webhook_urls(env.get("WEBHOOK_URLS") or "")),
            webhook_secret=env.get("WEBHOOK_SECRET") or None,
            webhook_secrets=parse_webhook_secrets(env, webhook_urls),
            webhook_events=_webhook_events(env.get("WEBHOOK_EVENTS")),
            webhook_timeout_seconds=_float(env, "WEBHOOK_TIMEOUT_SECONDS", base.webhook_timeout_seconds),
            webhook_max_attempts=_int(env, "WEBHOOK_MAX_ATTEMPTS", base.webhook_max_attempts),
            training_schedule=env.get("TRAINING_SCHEDULE") or base.training_schedule,
            schedule_grace_minutes=_int(env, "SCHEDULE_GRACE_MINUTES", base.schedule_grace_minutes),
            # Automatic rollback (issue 13)
            auto_rollback=(env.get("AUTO_ROLLBACK") or base.auto_rollback).strip().lower(),
            auto_rollback_margin=_float(env, "AUTO_ROLLBACK_MARGIN", base.auto_rollback_margin),
            auto_rollback_min_outcomes=_int(env, "AUTO_ROLLBACK_MIN_OUTCOMES", base.auto_rollback_min_outcomes),
            # Metrics for Prometheus
            metrics_refresh_seconds=_float(env, "METRICS_REFRESH_SECONDS", base.metrics_refresh_seconds),
            alert_realised_f1=_float(env, "ALERT_REALISED_F1", base.alert_realised_f1),
            alert_realised_recall=_float(env, "ALERT_REALISED_RECALL", base.alert_realised_recall),
            alert_min_outcomes=_int(env, "ALERT_MIN_OUTCOMES", base.alert_min_outcomes),
            alert_realised_days=_int(env, "ALERT_REALISED_DAYS", base.alert_realised_days),
            alert_drift_features=_int(env, "ALERT_DRIFT_FEATURES", base.alert_drift_features),
            alert_error_rate=_float(env, "ALERT_ERROR_RATE", base.alert_error_rate),
            alert_error_window_minutes=_int(env, "ALERT_ERROR_WINDOW_MINUTES", base.alert_error_window_minutes),
            alert_error_min_requests=_int(env, "ALERT_ERROR_MIN_REQUESTS", base.alert_error_min_requests),
            alert_evaluate_seconds=_float(env, "ALERT_EVALUATE_SECONDS", base.alert_evaluate_seconds),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "models_dir" in clean:
            clean["models_dir"] = Path(str(clean["models_dir"]))
        settings = replace(settings, **clean) if clean else settings
        if settings.promotion not in ("auto", "manual"):
            raise InvalidInput(f"PROMOTION must be auto or manual, not {settings.promotion!r}")
        if settings.prediction_log_days < 1:
            raise InvalidInput(f"PREDICTION_LOG_DAYS must be at least 1, got {settings.prediction_log_days}")
        if not 0 < settings.webhook_timeout_seconds <= 60:
            raise InvalidInput(
                f"WEBHOOK_TIMEOUT_SECONDS must be above 0 and at most 60, got {settings.webhook_timeout_seconds}"
            )
        if not 1 <= settings.webhook_max_attempts <= 20:
            raise InvalidInput(f"WEBHOOK_MAX_ATTEMPTS must be from 1 to 20, got {settings.webhook_max_attempts}")
        if settings.keep_backups < 1:
            raise InvalidInput(f"KEEP_BACKUPS must be at least 1, got {settings.keep_backups}")
        if not 1 <= settings.drift_window_days <= C.MAX_DRIFT_WINDOW_DAYS:
            raise InvalidInput(
                f"DRIFT_WINDOW_DAYS must be between 1 and {C.MAX_DRIFT_WINDOW_DAYS}, got {settings.drift_window_days}"
            )
        if not 1 <= settings.metrics_refresh_seconds <= 86400:
            raise InvalidInput(
                f"METRICS_REFRESH_SECONDS must be from 1 to 86400 seconds, got {settings.metrics_refresh_seconds:g}"
            )
        if not 1 <= settings.same_data_days <= 365:
            raise InvalidInput(f"SAME_DATA_DAYS must be from 1 to 365 days, got {settings.same_data_days}")
        # Training schedule: one normalised expression for the Schedule page, the alerts and the deploy recipes.
        if settings.training_schedule is not None:
            settings = replace(settings, training_schedule=parse_schedule_setting(settings.training_schedule))
        parse_grace_minutes(settings.schedule_grace_minutes)
        _check_auto_rollback(settings)
        _check_alert_settings(settings)
        return settings


def _check_auto_rollback(settings: Settings) -> None:
    """Automatic rollback (issue 13): a known mode, a margin between 0 and 1, enough outcomes to mean something."""
    if settings.auto_rollback not in ("off", "dry-run", "on"):
        raise InvalidInput(f"AUTO_ROLLBACK must be off, dry-run or on, not {settings.auto_rollback!r}")
    if not 0.0 <= settings.auto_rollback_margin < 1.0:
        raise InvalidInput(f"AUTO_ROLLBACK_MARGIN is an F1 difference from 0 to 1, got {settings.auto_rollback_margin}")
    if settings.auto_rollback_min_outcomes < 30:
        raise InvalidInput(
            f"AUTO_ROLLBACK_MIN_OUTCOMES must be at least 30 (fewer outcomes say more about chance than about the "
            f"model), got {settings.auto_rollback_min_outcomes}"
        )


def _check_alert_settings(s: Settings) -> None:
    """The alert engine's settings (issue 13): shares between 0 and 1, counts and windows not negative."""
    for name, value in (
        ("ALERT_REALISED_F1", s.alert_realised_f1),
        ("ALERT_REALISED_RECALL", s.alert_realised_recall),
        ("ALERT_ERROR_RATE", s.alert_error_rate),
    ):
        if not 0.0 <= value <= 1.0:
            raise InvalidInput(f"{name} must be between 0 and 1, got {value}")
    for name, value in (
        ("ALERT_MIN_OUTCOMES", s.alert_min_outcomes),
        ("ALERT_DRIFT_FEATURES", s.alert_drift_features),
        ("ALERT_ERROR_MIN_REQUESTS", s.alert_error_min_requests),
        ("ALERT_EVALUATE_SECONDS", s.alert_evaluate_seconds),
    ):
        if value < 0:
            raise InvalidInput(f"{name} must not be negative, got {value}")
    if not 1 <= s.alert_realised_days <= 365:
        raise InvalidInput(f"ALERT_REALISED_DAYS must be from 1 to 365, got {s.alert_realised_days}")
    if not 1 <= s.alert_error_window_minutes <= 7 * 24 * 60:
        raise InvalidInput(f"ALERT_ERROR_WINDOW_MINUTES must be from 1 to 10080, got {s.alert_error_window_minutes}")
