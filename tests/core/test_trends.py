"""Trend points and the live-version timeline built from versions, runs and registry events."""

from __future__ import annotations

import datetime as dt

from core.domain import EventRecord, RunRecord, VersionEntry
from core.trends import VersionPoints, live_spans, trend_points, version_point, version_points

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def event(i: int, kind: str, to: str | None, hours: int, frm: str | None = None) -> EventRecord:
    return EventRecord(i, kind, "ops", T0 + dt.timedelta(hours=hours), frm, to, None, {})


def entry(version: str, hours: int, acc: float, current: bool = False) -> VersionEntry:
    at = T0 + dt.timedelta(hours=hours)
    meta = {"training_duration_seconds": 2.5, "training_data_stats": {"sample_count": 900}}
    return VersionEntry(version, at, at, {"accuracy": acc}, "database", "cron", "ops", current, (), meta)


def test_live_spans_follow_promotions_restores_and_hand_made_changes():
    events = [
        event(1, "promote", "1.0.0", 0),
        event(2, "promote", "1.0.1", 10, "1.0.0"),
        event(3, "delete_backup", None, 11),
        event(4, "restore", "1.0.0", 20, "1.0.1"),
        event(5, "external_change", "1.0.1", 30, "1.0.0"),
    ]
    now = T0 + dt.timedelta(hours=40)
    spans = live_spans(events, now, current_version="1.0.1")
    assert [(s.version, s.how, (s.end - s.start).total_seconds() / 3600) for s in spans] == [
        ("1.0.0", "promote", 10),
        ("1.0.1", "promote", 10),
        ("1.0.0", "restore", 10),
        ("1.0.1", "external_change", 10),
    ]
    assert [s.is_current for s in spans] == [False, False, False, True]


def test_trend_points_mark_promotions_rejections_and_restores_in_time_order():
    versions = [entry("1.0.1", 10, 0.84, current=True), entry("1.0.0", 0, 0.80)]
    rejected = RunRecord(
        "r1",
        "rejected",
        "cron",
        "bot",
        None,
        "done",
        1.0,
        {},
        {"accuracy": 0.6},
        {"valid": False},
        {"sample_count": 50},
        (),
        3.0,
        None,
        T0 + dt.timedelta(hours=5),
        T0 + dt.timedelta(hours=5),
    )
    failed = RunRecord("r2", "failed", "cron", "bot", None, "done", 1.0, {}, None, None, None, (), 1.0, "boom", T0, T0)
    points = trend_points(versions, [rejected, failed], [event(9, "restore", "1.0.0", 20, "1.0.1")])
    assert [(p.kind, p.version, p.metrics.get("accuracy")) for p in points] == [
        ("promoted", "1.0.0", 0.80),
        ("rejected", None, 0.6),
        ("promoted", "1.0.1", 0.84),
        ("restored", "1.0.0", 0.80),
    ]
    assert points[0].sample_count == 900 and points[1].sample_count == 50 and points[1].duration_seconds == 3.0


def test_version_points_are_made_once_per_entry_and_again_for_an_entry_made_again():
    points_of = VersionPoints()
    old, mid = entry("1.0.0", 0, 0.80), entry("1.0.1", 10, 0.84)
    first = points_of([mid, old])
    assert first == version_points([mid, old])
    newest = entry("1.0.2", 20, 0.86)
    again = points_of([newest, mid, old])  # a promote: one entry more, the others kept by the registry
    assert again[1] is first[0] and again[2] is first[1] and again[0] == version_point(newest)
    remade = entry("1.0.1", 10, 0.91)  # the registry made 1.0.1's entry again: its point is made again
    assert points_of([newest, remade, old])[1].metrics == {"accuracy": 0.91}
    assert trend_points([newest, remade, old], [], [], points_of)[1].metrics == {"accuracy": 0.91}
