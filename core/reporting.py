"""JSON-ready views of domain objects, shared by the CLI's --json and the HTTP API."""
from __future__ import annotations

import datetime as dt
from typing import Any

from core.domain import BackupSet, Comparison, EventRecord, Health, RunRecord, VersionEntry


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def health_dict(h: Health) -> dict[str, Any]:
    return {
        "healthy": h.ok,
        "version": h.version,
        "problems": list(h.problems),
        "checked_at": iso(h.checked_at),
        "files": {
            a.name: {
                "present": a.present,
                "bytes": a.bytes,
                "sha256": a.sha256,
                "expected_sha256": a.expected_sha256,
                "checksum_ok": a.present and (a.expected_sha256 is None or a.sha256 == a.expected_sha256),
                "loadable": a.loadable,
                "problem": a.problem,
            }
            for a in h.artifacts
        },
    }


def backup_dict(s: BackupSet) -> dict[str, Any]:
    return {
        "timestamp": s.timestamp,
        "created_at": iso(s.created_at),
        "version": s.version,
        "model_performance": s.performance,
        "training_date": (s.metadata or {}).get("training_date"),
        "files": sorted(p.name for p in s.files.values()),
        "missing": list(s.missing),
        "complete": s.complete,
        "size_bytes": s.size_bytes,
        "integrity": s.integrity,
        "restorable": s.restorable,
        "problems": list(s.problems),
    }


def version_entry_dict(e: VersionEntry) -> dict[str, Any]:
    return {
        "version": e.version,
        "training_date": iso(e.trained_at),
        "promoted_at": iso(e.promoted_at),
        "model_performance": e.performance,
        "data_source": e.data_source,
        "trigger": e.trigger,
        "actor": e.actor,
        "is_current": e.is_current,
        "backup_timestamps": list(e.backup_timestamps),
        "restorable": e.restorable,
    }


def comparison_dict(c: Comparison) -> dict[str, Any]:
    """The guide's compare shape: version_change, performance{current, previous, changes}, training_data, data_source."""
    return {
        "current_version": c.a.version,
        "backup_timestamp": c.b.backup_timestamp,
        "comparison_available": True,
        "version_change": {"from": c.b.version, "to": c.a.version},
        "performance": {
            "current": c.a.performance,
            "previous": c.b.performance,
            "changes": {
                name: {"difference": m.difference, "percent_change": m.percent_change, "improved": m.improved}
                for name, m in c.metrics.items()
                if m.difference is not None
            },
        },
        "training_data": {"current": c.a.data_stats, "previous": c.b.data_stats},
        "data_source": {"current": c.a.data_source, "previous": c.b.data_source},
        "training_parameters": {"current": c.a.parameters, "previous": c.b.parameters},
        "differences": {
            "data": {k: {"current": v[0], "previous": v[1]} for k, v in c.differing("data").items()},
            "parameters": {k: {"current": v[0], "previous": v[1]} for k, v in c.differing("parameters").items()},
        },
    }


def run_dict(r: RunRecord) -> dict[str, Any]:
    return {
        "job_id": r.id,
        "status": r.status,
        "stage": r.stage,
        "progress": round(r.progress, 3),
        "trigger": r.trigger,
        "actor": r.actor,
        "version": r.version,
        "params": r.params,
        "metrics": r.metrics,
        "gate": r.gate,
        "data_stats": r.data_stats,
        "log": list(r.log),
        "duration_seconds": r.duration_seconds,
        "error": r.error,
        "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
    }


def event_dict(e: EventRecord) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "actor": e.actor,
        "at": iso(e.at),
        "from_version": e.from_version,
        "to_version": e.to_version,
        "reason": e.reason,
        "details": e.details,
    }
