"""Frozen domain objects the registry and history return (never ORM rows or bare dicts)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.constants import PERFORMANCE_METRICS


def parse_time(value: object) -> dt.datetime | None:
    """ISO 8601 text (with 'Z' or an offset, or naive meaning UTC) to an aware UTC datetime."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _performance(metadata: Mapping[str, Any]) -> dict[str, float]:
    perf = metadata.get("model_performance") or {}
    out: dict[str, float] = {}
    for name in PERFORMANCE_METRICS:
        value = perf.get(name) if isinstance(perf, Mapping) else None
        if _is_number(value):
            out[name] = float(value)
    return out


_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def artifact_checksums(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The metadata's well-formed artifact entries {file: {"sha256": hex, "bytes": int | None}}; others are dropped.

    Metadata edited by hand can hold anything; nothing below trusts its shape without this.
    """
    artifacts = metadata.get("artifacts")
    if not isinstance(artifacts, Mapping):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, entry in artifacts.items():
        if not isinstance(entry, Mapping):
            continue
        sha = entry.get("sha256")
        if isinstance(sha, str) and _SHA256_RE.fullmatch(sha):
            size = entry.get("bytes")
            out[str(name)] = {
                "sha256": sha,
                "bytes": size if isinstance(size, int) and not isinstance(size, bool) else None,
            }
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: object) -> float | None:
    return float(value) if _is_number(value) else None


def _lookup(metadata: Mapping[str, Any], key: str) -> Any:
    """A key at the top level, or under model_performance where older trainers put it."""
    if metadata.get(key) is not None:
        return metadata.get(key)
    perf = metadata.get("model_performance")
    return perf.get(key) if isinstance(perf, Mapping) else None


def _number_map(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): float(v) for k, v in value.items() if _is_number(v)}


def _matrix(value: object) -> tuple[tuple[int, ...], ...] | None:
    """A confusion matrix as rows of ints, or None when absent or malformed."""
    if not isinstance(value, (list, tuple)) or not value:
        return None
    rows = []
    for row in value:
        if not isinstance(row, (list, tuple)) or not all(_is_number(x) for x in row):
            return None
        rows.append(tuple(int(x) for x in row))
    return tuple(rows)


@dataclass(frozen=True)
class ModelVersion:
    """One model version as described by its metadata, wherever it lives; `metadata` keeps the raw keys."""

    version: str
    training_date: dt.datetime | None
    performance: dict[str, float]
    data_source: str
    trigger: str | None
    actor: str | None
    metadata: dict[str, Any] = field(repr=False)
    location: str  # "current", "backup", or "history"
    backup_timestamp: str | None = None
    previous_version: str | None = None
    promoted_at: dt.datetime | None = None
    training_duration_seconds: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    confusion_matrix: tuple[tuple[int, ...], ...] | None = None
    feature_importances: dict[str, float] = field(default_factory=dict)
    feature_columns: tuple[str, ...] = ()
    scikit_learn_version: str | None = None

    @classmethod
    def from_metadata(
        cls, metadata: Mapping[str, Any], *, location: str, backup_timestamp: str | None = None
    ) -> ModelVersion:
        previous = metadata.get("previous_version")
        latency = _lookup(metadata, "prediction_latency_ms")
        columns = metadata.get("feature_columns")
        return cls(
            version=str(metadata.get("version", "unknown")),
            training_date=parse_time(metadata.get("training_date")),
            performance=_performance(metadata),
            data_source=str(metadata.get("data_source", "unknown")),
            trigger=metadata.get("trigger"),
            actor=metadata.get("actor"),
            metadata=dict(metadata),
            location=location,
            backup_timestamp=backup_timestamp,
            previous_version=str(previous) if previous else None,
            promoted_at=parse_time(metadata.get("promoted_at")),
            training_duration_seconds=_number(metadata.get("training_duration_seconds")),
            latency_ms=_number_map(latency) if isinstance(latency, Mapping) else _number_map({"p50_ms": latency}),
            confusion_matrix=_matrix(_lookup(metadata, "confusion_matrix")),
            feature_importances=_number_map(_lookup(metadata, "feature_importances")),
            feature_columns=tuple(str(c) for c in columns) if isinstance(columns, list) else (),
            scikit_learn_version=metadata.get("scikit_learn_version"),
        )

    @property
    def data_stats(self) -> dict[str, Any]:
        stats = self.metadata.get("training_data_stats")
        return dict(stats) if isinstance(stats, Mapping) else {}

    @property
    def parameters(self) -> dict[str, Any]:
        params = self.metadata.get("training_parameters")
        return dict(params) if isinstance(params, Mapping) else {}

    @property
    def sample_count(self) -> int | None:
        value = self.data_stats.get("sample_count")
        return int(value) if _is_number(value) else None

    def age(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        if self.training_date is None:
            return None
        return (now or dt.datetime.now(dt.UTC)) - self.training_date


@dataclass(frozen=True)
class ArtifactStatus:
    """One file of the current set checked against the metadata."""

    name: str
    present: bool
    bytes: int | None
    sha256: str | None
    expected_sha256: str | None
    loadable: bool | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Health:
    """The current set's files: present, loadable, checksums."""

    ok: bool
    version: str | None
    artifacts: tuple[ArtifactStatus, ...]
    problems: tuple[str, ...]
    checked_at: dt.datetime


@dataclass(frozen=True)
class BackupSet:
    """Files sharing one `.backup_YYYYMMDD_HHMMSS` suffix."""

    timestamp: str
    created_at: dt.datetime | None  # None when the name's date is impossible (a file named by hand)
    files: dict[str, Path]
    missing: tuple[str, ...]
    size_bytes: int
    version: str | None
    metadata: dict[str, Any] | None
    integrity: str  # ok | incomplete | mismatch | unreadable | unverified
    problems: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def performance(self) -> dict[str, float]:
        return _performance(self.metadata or {})

    @property
    def restorable(self) -> bool:
        return self.complete and self.integrity == "ok"


@dataclass(frozen=True)
class VersionEntry:
    """One version ever promoted, from history, with where (if anywhere) its files still are."""

    version: str
    trained_at: dt.datetime | None
    promoted_at: dt.datetime | None
    performance: dict[str, float]
    data_source: str | None
    trigger: str | None
    actor: str | None
    is_current: bool
    backup_timestamps: tuple[str, ...]
    metadata: dict[str, Any] | None = field(default=None, repr=False)
    previous_version: str | None = None

    @property
    def restorable(self) -> bool:
        """A backup holds it and it is not already live."""
        return bool(self.backup_timestamps) and not self.is_current


@dataclass(frozen=True)
class DiskUsage:
    """Bytes used by the models directory (current set, backups, total) and free on its disk."""

    current_bytes: int
    backup_bytes: int
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did: the version made live, the one it replaced, the backup it came from, the undo backup."""

    restored: ModelVersion
    replaced_version: str | None
    source_backup: str
    undo_backup: str | None
    audit_pending: str | None = None  # applied, but its audit event waits for the database (why)


@dataclass(frozen=True)
class Hold:
    """The live version held in place: training keeps gate-passing runs as candidates until it is released."""

    id: int
    version: str
    placed_by: str
    placed_at: dt.datetime
    reason: str | None


@dataclass(frozen=True)
class CandidateSet:
    """A gate-passing run kept aside (a hold, or manual promotion), with its files, waiting for approval."""

    id: str
    run_id: str | None
    trained_at: dt.datetime | None
    kept_at: dt.datetime | None
    kept_because: str
    performance: dict[str, float]
    gate: dict[str, Any]
    metadata: dict[str, Any] = field(repr=False)
    files: dict[str, Path] = field(repr=False)

    @property
    def model(self) -> ModelVersion:
        return ModelVersion.from_metadata(self.metadata, location="candidate")


SAME_BELOW = 0.0005  # a metric change smaller than this is shown as 0.000: "same"


@dataclass(frozen=True)
class MetricChange:
    current: float | None
    previous: float | None
    difference: float | None
    percent_change: float | None
    improved: bool | None

    @property
    def verdict(self) -> str:
        """One word for every interface: "better", "worse", "same" (a change below 0.0005, the shown
        precision), or "n/a" when either side has no figure."""
        if self.difference is None:
            return "n/a"
        if abs(self.difference) < SAME_BELOW:
            return "same"
        return "better" if self.difference > 0 else "worse"


@dataclass(frozen=True)
class Comparison:
    """Two versions side by side: metrics, data and parameters."""

    a: ModelVersion
    b: ModelVersion
    metrics: dict[str, MetricChange]
    data: dict[str, tuple[Any, Any]]
    parameters: dict[str, tuple[Any, Any]]

    def differing(self, section: str) -> dict[str, tuple[Any, Any]]:
        rows: dict[str, tuple[Any, Any]] = getattr(self, section)
        return {k: v for k, v in rows.items() if v[0] != v[1]}


@dataclass(frozen=True)
class RunRecord:
    """One training run (promoted, rejected, failed, skipped, or still running)."""

    id: str
    status: str
    trigger: str
    actor: str
    version: str | None
    stage: str
    progress: float
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    gate: dict[str, Any] | None
    data_stats: dict[str, Any] | None
    log: tuple[Any, ...]
    duration_seconds: float | None
    error: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    model_metadata: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status != "running"


@dataclass(frozen=True)
class EventRecord:
    """One registry event of the audit trail."""

    id: int
    kind: str
    actor: str
    at: dt.datetime
    from_version: str | None
    to_version: str | None
    reason: str | None
    details: dict[str, Any]
