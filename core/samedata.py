"""Two model versions scored on one labelled window of telemetry, so their figures can be compared.

Stored holdout metrics come from each version's own split: two versions trained on different days were measured
on different devices and days, and their figures say little about which model is better. Here both failure models
are loaded (checked against their metadata and the registry's records first) and scored on the same device-days,
labelled exactly as training labels them (a recorded failure in device_failures within the horizon).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from core import constants as C
from core.artifacts import load_checked
from core.db import Database, DeviceFailure, HealthMetric
from core.domain import BackupSet, Comparison, MetricChange, ModelVersion, artifact_checksums, parse_time
from core.errors import DataError, IntegrityError, InvalidInput, NotFound, Unavailable
from core.registry import compare_versions
from core.versions import Version

if TYPE_CHECKING:
    from core.features import FeatureSet
    from core.registry import Registry

log = logging.getLogger(__name__)

CANDIDATE_PREFIX = "candidate:"
MAX_WINDOW_DAYS = 365
EARLIEST = dt.date(2000, 1, 1)  # no telemetry is older; also keeps date arithmetic far from its limits
CACHE_ENTRIES = 64
SAME_WINDOW_HINT = "use 'score both on the same window'"


@dataclass(frozen=True)
class Window:
    """Labelled days start..end (inclusive, UTC): every device-day in it whose label horizon has passed."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def describe(self) -> str:
        return f"{self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} ({self.days} days)"


@dataclass(frozen=True)
class ModelRef:
    """Where one side's files are: the live set, a backup set or a candidate set, with its metadata."""

    kind: str  # current | backup | candidate
    version: str | None
    metadata: dict[str, Any] = field(repr=False)
    backup_timestamp: str | None = None
    candidate_id: str | None = None
    files: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        if self.kind == "candidate":
            return f"candidate {self.candidate_id}"
        where = "live" if self.kind == "current" else f"backup {self.backup_timestamp}"
        return f"v{self.version} ({where})"

    @property
    def model(self) -> ModelVersion:
        return ModelVersion.from_metadata(self.metadata, location=self.kind, backup_timestamp=self.backup_timestamp)

    @property
    def sha256(self) -> str:
        """The failure model's checksum from the metadata: the artifact's identity (cache key)."""
        entry = artifact_checksums(self.metadata).get(C.FAILURE_MODEL_FILE)
        if entry is None:
            raise IntegrityError(
                f"{self.label} has no checksum for {C.FAILURE_MODEL_FILE} in its metadata (made by an older tool), "
                "so its file is not loaded; pick a version the registry wrote"
            )
        return str(entry["sha256"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "version": self.version,
            "backup_timestamp": self.backup_timestamp,
            "candidate_id": self.candidate_id,
            "failure_model_sha256": artifact_checksums(self.metadata).get(C.FAILURE_MODEL_FILE, {}).get("sha256"),
        }


@dataclass(frozen=True)
class SideScore:
    """One model's figures on the window."""

    ref: ModelRef
    metrics: dict[str, float]
    confusion_matrix: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class SameDataComparison:
    """A relative to B, both scored on the same labelled device-days."""

    a: SideScore
    b: SideScore
    window: Window
    sample_count: int
    positives: int
    devices: int
    horizon_days: int
    metrics: dict[str, MetricChange]
    computed_at: dt.datetime
    seconds: float
    cached: bool = False

    @property
    def stored(self) -> Comparison:
        """The two versions' stored holdout figures, as Compare shows them."""
        return compare_versions(self.a.ref.model, self.b.ref.model)

    @property
    def notice(self) -> str | None:
        """Set when the stored figures come from different windows (then only these figures compare the models)."""
        return window_notice(self.a.ref.model, self.b.ref.model)

    @property
    def identical_artifact(self) -> bool:
        return self.a.ref.sha256 == self.b.ref.sha256

    def to_dict(self) -> dict[str, Any]:
        """As the API and the CLI's --json show it."""
        return {
            "window": {
                "start": self.window.start.isoformat(),
                "end": self.window.end.isoformat(),
                "days": self.window.days,
                "horizon_days": self.horizon_days,
            },
            "sample_count": self.sample_count,
            "positives": self.positives,
            "devices": self.devices,
            "identical_artifact": self.identical_artifact,
            "a": {**self.a.ref.to_dict(), "metrics": self.a.metrics, "confusion_matrix": self.a.confusion_matrix},
            "b": {**self.b.ref.to_dict(), "metrics": self.b.metrics, "confusion_matrix": self.b.confusion_matrix},
            "changes": {
                name: {"difference": m.difference, "percent_change": m.percent_change, "improved": m.improved}
                for name, m in self.metrics.items()
            },
            "computed_at": self.computed_at.isoformat(),
            "compute_seconds": round(self.seconds, 3),
            "cached": self.cached,
        }


# ------------------------------------------------------------------ the window
def data_stamp(db: Database) -> tuple[str, ...]:
    """Changes whenever telemetry or failures are added or removed (one query; a cache key)."""
    m, f = HealthMetric.__table__.c, DeviceFailure.__table__.c
    stmt = select(
        select(func.max(m.id)).scalar_subquery(),
        select(func.max(m.timestamp)).scalar_subquery(),
        select(func.min(m.timestamp)).scalar_subquery(),
        select(func.count()).select_from(DeviceFailure).scalar_subquery(),
        select(func.max(f.id)).scalar_subquery(),
        select(func.max(f.failed_at)).scalar_subquery(),
    )
    with db.engine.connect() as conn:
        row = conn.execute(stmt).one()
    return tuple(str(x) for x in row)


def _as_utc(value: Any) -> dt.datetime | None:
    return parse_time(value) if not isinstance(value, dt.datetime) else value.replace(tzinfo=value.tzinfo or dt.UTC)


def latest_labelled_day(db: Database, horizon_days: int) -> dt.date:
    """The newest day whose whole label horizon lies within the telemetry (as build_features decides), or DataError."""
    with db.engine.connect() as conn:
        newest = _as_utc(conn.execute(select(func.max(HealthMetric.timestamp))).scalar())
    if newest is None:
        raise DataError("there is no telemetry to score on; seed it with `python scripts/seed_telemetry.py`")
    return newest.date() - dt.timedelta(days=horizon_days + 1)


def choose_window(
    latest: dt.date,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    days: int | None = None,
    default_days: int,
    horizon_days: int = C.DEFAULT_HORIZON_DAYS,
) -> Window:
    """The window asked for (start/end dates, or the last `days`), by default the most recent complete one."""
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_WINDOW_DAYS):
        raise InvalidInput(f"days must be a whole number from 1 to {MAX_WINDOW_DAYS}, got {days!r}")
    if days is not None and start is not None and end is not None:
        raise InvalidInput("give window_start and window_end, or days, not all three")
    for name, value in (("window_start", start), ("window_end", end)):
        if value is not None and value < EARLIEST:
            raise InvalidInput(f"{name} {value} is before any telemetry; pick a day from {EARLIEST} to {latest}")
    length = days or default_days
    if start is not None and start > latest:
        raise InvalidInput(
            f"window_start {start} is after {latest}, the newest day whose {horizon_days}-day label horizon has "
            "passed; pick an earlier start"
        )
    if end is None:
        end = latest if start is None else min(latest, start + dt.timedelta(days=length - 1))
    if start is None:
        start = end - dt.timedelta(days=length - 1)
    if start > end:
        raise InvalidInput(f"window_start {start} is after window_end {end}; swap them")
    if end > latest:
        raise InvalidInput(
            f"window_end {end} is too recent: the newest day whose {horizon_days}-day label horizon has "
            f"passed is {latest} (a failure after it is not recorded yet); pick an end on or before {latest}"
        )
    if (end - start).days + 1 > MAX_WINDOW_DAYS:
        raise InvalidInput(f"the window is longer than {MAX_WINDOW_DAYS} days; pick a shorter one")
    return Window(start, end)


def labelled_window(db: Database, window: Window, *, horizon_days: int) -> FeatureSet:
    """The window's labelled device-days, built by core.features exactly as training builds them."""
    from core.daily_aggregates import daily_training_features
    from core.features import DEFAULT_WINDOW_DAYS, FeatureSet

    day = dt.timedelta(days=1)
    midnight = dt.datetime.combine(window.start, dt.time(), tzinfo=dt.UTC)
    load_start = midnight - (DEFAULT_WINDOW_DAYS - 1) * day  # the first day's trailing window is complete
    # Through the whole day after the last label horizon: that day's readings prove the horizon has passed.
    load_end = dt.datetime.combine(window.end, dt.time(), tzinfo=dt.UTC) + (horizon_days + 2) * day
    load_end -= dt.timedelta(microseconds=1)
    days_back = (load_end - load_start) // day + 1
    features = daily_training_features(db, days_back=days_back, end=load_end, horizon_days=horizon_days)
    first, last = (dt.datetime.combine(d, dt.time(), tzinfo=dt.UTC) for d in (window.start, window.end))
    keep = ((features.day >= first) & (features.day <= last)).to_numpy()
    return FeatureSet(
        X=features.X[keep].reset_index(drop=True),
        y=features.y[keep].reset_index(drop=True),
        day=features.day[keep].reset_index(drop=True),
        device_id=features.device_id[keep].reset_index(drop=True),
        horizon_days=features.horizon_days,
        window_days=features.window_days,
    )


# ------------------------------------------------------------------ the models
def resolve(registry: Registry, text: str) -> ModelRef:
    """A version (live, else its newest complete backup set), a backup timestamp, or `candidate:<id>`."""
    text = str(text).strip()
    if text.startswith(CANDIDATE_PREFIX):
        chosen = registry.candidate(text[len(CANDIDATE_PREFIX) :])
        return ModelRef(
            "candidate", chosen.metadata.get("version"), chosen.metadata, candidate_id=chosen.id, files=chosen.files
        )
    if C.BACKUP_TS_RE.match(text):
        return _backup_ref(registry.backup(text, verify=False))
    if not Version.is_valid(text):
        raise InvalidInput(
            f"{text[:40]!r} is neither a version (MAJOR.MINOR.PATCH), a backup timestamp (YYYYMMDD_HHMMSS) "
            f"nor {CANDIDATE_PREFIX}<id>"
        )
    current = _current(registry)
    if current is not None and current.version == text:
        files = {n: registry.path(n) for n in C.SET_FILES}
        return ModelRef("current", text, current.metadata, files=files)
    holding = [_read_again(registry, s.timestamp) for s in registry.backups() if s.version == text]
    holding = [s for s in holding if s is not None and s.version == text]
    usable = [s for s in holding if s.complete and s.integrity == "ok"]
    if usable:
        return _backup_ref(usable[0])
    if holding:
        problems = "; ".join(f"{s.timestamp}: {', '.join(s.problems) or s.integrity}" for s in holding)
        raise IntegrityError(
            f"version {text} has no complete, intact backup set to score ({problems}); "
            "its stored figures are all that is left: compare another version, or retrain"
        )
    raise NotFound(
        f"no files of version {text} remain (the live set is another version and no backup holds it, e.g. after a "
        "clean-up), so it cannot be scored; only its stored figures are left"
    )


def _read_again(registry: Registry, timestamp: str) -> BackupSet | None:
    """The set as its files are now, with its whole metadata (a listing holds a summary), or None when gone."""
    try:
        return registry.backup(timestamp, verify=False)
    except NotFound:
        return None


def _current(registry: Registry) -> ModelVersion | None:
    try:
        return registry.current()
    except IntegrityError:
        return None


def _backup_ref(chosen: Any) -> ModelRef:
    if chosen.missing or chosen.integrity != "ok" or chosen.metadata is None:
        why = "; ".join(chosen.problems) or chosen.integrity
        raise IntegrityError(
            f"backup {chosen.timestamp} (version {chosen.version or '?'}) cannot be scored: {why}; "
            "pick a complete backup set (Backups lists them)"
        )
    return ModelRef("backup", chosen.version, chosen.metadata, backup_timestamp=chosen.timestamp, files=chosen.files)


def load_failure_model(registry: Registry, ref: ModelRef) -> Any:
    """The side's failure model, unpickled only after its checksum matched its metadata and the registry's records."""
    from core.features import FEATURE_COLUMNS

    if registry.provenance is None:
        raise Unavailable("scoring loads model files only after checking them against the database: it is unreachable")
    columns = ref.metadata.get("feature_columns")
    if list(columns or []) != list(FEATURE_COLUMNS):
        raise IntegrityError(
            f"{ref.label} was trained on another feature set than today's ({len(columns or [])} columns vs "
            f"{len(FEATURE_COLUMNS)}), so it cannot be scored on them; compare its stored figures instead"
        )
    path = ref.files.get(C.FAILURE_MODEL_FILE)
    try:
        data = path.read_bytes() if path is not None else None
    except FileNotFoundError:
        data = None
    if data is None:
        raise IntegrityError(f"{ref.label}: {C.FAILURE_MODEL_FILE} is missing; pick a complete set")
    try:
        return load_checked(C.FAILURE_MODEL_FILE, data, ref.sha256, registry.provenance)
    except IntegrityError as exc:
        raise IntegrityError(f"{ref.label}: {exc.message}") from None


# ------------------------------------------------------------------ scoring
def score(model: Any, features: FeatureSet) -> tuple[dict[str, float], tuple[tuple[int, ...], ...]]:
    """The holdout metrics training reports, on these labelled device-days."""
    import numpy as np

    from core.training import _evaluate  # the same metrics as a training run's holdout

    measured = _evaluate(model, features.X.to_numpy(dtype=float), features.y.to_numpy(dtype=np.int64))
    metrics = {name: round(float(measured[name]), 6) for name in C.PERFORMANCE_METRICS}
    return metrics, tuple(tuple(int(v) for v in row) for row in measured["confusion_matrix"])


def changes(a: dict[str, float], b: dict[str, float]) -> dict[str, MetricChange]:
    """A relative to B, per metric (as compare_versions reports stored figures)."""
    out: dict[str, MetricChange] = {}
    for name in C.PERFORMANCE_METRICS:
        cur, prev = a[name], b[name]
        diff = round(cur - prev, 6)
        pct = round(diff / prev * 100.0, 4) if prev else None
        out[name] = MetricChange(cur, prev, diff, pct, diff > 0)
    return out


class SameDataCache:
    """Results by (artifact a, artifact b, window, horizon, data stamp), newest last; bounded, thread-safe."""

    def __init__(self, size: int = CACHE_ENTRIES) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Any, ...], SameDataComparison] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> SameDataComparison | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], value: SameDataComparison) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def latest_for(self, sha_a: str, sha_b: str, stamp: tuple[str, ...]) -> SameDataComparison | None:
        """The newest result for this pair of artifacts on today's data, any window."""
        with self._lock:
            for key in reversed(self._entries):
                if key[0] == sha_a and key[1] == sha_b and key[-1] == stamp:
                    return self._entries[key]
        return None


def default_window(db: Database, *, horizon_days: int, days: int) -> Window:
    """The most recent complete window: `days` days ending on the newest day whose label horizon has passed."""
    return choose_window(latest_labelled_day(db, horizon_days), default_days=days, horizon_days=horizon_days)


def compare_on_window(
    registry: Registry,
    db: Database,
    cache: SameDataCache,
    a: str,
    b: str,
    *,
    horizon_days: int,
    default_days: int,
    start: dt.date | None = None,
    end: dt.date | None = None,
    days: int | None = None,
) -> SameDataComparison:
    """Score A and B on one labelled window (default: the most recent complete one); cached by artifacts and data."""
    started = time.perf_counter()
    left, right = resolve(registry, a), resolve(registry, b)
    window = choose_window(
        latest_labelled_day(db, horizon_days),
        start=start,
        end=end,
        days=days,
        default_days=default_days,
        horizon_days=horizon_days,
    )
    stamp = data_stamp(db)
    key = (left.sha256, right.sha256, window.start, window.end, horizon_days, stamp)
    found = cache.get(key)
    if found is not None:
        # Same files and data: the figures hold; the labels follow what was asked for this time.
        return _relabel(found, left, right)
    model_a = load_failure_model(registry, left)
    model_b = model_a if right.sha256 == left.sha256 else load_failure_model(registry, right)
    features = labelled_window(db, window, horizon_days=horizon_days)
    positives = int(features.y.sum())
    if len(features) == 0 or positives in (0, len(features)):
        what = "no labelled device-days" if len(features) == 0 else f"{len(features):,} device-days of one class"
        raise DataError(
            f"the window {window.describe()} has {what} (every device-day needs all 11 metrics and a passed "
            f"{horizon_days}-day horizon; failures come from device_failures); pick a longer or earlier window"
        )
    metrics_a, cm_a = score(model_a, features)
    metrics_b, cm_b = score(model_b, features)
    result = SameDataComparison(
        a=SideScore(left, metrics_a, cm_a),
        b=SideScore(right, metrics_b, cm_b),
        window=window,
        sample_count=len(features),
        positives=positives,
        devices=int(features.device_id.nunique()),
        horizon_days=horizon_days,
        metrics=changes(metrics_a, metrics_b),
        computed_at=dt.datetime.now(dt.UTC),
        seconds=time.perf_counter() - started,
    )
    cache.put(key, result)
    log.info(
        "same-data compare: %s vs %s on %s, %d samples (%d failures): f1 %.3f vs %.3f in %.2f s",
        left.label,
        right.label,
        window.describe(),
        result.sample_count,
        positives,
        metrics_a["f1_score"],
        metrics_b["f1_score"],
        result.seconds,
    )
    return result


def _relabel(found: SameDataComparison, left: ModelRef, right: ModelRef) -> SameDataComparison:
    return replace(
        found,
        a=replace(found.a, ref=left),
        b=replace(found.b, ref=right),
        cached=True,
    )


def cached_on_window(
    registry: Registry, db: Database, cache: SameDataCache, a: str, b: str
) -> SameDataComparison | None:
    """The newest same-data result for A and B on today's data (any window), without computing; None if none."""
    left, right = resolve(registry, a), resolve(registry, b)
    stamp = data_stamp(db)
    found = cache.latest_for(left.sha256, right.sha256, stamp)
    if found is not None:
        return _relabel(found, left, right)
    swapped = cache.latest_for(right.sha256, left.sha256, stamp)  # computed the other way round (Compare's A/B)
    if swapped is None:
        return None
    return replace(
        swapped,
        a=replace(swapped.b, ref=left),
        b=replace(swapped.a, ref=right),
        metrics=changes(swapped.b.metrics, swapped.a.metrics),
        cached=True,
    )


# ------------------------------------------------------------------ stored figures from different windows
def holdout_window(version: ModelVersion) -> tuple[str | None, str | None, int | None]:
    """(holdout start, holdout end, holdout samples) as its metadata records them; None where not recorded."""
    split = version.parameters.get("split")
    start = split.get("holdout_start") if isinstance(split, dict) else None
    date_range = version.data_stats.get("date_range")
    end = date_range.get("end") if isinstance(date_range, dict) else None
    samples = version.data_stats.get("holdout_samples")
    return (
        str(start)[:10] if start else None,
        str(end)[:10] if end else None,
        int(samples) if isinstance(samples, int | float) and not isinstance(samples, bool) else None,
    )


def _window_text(version: ModelVersion) -> str:
    start, end, samples = holdout_window(version)
    if start is None and end is None:
        where = "holdout window not recorded"
    else:
        where = f"holdout {start or '?'} to {end or '?'}"
    count = f"{samples:,} samples" if samples is not None else "sample count not recorded"
    return f"v{version.version}: {where}, {count}"


def window_notice(a: ModelVersion, b: ModelVersion) -> str | None:
    """A sentence when the stored holdout figures of A and B were measured on different windows, else None."""
    wa, wb = holdout_window(a), holdout_window(b)
    if wa == wb and None not in wa:
        return None
    return (
        f"These holdout figures come from different windows ({_window_text(a)}; {_window_text(b)}), so the "
        f"verdicts compare different data; {SAME_WINDOW_HINT} to compare the models."
        if wa != wb
        else f"The holdout windows are not fully recorded ({_window_text(a)}; {_window_text(b)}); "
        f"{SAME_WINDOW_HINT} to compare the models."
    )
