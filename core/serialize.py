"""JSON-ready views of domain objects: the one serialisation the HTTP API and the CLIs' --json share."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

from core import constants as C
from core.alerts import Alert
from core.domain import (
    BackupSet,
    CandidateSet,
    Comparison,
    DiskUsage,
    EventRecord,
    Health,
    Hold,
    ModelVersion,
    RestoreResult,
    RunRecord,
    VersionEntry,
)
from core.status import StatusReport

if TYPE_CHECKING:
    from core.drift import DriftReport, DriftScore
    from core.jobs import JobStart
    from core.locking import LockInfo
    from core.predict import Prediction


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def json_safe(value: Any) -> Any:
    """The value with NaN and infinities as null (JSON has neither; jq and bc cannot read them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def alert_dict(a: Alert) -> dict[str, Any]:
    return {"level": a.level, "kind": a.kind, "message": a.message}


def _problems(report: StatusReport) -> dict[str, Any]:
    """What every status-like answer carries: the same problems, in the same order."""
    return {
        "level": report.level,
        "problems": list(report.problems),
        "alerts": [alert_dict(a) for a in report.alerts],
    }


def _live(report: StatusReport) -> dict[str, Any]:
    """How the live version stays live: its hold, the candidates waiting, newer versions that are not live."""
    return {
        "hold": hold_dict(report.hold) if report.hold else None,
        "candidates": [candidate_dict(c) for c in report.candidates],
        "newer_versions": list(report.newer_versions),
    }


def hold_dict(h: Hold) -> dict[str, Any]:
    return {"version": h.version, "placed_by": h.placed_by, "placed_at": iso(h.placed_at), "reason": h.reason}


def candidate_dict(c: CandidateSet) -> dict[str, Any]:
    return json_safe(
        {
            "id": c.id,
            "run_id": c.run_id,
            "trained_at": iso(c.trained_at),
            "kept_at": iso(c.kept_at),
            "kept_because": c.kept_because,
            "model_performance": c.performance,
            "validation": c.gate,
            "feature_columns": c.metadata.get("feature_columns"),
            "trigger": c.metadata.get("trigger"),
            "actor": c.metadata.get("actor"),
        }
    )


def _is_trained(report: StatusReport) -> bool:
    return report.current is not None and all(a.present for a in report.health.artifacts)


def status_dict(report: StatusReport) -> dict[str, Any]:
    """GET models/status: the old service's keys (the guide's jq paths) plus level, problems and alerts.

    The feature names are listed once, under the old top-level key, not again inside model_metadata
    (`GET models/versions/{version}` has the whole metadata file).
    """
    current = report.current
    metadata = current.metadata if current is not None else None
    return json_safe(
        {
            "is_trained": _is_trained(report),
            "model_performance": metadata.get("model_performance") if metadata else None,
            "feature_columns": metadata.get("feature_columns") if metadata else None,
            "feature_count": len(metadata.get("feature_columns") or []) if metadata else 0,
            "model_metadata": {k: v for k, v in metadata.items() if k != "feature_columns"} if metadata else None,
            "last_updated": iso(report.files_changed_at) if metadata else None,
            **_live(report),
            **_problems(report),
        }
    )


def version_dict(report: StatusReport) -> dict[str, Any]:
    """GET models/version: the live version and where it came from."""
    current = report.current
    return json_safe(
        {
            "version": current.version if current else None,
            "is_trained": _is_trained(report),
            "training_date": iso(current.training_date) if current else None,
            "promoted_at": iso(current.promoted_at) if current else None,
            "previous_version": current.previous_version if current else None,
            "data_source": current.data_source if current else None,
            "trigger": current.trigger if current else None,
            "actor": current.actor if current else None,
            "scikit_learn_version": current.scikit_learn_version if current else None,
            "model_performance": current.metadata.get("model_performance") if current else None,
            "last_updated": iso(report.files_changed_at) if current else None,
            "became_live": event_dict(report.live_event) if report.live_event else None,
            **_live(report),
            **_problems(report),
        }
    )


def predictions_health_dict(report: StatusReport) -> dict[str, Any]:
    """GET /api/predictions/health: the original service's keys, with the same problems as status."""
    trained = _is_trained(report)
    status = "operational" if trained and report.level != "red" else "degraded" if trained else "error"
    return json_safe(
        {
            "service": "Predictive Analytics",
            "status": status,
            "models_trained": trained,
            "model_version": report.current.version if report.current else None,
            "feature_count": len(report.current.feature_columns) if report.current else 0,
            "last_updated": iso(report.files_changed_at),
            **_problems(report),
        }
    )


def files_dict(h: Health) -> dict[str, Any]:
    return {
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
    }


def health_dict(report: StatusReport, training: LockInfo | None) -> dict[str, Any]:
    """GET models/health: every file checked, the database, the training in progress, and the same problems."""
    return json_safe(
        {
            "healthy": report.level != "red",
            "version": report.health.version,
            "checked_at": iso(report.health.checked_at),
            "files": files_dict(report.health),
            "files_ok": report.health.ok,
            "database": {"reachable": report.database_error is None, "error": report.database_error},
            "training": training.to_dict() if training else None,
            **_problems(report),
        }
    )


def backup_dict(s: BackupSet) -> dict[str, Any]:
    return json_safe(
        {
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
    )


def disk_usage_dict(u: DiskUsage) -> dict[str, int]:
    return {
        "current_bytes": u.current_bytes,
        "backup_bytes": u.backup_bytes,
        "total_bytes": u.total_bytes,
        "free_bytes": u.free_bytes,
    }


def version_entry_dict(e: VersionEntry) -> dict[str, Any]:
    return json_safe(
        {
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
    )


def comparison_dict(c: Comparison) -> dict[str, Any]:
    """The guide's compare shape: version_change, performance{current, previous, changes}, training_data, ..."""
    live = c.a if c.a.location == "current" else c.b if c.b.location == "current" else None
    return json_safe(
        {
            "current_version": live.version if live else None,
            "compared_version": c.a.version,
            "baseline_version": c.b.version,
            "backup_timestamp": c.b.backup_timestamp,
            "comparison_available": True,
            "message": f"version {c.a.version} compared with {c.b.version}",
            "version_change": {"from": c.b.version, "to": c.a.version},
            "performance": {
                "current": c.a.performance,
                "previous": c.b.performance,
                "changes": {
                    name: {
                        "difference": m.difference,
                        "percent_change": m.percent_change,
                        "improved": m.improved,
                        "verdict": m.verdict,
                    }
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
    )


def comparison_unavailable_dict(current: ModelVersion | None, message: str) -> dict[str, Any]:
    """GET models/compare when there is nothing to compare yet: the same keys, comparison_available false."""
    return json_safe(
        {
            "current_version": current.version if current else None,
            "backup_timestamp": None,
            "comparison_available": False,
            "message": message,
            "version_change": None,
            "performance": {"current": current.performance if current else None, "previous": None, "changes": {}},
            "training_data": {"current": current.data_stats if current else None, "previous": None},
            "data_source": {"current": current.data_source if current else None, "previous": None},
        }
    )


def restore_dict(r: RestoreResult, actor: str) -> dict[str, Any]:
    """POST models/restore: the version made live, the one it replaced, the source backup and the undo backup."""
    return {
        "message": f"restored version {r.restored.version} from backup {r.source_backup}; it is held: training "
        "keeps new models as candidates until an admin releases the hold",
        "version": r.restored.version,
        "held": True,
        "from_version": r.replaced_version,
        "backup_timestamp": r.source_backup,
        "undo_backup_timestamp": r.undo_backup,
        "audit_pending": r.audit_pending,
        "actor": actor,
    }


def run_dict(r: RunRecord) -> dict[str, Any]:
    """A training run: stage, progress, outcome, version, gate checks, log, error."""
    return json_safe(
        {
            "job_id": r.id,
            "status": r.status,
            "outcome": None if r.status == "running" else r.status,
            "finished": r.finished,
            "stage": r.stage,
            "progress": round(r.progress, 3),
            "trigger": r.trigger,
            "actor": r.actor,
            "version": r.version,
            "params": r.params,
            "metrics": r.metrics,
            "gate": r.gate,
            "checks": (r.gate or {}).get("checks"),
            "data_stats": r.data_stats,
            "log": list(r.log),
            "duration_seconds": r.duration_seconds,
            "error": r.error,
            "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at),
        }
    )


def train_started_dict(job: JobStart, status_url: str) -> dict[str, Any]:
    """POST train accepted (the old service's keys, plus where to poll)."""
    request = job.request
    return {
        "message": f"training started ({request.days_back} days back{', forced' if request.force else ''}); "
        "poll the status_url",
        "status": "started",
        "job_id": job.run_id,
        "force_retrain": request.force,
        "days_back": request.days_back,
        "started_at": iso(job.started_at),
        "status_url": status_url,
    }


def event_dict(e: EventRecord) -> dict[str, Any]:
    return json_safe(
        {
            "id": e.id,
            "kind": e.kind,
            "actor": e.actor,
            "at": iso(e.at),
            "from_version": e.from_version,
            "to_version": e.to_version,
            "reason": e.reason,
            "details": e.details,
        }
    )


def prediction_dict(p: Prediction) -> dict[str, Any]:
    return {
        "device_id": p.device_id,
        "failure_probability": p.failure_probability,
        "risk_level": p.risk_level,
        "anomaly_score": p.anomaly_score,
        "is_anomaly": p.is_anomaly,
        "model_version": p.model_version,
        "predicted_at": iso(p.predicted_at),
        "history_points": p.history_points,
        "failure_probability_percent": p.failure_probability_percent,
        "recommendations": list(p.recommendations),
        "filled_metrics": {name: {"value": v, "at": iso(at)} for name, (v, at) in p.filled.items()},
    }


# ------------------------------------------------------------------ drift
def _z(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def drift_score_dict(s: DriftScore) -> dict[str, Any]:
    return {
        "name": s.name,
        "kind": s.kind,
        "psi": s.psi,
        "band": s.band,
        "ks_statistic": s.ks_statistic,
        "ks_pvalue": s.ks_pvalue,
        "ks_drift": s.ks_drift,
        "reference_count": s.reference_count,
        "current_count": s.current_count,
        "reference_median": s.reference_median,
        "current_median": s.current_median,
    }


def drift_dict(report: DriftReport, *, histograms: bool = False) -> dict[str, Any]:
    """The report as JSON: ranked metrics, features and score drift, PSI per day, thresholds and notes."""
    body: dict[str, Any] = {
        "version": report.version,
        "window_days": report.window_days,
        "reference": {"start": _z(report.reference_start), "end": _z(report.reference_end)},
        "current": {"start": _z(report.current_start), "end": _z(report.current_end)},
        "thresholds": {
            "psi_moderate": C.PSI_MODERATE,
            "psi_significant": C.PSI_SIGNIFICANT,
            "ks_alpha": C.KS_ALPHA,
            "ks_min_statistic": C.KS_MIN_STATISTIC,
        },
        "summary": {"metrics": report.counts(report.metrics), "features": report.counts(report.features)},
        "metrics": [drift_score_dict(s) for s in report.metrics],
        "features": [drift_score_dict(s) for s in report.features],
        "score": drift_score_dict(report.score) if report.score is not None else None,
        "over_time": [{"day": _z(p.day), "metric": p.metric, "psi": p.psi, "count": p.count} for p in report.over_time],
        "notes": list(report.notes),
        "computed_at": _z(report.computed_at),
        "seconds": report.seconds,
    }
    if histograms:
        body["histograms"] = {
            name: {"edges": list(h.edges), "reference": list(h.reference), "current": list(h.current)}
            for name, h in report.histograms.items()
        }
    return json_safe(body)
