"""Automatic rollback on a simulated fleet whose newly promoted version degrades: it restores the previous version
once per episode (audited, held, recorded), only records in dry-run, and never acts under a person's hold, on too
few outcomes, or when off."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from core import autorollback as AR
from core.config import Settings
from core.errors import Conflict, InvalidInput
from core.identity import is_rule, local_principal, rule_principal
from core.modelops import ModelOps
from tests.autorollback_world import BAD_FROM, END, World, build_world

ALICE = local_principal("alice")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("autorollback"))


@pytest.fixture
def make(world: World, tmp_path: Path):
    made: list[ModelOps] = []

    def build(**settings: object) -> ModelOps:
        ops = world.copy(tmp_path / f"copy{len(made)}", **settings)
        made.append(ops)
        return ops

    yield build
    for ops in made:
        ops.dispose()


def _events(ops: ModelOps, kind: str) -> list:
    return ops.events(kinds=[kind])


def test_on_restores_the_previous_version_once_holds_it_and_records_the_figures(
    make, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    ops = make(auto_rollback="on")
    restores_before = len(_events(ops, "restore"))
    with caplog.at_level(logging.INFO, logger="core.autorollback"):
        decision = ops.evaluate_auto_rollback(now=END)
    assert decision.decision == AR.ACTED, decision.message
    assert ops.current().version == world.good
    hold = ops.hold()
    assert hold is not None and hold.version == world.good and hold.placed_by == "rule:auto-rollback"

    figures = decision.figures
    assert figures is not None and figures.previous_source == "same-data"
    assert figures.outcomes >= 200 and figures.live_f1 < figures.previous_f1 - 0.05, figures
    assert figures.window_start == BAD_FROM.date() + dt.timedelta(days=1)

    (restore,) = _events(ops, "restore")[: len(_events(ops, "restore")) - restores_before]
    assert restore.actor == "rule:auto-rollback" and restore.to_version == world.good
    assert restore.reason.startswith(f"realised F1 {figures.live_f1:.2f} of v{world.bad} on {figures.outcomes:,}")
    assert f"vs v{world.good} {figures.previous_f1:.2f} on the same days" in restore.reason
    (event,) = _events(ops, "auto_rollback")
    assert (event.actor, event.from_version, event.to_version) == ("rule:auto-rollback", world.bad, world.good)
    assert event.details["mode"] == "on" and event.details["dry_run"] is False
    assert event.details["live_f1"] == figures.live_f1 and event.details["previous_f1"] == figures.previous_f1
    assert event.details["window_start"] == figures.window_start.isoformat() and event.id == decision.event_id
    lines = [r.getMessage() for r in caplog.records if r.name == "core.autorollback"]
    assert len(lines) == 1 and lines[0].startswith(f"auto-rollback (on): acted: restored v{world.good}"), lines

    # The same episode: nothing more, however often it is asked.
    again = ops.evaluate_auto_rollback(now=END)
    assert again.decision == AR.ALREADY, again.message
    assert ops.current().version == world.good
    assert len(_events(ops, "restore")) == restores_before + 1 and len(_events(ops, "auto_rollback")) == 1
    state = ops.auto_rollback_state()
    assert state.mode == "on" and state.last is not None and state.last["decision"] == AR.ALREADY
    assert state.describe().startswith("Automatic rollback: on; last decision (2026-01-15 12:00 UTC): already acted")


def test_dry_run_records_once_per_episode_and_changes_nothing(make, world: World) -> None:
    ops = make(auto_rollback="dry-run")
    decision = ops.evaluate_auto_rollback(now=END)
    assert decision.decision == AR.WOULD_ACT, decision.message
    assert ops.current().version == world.bad and ops.hold() is None
    assert not [e for e in _events(ops, "restore") if is_rule(e.actor)]
    (event,) = _events(ops, "auto_rollback")
    assert event.details["dry_run"] is True and event.details["mode"] == "dry-run"
    assert event.details["live_f1"] < event.details["previous_f1"] - 0.05

    assert ops.evaluate_auto_rollback(now=END).decision == AR.ALREADY
    assert len(_events(ops, "auto_rollback")) == 1 and ops.current().version == world.bad

    # A dry run is no rollback: switched on in the same episode, the rule acts.
    on = ModelOps(Settings.from_env({}, **{**_paths(ops), "auto_rollback": "on"}))
    try:
        assert on.evaluate_auto_rollback(now=END).decision == AR.ACTED
        assert on.current().version == world.good
    finally:
        on.dispose()


def test_a_hold_placed_by_a_person_stops_it(make, world: World) -> None:
    ops = make(auto_rollback="on")
    ops.place_hold(actor=ALICE, reason="investigating the new version myself")
    decision = ops.evaluate_auto_rollback(now=END)
    assert decision.decision == AR.HELD and "alice" in decision.message
    assert ops.current().version == world.bad and ops.hold().placed_by == "alice"
    assert _events(ops, "auto_rollback") == []
    # Released: the rule acts on the same figures.
    ops.release_hold(actor=ALICE, reason="done looking")
    assert ops.evaluate_auto_rollback(now=END).decision == AR.ACTED


def test_too_few_outcomes_does_nothing(make, world: World) -> None:
    ops = make(auto_rollback="on", auto_rollback_min_outcomes=10_000)
    decision = ops.evaluate_auto_rollback(now=END)
    assert decision.decision == AR.TOO_FEW and "needs 10,000" in decision.message
    # Days after the worse version went live, none of its predictions has an outcome yet.
    early = make(auto_rollback="on").evaluate_auto_rollback(now=BAD_FROM + dt.timedelta(days=3))
    assert early.decision == AR.TOO_FEW and early.message.startswith(f"v{world.bad} has 0 outcomes")
    assert ops.current().version == world.bad and _events(ops, "auto_rollback") == []


def test_within_the_margin_does_nothing(make, world: World) -> None:
    ops = make(auto_rollback="on", auto_rollback_margin=0.9)
    decision = ops.evaluate_auto_rollback(now=END)
    assert decision.decision == AR.WITHIN_MARGIN and decision.figures is not None
    assert ops.current().version == world.bad and _events(ops, "auto_rollback") == []


def test_off_does_nothing_and_records_nothing(make, world: World) -> None:
    ops = make()
    assert ops.settings.auto_rollback == "off"
    assert ops.evaluate_auto_rollback(now=END).decision == AR.OFF
    run = ops.score_fleet(actor=ALICE, as_of=END, days=1)
    assert run.auto_rollback is None and ops.current().version == world.bad and _events(ops, "auto_rollback") == []
    assert ops.auto_rollback_state() == AR.State("off", None)


def test_fleet_scoring_evaluates_it(make, world: World) -> None:
    ops = make(auto_rollback="on")
    run = ops.score_fleet(actor=ALICE, as_of=END, days=1)
    assert ops.current().version == world.good and run.to_dict()["auto_rollback"]["decision"] == AR.ACTED
    last = ops.auto_rollback_state().last
    assert last is not None and last["decision"] == AR.ACTED and last["previous_version"] == world.good


def test_the_previous_versions_logged_figures_on_the_same_days_are_used(make, world: World) -> None:
    """When the previous version scored the same device-days (in the shadow), its logged figures are used."""
    from core import prediction_log as P
    from core.fleet_scoring import _probabilities
    from core.samedata import load_failure_model, resolve

    ops = make(auto_rollback="dry-run")
    logged = P.read_frame(ops.db)
    mine = logged[logged["model_version"] == world.bad]
    model = load_failure_model(ops.registry, resolve(ops.registry, world.good))
    from core.features import FEATURE_COLUMNS, daily_features, load_telemetry

    telemetry = load_telemetry(ops.db, days_back=60, end=END)
    features = daily_features(telemetry.metrics_long)
    features = features.merge(mine[["device_id", "day"]].astype({"device_id": str}), on=["device_id", "day"])
    proba = _probabilities(model, features[list(FEATURE_COLUMNS)].to_numpy(dtype=float))
    rows = [
        P._row(d, day.to_pydatetime(), world.good, p, 0.0, role="shadow", source="batch", day=day.to_pydatetime())
        for d, day, p in zip(features["device_id"], features["day"], proba, strict=True)
    ]
    P.insert_rows(ops.db, rows)
    decision = ops.evaluate_auto_rollback(now=END)
    assert decision.decision == AR.WOULD_ACT and decision.figures.previous_source == "prediction log"
    assert decision.figures.previous_samples >= 200


def test_settings_are_checked_and_the_rule_is_no_person() -> None:
    for bad in ({"AUTO_ROLLBACK": "yes"}, {"AUTO_ROLLBACK_MARGIN": "1.5"}, {"AUTO_ROLLBACK_MIN_OUTCOMES": "5"}):
        with pytest.raises(InvalidInput, match=next(iter(bad))):
            Settings.from_env(bad)
    settings = Settings.from_env({"AUTO_ROLLBACK": "Dry-Run", "AUTO_ROLLBACK_MARGIN": "0.1"})
    assert (settings.auto_rollback, settings.auto_rollback_margin) == ("dry-run", 0.1)
    rule = rule_principal("auto-rollback")
    assert rule.name == "rule:auto-rollback" and rule.via == "rule" and rule.can("restore")
    assert not rule.can("manage holds") and is_rule(rule.name) and not is_rule("alice")


def _paths(ops: ModelOps) -> dict[str, object]:
    return {"database_url": ops.settings.database_url, "models_dir": ops.settings.models_dir}


def test_the_restore_it_makes_is_refused_when_the_live_version_changed_meanwhile(make, world: World) -> None:
    """The rule restores with expect_live: a live version somebody changed after the rule read it stands."""
    ops = make()
    with pytest.raises(Conflict, match=f"version {world.good} is no longer live"):
        ops.restore(world.good, actor=AR.RULE, reason="figures read earlier", expect_live=world.good)
    assert ops.current().version == world.bad and _events(ops, "restore") == []


def test_the_restore_it_makes_is_refused_when_a_person_placed_a_hold_meanwhile(make, world: World) -> None:
    """A person's hold placed after the rule decided is checked again under the registry lock: it stands."""
    ops = make()
    ops.place_hold(actor=ALICE, reason="looking at the new version")
    with pytest.raises(Conflict, match="held by alice"):
        ops.restore(
            world.good, actor=AR.RULE, reason="figures read earlier", expect_live=world.bad, yield_to_holds=True
        )
    assert ops.current().version == world.bad and ops.hold().placed_by == "alice"
    assert _events(ops, "restore") == []


def test_without_a_complete_backup_of_the_previous_version_there_is_nothing_to_roll_back_to(make, world: World) -> None:
    ops = make(auto_rollback="on")
    for chosen in [s for s in ops.backups() if s.version == world.good]:
        ops.delete_backup(chosen.timestamp, actor=ALICE, reason="disk full")
    decision = ops.evaluate_auto_rollback(now=END)
    assert decision.decision == AR.NOTHING_TO_ROLL_BACK_TO
    assert decision.message == f"no complete backup set holds v{world.good}, the version live before v{world.bad}"
    assert ops.current().version == world.bad and _events(ops, "auto_rollback") == []
