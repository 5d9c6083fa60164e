"""What the pages call: the shared context, cached reads keyed by what changed, and the audited actions."""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import func, select

from core import constants as C
from core.alerts import Alert, last_finished_run, model_alerts, overall_level
from core.archive import archive_name, backup_archive
from core.context import AppContext, get_context
from core.db import RegistryEvent, TrainingRun
from core.domain import BackupSet, Comparison, EventRecord, Health, ModelVersion, RunRecord, VersionEntry
from core.errors import Conflict, DataError, IntegrityError, RegistryError
from core.jobs import conflict_message
from core.registry import compare_versions
from core.service import Trainer, validate_days_back
from core.trends import LIVE_EVENT_KINDS, LiveSpan, TrendPoint, live_spans, trend_points
from dashboard import charts

log = logging.getLogger(__name__)

OPERATOR_KEY = "app_operator"
CACHE_TTL = 30  # seconds; keys already change with the files and the history, the TTL bounds anything missed
DB_RETRY_SECONDS = 10.0
HISTORY_LIMIT = 5000


# ------------------------------------------------------------------ context
_ctx_lock = threading.Lock()
_failed_ctx: dict[tuple[str, str], tuple[AppContext, float]] = {}


def context() -> AppContext:
    """The process-wide context; an unreachable database is retried at most every DB_RETRY_SECONDS."""
    from core.config import Settings

    settings = Settings.from_env()
    key = (settings.database_url, str(settings.models_dir))
    with _ctx_lock:
        failed = _failed_ctx.get(key)
        if failed is not None and time.monotonic() - failed[1] < DB_RETRY_SECONDS:
            return failed[0]
    ctx = get_context(settings)
    with _ctx_lock:
        if ctx.db is None:
            _failed_ctx[key] = (ctx, time.monotonic())
        else:
            _failed_ctx.pop(key, None)
    return ctx


def reset() -> None:
    """Forget cached contexts, data and the bootstrap state (tests and benchmarks)."""
    from dashboard import bootstrap

    with _ctx_lock:
        _failed_ctx.clear()
    bootstrap.reset()
    st.cache_data.clear()
    st.cache_resource.clear()


# ------------------------------------------------------------------ operator
def login_configured() -> bool:
    """Whether Streamlit's OIDC login is configured (an [auth] section in secrets)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def operator() -> str | None:
    """Who is acting: the logged-in user when login is configured, else the name entered in the sidebar."""
    try:
        if st.user.get("is_logged_in"):
            name = st.user.get("name") or st.user.get("email")
            if name:
                return str(name)
    except Exception:  # st.user is unavailable outside a session
        pass
    name = str(st.session_state.get(OPERATOR_KEY) or "").strip()
    return name or None


def write_block_reason(ctx: AppContext, actor: str | None) -> str | None:
    """Why a destructive action is disabled right now, or None when it is allowed."""
    if not actor:
        return "Enter your name in the sidebar first: every change is recorded with who made it."
    holder = ctx.registry.lock.holder()
    if holder is not None:
        return f"The registry is busy with another operation: {holder.describe()}. Wait for it to finish."
    return None


# ------------------------------------------------------------------ stamps
def dir_stamp(ctx: AppContext) -> int:
    """Changes whenever a file is added, removed or replaced in the models directory."""
    try:
        return os.stat(ctx.settings.models_dir).st_mtime_ns
    except FileNotFoundError:
        return 0


def current_stamp(ctx: AppContext) -> tuple[tuple[str, int, int], ...]:
    """Size and mtime of each file of the current set (changes when any of them is replaced)."""
    out = []
    for name in C.SET_FILES:
        try:
            st_ = os.stat(ctx.settings.models_dir / name)
            out.append((name, st_.st_mtime_ns, st_.st_size))
        except FileNotFoundError:
            out.append((name, 0, -1))
    return tuple(out)


def history_stamp(ctx: AppContext) -> tuple[Any, ...]:
    """Changes whenever a run starts, progresses or ends, or an event is recorded."""
    if ctx.db is None:
        return ("no-db",)
    try:
        with ctx.db.session() as s:
            events = s.execute(select(func.count(RegistryEvent.id), func.max(RegistryEvent.id))).one()
            runs = s.execute(select(func.count(TrainingRun.id), func.max(TrainingRun.started_at), func.max(TrainingRun.finished_at))).one()
        return (tuple(events), tuple(str(x) for x in runs))
    except DataError:
        return ("db-error", time.monotonic())


# ------------------------------------------------------------------ cached reads
@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _health(db_url: str, models_dir: str, stamp: tuple) -> Health:
    return context().registry.health()


def health(ctx: AppContext) -> Health:
    """Integrity of the current set (sha256 per file), recomputed only when a file of the set changes."""
    return _health(ctx.settings.database_url, str(ctx.settings.models_dir), current_stamp(ctx))


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _versions(db_url: str, models_dir: str, dstamp: int, hstamp: tuple) -> list[VersionEntry]:
    return context().registry.versions()


def versions(ctx: AppContext) -> list[VersionEntry]:
    """Every version ever promoted, newest first."""
    return _versions(ctx.settings.database_url, str(ctx.settings.models_dir), dir_stamp(ctx), history_stamp(ctx))


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _backup_sets(models_dir: str, dstamp: int) -> list[BackupSet]:
    return context().registry.backups()


def backup_sets(ctx: AppContext) -> list[BackupSet]:
    """Every backup set on disk, newest first."""
    return _backup_sets(str(ctx.settings.models_dir), dir_stamp(ctx))


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _backups_table(models_dir: str, dstamp: int, now_minute: int) -> pd.DataFrame:
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for s in context().registry.backups():
        perf = s.performance
        rows.append(
            {
                "timestamp": s.timestamp,
                "created": s.created_at,
                "age": human_age(now - s.created_at),
                "version": s.version or "?",
                **{m: perf.get(m) for m in C.GATED_METRICS},
                "size": human_bytes(s.size_bytes),
                "complete": s.complete,
                "integrity": s.integrity,
                "problems": "; ".join(s.problems),
            }
        )
    return pd.DataFrame(rows, columns=["timestamp", "created", "age", "version", *C.GATED_METRICS, "size", "complete", "integrity", "problems"])


def backups_table(ctx: AppContext) -> pd.DataFrame:
    """One row per backup set: timestamp, version, key metrics, size, age, completeness, integrity."""
    return _backups_table(str(ctx.settings.models_dir), dir_stamp(ctx), int(time.time() // 60))


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _comparison(db_url: str, models_dir: str, a: str, b: str, dstamp: int, hstamp: tuple) -> Comparison:
    return context().registry.compare(a, b)


def comparison(ctx: AppContext, a: str, b: str) -> Comparison:
    """Version a compared with version b (a relative to b)."""
    return _comparison(ctx.settings.database_url, str(ctx.settings.models_dir), a, b, dir_stamp(ctx), history_stamp(ctx))


def recent_runs(ctx: AppContext, limit: int = 50) -> list[RunRecord]:
    """The newest training runs (empty without a database)."""
    if ctx.history is None:
        return []
    return _recent_runs(ctx.settings.database_url, str(ctx.settings.models_dir), limit, history_stamp(ctx))


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _recent_runs(db_url: str, models_dir: str, limit: int, hstamp: tuple) -> list[RunRecord]:
    history = context().history
    return history.runs(limit=limit) if history is not None else []


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _events(db_url: str, models_dir: str, kinds: tuple[str, ...], actor: str | None, since: dt.datetime | None, limit: int, hstamp: tuple) -> list[EventRecord]:
    history = context().history
    return history.events(kinds=kinds, actor=actor, since=since, limit=limit) if history is not None else []


def events(ctx: AppContext, *, kinds: tuple[str, ...] = (), actor: str | None = None, since: dt.datetime | None = None, limit: int = HISTORY_LIMIT) -> list[EventRecord]:
    """Registry events, newest first, filtered in the database."""
    if ctx.history is None:
        return []
    return _events(ctx.settings.database_url, str(ctx.settings.models_dir), tuple(kinds), actor or None, since, limit, history_stamp(ctx))


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _actors(db_url: str, models_dir: str, hstamp: tuple) -> list[str]:
    ctx = context()
    if ctx.db is None:
        return []
    with ctx.db.session() as s:
        return sorted(a for a in s.scalars(select(RegistryEvent.actor).distinct()) if a)


def actors(ctx: AppContext) -> list[str]:
    """Everyone who appears in the audit trail."""
    return _actors(ctx.settings.database_url, str(ctx.settings.models_dir), history_stamp(ctx))


@dataclass(frozen=True)
class Trends:
    """Everything the Trends page plots."""

    points: list[TrendPoint]
    spans: list[LiveSpan]
    has_history: bool


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _trends(db_url: str, models_dir: str, dstamp: int, hstamp: tuple) -> Trends:
    ctx = context()
    entries = ctx.registry.versions()
    current = next((v.version for v in entries if v.is_current), None)
    if ctx.history is None:
        return Trends(trend_points(entries, [], []), [], False)
    runs = ctx.history.runs(limit=HISTORY_LIMIT, statuses=["rejected"])
    evts = ctx.history.events(kinds=LIVE_EVENT_KINDS, limit=HISTORY_LIMIT, ascending=False)
    now = dt.datetime.now(dt.timezone.utc)
    return Trends(trend_points(entries, runs, evts), live_spans(evts, now, current), True)


def trends(ctx: AppContext) -> Trends:
    """Metric points (promotions, rejected runs, restores) and the live-version timeline."""
    return _trends(ctx.settings.database_url, str(ctx.settings.models_dir), dir_stamp(ctx), history_stamp(ctx))


# Figures are cached as objects (cache_resource): pickling a plotly figure re-validates it, which costs more than building it.
@st.cache_resource(ttl=CACHE_TTL, max_entries=16, show_spinner=False)
def _trend_figures(db_url: str, models_dir: str, dstamp: int, hstamp: tuple, metrics: tuple[str, ...], by_version: bool, max_spans: int) -> dict[str, Any]:
    ctx = context()
    data = _trends(db_url, models_dir, dstamp, hstamp)
    if not data.points:
        return {}
    frame = charts.points_frame(data.points)
    figures: dict[str, Any] = {"frame": frame}
    if metrics:
        figures["metrics"] = charts.metric_trends(frame, metrics, lambda m: threshold(ctx, m), by_version=by_version)
    figures["duration"] = charts.over_time(frame, "duration_s", "Training duration", "seconds")
    figures["samples"] = charts.over_time(frame, "samples", "Training samples", "samples")
    if data.spans:
        figures["timeline"] = charts.live_timeline(data.spans[-max_spans:])
    return figures


def trend_figures(ctx: AppContext, metrics: tuple[str, ...], by_version: bool, max_spans: int) -> dict[str, Any]:
    """The Trends page's table and figures (metrics, duration, samples, timeline), rebuilt only when the data changes."""
    return _trend_figures(ctx.settings.database_url, str(ctx.settings.models_dir), dir_stamp(ctx), history_stamp(ctx), tuple(metrics), by_version, max_spans)


@st.cache_resource(ttl=CACHE_TTL, max_entries=16, show_spinner=False)
def _compare_figures(db_url: str, models_dir: str, a: str, b: str, dstamp: int, hstamp: tuple) -> dict[str, Any]:
    ctx = context()
    c = _comparison(db_url, models_dir, a, b, dstamp, hstamp)
    figures: dict[str, Any] = {"bar": charts.metrics_bar(c, {m: threshold(ctx, m) for m in C.PERFORMANCE_METRICS})}
    for side, version in ((c.a, a), (c.b, b)):
        matrix = metadata_value(side.metadata, "confusion_matrix")
        if matrix:
            figures[f"cm_{version}"] = charts.confusion(matrix, f"v{version}  [[tn, fp], [fn, tp]]")
    imp_a, imp_b = metadata_value(c.a.metadata, "feature_importances") or {}, metadata_value(c.b.metadata, "feature_importances") or {}
    if imp_a or imp_b:
        figures["importances"] = charts.importances(imp_a, imp_b, f"A · v{a}", f"B · v{b}")
    return figures


def compare_figures(ctx: AppContext, a: str, b: str) -> dict[str, Any]:
    """The Compare page's figures: grouped metric bars, confusion matrices (cm_<version>), importances."""
    return _compare_figures(ctx.settings.database_url, str(ctx.settings.models_dir), a, b, dir_stamp(ctx), history_stamp(ctx))


def metadata_value(meta: dict[str, Any], key: str) -> Any:
    """A metadata key at the top level or under model_performance (where older trainers put it)."""
    return meta.get(key) if meta.get(key) is not None else (meta.get("model_performance") or {}).get(key)


# ------------------------------------------------------------------ status
@dataclass(frozen=True)
class StatusView:
    """The current model and what needs attention, for the Status page and the sidebar."""

    current: ModelVersion | None
    current_error: str | None
    health: Health
    alerts: list[Alert]
    level: str
    last_run: RunRecord | None
    running: RunRecord | None
    last_live_event: EventRecord | None
    db_error: str | None


def status_view(ctx: AppContext) -> StatusView:
    """Reconcile hand-made changes, then gather the current model, integrity, last run and alerts."""
    if ctx.db is not None:
        try:
            ctx.registry.reconcile()
        except RegistryError as exc:
            log.warning("reconcile failed: %s", exc.message)
    current, error = None, None
    try:
        current = ctx.registry.current()
    except IntegrityError as exc:
        error = exc.message
    runs = recent_runs(ctx, 20)
    live = events(ctx, kinds=LIVE_EVENT_KINDS, limit=1)
    h = health(ctx)
    alerts = model_alerts(current, h, ctx.settings, last_run=last_finished_run(runs), last_live_event=live[0] if live else None)
    if error:
        alerts.insert(0, Alert("red", "integrity", error))
    running = next((r for r in runs if r.status == "running"), None)
    return StatusView(current, error, h, alerts, overall_level(alerts), last_finished_run(runs), running, live[0] if live else None, ctx.db_error)


def threshold(ctx: AppContext, metric: str) -> float | None:
    """The gate threshold for a metric (None for ungated ones such as roc_auc)."""
    return ctx.settings.thresholds.for_metric(metric)


def due(ctx: AppContext) -> tuple[bool, str]:
    """Whether a non-forced run would train now, and why."""
    if ctx.db is None:
        return True, "unknown (database unreachable)"
    return Trainer(ctx.settings, ctx.db, ctx.registry).due()


# ------------------------------------------------------------------ actions
@dataclass(frozen=True)
class ActionResult:
    """What an action did: ok and a sentence for the operator, plus the value it returned."""

    ok: bool
    message: str
    value: Any = None


def _refuse(ctx: AppContext, actor: str | None) -> ActionResult | None:
    reason = write_block_reason(ctx, actor)
    return ActionResult(False, reason) if reason else None


def _after_write() -> None:
    _backup_sets.clear()
    _cleanup_preview.clear()
    _disk_usage.clear()
    _backups_table.clear()
    _health.clear()
    _trend_figures.clear()
    _compare_figures.clear()


def restore_preview(ctx: AppContext, timestamp: str) -> Comparison:
    """What a restore of this backup would change: the backup's version relative to the current model."""
    chosen = ctx.registry.backup(timestamp, verify=False)
    if chosen.metadata is None:
        raise IntegrityError(f"backup {timestamp} has no readable metadata; it cannot be restored")
    target = ModelVersion.from_metadata(chosen.metadata, location="backup", backup_timestamp=timestamp)
    current = ctx.registry.current() or ModelVersion.from_metadata({"version": "none"}, location="current")
    return compare_versions(target, current)


def restore_backup(ctx: AppContext, timestamp: str, *, actor: str | None, reason: str) -> ActionResult:
    """Make a backup set current, recorded with the operator's name and reason."""
    if refused := _refuse(ctx, actor):
        return refused
    if not reason or not reason.strip():
        return ActionResult(False, "Give a reason for the restore: it goes into the audit trail.")
    try:
        before = ctx.registry.current()
        restored = ctx.registry.restore(timestamp, actor=str(actor), reason=reason.strip())
    except RegistryError as exc:
        return ActionResult(False, exc.message)
    finally:
        _after_write()
    return ActionResult(True, f"Restored version {restored.version} from backup {timestamp} (was {before.version if before else 'none'}).", restored)


def delete_backup(ctx: AppContext, timestamp: str, *, actor: str | None, reason: str | None = None) -> ActionResult:
    """Remove one backup set, recorded with the operator's name."""
    if refused := _refuse(ctx, actor):
        return refused
    try:
        removed = ctx.registry.delete_backup(timestamp, actor=str(actor), reason=(reason or "").strip() or None)
    except RegistryError as exc:
        return ActionResult(False, exc.message)
    finally:
        _after_write()
    return ActionResult(True, f"Deleted backup {timestamp} (version {removed.version or '?'}, {human_bytes(removed.size_bytes)}).", removed)


@dataclass(frozen=True)
class CleanupPlan:
    """What a clean-up would remove: the sets' timestamps and versions (newest first) and the bytes freed."""

    keep: int
    timestamps: list[str]
    versions: list[str | None]
    size_bytes: int


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _cleanup_preview(models_dir: str, keep: int, dstamp: int) -> CleanupPlan:
    plan = context().registry.cleanup_plan(keep)
    return CleanupPlan(keep, [s.timestamp for s in plan], [s.version for s in plan], sum(s.size_bytes for s in plan))


def cleanup_preview(ctx: AppContext, keep: int) -> CleanupPlan:
    """What registry.cleanup_plan(keep) would remove (a compact summary, cached per directory state)."""
    return _cleanup_preview(str(ctx.settings.models_dir), int(keep), dir_stamp(ctx))


def cleanup_backups(ctx: AppContext, keep: int, *, actor: str | None, expected: list[str]) -> ActionResult:
    """Remove the previewed backup sets; refuses if the list changed since the preview."""
    if refused := _refuse(ctx, actor):
        return refused
    try:
        removed = ctx.registry.cleanup(keep, actor=str(actor), expected=list(expected))
    except RegistryError as exc:
        return ActionResult(False, exc.message)
    finally:
        _after_write()
    freed = human_bytes(sum(s.size_bytes for s in removed))
    return ActionResult(True, f"Removed {len(removed)} backup set(s), freed {freed}; kept the newest {keep}.", removed)


def backup_now(ctx: AppContext, *, actor: str | None) -> ActionResult:
    """Copy the current set to a new backup set."""
    if refused := _refuse(ctx, actor):
        return refused
    try:
        made = ctx.registry.backup_now(actor=str(actor), reason="manual backup from the dashboard")
    except RegistryError as exc:
        return ActionResult(False, exc.message)
    finally:
        _after_write()
    return ActionResult(True, f"Backed up version {made.version} as {made.timestamp}.", made)


def download(ctx: AppContext, timestamp: str) -> tuple[str, bytes]:
    """File name and .tar.gz bytes of one backup set."""
    chosen = ctx.registry.backup(timestamp, verify=False)
    return archive_name(timestamp, chosen.version), backup_archive(ctx.settings.models_dir, timestamp)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _disk_usage(models_dir: str, dstamp: int, cstamp: tuple) -> dict[str, int]:
    usage = context().registry.disk_usage()
    usage["free_bytes"] = shutil.disk_usage(models_dir).free
    return usage


def disk_usage(ctx: AppContext) -> dict[str, int]:
    """Bytes used by the models directory (current set, backups, total) and free on its disk."""
    return _disk_usage(str(ctx.settings.models_dir), dir_stamp(ctx), current_stamp(ctx))


def start_training(ctx: AppContext, *, days_back: object, force: bool, actor: str | None) -> ActionResult:
    """Start a background training job; the result's value is the run id."""
    if ctx.jobs is None:
        return ActionResult(False, f"Training needs the database: {ctx.db_error or 'it is unreachable'}")
    if not actor:
        return ActionResult(False, "Enter your name in the sidebar first: every run is recorded with who started it.")
    try:
        days = validate_days_back(days_back)
        job = ctx.jobs.start(days_back=days, force=bool(force), actor=actor, trigger="dashboard")
    except Conflict:
        return ActionResult(False, conflict_message(ctx.jobs.holder()))
    except RegistryError as exc:
        return ActionResult(False, exc.message)
    return ActionResult(True, f"Training started (days_back={days}, force={bool(force)}).", job.run_id)


def get_run(ctx: AppContext, run_id: str) -> RunRecord | None:
    """A run's live state (never cached: the progress fragment polls it)."""
    return ctx.jobs.get(run_id) if ctx.jobs is not None else None


# ------------------------------------------------------------------ formatting
def human_age(delta: dt.timedelta | None) -> str:
    """A duration as '42 s', '5 min', '3.2 h' or '4.1 d'."""
    if delta is None:
        return "unknown"
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def human_bytes(n: int | None) -> str:
    """Bytes as B, KiB, MiB or GiB."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def fmt_time(value: dt.datetime | None) -> str:
    """A UTC time as 'YYYY-MM-DD HH:MM UTC'."""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if value else "unknown"

