"""Realised performance on a simulated fleet whose firmware changes on a known date: scored daily, joined with the
failures that happened, per version and week; shadow candidates beside the live version on the same days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import prediction_log as P
from core.config import Settings
from core.db import Database
from core.errors import Forbidden, InvalidInput
from core.features import build_features, daily_features, load_telemetry
from core.fleet_scoring import shadow_version
from core.identity import Principal, local_principal
from core.modelops import ModelOps
from core.realised import MIN_OUTCOMES, VersionFigures, figures, horizon_labels, load_failures
from core.simulator import simulate_fleet
from core.training import load_training_data, train_candidate
from tests.core.conftest import FIXED_END

DRIFT_FROM = dt.date(2025, 12, 1)  # the new firmware rolls out over the 3 days from here
DRIFT_DONE = DRIFT_FROM + dt.timedelta(days=3)
TRAINED_UNTIL = dt.datetime(2025, 10, 28, tzinfo=dt.UTC)
FIRST_SCORED = TRAINED_UNTIL.date()
ACTOR = local_principal("tester")


@dataclass(frozen=True)
class World:
    ops: ModelOps
    version: str
    holdout_f1: float


def _ops(root: Path) -> ModelOps:
    (root / "models").mkdir(exist_ok=True)
    settings = Settings.from_env({}, database_url=f"sqlite:///{root / 'fleet.db'}", models_dir=root / "models")
    return ModelOps(settings)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """150 devices over 120 days with a firmware change on DRIFT_FROM; a model trained on the 40 days before
    TRAINED_UNTIL is live; every day since is scored as the daily job would have."""
    ops = _ops(tmp_path_factory.mktemp("drift"))
    assert ops.db is not None
    simulate_fleet(ops.db, devices=150, days=120, seed=42, drift_from=DRIFT_FROM, end=FIXED_END)
    features, _ = load_training_data(ops.db, days_back=40, end=TRAINED_UNTIL)
    trained = train_candidate(features, seed=42)
    live = ops.registry.promote(
        trained.failure_model, trained.anomaly_model, trained.metadata_fields(), actor="tester", trigger="test"
    )
    run = ops.score_fleet(actor=ACTOR, as_of=FIXED_END, start=FIRST_SCORED, end=FIXED_END.date())
    assert run.models[0].model_version == live.version and run.device_days > 10_000
    yield World(ops, live.version, float(trained.metrics["f1_score"]))
    ops.dispose()


def test_realised_f1_falls_after_the_firmware_change_while_the_holdout_f1_does_not(world: World) -> None:
    ops = world.ops
    before = ops.realised_performance(as_of=FIXED_END, until=DRIFT_FROM - dt.timedelta(days=1)).version(world.version)
    after = ops.realised_performance(as_of=FIXED_END, since=DRIFT_DONE).version(world.version)
    assert before is not None and after is not None
    assert before.total.enough and after.total.enough, (before.total, after.total)
    # The holdout F1 is the version's own, fixed when it was trained: the drift cannot move it.
    assert before.holdout["f1_score"] == pytest.approx(world.holdout_f1)
    assert after.total.f1_score < before.total.f1_score - 0.05, (before.total, after.total)
    assert after.total.f1_score < world.holdout_f1 - 0.1, (world.holdout_f1, after.total)
    # Weekly: every full week after the roll-out scores below the weeks before it.
    weeks_before = [w.realised.f1_score for w in before.weeks if w.realised.enough]
    weeks_after = [w.realised.f1_score for w in after.weeks if w.realised.enough and w.week >= DRIFT_DONE]
    assert weeks_before and weeks_after
    assert np.mean(weeks_after) < np.mean(weeks_before) - 0.05


def test_counts_behind_each_figure_and_outcomes_only_after_the_horizon(world: World) -> None:
    report = world.ops.realised_performance(as_of=FIXED_END)
    live = report.version(world.version)
    assert report.live_version == world.version and live is not None and live.role == "live"
    # The last 7 days (and the day being scored) cannot have an outcome yet.
    last_known = (FIXED_END - dt.timedelta(days=report.horizon_days + 1)).date()
    assert all(w.week <= last_known for w in live.weeks)
    assert live.awaiting > 0
    assert live.total.outcomes == sum(w.realised.outcomes for w in live.weeks)
    assert live.total.positives == sum(w.realised.positives for w in live.weeks)
    assert live.predictions == live.total.outcomes + live.awaiting + _same_day_failures(world, live)
    body = report.to_dict()
    assert body["versions"][0]["weeks"][0]["outcomes"] >= MIN_OUTCOMES
    assert body["min_outcomes"] == MIN_OUTCOMES


def _same_day_failures(world: World, live: VersionFigures) -> int:
    """Scored device-days past the horizon on which the device failed (training drops them: no outcome)."""
    frame = P.read_frame(world.ops.db)
    frame = frame[(frame["model_version"] == live.model_version) & (frame["day"] + pd.Timedelta(days=8) <= FIXED_END)]
    failed = load_failures(world.ops.db, until=FIXED_END)
    failed = failed.assign(day=failed["failed_at"].dt.floor("D"))[["device_id", "day"]].drop_duplicates()
    return len(frame.merge(failed, on=["device_id", "day"]))


def test_as_of_a_day_just_scored_there_is_no_outcome_yet(world: World) -> None:
    # As of the end of the first scored day, its horizon lies entirely in the future.
    as_of = dt.datetime.combine(FIRST_SCORED, dt.time(23, 59), tzinfo=dt.UTC)
    live = world.ops.realised_performance(as_of=as_of).version(world.version)
    assert live is not None
    assert live.total.outcomes == 0 and live.awaiting == live.predictions > 0
    assert live.total.f1_score is None and "no outcomes yet" in (live.total.note or "")


def test_labels_follow_the_training_definition(world: World) -> None:
    """Every device-day with all 11 metrics gets, from horizon_labels, the label build_features trains on; the
    days build_features drops because the device failed that day are exactly those marked unusable."""
    telemetry = load_telemetry(world.ops.db, days_back=60, end=FIXED_END)
    trained = build_features(telemetry.metrics_long, telemetry.failures)
    every = daily_features(telemetry.metrics_long)
    label, usable = horizon_labels(every["device_id"], every["day"], telemetry.failures, trained.horizon_days)
    every = every.assign(label=label.astype(int), usable=usable)
    kept = pd.DataFrame({"device_id": trained.device_id, "day": trained.day, "y": trained.y})
    joined = every.merge(kept, on=["device_id", "day"], how="left")
    assert joined["y"].notna().sum() == len(kept) and kept["y"].sum() > 100
    both = joined[joined["y"].notna()]
    np.testing.assert_array_equal(both["label"].to_numpy(), both["y"].to_numpy().astype(int))
    horizon_known = (
        joined["day"] + pd.Timedelta(days=trained.horizon_days + 1) <= telemetry.metrics_long["timestamp"].max()
    )
    dropped = joined[joined["y"].isna() & horizon_known]
    assert len(dropped) > 0 and not dropped["usable"].any()  # dropped by training only for failing that day
    assert joined.loc[joined["y"].notna(), "usable"].all()


def test_too_few_outcomes_and_auc_with_one_class_are_said() -> None:
    few = figures(np.array([0, 1, 0, 0]), np.array([0.1, 0.8, 0.2, 0.4]), np.array([0, 1, 0, 0]))
    assert not few.enough and few.note.startswith("too few outcomes yet (4 outcomes, 1 failures")
    none_failed = figures(np.zeros(50, dtype=int), np.linspace(0, 0.4, 50), np.zeros(50, dtype=int))
    assert none_failed.roc_auc is None and none_failed.recall is None
    assert "AUC are undefined" in (none_failed.note or "")
    enough = figures(np.array([0, 1] * 20), np.array([0.2, 0.9] * 20), np.array([0, 1] * 20))
    assert enough.enough and enough.f1_score == 1.0 and enough.roc_auc == 1.0 and enough.note is None


def test_scoring_a_day_again_replaces_its_rows(world: World) -> None:
    db = world.ops.db
    before = P.count(db)
    day = FIXED_END.date() - dt.timedelta(days=3)
    run = world.ops.score_fleet(actor=ACTOR, as_of=FIXED_END, start=day, end=day, shadow=False)
    assert run.device_days > 100 and P.count(db) == before


def test_bad_ranges_and_a_viewer_are_refused_with_what_to_do(world: World) -> None:
    viewer = Principal("viewer-1", "viewer", "account")
    with pytest.raises(InvalidInput, match="has not happened yet"):
        world.ops.score_fleet(actor=ACTOR, as_of=FIXED_END, end=FIXED_END.date() + dt.timedelta(days=1))
    with pytest.raises(InvalidInput, match="either --days or --from/--to"):
        world.ops.score_fleet(actor=ACTOR, as_of=FIXED_END, days=3, start=FIRST_SCORED)
    with pytest.raises(InvalidInput, match="is after"):
        world.ops.realised_performance(since=DRIFT_DONE, until=DRIFT_FROM)
    with pytest.raises(Forbidden):
        world.ops.score_fleet(actor=viewer, as_of=FIXED_END, days=1)


def test_retention_prunes_old_predictions(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'log.db'}")
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    rows = [P._row("d1", now - dt.timedelta(days=age), "1.0.0", 0.7, 1.0) for age in (1, 10, 200, 400)]
    P.insert_rows(db, rows)
    assert P.prune(db, 180, now=now) == 2
    frame = P.read_frame(db, full=True)
    assert sorted((now - frame["predicted_at"]).dt.days.tolist()) == [1, 10]
    db.dispose()


def test_a_candidate_is_scored_in_the_shadow_beside_the_live_version_on_the_same_days(world: World) -> None:
    ops = world.ops
    features, _ = load_training_data(ops.db, days_back=40, end=TRAINED_UNTIL + dt.timedelta(days=20))
    trained = train_candidate(features, seed=7)
    kept = ops.registry.keep_candidate(
        trained.failure_model, trained.anomaly_model, trained.metadata_fields(), actor="t", trigger="t", because="held"
    )
    first, last = DRIFT_DONE, DRIFT_DONE + dt.timedelta(days=20)
    run = ops.score_fleet(actor=ACTOR, as_of=FIXED_END, start=first, end=last)
    assert [m.role for m in run.models] == ["live", "shadow"] and run.models[1].candidate_id == kept.id
    assert run.models[0].rows == run.models[1].rows  # the same device-days, never served

    (shadow,) = ops.shadow_performance(as_of=FIXED_END)
    assert shadow.candidate_id == kept.id and shadow.live_version == world.version
    assert shadow.shared_outcomes == shadow.candidate.outcomes == shadow.live.outcomes > MIN_OUTCOMES
    # The live figures beside it are the live version's own realised figures over exactly those days.
    live_then = ops.realised_performance(as_of=FIXED_END, since=first, until=last).version(world.version)
    assert live_then.total.outcomes == shadow.live.outcomes
    assert live_then.total.f1_score == shadow.live.f1_score
    listed = ops.realised_performance(as_of=FIXED_END).version(shadow_version(kept.id))
    assert listed is not None and listed.role == "shadow" and listed.holdout == {}

    # A candidate file replaced on disk is never unpickled: the candidate is skipped, saying why.
    planted = kept.files["failure_prediction_model.pkl"]
    planted.write_bytes(planted.read_bytes() + b"\0")
    before = P.count(ops.db)
    run = ops.score_fleet(actor=ACTOR, as_of=FIXED_END, start=last, end=last)
    assert [m.role for m in run.models] == ["live"]
    assert run.skipped and "does not match" in run.skipped[0], run.skipped
    assert P.count(ops.db) == before  # the live rows of that day replaced, the earlier shadow rows kept
    ops.discard_candidate(kept.id, actor=local_principal("admin"), reason="test done")


def test_realised_figures_agree_with_scikit_learn() -> None:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.15).astype(int)
    proba = np.clip(0.4 * y + rng.random(500) * 0.7, 0, 1)
    decided = (proba > 0.5).astype(int)
    got = figures(y, proba, decided)
    assert got.precision == pytest.approx(precision_score(y, decided))
    assert got.recall == pytest.approx(recall_score(y, decided))
    assert got.f1_score == pytest.approx(f1_score(y, decided))
    assert got.roc_auc == pytest.approx(roc_auc_score(y, proba))
    assert (got.outcomes, got.positives, got.predicted_positive) == (500, int(y.sum()), int(decided.sum()))
