"""Background training jobs: one at a time, refused naming the holder, recorded, abandoned runs closed."""

from __future__ import annotations

import pytest

from core.errors import Conflict
from core.history import History
from core.jobs import JobRunner
from core.training_run import TrainingRequest


def test_a_job_runs_in_the_background_and_its_end_is_recorded(settings, db):
    runner = JobRunner(settings, db)
    job = runner.start(TrainingRequest(30, force=True), actor="alice", trigger="dashboard")
    assert job.request.days_back == 30
    run = runner.wait(job.run_id, timeout=60)
    # The database holds no telemetry: the run ends failed, saying why, and releases the lock.
    assert (run.status, run.actor, run.trigger, run.params["days_back"]) == ("failed", "alice", "dashboard", 30)
    assert "seed_telemetry.py" in run.error and runner.holder() is None


def test_a_second_job_is_refused_naming_who_trains(settings, db):
    runner = JobRunner(settings, db)
    refused = pytest.raises(Conflict, match="training is already running: training \\(days_back=90\\) by scheduler")
    with runner.trainer.lock.hold("training (days_back=90)", "scheduler"), refused:
        runner.start(TrainingRequest(30, force=True), actor="alice", trigger="api")
    assert History(db).runs() == []  # the refused job left no row


def test_a_run_left_running_by_a_dead_process_is_closed_when_the_next_starts(settings, db):
    history = History(db)
    ghost = history.start_run(trigger="cli", actor="cron", params={})
    runner = JobRunner(settings, db)
    job = runner.start(TrainingRequest(30, force=True), actor="alice", trigger="api")
    runner.wait(job.run_id, timeout=60)
    assert history.get_run(ghost).status == "failed"
    assert "stopped before it finished" in history.get_run(ghost).error
