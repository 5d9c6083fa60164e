"""What the pages call: the application layer, its reads cached by what they depend on, actions as one-line results."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from core import constants as C
from core.domain import BackupSet, Comparison, DiskUsage, EventRecord, RunRecord, VersionEntry
from core.errors import RegistryError
from core.identity import NEEDS, Principal
from core.modelops import CleanupPlan, ModelOps, get_ops, reset_ops
from core.training_run import TrainingRequest
from core.trends import Trends
from dashboard import charts
from dashboard.formatting import human_age, human_bytes

CACHE_TTL = 30  # seconds; keys already change with the files and the history, the TTL bounds anything missed
HISTORY_LIMIT = 5000
T = TypeVar("T")


def ops() -> ModelOps:
    """The process-wide application layer for the environment's settings."""
    return get_ops()


def reset() -> None:
    """Forget the application layer, cached data and the first-run state (tests and benchmarks)."""
    from dashboard import bootstrap

    reset_ops()
    bootstrap.reset()
    st.cache_data.clear()
    st.cache_resource.clear()


# ------------------------------------------------------------------ cached reads
def _key(*parts: str) -> tuple[Any, ...]:
    """The cache key for a read that depends on these parts: directory, current_set, history."""
    o = ops()
    stamps = o.stamps()
    return (o.settings.database_url, str(o.settings.models_dir), *(getattr(stamps, p) for p in parts))


# Domain objects are frozen and never changed by a page: cache them as objects (cache_resource), since
# cache_data would unpickle thousands of backup sets or versions on every rerun.
@st.cache_resource(ttl=CACHE_TTL, show_spinner=False, max_entries=256)
def _read(verb: str, key: tuple[Any, ...], **kwargs: Any) -> Any:
    """One read verb of the application layer, cached under `key` (settings and the stamps it depends on)."""
    return getattr(ops(), verb)(**kwargs)


def versions() -> list[VersionEntry]:
    """Every version ever promoted, newest first."""
    return _read("versions", _key("directory", "history"))


def backup_sets() -> list[BackupSet]:
    return _read("backups", _key("directory"))


def comparison(a: str, b: str) -> Comparison:
    """Version a compared with version b (a relative to b)."""
    return _read("compare", _key("directory", "history"), a=a, b=b)


def runs(limit: int = 50) -> list[RunRecord]:
    """The newest training runs (empty without the database)."""
    return _read("runs", _key("history"), limit=limit) if ops().history is not None else []


def events(
    kinds: tuple[str, ...] = (), actor: str | None = None, since: dt.datetime | None = None
) -> list[EventRecord]:
    """Registry events, newest first."""
    return _read("events", _key("history"), kinds=kinds, actor=actor, since=since)


def actors() -> list[str]:
    return _read("actors", _key("history"))


def trends() -> Trends:
    return _read("trends", _key("directory", "history"))


def cleanup_plan(keep: int) -> CleanupPlan:
    return _read("cleanup_plan", _key("directory"), keep=int(keep))


def disk_usage() -> DiskUsage:
    return _read("disk_usage", _key("directory", "current_set"))


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _backups_table(key: tuple[Any, ...], now_minute: int) -> pd.DataFrame:
    now = dt.datetime.now(dt.UTC)
    sets = backup_sets()
    # Column by column: a frame of 3,000 sets built from one dict per row takes several times longer.
    performance = [s.performance for s in sets]
    columns: dict[str, list[Any]] = {
        "timestamp": [s.timestamp for s in sets],
        "created": [s.created_at for s in sets],
        "age": [human_age(now - s.created_at) if s.created_at else "?" for s in sets],
        "version": [s.version or "?" for s in sets],
        **{m: [p.get(m) for p in performance] for m in C.GATED_METRICS},
        "size": [human_bytes(s.size_bytes) for s in sets],
        "complete": [s.complete for s in sets],
        "integrity": [s.integrity for s in sets],
        "problems": ["; ".join(s.problems) for s in sets],
    }
    return pd.DataFrame(columns)


def backups_table() -> pd.DataFrame:
    """One row per backup set: timestamp, version, key metrics, size, age, completeness, integrity."""
    return _backups_table(_key("directory"), int(time.time() // 60))


def threshold(metric: str) -> float | None:
    """The gate threshold for a metric (None for ungated ones such as roc_auc)."""
    return ops().settings.thresholds.for_metric(metric)


# Figures are cached as objects (cache_resource): pickling a plotly figure re-validates it, which costs more than
# building it.
@st.cache_resource(ttl=CACHE_TTL, max_entries=16, show_spinner=False)
def _trend_figures(key: tuple[Any, ...], metrics: tuple[str, ...], by_version: bool, max_spans: int) -> dict[str, Any]:
    data = trends()
    if not data.points:
        return {}
    frame = charts.points_frame(data.points)
    figures: dict[str, Any] = {"frame": frame}
    if metrics:
        figures["metrics"] = charts.metric_trends(frame, metrics, threshold, by_version=by_version)
    figures["duration"] = charts.over_time(frame, "duration_s", "Training duration", "seconds")
    figures["samples"] = charts.over_time(frame, "samples", "Training samples", "samples")
    if data.spans:
        figures["timeline"] = charts.live_timeline(data.spans[-max_spans:])
    return figures


def trend_figures(metrics: tuple[str, ...], by_version: bool, max_spans: int) -> dict[str, Any]:
    """The Trends page's table and figures (metrics, duration, samples, timeline), rebuilt when what they plot
    changes: a clean-up, a backup or a hold leaves them as they are."""
    return _trend_figures(_trends_digest(trends(), max_spans), tuple(metrics), by_version, max_spans)


def _trends_digest(data: Trends, max_spans: int) -> tuple[Any, ...]:
    """What the Trends figures show, hashed (the last span's end, which is now, left out: the TTL renews it)."""
    points = tuple(
        (p.at, p.version, p.kind, p.trigger, p.actor, tuple(p.metrics.items()), p.duration_seconds, p.sample_count)
        for p in data.points
    )
    spans = tuple((s.version, s.start, s.how, s.actor) for s in data.spans[-max_spans:])
    ends = tuple(s.end for s in data.spans[-max_spans:-1])
    o = ops()
    return (o.settings.database_url, str(o.settings.models_dir), hash(points), hash(spans), hash(ends))


@st.cache_resource(ttl=CACHE_TTL, max_entries=16, show_spinner=False)
def _compare_figures(key: tuple[Any, ...], a: str, b: str) -> dict[str, Any]:
    c = comparison(a, b)
    figures: dict[str, Any] = {"bar": charts.metrics_bar(c, {m: threshold(m) for m in C.PERFORMANCE_METRICS})}
    for side, version in ((c.a, a), (c.b, b)):
        if side.confusion_matrix:
            figures[f"cm_{version}"] = charts.confusion(side.confusion_matrix, f"v{version}  [[tn, fp], [fn, tp]]")
    if c.a.feature_importances or c.b.feature_importances:
        figures["importances"] = charts.importances(
            c.a.feature_importances, c.b.feature_importances, f"A · v{a}", f"B · v{b}"
        )
    return figures


def compare_figures(a: str, b: str) -> dict[str, Any]:
    """The Compare page's figures: grouped metric bars, confusion matrices (cm_<version>), importances.

    Keyed by the two versions' metadata (a version is never reused), so a change elsewhere keeps them.
    """
    c = comparison(a, b)
    shown = json.dumps([c.a.metadata, c.b.metadata], sort_keys=True, default=str)
    o = ops()
    return _compare_figures((o.settings.database_url, str(o.settings.models_dir), shown), a, b)


# ------------------------------------------------------------------ actions
@dataclass(frozen=True)
class ActionResult:
    """What an action did: ok and a sentence for the operator, plus the value it returned."""

    ok: bool
    message: str
    value: Any = None


# Not blocked by a busy registry: a run waits for the lock only to promote; the others never take it.
_WAITS_FOR_REGISTRY = frozenset({"train", "manage users", "send test notifications", "acknowledge", "silence alerts"})


def write_block_reason(who: Principal, action: str) -> str | None:
    """Why `action` is disabled for `who` right now (their role, or a write in progress), or None."""
    if not who.can(action):
        return f"Your role ({who.role}) may not {action}: that needs the {NEEDS[action]} role."
    if action in _WAITS_FOR_REGISTRY:  # a run trains first and waits for the lock only to promote
        return None
    holder = ops().registry_busy()
    if holder is not None:
        return f"The registry is busy with another operation: {holder.describe()}. Wait for it to finish."
    return None


def _act(action: Callable[[], T], describe: Callable[[T], str]) -> ActionResult:
    """Run one verb of the application layer; its error becomes the message."""
    try:
        value = action()
    except RegistryError as exc:
        return ActionResult(False, exc.message)
    return ActionResult(True, describe(value), value)


def restore(timestamp: str, *, actor: Principal, reason: str, during_training: bool = False) -> ActionResult:
    """Make a backup set live and hold it, recorded with who did it and why."""
    return _act(
        lambda: ops().restore(timestamp, actor=actor, reason=reason, during_training=during_training),
        lambda r: (
            f"Restored version {r.restored.version} from backup {r.source_backup} "
            f"(was {r.replaced_version or 'none'}; its set is backed up as {r.undo_backup or '-'}). "
            f"Version {r.restored.version} is held: new models wait on Candidates until an admin releases the hold."
            + (f" Its audit event is pending: {r.audit_pending}." if r.audit_pending else "")
        ),
    )


def undo_restore(done: Any, *, actor: Principal) -> ActionResult:
    """Put back the set a restore replaced, if the restored version is still live."""
    return _act(
        lambda: ops().undo_restore(done, actor=actor),
        lambda r: (
            f"Undone: version {r.restored.version} is live again (from backup {r.source_backup}); "
            f"v{done.restored.version} stays in its backup {done.source_backup}. "
            f"Version {r.restored.version} is held, as after every restore."
        ),
    )


def place_hold(*, actor: Principal, reason: str) -> ActionResult:
    return _act(
        lambda: ops().place_hold(actor=actor, reason=reason),
        lambda h: f"Version {h.version} is held: gate-passing runs wait on Candidates until the hold is released.",
    )


def send_test_notification(*, actor: Principal) -> ActionResult:
    """A signed test message to every webhook target now; the sentence says which answered."""

    def describe(attempts: list[Any]) -> str:
        parts = [f"{a.target}: {a.status}" + (f" ({a.error})" if a.error else "") for a in attempts]
        return "Test notification sent. " + "; ".join(parts)

    result = _act(lambda: ops().send_test_notification(actor=actor), describe)
    if result.ok and any(a.status != "delivered" for a in result.value):
        return ActionResult(False, result.message, result.value)
    return result


def release_hold(*, actor: Principal, reason: str) -> ActionResult:
    return _act(
        lambda: ops().release_hold(actor=actor, reason=reason),
        lambda h: f"Released the hold on version {h.version}: the next gate-passing run goes live.",
    )


def approve_candidate(candidate_id: str, *, actor: Principal, reason: str | None) -> ActionResult:
    return _act(
        lambda: ops().approve_candidate(candidate_id, actor=actor, reason=reason),
        lambda v: f"Approved candidate {candidate_id}: version {v.version} is live.",
    )


def discard_candidate(candidate_id: str, *, actor: Principal, reason: str | None) -> ActionResult:
    return _act(
        lambda: ops().discard_candidate(candidate_id, actor=actor, reason=reason),
        lambda _: f"Discarded candidate {candidate_id}.",
    )


def add_account(name: str, role: str, password: str, *, actor: Principal) -> ActionResult:
    return _act(
        lambda: ops().add_account(name, role, password, actor=actor),
        lambda a: f"Account {a.name} added with role {a.role}.",
    )


def change_account(name: str, *, actor: Principal, **change: Any) -> ActionResult:
    return _act(lambda: ops().change_account(name, actor=actor, **change), lambda _: f"Account {name} changed.")


def create_api_key(name: str, role: str, *, actor: Principal) -> ActionResult:
    """A new key; the result's value is (info, secret): the secret is shown this once."""
    return _act(
        lambda: ops().create_api_key(name, role, actor=actor),
        lambda made: f"API key {made[0].name} created with role {made[0].role}.",
    )


def revoke_api_key(name: str, *, actor: Principal) -> ActionResult:
    return _act(lambda: ops().revoke_api_key(name, actor=actor), lambda k: f"API key {k.name} revoked.")


def delete_backup(timestamp: str, *, actor: Principal, reason: str | None = None) -> ActionResult:
    return _act(
        lambda: ops().delete_backup(timestamp, actor=actor, reason=reason),
        lambda s: f"Deleted backup {timestamp} (version {s.version or '?'}, {human_bytes(s.size_bytes)}).",
    )


def cleanup(keep: int, *, actor: Principal, expected: list[str], reason: str | None = None) -> ActionResult:
    """Remove the previewed backup sets; refused if the list changed since the preview."""
    return _act(
        lambda: ops().cleanup(keep, actor=actor, reason=reason, expected=expected),
        lambda p: f"Removed {len(p.sets)} backup set(s), freed {human_bytes(p.size_bytes)}; kept the newest {keep}.",
    )


def backup_now(*, actor: Principal) -> ActionResult:
    return _act(
        lambda: ops().backup_now(actor=actor, reason="manual backup from the dashboard"),
        lambda s: f"Backed up version {s.version} as {s.timestamp}.",
    )


def start_training(*, days_back: object, force: bool, actor: Principal) -> ActionResult:
    """Start a background training run; the result's value is the run id."""

    def start() -> str:
        o = ops()
        wanted = TrainingRequest.parse(days_back=days_back, force=force, settings=o.settings)
        return o.start_training(wanted, actor=actor, trigger="dashboard").run_id

    return _act(start, lambda _: f"Training started (days_back={days_back}, force={bool(force)}).")


def get_run(run_id: str) -> RunRecord | None:
    """A run's live state (never cached: the progress fragment polls it)."""
    try:
        return ops().run(run_id)
    except RegistryError:
        return None


def drift(window_days: int) -> Any:
    """Drift of the last `window_days` days against the live version's training window (a core.drift.DriftReport).

    Not cached here: the application layer keeps the report per live set, window and telemetry stamp, for every
    interface, so a rerun costs one stamp query.
    """
    return ops().drift(window_days)


# ------------------------------------------------------------------ same-data compare
def holdout_notice(a: str, b: str) -> str | None:
    """Set when the two versions' stored holdout figures come from different windows."""
    return ops().holdout_notice(comparison(a, b))


def same_data_window() -> Any:
    """The most recent complete labelled window (Compare's default for "score both on the same window")."""
    return ops().same_data_window()


def same_data(a: str, b: str, start: dt.date | None, end: dt.date | None) -> Any:
    """A and B scored on one window (core caches the figures by artifacts, window and telemetry)."""
    return ops().compare_same_data(a, b, window_start=start, window_end=end)


def same_data_cached(a: str, b: str) -> Any:
    """Same-data figures already computed for A and B on today's telemetry, or None (never computes)."""
    try:
        return ops().same_data_cached(a, b)
    except RegistryError:
        return None


def candidate_ids() -> list[str]:
    """Candidate sets that can be scored (their files are kept until approved or discarded)."""
    return [c.id for c in ops().candidates()]


# ------------------------------------------------------------------ realised performance (prediction log)
REALISED_TTL = 120  # seconds: the log grows with every prediction; a figure two minutes old is fresh enough


@st.cache_resource(ttl=REALISED_TTL, show_spinner=False, max_entries=16)
def _realised(url: str, models_dir: str, directory: int) -> Any:
    return ops().realised_performance()


def realised() -> Any:
    """Realised performance per version and week (None, with the reason, while the database is unreachable)."""
    o = ops()
    return _realised(o.settings.database_url, str(o.settings.models_dir), o.stamps().directory)


@st.cache_resource(ttl=REALISED_TTL, show_spinner=False, max_entries=16)
def _shadows(url: str, models_dir: str, directory: int) -> dict[str, Any]:
    return {f.candidate_id: f for f in ops().shadow_performance()}


def shadow_figures() -> dict[str, Any]:
    """Each waiting candidate's shadow figures beside the live version's, by candidate id ({} without a database)."""
    o = ops()
    if o.db is None:
        return {}
    return _shadows(o.settings.database_url, str(o.settings.models_dir), o.stamps().directory)


# ------------------------------------------------------------------ alerts (issue 13)
def alert_board() -> Any:
    """Open and recently resolved alerts (a core.alerting.AlertBoard), or None without the database.

    Not evaluated here: the server evaluates every ALERT_EVALUATE_SECONDS and after runs, scorings and restores.
    """
    o = ops()
    if o.db is None:
        return None
    try:
        return o.alerts(include_resolved=True)
    except RegistryError:
        return None


def acknowledge_alert(alert_id: int, *, actor: Principal, reason: str) -> ActionResult:
    return _act(
        lambda: ops().acknowledge_alert(alert_id, actor=actor, reason=reason),
        lambda a: f"Acknowledged alert {a.id} ({a.rule}): it no longer counts as firing until it resolves.",
    )


def silence_alert(alert_id: int, minutes: int, *, actor: Principal, reason: str) -> ActionResult:
    def silence() -> Any:
        until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=int(minutes))
        return ops().silence_alert(alert_id, until=until, actor=actor, reason=reason)

    return _act(
        silence,
        lambda a: f"Silenced alert {a.id} ({a.rule}) until {a.silenced_until:%Y-%m-%d %H:%M} UTC.",
    )
