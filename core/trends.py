"""Metric history across versions and time, and which version was live when, from runs, versions and registry events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from core.domain import EventRecord, ModelVersion, RunRecord, VersionEntry

LIVE_EVENT_KINDS: tuple[str, ...] = ("promote", "restore", "external_change")


@dataclass(frozen=True)
class TrendPoint:
    """One point on a metric trend: a promotion, a rejected run, or a restore."""

    at: dt.datetime
    version: str | None
    kind: str  # promoted | rejected | restored
    trigger: str | None
    actor: str | None
    metrics: dict[str, float]
    duration_seconds: float | None
    sample_count: int | None


@dataclass(frozen=True)
class LiveSpan:
    """A stretch of time during which one version was the live model."""

    version: str
    start: dt.datetime
    end: dt.datetime
    how: str  # the event that made it live: promote | restore | external_change
    actor: str
    is_current: bool


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def version_point(v: VersionEntry) -> TrendPoint | None:
    """A version's promotion (or training, when it was never promoted) as a point; None without either time."""
    at = v.promoted_at or v.trained_at
    if at is None:
        return None
    meta = v.metadata or {}
    stats = meta.get("training_data_stats") or {}
    return TrendPoint(
        at,
        v.version,
        "promoted",
        v.trigger,
        v.actor,
        dict(v.performance),
        _float_or_none(meta.get("training_duration_seconds")),
        _int_or_none(stats.get("sample_count")),
    )


def version_points(versions: Sequence[VersionEntry]) -> list[TrendPoint | None]:
    """Each version's point, made afresh."""
    return [version_point(v) for v in versions]


class VersionPoints:
    """`version_points` that makes each version's point once per VersionEntry object: the registry keeps an entry
    while nothing it is made from changes, so after a promote only the new version's point is made (the series
    of 1,000 versions is appended to, not built again)."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[VersionEntry, TrendPoint | None]] = {}

    def __call__(self, versions: Sequence[VersionEntry]) -> list[TrendPoint | None]:
        kept, made = self._made, {}
        for v in versions:
            previous = kept.get(id(v))  # the entry is held below, so its id is not reused while it is here
            made[id(v)] = previous if previous is not None and previous[0] is v else (v, version_point(v))
        self._made = made
        return [point for _, point in made.values()]


def trend_points(
    versions: Sequence[VersionEntry],
    runs: Iterable[RunRecord],
    events: Iterable[EventRecord],
    points_of: Callable[[Sequence[VersionEntry]], list[TrendPoint | None]] | None = None,
) -> list[TrendPoint]:
    """Promotions (from the versions; `points_of` makes their points, `version_points` by default), rejected runs,
    and restores (metrics of the restored version), oldest first."""
    by_version = {v.version: v for v in versions}
    points = [p for p in (points_of or version_points)(versions) if p is not None]
    for run in runs:
        if run.status != "rejected":
            continue
        meta = run.model_metadata or {}
        metrics = ModelVersion.from_metadata(meta, location="history").performance or {
            k: float(v) for k, v in (run.metrics or {}).items() if _float_or_none(v) is not None
        }
        stats = run.data_stats or meta.get("training_data_stats") or {}
        points.append(
            TrendPoint(
                run.finished_at or run.started_at,
                None,
                "rejected",
                run.trigger,
                run.actor,
                metrics,
                run.duration_seconds,
                _int_or_none(stats.get("sample_count")),
            )
        )
    for event in events:
        if event.kind != "restore" or not event.to_version:
            continue
        entry = by_version.get(event.to_version)
        meta = (entry.metadata if entry else None) or {}
        points.append(
            TrendPoint(
                event.at,
                event.to_version,
                "restored",
                "restore",
                event.actor,
                dict(entry.performance) if entry else {},
                _float_or_none(meta.get("training_duration_seconds")),
                _int_or_none((meta.get("training_data_stats") or {}).get("sample_count")),
            )
        )
    points.sort(key=lambda p: p.at)
    return points


def live_spans(events: Iterable[EventRecord], now: dt.datetime, current_version: str | None = None) -> list[LiveSpan]:
    """Which version was live when: each promote/restore/external_change starts a span that the next one ends."""
    changes = sorted((e for e in events if e.kind in LIVE_EVENT_KINDS), key=lambda e: (e.at, e.id))
    spans: list[LiveSpan] = []
    for i, event in enumerate(changes):
        end = changes[i + 1].at if i + 1 < len(changes) else now
        last = i + 1 == len(changes)
        version = event.to_version or "unknown"
        spans.append(
            LiveSpan(
                version, event.at, max(end, event.at), event.kind, event.actor, last and version == current_version
            )
        )
    return spans


@dataclass(frozen=True)
class Trends:
    """Everything the Trends view plots: metric points and the live-version timeline."""

    points: list[TrendPoint]
    spans: list[LiveSpan]
    has_history: bool


def build_trends(
    versions: Sequence[VersionEntry],
    runs: Iterable[RunRecord] | None,
    events: Sequence[EventRecord] | None,
    now: dt.datetime,
    points_of: Callable[[Sequence[VersionEntry]], list[TrendPoint | None]] | None = None,
) -> Trends:
    """Trends from the versions and, when the database is there, rejected runs and live-version events."""
    current = next((v.version for v in versions if v.is_current), None)
    if runs is None or events is None:
        return Trends(trend_points(versions, [], [], points_of), [], False)
    return Trends(trend_points(versions, runs, events, points_of), live_spans(events, now, current), True)
