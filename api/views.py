"""JSON bodies the routes return, built from core objects (the guide's key names kept)."""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import threading
from typing import TYPE_CHECKING, Any, Callable

from core import backups as B
from core import constants as C
from core.context import AppContext
from core.domain import RunRecord
from core.errors import IntegrityError, NotFound, RegistryError
from core.history import History
from core.jobs import JobStart

if TYPE_CHECKING:
    from core.predict import Prediction
from core.storage import FileSignature, set_signature
from core.registry import Registry
from core.reporting import backup_dict, comparison_dict, event_dict, health_dict, iso, run_dict, version_entry_dict


def json_safe(value: Any) -> Any:
    """The value with NaN and infinities as null (JSON has neither; jq and bc cannot read them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class RenderedCache:
    """JSON bodies built from the models directory alone, rendered once per state of the current set's files."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[FileSignature, bytes]] = {}
        self._lock = threading.Lock()

    def body(self, key: str, registry: Registry, build: Callable[[Registry], dict[str, Any]]) -> bytes:
        """The rendered body for `key`, rebuilt when a file of the current set changed (a stale hit heals on the next call)."""
        signature = set_signature(registry.models_dir)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == signature:
            return entry[1]
        rendered = json.dumps(build(registry), separators=(",", ":"), allow_nan=False).encode("utf-8")
        with self._lock:
            self._entries[key] = (signature, rendered)
        return rendered


def _current_metadata(registry: Registry) -> tuple[dict[str, Any] | None, list[str]]:
    """The current metadata (cached by size and mtime) and any problem reading it."""
    path = registry.path(C.METADATA_FILE)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None, []
    metadata = B.read_metadata(path, stat)
    if metadata is None:
        return None, [f"{C.METADATA_FILE} is not valid JSON; restore a backup set or retrain"]
    return metadata, []


def _last_updated(registry: Registry) -> str | None:
    """When a file of the current set last changed (ISO 8601 UTC)."""
    mtimes = []
    for name in C.SET_FILES:
        try:
            mtimes.append(os.stat(registry.path(name)).st_mtime)
        except FileNotFoundError:
            continue
    if not mtimes:
        return None
    return dt.datetime.fromtimestamp(max(mtimes), dt.timezone.utc).isoformat()


def status(registry: Registry) -> dict[str, Any]:
    """GET models/status: the old service's keys; nulls (and is_trained false) when there is no usable model."""
    metadata, problems = _current_metadata(registry)
    missing = [n for n in C.MODEL_FILES if not registry.path(n).exists()]
    if metadata is not None:
        problems += [f"{name} is missing; restore a backup set or retrain" for name in missing]
    if metadata is None:
        return {"is_trained": False, "model_performance": None, "feature_columns": None, "model_metadata": None, "last_updated": None, "problems": problems}
    return {
        "is_trained": not missing,
        "model_performance": json_safe(metadata.get("model_performance")),
        "feature_columns": metadata.get("feature_columns"),
        "model_metadata": json_safe(metadata),
        "last_updated": _last_updated(registry),
        "problems": problems,
    }


def version(registry: Registry) -> dict[str, Any]:
    """GET models/version: the current version and where it came from."""
    metadata, problems = _current_metadata(registry)
    meta = metadata or {}
    return {
        "version": meta.get("version"),
        "is_trained": metadata is not None,
        "training_date": meta.get("training_date"),
        "promoted_at": meta.get("promoted_at"),
        "previous_version": meta.get("previous_version"),
        "data_source": meta.get("data_source"),
        "trigger": meta.get("trigger"),
        "actor": meta.get("actor"),
        "scikit_learn_version": meta.get("scikit_learn_version"),
        "model_performance": json_safe(meta.get("model_performance")),
        "last_updated": _last_updated(registry) if metadata is not None else None,
        "problems": problems,
    }


def _unavailable_comparison(registry: Registry, message: str) -> dict[str, Any]:
    try:
        current = registry.current()
    except IntegrityError:
        current = None
    return {
        "current_version": current.version if current else None,
        "backup_timestamp": None,
        "comparison_available": False,
        "message": message,
        "version_change": None,
        "performance": {"current": current.performance if current else None, "previous": None, "changes": {}},
        "training_data": {"current": current.data_stats if current else None, "previous": None},
        "data_source": {"current": current.data_source if current else None, "previous": None},
    }


def compare(registry: Registry, a: str | None, b: str | None) -> dict[str, Any]:
    """GET models/compare: a vs b (default current vs newest backup); comparison_available false when there is nothing to compare."""
    for named in (a, b):
        if named is not None:
            registry.get_version(named)  # a version asked for by name must exist (404) and be well-formed (422)
    if a is None and registry.current() is None:
        return _unavailable_comparison(registry, "no model has been trained yet; run `python scripts/train_models.py --force`")
    if b is None and not any(s.metadata is not None for s in registry.backups()):
        return _unavailable_comparison(
            registry, "there is no backup to compare with yet: the first backup is made when a second model is promoted"
        )
    body = comparison_dict(registry.compare(a, b))
    body["message"] = f"version {body['version_change']['to']} compared with {body['version_change']['from']}"
    return json_safe(body)


def health(ctx: AppContext) -> dict[str, Any]:
    """GET models/health: every file checked (present, loadable, checksum, size), plus the database's reachability."""
    if ctx.db is not None:
        try:
            ctx.registry.reconcile()
        except RegistryError:
            pass  # a hand-made change is recorded at the next write; health still reports the files below
    body = health_dict(ctx.registry.health(load=True))
    body["database"] = {"reachable": ctx.db is not None, "error": ctx.db_error}
    body["training"] = ctx.jobs.running() if ctx.jobs is not None else None
    return body


def backups(ctx: AppContext) -> dict[str, Any]:
    """GET models/backups: every set, newest first, and the disk they use."""
    sets = ctx.registry.backups()
    return json_safe(
        {
            "backups": [backup_dict(s) for s in sets],
            "count": len(sets),
            "keep_backups": ctx.settings.keep_backups,
            "disk_usage": ctx.registry.disk_usage(),
        }
    )


def versions(ctx: AppContext) -> dict[str, Any]:
    """GET models/versions: every version ever promoted (from the files alone when the database is down)."""
    entries = ctx.registry.versions()
    current = next((e.version for e in entries if e.is_current), None)
    return json_safe(
        {
            "versions": [version_entry_dict(e) for e in entries],
            "current_version": current,
            "history_available": ctx.db is not None,
        }
    )


def train_started(job: JobStart, status_url: str) -> dict[str, Any]:
    """POST train accepted (the old service's keys, plus where to poll)."""
    return {
        "message": f"training started ({job.days_back} days back{', forced' if job.force else ''}); poll the status_url",
        "status": "started",
        "job_id": job.run_id,
        "force_retrain": job.force,
        "days_back": job.days_back,
        "started_at": iso(job.started_at),
        "status_url": status_url,
    }


def restore(registry: Registry, history: History, target: str, *, actor: str, reason: str | None) -> dict[str, Any]:
    """POST models/restore: restore, then report the version, the one it replaced and the backup it came from."""
    try:
        before = registry.current()
    except IntegrityError:
        before = None
    restored = registry.restore(target, actor=actor, reason=reason)
    event = next(iter(history.events(limit=1, kinds=["restore"])), None)
    source = (event.details or {}).get("restored_from") if event and event.to_version == restored.version else None
    return {
        "message": f"restored version {restored.version}" + (f" from backup {source}" if source else ""),
        "version": restored.version,
        "from_version": before.version if before else None,
        "backup_timestamp": source or (target if C.BACKUP_TS_RE.match(target) else None),
        "actor": actor,
    }


def run(record: RunRecord | None, job_id: str) -> dict[str, Any]:
    """GET train/{job_id}: stage, progress, outcome, version, gate checks, log, error."""
    if record is None:
        raise NotFound(f"no training job {job_id!r}; POST train returns the job_id to poll")
    body = run_dict(record)
    body["outcome"] = None if record.status == "running" else record.status
    body["finished"] = record.finished
    body["checks"] = (record.gate or {}).get("checks")
    return json_safe(body)


def events(records: list[Any]) -> dict[str, Any]:
    """GET models/events: the audit trail, newest first."""
    return json_safe({"events": [event_dict(e) for e in records], "count": len(records)})


def prediction(p: Prediction) -> dict[str, Any]:
    """POST predict."""
    return {
        "device_id": p.device_id,
        "failure_probability": p.failure_probability,
        "risk_level": p.risk_level,
        "anomaly_score": p.anomaly_score,
        "is_anomaly": p.is_anomaly,
        "model_version": p.model_version,
        "predicted_at": iso(p.predicted_at),
        "history_points": p.history_points,
    }
