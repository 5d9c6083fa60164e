"""The Schedule page through AppTest on a real SQLite history: next runs, the missed banner, scheduled runs, deploy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from core.db import Database, TrainingRun
from core.history import History
from core.modelops import reset_ops
from dashboard.pages import PAGE_GROUPS, page_path
from tests.dashboard.env import dashboard_on

ROUTER = str(Path(__file__).resolve().parents[2] / "dashboard" / "router.py")


@pytest.fixture(autouse=True)
def _dashboard_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with dashboard_on(settings, monkeypatch, TRAINING_SCHEDULE="30 3 * * *"):
        yield


def record(db: Database, trigger: str, started: dt.datetime, status: str, error: str | None = None) -> None:
    history = History(db)
    run_id = history.start_run(trigger=trigger, actor="cron" if trigger == "schedule" else "alice", params={})
    history.finish_run(run_id, status=status, error=error)
    with db.session() as s:
        s.get(TrainingRun, run_id).started_at = started


def schedule_page() -> AppTest:
    at = AppTest.from_file(ROUTER, default_timeout=30)
    at.switch_page(page_path("schedule"))
    return at.run()


def said(at: AppTest) -> str:
    kinds = ("title", "subheader", "markdown", "caption", "info", "warning", "error", "code")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def test_the_page_sits_after_retrain_in_operate():
    names = [name for name, _, _ in PAGE_GROUPS["Operate"]]
    assert names.index("schedule") == names.index("retrain") + 1


def test_a_missed_due_run_shows_the_banner_and_hand_runs_do_not_count(db: Database):
    today = dt.datetime.now(dt.UTC).replace(hour=3, minute=30, second=0, microsecond=0)
    due = today if dt.datetime.now(dt.UTC) >= today + dt.timedelta(hours=1) else today - dt.timedelta(days=1)
    record(db, "cli", due - dt.timedelta(days=3), "promoted")
    record(db, "schedule", due - dt.timedelta(days=1, seconds=-20), "promoted")  # yesterday's was on time
    record(db, "dashboard", due + dt.timedelta(minutes=5), "promoted")  # by hand: not the scheduled one
    at = schedule_page()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Schedule" and "every day at 03:30 UTC" in at.caption[0].value
    [banner] = at.error
    assert "Missed" in banner.value and due.strftime("%Y-%m-%d %H:%M UTC") in banner.value
    next_runs = at.dataframe[0].value
    assert len(next_runs) == 5 and all(v.endswith((" s", " min", " h", " d")) for v in next_runs["in"])
    recent = at.dataframe[1].value
    assert list(recent["outcome"]) == ["promoted"] and list(recent["by"]) == ["cron"]
    assert "30 3 * * *" in said(at) and 'schedule: "30 3 * * *"' in said(at)


def test_a_failed_scheduled_run_on_time_is_failed_not_missed(db: Database):
    now = dt.datetime.now(dt.UTC)
    last_due = now.replace(hour=3, minute=30, second=0, microsecond=0)
    last_due = last_due if last_due <= now else last_due - dt.timedelta(days=1)
    record(db, "cli", last_due - dt.timedelta(days=2), "promoted")
    record(db, "schedule", last_due + dt.timedelta(seconds=30), "failed", error="too little telemetry")
    at = schedule_page()
    assert not at.exception and not at.error
    assert any("too little telemetry" in w.value for w in at.warning)
    assert at.metric[2].value == "failed"


def test_turned_off_the_page_says_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRAINING_SCHEDULE", "off")
    reset_ops()
    at = schedule_page()
    assert not at.exception and not at.error
    assert "TRAINING_SCHEDULE is off" in at.info[0].value and not at.dataframe
