"""GET models/schedule and POST train's trigger: the schedule as the API reports it, scheduled runs marked."""

from __future__ import annotations

import datetime as dt

from core.db import TrainingRun
from core.history import History
from core.modelops import get_ops
from tests.api.conftest import P, error_of


def test_schedule_reports_next_runs_missed_and_the_deploy_lines(client, settings):
    history = get_ops(settings).history
    run_id = history.start_run(trigger="cli", actor="ops", params={})
    history.finish_run(run_id, status="promoted")
    with history.db.session() as s:  # the system has run for a month, with no scheduled run
        s.get(TrainingRun, run_id).started_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    body = client.get(f"{P}/models/schedule").json()
    assert body["expression"] == "0 2 * * 0" and body["timezone"] == "UTC" and len(body["next_runs"]) == 5
    first = dt.datetime.fromisoformat(body["next_runs"][0])
    assert 0 < body["seconds_until_next"] <= 7 * 86400 and first.weekday() == 6 and first.hour == 2
    assert body["missed"] is True and body["last_scheduled_run"] is None and body["failed"] is False
    assert body["recipes"]["k8s"] == 'schedule: "0 2 * * 0"'
    status = client.get(f"{P}/models/status").json()
    assert any("did not start within 60 min" in p for p in status["problems"])


def test_train_records_the_trigger_it_is_given_and_refuses_others(client, settings):
    started = client.post(f"{P}/train", json={"days_back": 30, "force_retrain": True, "trigger": "schedule"})
    assert started.status_code == 202, started.text
    get_ops(settings).wait(started.json()["job_id"], timeout=120)
    [run] = History(get_ops(settings).db).runs()
    assert run.trigger == "schedule"
    error_of(client.post(f"{P}/train", json={"trigger": "cron"}), 422)
