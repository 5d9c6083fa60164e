"""The alert engine: each rule fires once per episode, resolves, can be acknowledged and silenced, and two
evaluators racing record one transition; on real SQLite files and the real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Iterator

import pytest

from core import prediction_log as P
from core.alerting import AlertEngine, plan
from core.alerts import Alert
from core.config import Settings
from core.db import Database
from core.errors import Conflict, DataError, Forbidden, InvalidInput, NotFound
from core.identity import Principal, local_principal
from core.modelops import ModelOps
from tests.core.conftest import FIXED_END
from tests.factories import promote

ACTOR = local_principal("oncall")
VIEWER = Principal("watcher", "viewer", "account")
LOW_ACCURACY = "metric_below_threshold:accuracy"
LOW = Alert("red", "metric_below_threshold", "accuracy is 0.650, not above its threshold 0.7.", "accuracy")
STALE = Alert("amber", "model_stale", "The model is 9.0 days old.")


@pytest.fixture
def ops(settings: Settings) -> Iterator[ModelOps]:
    quiet = dataclasses.replace(settings, alert_evaluate_seconds=0)
    instance = ModelOps(quiet)
    yield instance
    instance.dispose()


def fired_for(ops: ModelOps, alert_id: int) -> list:
    """The alert_fired events of one episode."""
    return [e for e in ops.events(kinds=["alert_fired"]) if e.details["alert_id"] == alert_id]


def kinds_of(ops: ModelOps, *kinds: str) -> list:
    return ops.events(kinds=list(kinds))


def open_rule(ops: ModelOps, rule: str):
    return next(a for a in ops.alerts().open if a.rule == rule)


def test_a_rule_fires_once_per_episode_resolves_and_fires_again_in_a_new_episode(ops: ModelOps) -> None:
    promote(ops.registry, seed=1, accuracy=0.65)
    first = ops.evaluate_alerts()
    assert LOW_ACCURACY in [a.rule for a in first.fired]
    ops.evaluate_alerts()
    ops.evaluate_alerts()
    events = [e for e in kinds_of(ops, "alert_fired") if e.details["message"].startswith("accuracy")]
    assert len(events) == 1, events
    episode = open_rule(ops, LOW_ACCURACY)
    assert events[0].details == {
        "rule": "metric_below_threshold",
        "level": "red",
        "message": episode.message,
        "alert_id": episode.id,
    }
    assert events[0].actor == "alert-engine" and episode.state(dt.datetime.now(dt.UTC)) == "firing"

    promote(ops.registry, seed=2, accuracy=0.82)
    done = ops.evaluate_alerts()
    assert [a.id for a in done.resolved if a.rule == LOW_ACCURACY] == [episode.id]
    assert LOW_ACCURACY not in [a.rule for a in ops.alerts().open]
    resolved = [e for e in kinds_of(ops, "alert_resolved") if e.details["alert_id"] == episode.id]
    assert len(resolved) == 1 and resolved[0].details["rule"] == "metric_below_threshold"
    board = ops.alerts(include_resolved=True)
    assert board.resolved[0].id == episode.id and board.resolved[0].state(board.now) == "resolved"
    ops.evaluate_alerts()
    assert len([e for e in kinds_of(ops, "alert_resolved") if e.details["alert_id"] == episode.id]) == 1

    promote(ops.registry, seed=3, accuracy=0.6)
    again = ops.evaluate_alerts()
    reopened = [a for a in again.fired if a.rule == LOW_ACCURACY]
    assert len(reopened) == 1 and reopened[0].id != episode.id
    assert len([e for e in kinds_of(ops, "alert_fired") if e.details["message"].startswith("accuracy")]) == 2


def test_acknowledge_needs_an_operator_and_a_reason_and_keeps_the_episode(ops: ModelOps) -> None:
    promote(ops.registry, seed=1, accuracy=0.65)
    ops.evaluate_alerts()
    episode = open_rule(ops, LOW_ACCURACY)
    with pytest.raises(Forbidden):
        ops.acknowledge_alert(episode.id, actor=VIEWER, reason="looking")
    with pytest.raises(InvalidInput):
        ops.acknowledge_alert(episode.id, actor=ACTOR, reason="  ")
    with pytest.raises(NotFound):
        ops.acknowledge_alert(99999, actor=ACTOR, reason="looking")
    done = ops.acknowledge_alert(episode.id, actor=ACTOR, reason="retraining on fresh data")
    assert done.acknowledged_by == "oncall" and done.state(dt.datetime.now(dt.UTC)) == "acknowledged"
    with pytest.raises(Conflict, match="acknowledged already by oncall"):
        ops.acknowledge_alert(episode.id, actor=ACTOR, reason="again")
    event = kinds_of(ops, "alert_acknowledged")[0]
    assert event.actor == "oncall" and event.reason == "retraining on fresh data"
    assert event.details == {
        "rule": "metric_below_threshold",
        "level": "red",
        "message": episode.message,
        "alert_id": episode.id,
    }
    # Still firing underneath: the same episode, no second alert_fired; then it resolves as usual.
    ops.evaluate_alerts()
    assert open_rule(ops, LOW_ACCURACY).id == episode.id and len(fired_for(ops, episode.id)) == 1
    assert LOW_ACCURACY not in [a.rule for a in ops.alerts().firing]
    promote(ops.registry, seed=2, accuracy=0.82)
    ops.evaluate_alerts()
    with pytest.raises(Conflict, match="resolved already"):
        ops.acknowledge_alert(episode.id, actor=ACTOR, reason="late")


def test_a_silence_lasts_until_its_end_and_the_alert_fires_again_in_its_state(ops: ModelOps) -> None:
    promote(ops.registry, seed=1, accuracy=0.65)
    ops.evaluate_alerts()
    episode = open_rule(ops, LOW_ACCURACY)
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(InvalidInput):
        ops.silence_alert(episode.id, until=now - dt.timedelta(minutes=1), actor=ACTOR, reason="x")
    with pytest.raises(InvalidInput):
        ops.silence_alert(episode.id, until=now + dt.timedelta(days=31), actor=ACTOR, reason="x")
    with pytest.raises(Forbidden):
        ops.silence_alert(episode.id, until=now + dt.timedelta(hours=1), actor=VIEWER, reason="x")
    until = now + dt.timedelta(minutes=30)
    ops.silence_alert(episode.id, until=until, actor=ACTOR, reason="maintenance window")
    assert open_rule(ops, LOW_ACCURACY).state(now) == "silenced"
    assert LOW_ACCURACY not in [a.rule for a in ops.alerts(now=now + dt.timedelta(minutes=29)).firing]
    later = ops.alerts(now=until + dt.timedelta(seconds=1))
    assert LOW_ACCURACY in [a.rule for a in later.firing]  # the silence expired, the condition still holds
    event = kinds_of(ops, "alert_silenced")[0]
    assert event.details["alert_id"] == episode.id and event.details["until"] == until.isoformat()
    assert event.reason == "maintenance window" and event.actor == "oncall"
    ops.evaluate_alerts()
    assert len(fired_for(ops, episode.id)) == 1


def test_an_episode_whose_input_could_not_be_read_stays_open(any_db: Database) -> None:
    engine = AlertEngine(any_db)
    now = dt.datetime.now(dt.UTC)
    realised = Alert("red", "realised_f1_low", "Realised F1 is 0.2.")
    engine.evaluate([realised], now=now)
    assert engine.evaluate([], unknown=["realised_f1_low"], now=now).resolved == ()
    assert [e.rule for e in engine.open_episodes()] == ["realised_f1_low"]
    assert [e.rule for e in engine.evaluate([], now=now).resolved] == ["realised_f1_low"]


def test_several_conditions_of_one_rule_are_one_episode_and_each_metric_its_own(any_db: Database) -> None:
    engine = AlertEngine(any_db)
    now = dt.datetime.now(dt.UTC)
    broken = [Alert("red", "integrity", "a.pkl does not match"), Alert("red", "integrity", "b.pkl is missing")]
    recall = Alert("red", "metric_below_threshold", "recall is 0.4", "recall")
    done = engine.evaluate([*broken, LOW, recall], now=now)
    assert sorted(a.rule for a in done.fired) == ["integrity", LOW_ACCURACY, "metric_below_threshold:recall"]
    integrity = next(a for a in done.fired if a.rule == "integrity")
    assert "a.pkl" in integrity.message and "b.pkl" in integrity.message


def test_a_rule_holding_at_another_level_keeps_its_episode_and_takes_the_level(any_db: Database) -> None:
    """Any kind, generically: scheduled runs missed once (amber), then again and again (red)."""
    engine = AlertEngine(any_db)
    now = dt.datetime.now(dt.UTC)
    once = Alert("amber", "schedule_missed", "The scheduled training due 03:00 UTC did not start (1 missed).")
    again = Alert("red", "schedule_missed", "The scheduled training due 03:00 UTC did not start (3 missed).")
    [first] = engine.evaluate([once], now=now).fired
    assert engine.evaluate([again], now=now).fired == ()
    [episode] = engine.open_episodes()
    assert (episode.id, episode.level, episode.message) == (first.id, "red", again.message)
    assert _events(any_db, "alert_fired") == 1
    [closed] = engine.evaluate([], now=now).resolved
    assert closed.id == first.id and _events(any_db, "alert_resolved") == 1


def test_an_open_episode_takes_the_message_of_the_condition_as_it_holds_now(any_db: Database) -> None:
    """The page shows today's reason (the model's age, the live version), not the one from when it fired."""
    engine = AlertEngine(any_db)
    now = dt.datetime.now(dt.UTC)
    [first] = engine.evaluate([Alert("amber", "model_stale", "The model is 8.0 days old.")], now=now).fired
    assert engine.evaluate([Alert("amber", "model_stale", "The model is 9.5 days old.")], now=now).fired == ()
    [episode] = engine.open_episodes()
    assert (episode.id, episode.message) == (first.id, "The model is 9.5 days old.")
    assert _events(any_db, "alert_fired") == 1


def test_conditions_read_before_an_episode_fired_elsewhere_do_not_resolve_it(any_db: Database) -> None:
    """Evaluator A reads the open episodes (none), B fires a rule, A's conditions (read before the cause was
    recorded) lack it: A leaves B's episode open instead of resolving it and making it fire again later."""
    a, b = AlertEngine(any_db), AlertEngine(any_db)
    now = dt.datetime.now(dt.UTC)
    before = a.open_episodes()
    [fired] = b.evaluate([STALE], now=now).fired
    assert a.evaluate([], now=now, opened=before).resolved == ()
    assert [e.id for e in a.open_episodes()] == [fired.id] and _events(any_db, "alert_resolved") == 0


def test_two_evaluators_that_both_saw_no_episode_fire_it_once(any_db: Database) -> None:
    """The race, step by step: both read the open episodes before either writes."""
    second = Database(any_db.url)
    a, b = AlertEngine(any_db), AlertEngine(second)
    now = dt.datetime.now(dt.UTC)
    plan_a, plan_b = plan([LOW, STALE], a.open_episodes()), plan([LOW, STALE], b.open_episodes())
    assert len(plan_a) == len(plan_b) == 2
    made = [a.fire(t.alert, now=now) for t in plan_a] + [b.fire(t.alert, now=now) for t in plan_b]
    assert sum(m is not None for m in made) == 2
    assert _events(any_db, "alert_fired") == 2
    # Resolving races the same way: one alert_resolved per episode.
    gone_a, gone_b = plan([], a.open_episodes()), plan([], b.open_episodes())
    closed = [a.resolve(t.episode, now=now) for t in gone_a] + [b.resolve(t.episode, now=now) for t in gone_b]
    assert sum(c is not None for c in closed) == 2 and _events(any_db, "alert_resolved") == 2
    second.dispose()


def test_concurrent_evaluators_record_one_fired_event_per_rule(any_db: Database) -> None:
    databases = [Database(any_db.url) for _ in range(6)]
    start = threading.Barrier(len(databases))
    errors: list[BaseException] = []

    def evaluate(db: Database) -> None:
        try:
            start.wait()
            AlertEngine(db).evaluate([LOW, STALE], now=dt.datetime.now(dt.UTC))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=evaluate, args=(db,)) for db in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert _events(any_db, "alert_fired") == 2
    assert sorted(e.rule for e in AlertEngine(any_db).open_episodes()) == [LOW_ACCURACY, "model_stale"]
    for db in databases:
        db.dispose()


def test_a_silence_that_runs_out_is_recorded_once_and_pages_again(any_db: Database, caplog) -> None:
    from core.history import History

    a, second = AlertEngine(any_db), Database(any_db.url)
    b = AlertEngine(second)
    now = dt.datetime.now(dt.UTC)
    (episode,) = a.evaluate([LOW], now=now).fired
    until = now + dt.timedelta(minutes=30)
    a.silence(episode.id, until=until, actor="oncall", reason="maintenance window", now=now)
    assert a.evaluate([LOW], now=now + dt.timedelta(minutes=29)).unsilenced == ()
    after = until + dt.timedelta(seconds=5)
    seen_by_b = b.open_episodes()  # the race: b read the silenced episode before a ended the silence
    with caplog.at_level(logging.INFO, logger="core.alerting"):
        ended = list(a.evaluate([LOW], now=after).unsilenced)
        b.open_episodes = lambda: seen_by_b  # type: ignore[method-assign]
        ended += b.end_silences(now=after)
    assert [e.id for e in ended] == [episode.id]  # b's conditional update found nothing left to end
    (event,) = History(any_db).events(kinds=["alert_unsilenced"])
    assert event.actor == "alert-engine" and f"set by oncall ended at {until.isoformat()}" in event.reason
    assert event.details["alert_id"] == episode.id and event.details["until"] == until.isoformat()
    assert event.details["reason"] == "maintenance window" and event.details["silenced_by"] == "oncall"
    assert f"alert: {LOW_ACCURACY} firing again (alert {episode.id})" in caplog.text
    (reopened,) = a.open_episodes()
    assert reopened.state(after) == "firing" and reopened.silenced_until is None
    # Silenced again before it ran out: a later evaluation leaves the new silence alone.
    a.silence(reopened.id, until=after + dt.timedelta(hours=1), actor="oncall", reason="still on it", now=after)
    assert a.evaluate([LOW], now=after + dt.timedelta(minutes=1)).unsilenced == ()
    assert len(History(any_db).events(kinds=["alert_unsilenced"])) == 1
    second.dispose()


def _events(db: Database, kind: str) -> int:
    from core.history import History

    return len(History(db).events(kinds=[kind]))


def test_the_prediction_error_rate_fires_above_its_threshold(settings: Settings) -> None:
    tuned = dataclasses.replace(settings, alert_evaluate_seconds=0, alert_error_min_requests=10, alert_error_rate=0.2)
    ops = ModelOps(tuned)
    try:
        now = dt.datetime.now(dt.UTC)
        served = [P._row(f"dev-{i}", now, "1.0.0", 0.1, 1.0) for i in range(12)]
        P.insert_rows(ops.db, served)
        for i in range(4):  # no model is live: every request fails, and is counted
            with pytest.raises(NotFound):
                ops.predict(f"dev-{i}", {"battery_level": 50.0})
        with pytest.raises(InvalidInput):  # the caller's mistake is not the service's error
            ops.predict("", {})
        writer = ops.prediction_log()
        assert writer is not None and writer.flush()
        assert P.request_counts(ops.db, since=now - dt.timedelta(minutes=1)) == (4, 12)
        done = ops.evaluate_alerts()
        rate = [a for a in done.fired if a.kind == "prediction_error_rate"]
        assert len(rate) == 1 and "4 of 16 predict requests failed" in rate[0].message, done
        # Outside the window the failures no longer count: the episode resolves.
        later = ops.evaluate_alerts(now=now + dt.timedelta(minutes=tuned.alert_error_window_minutes + 1))
        assert [a.kind for a in later.resolved if a.kind == "prediction_error_rate"] == ["prediction_error_rate"]
    finally:
        ops.dispose()


def test_alert_settings_are_validated() -> None:
    assert Settings.from_env({"ALERT_REALISED_F1": "0.55"}).alert_realised_f1 == 0.55
    with pytest.raises(InvalidInput, match="ALERT_ERROR_RATE"):
        Settings.from_env({"ALERT_ERROR_RATE": "5"})
    with pytest.raises(InvalidInput, match="ALERT_DRIFT_FEATURES"):
        Settings.from_env({"ALERT_DRIFT_FEATURES": "-1"})
    with pytest.raises(InvalidInput, match="ALERT_ERROR_WINDOW_MINUTES"):
        Settings.from_env({"ALERT_ERROR_WINDOW_MINUTES": "0"})


# ------------------------------------------------------------------ monitoring rules on simulated fleets
from tests.core.test_realised import DRIFT_FROM, World, world  # noqa: E402,F401  (the scored fleet, built once)
from tests.drift_world import DriftWorld, build_drift_world  # noqa: E402


def test_realised_f1_fires_on_a_scored_fleet_after_its_firmware_change(world: World) -> None:  # noqa: F811
    """The fleet scored daily since the model was trained; its firmware changes on DRIFT_FROM."""
    before = dt.datetime.combine(DRIFT_FROM, dt.time(), tzinfo=dt.UTC)
    after = FIXED_END

    def realised_f1(now: dt.datetime) -> float:
        since = (now - dt.timedelta(days=world.ops.settings.horizon_days + 14)).date()
        figures = world.ops.realised_performance(as_of=now, since=since).version(world.version)
        assert figures is not None and figures.total.outcomes >= 200
        return float(figures.total.f1_score)

    good, bad = realised_f1(before), realised_f1(after)
    assert bad < good - 0.05, (good, bad)
    tuned = dataclasses.replace(
        world.ops.settings, alert_realised_f1=(good + bad) / 2, alert_realised_recall=0.0, alert_evaluate_seconds=0
    )
    ops = ModelOps(tuned)
    try:
        assert not [a for a in ops.evaluate_alerts(now=before).fired if a.kind == "realised_f1_low"]
        fired_now = [a for a in ops.evaluate_alerts(now=after).fired if a.kind == "realised_f1_low"]
        assert len(fired_now) == 1 and f"Realised F1 of version {world.version} is {bad:.3f}" in fired_now[0].message
        ops.evaluate_alerts(now=after)
        events = [e for e in ops.events(kinds=["alert_fired"]) if e.details["rule"] == "realised_f1_low"]
        assert len(events) == 1 and events[0].details["level"] == "red"
        # Too few outcomes is no verdict: with a minimum above what the window holds, the episode resolves.
        strict = ModelOps(dataclasses.replace(tuned, alert_min_outcomes=10**7))
        try:
            gone = strict.evaluate_alerts(now=after).resolved
            assert [a.kind for a in gone if a.kind == "realised_f1_low"] == ["realised_f1_low"]
        finally:
            strict.dispose()
    finally:
        ops.dispose()


@pytest.fixture(scope="module")
def drift_world(tmp_path_factory: pytest.TempPathFactory) -> DriftWorld:
    return build_drift_world(tmp_path_factory.mktemp("drift"))


def test_drift_on_enough_features_fires_and_fewer_than_the_setting_does_not(drift_world: DriftWorld, tmp_path) -> None:
    settings = dataclasses.replace(drift_world.copy(tmp_path / "w"), alert_evaluate_seconds=0)
    ops = ModelOps(settings)
    try:
        drifted = [f.name for f in ops.drift().features if f.band == "significant"]
        assert len(drifted) >= 3, drifted
    finally:
        ops.dispose()
    # A read that evaluates judges drift from a cached report only: it never waits for a drift computation.
    reader = ModelOps(dataclasses.replace(settings, alert_drift_features=len(drifted) + 1))
    try:
        assert [a.kind for a in reader.alerts(refresh=True).open if a.kind == "drift_significant"]
        with pytest.raises(DataError):
            reader.drift(cached_only=True)
    finally:
        reader.dispose()
    # Training the world evaluated alerts already (default ALERT_DRIFT_FEATURES=3): the episode is open.
    for needed, fires in ((len(drifted), True), (len(drifted) + 1, False), (len(drifted), True)):
        ops = ModelOps(dataclasses.replace(settings, alert_drift_features=needed))
        try:
            ops.evaluate_alerts()
            found = [a for a in ops.alerts().open if a.kind == "drift_significant"]
            assert bool(found) is fires, (needed, drifted)
            if fires:
                assert found[0].level == "amber" and f"{len(drifted)} features" in found[0].message
        finally:
            ops.dispose()
    from core.history import History

    db = Database(settings.database_url)
    history = [e.details["rule"] for e in History(db).events(kinds=["alert_fired", "alert_resolved"])]
    db.dispose()
    assert history.count("drift_significant") == 3  # fired in training, resolved at needed + 1, fired again


def test_an_evaluation_after_a_change_that_outlives_its_ops_stays_quiet(settings: Settings, caplog) -> None:
    """A CLI restore evaluates alerts on a thread and exits at once: the evaluation then finds the database pool shut
    down, which is no failure to report (it used to log 'cannot schedule new futures after shutdown')."""
    ops = ModelOps(settings)
    ops.dispose()
    with caplog.at_level(logging.WARNING, logger="core.modelops"):
        ops._evaluate_after_change(wait=True)
    assert not [r for r in caplog.records if "evaluation after a change failed" in r.getMessage()]
