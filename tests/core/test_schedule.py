"""The training schedule on a real SQLite history: next runs, the last scheduled run, missed and failed, conditions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.alerts import model_alerts
from core.config import Settings
from core.db import Database, TrainingRun
from core.errors import InvalidInput
from core.history import History
from core.modelops import ModelOps
from core.schedule import SCHEDULE_TRIGGER, describe, next_runs, parse_schedule, read_schedule, recipes

UTC = dt.UTC
SUNDAY_2AM = dt.datetime(2026, 11, 29, 2, 0, tzinfo=UTC)  # a Sunday


def at(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def record_run(db: Database, *, trigger: str, started: dt.datetime, status: str = "promoted", error: str | None = None):
    """A finished run as History records it, then dated `started` (History stamps the real clock)."""
    history = History(db)
    run_id = history.start_run(trigger=trigger, actor="cron" if trigger == SCHEDULE_TRIGGER else "ops", params={})
    history.finish_run(run_id, status=status, version="1.0.0" if status == "promoted" else None, error=error)
    with db.session() as s:
        row = s.get(TrainingRun, run_id)
        row.started_at, row.finished_at = started, started + dt.timedelta(minutes=3)
    return run_id


def report(settings: Settings, db: Database, now: dt.datetime):
    return read_schedule(settings, History(db), now=now)


def kinds(settings: Settings, db: Database, now: dt.datetime) -> dict[str, str]:
    schedule = report(settings, db, now)
    return {a.kind: a.level for a in model_alerts(None, None, settings, schedule=schedule, now=now)}


# ------------------------------------------------------------------ times
@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 2 * * 0", at(25, 12), [at(29, 2), at(29, 2) + dt.timedelta(days=7), at(29, 2) + dt.timedelta(days=14)]),
        (
            "30 4 1 * *",
            at(25),
            [dt.datetime(2026, 12, 1, 4, 30, tzinfo=UTC), dt.datetime(2027, 1, 1, 4, 30, tzinfo=UTC)],
        ),
        ("*/15 * * * *", at(25, 10, 7), [at(25, 10, 15), at(25, 10, 30), at(25, 10, 45), at(25, 11, 0)]),
        ("0 2 * * mon-fri", at(27, 3), [at(30, 2), dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC)]),  # Fri -> Mon
        ("@daily", at(25, 0, 0), [at(26), at(27)]),
    ],
)
def test_next_runs_for_a_few_expressions(expression, after, expected):
    runs = next_runs(parse_schedule(expression), after, count=len(expected))
    assert list(runs) == expected
    assert all(t.tzinfo is not None and t.utcoffset() == dt.timedelta(0) for t in runs)


def test_descriptions_of_the_common_shapes():
    assert describe("0 2 * * 0") == "every Sunday at 02:00 UTC"
    assert describe("30 4 1 * *") == "on day 1 of every month at 04:30 UTC"
    assert describe("5 23 * * *") == "every day at 23:05 UTC"
    assert describe("*/15 * * * *") is None


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0 2 * *", "needs 5 fields"),
        ("0 0 2 * * 0", "needs 5 fields"),
        ("61 2 * * *", "not a valid cron expression"),
        ("0 2 L * *", "crontab and Kubernetes"),
        ("0 2 * * 1#2", "crontab and Kubernetes"),
        ("weekly", "needs 5 fields"),
    ],
)
def test_an_invalid_expression_is_a_clear_invalid_input(value, says):
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({"TRAINING_SCHEDULE": value})
    assert caught.value.message.startswith(f"TRAINING_SCHEDULE={value!r}") and says in caught.value.message
    assert "0 2 * * 0" in caught.value.message  # an example to copy


def test_settings_default_to_the_guides_weekly_line_and_check_the_grace():
    settings = Settings.from_env({})
    assert (settings.training_schedule, settings.schedule_grace_minutes) == ("0 2 * * 0", 60)
    assert Settings.from_env({"TRAINING_SCHEDULE": "  0 3   1 * * "}).training_schedule == "0 3 1 * *"
    assert Settings.from_env({"TRAINING_SCHEDULE": "@weekly"}).training_schedule == "0 0 * * 0"
    with pytest.raises(InvalidInput, match="SCHEDULE_GRACE_MINUTES must be from 1"):
        Settings.from_env({"SCHEDULE_GRACE_MINUTES": "0"})
    with pytest.raises(InvalidInput, match="SCHEDULE_GRACE_MINUTES='soon' is not an integer"):
        Settings.from_env({"SCHEDULE_GRACE_MINUTES": "soon"})


def test_recipes_are_generated_from_the_expression():
    lines = recipes("15 3 * * 1", Path("/srv/mo"))
    assert lines["crontab"] == "15 3 * * 1 /srv/mo/scripts/schedule_model_training.sh"
    assert lines["k8s"] == 'schedule: "15 3 * * 1"'
    assert "TRAINING_SCHEDULE='15 3 * * 1'" in lines["compose"]


# ------------------------------------------------------------------ missed / failed
def test_a_scheduled_run_recorded_is_not_missed(settings, db):
    record_run(db, trigger="cli", started=at(23))  # the system was running before the due time
    record_run(db, trigger=SCHEDULE_TRIGGER, started=SUNDAY_2AM + dt.timedelta(seconds=40))
    now = SUNDAY_2AM + dt.timedelta(hours=5)
    found = report(settings, db, now)
    assert found.last_due == SUNDAY_2AM and found.deciding_due == SUNDAY_2AM
    assert found.last_run is not None and found.last_run.trigger == SCHEDULE_TRIGGER and found.outcome == "promoted"
    assert (found.missed, found.failed, found.missed_count) == (False, False, 0)
    assert "schedule_missed" not in kinds(settings, db, now)


def test_a_due_time_past_its_grace_without_a_scheduled_run_is_missed(settings, db):
    record_run(db, trigger="cli", started=at(23))
    # Within the grace period the run may still start: not missed yet.
    assert report(settings, db, SUNDAY_2AM + dt.timedelta(minutes=59)).missed is False
    now = SUNDAY_2AM + dt.timedelta(minutes=61)
    found = report(settings, db, now)
    assert found.missed is True and found.deciding_due == SUNDAY_2AM and found.missed_count == 1
    assert kinds(settings, db, now)["schedule_missed"] == "amber"
    # A second due time passes with still no scheduled run: red.
    later = SUNDAY_2AM + dt.timedelta(days=7, hours=2)
    assert report(settings, db, later).missed_count == 2 and kinds(settings, db, later)["schedule_missed"] == "red"


def test_last_weeks_scheduled_run_does_not_cover_this_weeks_due_time(settings, db):
    record_run(db, trigger=SCHEDULE_TRIGGER, started=SUNDAY_2AM - dt.timedelta(days=7) + dt.timedelta(seconds=5))
    found = report(settings, db, SUNDAY_2AM + dt.timedelta(hours=3))
    assert found.missed is True and found.missed_count == 1 and found.outcome == "promoted"


def test_a_run_started_by_hand_does_not_count_as_the_scheduled_one(settings, db):
    record_run(db, trigger="cli", started=at(23))
    record_run(db, trigger="dashboard", started=SUNDAY_2AM + dt.timedelta(minutes=5))
    record_run(db, trigger="api", started=SUNDAY_2AM + dt.timedelta(minutes=10))
    found = report(settings, db, SUNDAY_2AM + dt.timedelta(hours=2))
    assert found.last_run is None and found.recent_runs == ()
    assert found.missed is True


def test_a_failed_scheduled_run_is_the_schedule_failed_condition(settings, db):
    record_run(db, trigger="cli", started=at(23))
    record_run(
        db, trigger=SCHEDULE_TRIGGER, started=SUNDAY_2AM + dt.timedelta(minutes=1), status="failed", error="no data"
    )
    now = SUNDAY_2AM + dt.timedelta(hours=2)
    found = report(settings, db, now)
    assert found.failed is True and found.missed is False and found.outcome == "failed"
    conditions = model_alerts(None, None, settings, schedule=found, now=now)
    [failed] = [a for a in conditions if a.kind == "schedule_failed"]
    assert "no data" in failed.message and failed.level == "amber"
    # A later scheduled run that promotes clears it.
    record_run(db, trigger=SCHEDULE_TRIGGER, started=SUNDAY_2AM + dt.timedelta(days=7, seconds=30))
    assert "schedule_failed" not in kinds(settings, db, SUNDAY_2AM + dt.timedelta(days=7, hours=2))


def test_nothing_is_judged_before_the_first_recorded_run(settings, db):
    # A fresh install: no runs at all, then a first run after the due time; that due time was before it existed.
    assert report(settings, db, SUNDAY_2AM + dt.timedelta(days=2)).missed is False
    record_run(db, trigger="cli", started=SUNDAY_2AM + dt.timedelta(days=1))
    assert report(settings, db, SUNDAY_2AM + dt.timedelta(days=2)).missed is False
    assert report(settings, db, SUNDAY_2AM + dt.timedelta(days=7, hours=2)).missed is True


def test_the_grace_period_comes_from_the_setting(tmp_path, db):
    record_run(db, trigger="cli", started=at(23))
    lenient = Settings.from_env({"SCHEDULE_GRACE_MINUTES": "240"}, database_url=db.url)
    assert read_schedule(lenient, History(db), now=SUNDAY_2AM + dt.timedelta(hours=3)).missed is False
    assert read_schedule(lenient, History(db), now=SUNDAY_2AM + dt.timedelta(hours=5)).missed is True


# ------------------------------------------------------------------ through ModelOps
def test_modelops_schedule_and_status_carry_the_conditions(settings):
    ops = ModelOps(settings)
    try:
        record_run(ops.db, trigger="cli", started=dt.datetime.now(UTC) - dt.timedelta(days=30))
        found = ops.schedule()
        assert found.missed is True and found.expression == "0 2 * * 0" and len(found.next_runs) == 5
        status = ops.status()
        assert status.schedule is not None and status.schedule.missed is True
        assert "schedule_missed" in {a.kind for a in status.alerts}
    finally:
        ops.dispose()


def test_without_the_database_the_times_are_shown_and_nothing_is_judged(tmp_path):
    settings = Settings.from_env(
        {}, database_url="postgresql+psycopg://nobody:x@127.0.0.1:1/none", models_dir=tmp_path, db_timeout_seconds=1
    )
    ops = ModelOps(settings)
    try:
        found = ops.schedule()
        assert found.history_error and found.missed is False and len(found.next_runs) == 5
    finally:
        ops.dispose()


def test_the_same_judgement_on_postgresql(postgres_url):
    from tests.conftest import fresh_postgres

    db = fresh_postgres(postgres_url)
    try:
        settings = Settings.from_env({}, database_url=postgres_url)
        record_run(db, trigger="cli", started=at(23))
        record_run(db, trigger="dashboard", started=SUNDAY_2AM + dt.timedelta(minutes=5))
        assert History(db).first_run_at() == at(23)
        assert kinds(settings, db, SUNDAY_2AM + dt.timedelta(hours=2))["schedule_missed"] == "amber"
        record_run(db, trigger=SCHEDULE_TRIGGER, started=SUNDAY_2AM + dt.timedelta(seconds=30), status="failed")
        found = report(settings, db, SUNDAY_2AM + dt.timedelta(hours=2))
        assert (found.missed, found.failed, found.last_run.started_at) == (
            False,
            True,
            SUNDAY_2AM + dt.timedelta(seconds=30),
        )
    finally:
        db.dispose()


def test_turned_off_nothing_is_due_or_judged_and_there_is_nothing_to_deploy(settings, db):
    off = Settings.from_env({"TRAINING_SCHEDULE": "off"}, database_url=db.url)
    assert off.training_schedule is None
    record_run(db, trigger="cli", started=at(1))
    record_run(db, trigger=SCHEDULE_TRIGGER, started=at(2), status="failed")
    found = read_schedule(off, History(db), now=SUNDAY_2AM + dt.timedelta(days=30))
    assert (found.missed, found.failed, found.next_runs, found.seconds_until_next) == (False, False, (), None)
    assert found.last_run is not None and found.to_dict()["enabled"] is False
    assert model_alerts(None, None, off, schedule=found) == model_alerts(None, None, off)
    with pytest.raises(InvalidInput, match="TRAINING_SCHEDULE is off"):
        recipes(None, Path("/srv"))
