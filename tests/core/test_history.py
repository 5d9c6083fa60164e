"""History on SQLite and PostgreSQL: runs from start to finish, events and their filters, the change stamp."""

from __future__ import annotations

import datetime as dt

from core.history import MAX_LOG_LINES, History


def test_a_run_is_recorded_from_start_to_finish(any_db):
    history = History(any_db)
    run_id = history.start_run(trigger="cli", actor="alice", params={"days_back": 30})
    for i in range(MAX_LOG_LINES + 5):
        history.update_run(run_id, stage="fitting", progress=0.5, message=f"line {i}")
    running = history.get_run(run_id)
    assert (running.status, running.stage, running.progress, running.finished) == ("running", "fitting", 0.5, False)
    assert len(running.log) == MAX_LOG_LINES and running.log[-1]["message"] == f"line {MAX_LOG_LINES + 4}"
    history.finish_run(run_id, status="promoted", version="1.0.0", metrics={"f1_score": 0.8}, duration_seconds=2.5)
    done = history.get_run(run_id)
    assert (done.status, done.version, done.metrics, done.progress) == ("promoted", "1.0.0", {"f1_score": 0.8}, 1.0)
    assert done.finished and done.finished_at >= done.started_at
    assert history.get_run("no-such-run") is None


def test_abandoned_runs_are_closed_as_failed_and_only_those(any_db):
    history = History(any_db)
    old = history.start_run(trigger="cli", actor="cron", params={})
    cutoff = dt.datetime.now(dt.UTC)
    new = history.start_run(trigger="cli", actor="cron", params={})
    assert history.mark_abandoned(cutoff, "the process stopped") == 1
    assert (history.get_run(old).status, history.get_run(old).error) == ("failed", "the process stopped")
    assert history.get_run(new).status == "running"


def test_events_are_filtered_and_ordered_and_name_their_actors(any_db):
    history = History(any_db)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    history.record_event("promote", actor="cron", to_version="1.0.0", at=t0)
    history.record_event("restore", actor="bob", from_version="1.0.1", to_version="1.0.0", at=t0 + dt.timedelta(1))
    history.record_event("cleanup", actor="alice", details={"removed": ["x"]}, at=t0 + dt.timedelta(2))
    assert [e.kind for e in history.events()] == ["cleanup", "restore", "promote"]
    assert [e.kind for e in history.events(ascending=True)] == ["promote", "restore", "cleanup"]
    assert [e.actor for e in history.events(kinds=["restore", "promote"])] == ["bob", "cron"]
    assert [e.kind for e in history.events(actor="alice")] == ["cleanup"]
    assert [e.kind for e in history.events(since=t0 + dt.timedelta(1))] == ["cleanup", "restore"]
    assert history.actors() == ["alice", "bob", "cron"]
    assert history.versions_seen() == {"1.0.0", "1.0.1"}
    assert history.count_events() == 3


def test_the_stamp_changes_with_runs_and_events_but_not_with_progress(any_db):
    history = History(any_db)
    empty = history.stamp()
    run_id = history.start_run(trigger="cli", actor="alice", params={})
    started = history.stamp()
    history.update_run(run_id, stage="fitting", progress=0.4, message="fitting")
    assert history.stamp() == started != empty  # progress polls must not invalidate every cached page
    history.finish_run(run_id, status="failed", error="x")
    finished = history.stamp()
    history.record_event("backup", actor="alice")
    assert len({empty, started, finished, history.stamp()}) == 4
