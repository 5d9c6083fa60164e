"""manage_models.py schedule as operators run it: the report as text and JSON, and --check's exit status."""

from __future__ import annotations

import datetime as dt
import json

from core.db import Database, TrainingRun
from core.history import History
from tests.test_manage_cli import run


def backdate(db: Database, trigger: str, days_ago: float, status: str = "promoted", error: str | None = None) -> None:
    history = History(db)
    run_id = history.start_run(trigger=trigger, actor="cron" if trigger == "schedule" else "ops", params={})
    history.finish_run(run_id, status=status, error=error)
    with db.session() as s:
        s.get(TrainingRun, run_id).started_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)


def test_a_missed_schedule_in_text_and_json_and_check_exits_1(settings, db):
    backdate(db, "cli", 30)
    backdate(db, "schedule", 20, status="failed", error="no telemetry")
    text = run(settings, "schedule")
    assert text.returncode == 0, text.stderr
    assert "schedule: 0 2 * * 0 (UTC), every Sunday at 02:00 UTC" in text.stdout
    assert "MISSED: the run due" in text.stdout and "FAILED" in text.stdout and "no telemetry" in text.stdout
    body = json.loads(run(settings, "--json", "schedule").stdout)
    assert body["missed"] is True and body["failed"] is True and body["outcome"] == "failed"
    assert body["missed_count"] >= 2 and len(body["next_runs"]) == 5
    assert body["last_scheduled_run"]["trigger"] == "schedule" and body["recipes"]["k8s"] == 'schedule: "0 2 * * 0"'
    assert run(settings, "schedule", "--check").returncode == 1


def test_an_on_time_scheduled_run_passes_the_check(settings, db):
    now = dt.datetime.now(dt.UTC)
    backdate(db, "cli", 30)
    env = {"TRAINING_SCHEDULE": f"{now.minute} {now.hour} * * *"}  # due today at this minute, run just now
    backdate(db, "schedule", 0)
    result = run(settings, "--json", "schedule", "--check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    body = json.loads(result.stdout)
    assert body["missed"] is False and body["outcome"] == "promoted"


def test_turned_off_the_report_says_so_and_there_is_no_line_to_print(settings, db):
    off = {"TRAINING_SCHEDULE": "off"}
    text = run(settings, "schedule", "--check", env=off)
    assert text.returncode == 0 and "schedule: off" in text.stdout
    line = run(settings, "schedule", "--crontab", env=off)
    assert line.returncode == 2 and "TRAINING_SCHEDULE is off" in line.stderr
