"""core/metrics.py through ModelOps.metrics(): the live model, runs by outcome, alerts, drift and realised figures."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from core.config import Settings
from core.db import Database
from core.history import History
from core.identity import local_principal
from core.modelops import ModelOps
from tests.api.conftest import promote_feature_model
from tests.conftest import fresh_postgres
from tests.drift_world import DriftWorld
from tests.metrics_world import build_metrics_world, labelled, parse, value


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DriftWorld:
    return build_metrics_world(tmp_path_factory.mktemp("metrics"))


@pytest.fixture
def ops_of(world: DriftWorld, tmp_path: Path):
    """ModelOps on a private copy of the world, with settings changed as asked; disposed afterwards."""
    made: list[ModelOps] = []

    def make(**changes: object) -> ModelOps:
        settings = dataclasses.replace(world.copy(tmp_path / f"copy{len(made)}"), **changes)
        made.append(ModelOps(settings))
        return made[-1]

    yield make
    for ops in made:
        ops.dispose()


def db_file(ops: ModelOps) -> str:
    return ops.settings.database_url.removeprefix("sqlite:///")


def test_a_scrape_parses_and_shows_the_live_version_and_its_holdout_metrics(ops_of):
    ops = ops_of()
    body, content_type = ops.metrics()
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = parse(body)
    live = ops.current()
    assert value(samples, "model_ops_database_up") == 1.0
    assert value(samples, "model_ops_live_model_info", model_version=live.version, data_source="database") == 1.0
    holdout = labelled(samples, "model_ops_holdout_metric")
    assert {dict(k)["metric"]: v for k, v in holdout.items()} == {
        k: v for k, v in live.performance.items() if isinstance(v, float)
    }
    assert value(samples, "process_cpu_seconds_total") is not None  # the server process itself


def test_training_runs_by_outcome_match_the_database_with_runs_written_by_another_connection(ops_of):
    ops = ops_of()
    ops.metrics()  # the collector exists before the runs below are written
    other = Database(ops.settings.database_url)  # as another process would: its own engine on the same file
    history = History(other)
    for status in ("rejected", "rejected", "failed", "skipped", "candidate"):
        history.finish_run(history.start_run(trigger="cron", actor="cron", params={}), status=status)
    history.start_run(trigger="api", actor="alice", params={})  # still running
    finished_now = time.time()
    other.dispose()
    samples = parse(ops.metrics()[0])
    with sqlite3.connect(db_file(ops)) as conn:
        expected = dict(conn.execute("SELECT status, COUNT(*) FROM training_runs GROUP BY status").fetchall())
    assert expected == {"promoted": 1, "rejected": 2, "failed": 1, "skipped": 1, "candidate": 1, "running": 1}
    for outcome in ("promoted", "rejected", "failed", "skipped", "candidate"):
        assert value(samples, "model_ops_training_runs_total", outcome=outcome) == expected[outcome], outcome
    assert value(samples, "model_ops_training_runs_running") == 1
    # The candidate run passed the gate: it is the newest successful training.
    assert value(samples, "model_ops_last_successful_training_timestamp_seconds") == pytest.approx(finished_now, abs=5)
    assert 0 <= value(samples, "model_ops_seconds_since_last_successful_training") < 60


def test_alerts_firing_count_the_engines_firing_episodes_by_level_and_kind(ops_of):
    ops = ops_of(retrain_interval_hours=0.0001)  # the model is past its retraining interval at once
    history = History(ops.db)
    history.finish_run(history.start_run(trigger="cron", actor="cron", params={}), status="rejected", error="f1 low")
    ops.evaluate_alerts()
    stale = next(a for a in ops.alerts().firing if a.kind == "model_stale")
    ops.acknowledge_alert(stale.id, actor=local_principal("alice"), reason="retraining tonight")
    alerts = ops.alerts().firing  # acknowledged: no longer firing
    assert "last_run_rejected" in {a.kind for a in alerts} and "model_stale" not in {a.kind for a in alerts}
    samples = parse(ops.metrics()[0])
    levels = Counter(a.level for a in alerts)
    for level in ("amber", "red"):
        assert value(samples, "model_ops_alerts_firing", level=level) == levels[level]
    by_kind = Counter((a.level, a.kind) for a in alerts)
    assert {
        tuple(sorted(dict(k).items())): v for k, v in labelled(samples, "model_ops_alerts_firing_by_kind").items()
    } == {(("kind", kind), ("level", level)): n for (level, kind), n in by_kind.items()}


def test_drift_and_realised_figures_come_from_the_background_and_never_hold_a_scrape(ops_of):
    ops = ops_of()
    release, calls = threading.Event(), []
    real_drift = ops.drift

    def slow_drift():
        calls.append(time.monotonic())
        release.wait(20)  # as long as a large fleet's drift takes
        return real_drift()

    ops.drift = slow_drift
    started = time.monotonic()
    samples = parse(ops.metrics()[0])
    assert time.monotonic() - started < 5, "the scrape waited for drift"
    assert not labelled(samples, "model_ops_drift_psi") and not labelled(samples, "model_ops_realised_metric")
    assert value(samples, "model_ops_holdout_metric", model_version="1.0.0", metric="f1_score") is not None
    release.set()
    assert ops.metrics_refresher.wait(60) is not None
    samples = parse(ops.metrics()[0])
    report = real_drift()
    psi = {dict(k)["metric"]: v for k, v in labelled(samples, "model_ops_drift_psi").items()}
    assert psi == pytest.approx({s.name: s.psi for s in report.metrics}, abs=1e-9) and len(psi) == 11
    significant = {dict(k)["metric"] for k, v in labelled(samples, "model_ops_drift_significant").items() if v == 1}
    assert significant == {s.name for s in report.metrics if s.band == "significant"} and significant
    assert value(samples, "model_ops_drift_score_psi", model_version="1.0.0") == pytest.approx(report.score.psi)
    realised = ops.realised_performance().version("1.0.0").total
    assert realised.enough
    for metric in ("precision", "recall", "f1_score", "roc_auc"):
        got = value(samples, "model_ops_realised_metric", model_version="1.0.0", metric=metric)
        assert got == pytest.approx(realised.get(metric)), metric
    assert value(samples, "model_ops_realised_outcomes", model_version="1.0.0") == realised.outcomes
    for _ in range(3):  # within METRICS_REFRESH_SECONDS nothing is recomputed
        ops.metrics()
    assert len(calls) == 1


def test_stale_figures_are_recomputed_after_the_refresh_interval(ops_of):
    ops = ops_of(metrics_refresh_seconds=1.0)
    ops.metrics()
    first = ops.metrics_refresher.wait(60)
    time.sleep(1.1)
    ops.metrics()  # answers with the old figures and starts a refresh
    second = ops.metrics_refresher.wait(60)
    assert second is not None and first is not None and second.computed_at > first.computed_at


def test_after_a_promotion_the_old_versions_drift_is_not_shown_as_the_live_models(ops_of):
    ops = ops_of()
    ops.metrics()
    assert ops.metrics_refresher.wait(60).live_version == "1.0.0"
    assert labelled(parse(ops.metrics()[0]), "model_ops_drift_psi")
    new = promote_feature_model(ops.registry, seed=5).version
    samples = parse(ops.metrics()[0])  # within the refresh interval, but for another version
    assert not labelled(samples, "model_ops_drift_psi") and not labelled(samples, "model_ops_realised_metric")
    assert ops.metrics_refresher.wait(60).live_version == new
    for labels in labelled(parse(ops.metrics()[0]), "model_ops_drift_psi"):
        assert dict(labels)["model_version"] == new


def test_without_a_database_the_scrape_still_answers_from_the_files(world: DriftWorld, tmp_path: Path):
    settings = world.copy(tmp_path / "copy")
    down = dataclasses.replace(
        settings, database_url="postgresql+psycopg://nobody@127.0.0.1:9/none", db_timeout_seconds=1
    )
    ops = ModelOps(down)
    try:
        samples = parse(ops.metrics()[0])
    finally:
        ops.dispose()
    assert value(samples, "model_ops_database_up") == 0.0
    assert value(samples, "model_ops_live_model_info", model_version="1.0.0", data_source="database") == 1.0
    assert value(samples, "model_ops_alerts_firing", level="red") >= 1  # database_unreachable
    assert not labelled(samples, "model_ops_training_runs_total")


def test_run_summary_counts_and_last_success_on_postgres(postgres_url: str):
    db = fresh_postgres(postgres_url)  # the session's database, emptied: other tests' runs do not count
    try:
        history = History(db)
        for status in ("promoted", "rejected", "candidate", "failed"):
            history.finish_run(history.start_run(trigger="t", actor="t", params={}), status=status)
        history.start_run(trigger="t", actor="t", params={})
        summary = history.run_summary()
    finally:
        db.dispose()
    assert summary.counts == {"promoted": 1, "rejected": 1, "candidate": 1, "failed": 1, "running": 1}
    assert summary.last_success_at is not None and summary.last_success_at.tzinfo is not None
    assert abs(summary.last_success_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_the_refresh_setting_is_validated():
    assert Settings.from_env({"METRICS_REFRESH_SECONDS": "60"}).metrics_refresh_seconds == 60
    with pytest.raises(Exception, match="METRICS_REFRESH_SECONDS"):
        Settings.from_env({"METRICS_REFRESH_SECONDS": "0"})
