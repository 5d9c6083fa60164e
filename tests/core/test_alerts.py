"""Status alerts and the health light: thresholds, age, integrity, failed runs, hand-made changes."""

from __future__ import annotations

import datetime as dt

from core.alerts import model_alerts, overall_level
from core.config import Settings
from core.domain import EventRecord, Health, ModelVersion, RunRecord

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
SETTINGS = Settings.from_env({})


def model(days_old: float = 1, **perf: float) -> ModelVersion:
    metrics = {"accuracy": 0.8, "precision": 0.7, "recall": 0.7, "f1_score": 0.7, "roc_auc": 0.9, **perf}
    trained = NOW - dt.timedelta(days=days_old)
    return ModelVersion.from_metadata(
        {
            "version": "1.0.2",
            "training_date": trained.isoformat(),
            "model_performance": metrics,
            "data_source": "database",
        },
        location="current",
    )


def healthy() -> Health:
    return Health(True, "1.0.2", (), (), NOW)


def test_a_fresh_model_above_thresholds_is_green():
    alerts = model_alerts(model(), healthy(), SETTINGS, now=NOW)
    assert alerts == [] and overall_level(alerts) == "green"


def test_metric_at_or_below_threshold_is_red_and_an_old_model_amber():
    alerts = model_alerts(model(days_old=10, recall=0.5), healthy(), SETTINGS, now=NOW)
    assert [(a.level, a.kind) for a in alerts] == [("red", "metric_below_threshold"), ("amber", "model_stale")]
    assert "recall is 0.500" in alerts[0].message and overall_level(alerts) == "red"


def test_integrity_failed_run_after_the_model_and_external_change():
    broken = Health(False, "1.0.2", (), ("failure_prediction_model.pkl does not match model_metadata.json",), NOW)
    run = RunRecord(
        "r", "failed", "cron", "bot", None, "done", 1.0, {}, None, None, None, (), 1.0, "too little data", NOW, NOW
    )
    older = RunRecord(
        "o",
        "rejected",
        "cron",
        "bot",
        None,
        "done",
        1.0,
        {},
        None,
        {"reason": "x"},
        None,
        (),
        1.0,
        None,
        NOW - dt.timedelta(days=5),
        NOW,
    )
    hand = EventRecord(1, "external_change", "external", NOW, "1.0.2", "1.0.1", None, {})
    kinds = [a.kind for a in model_alerts(model(), broken, SETTINGS, last_run=run, last_live_event=hand, now=NOW)]
    assert kinds == ["integrity", "last_run_failed", "external_change"]
    assert model_alerts(model(), healthy(), SETTINGS, last_run=older, now=NOW) == []


def test_no_model_is_red():
    assert overall_level(model_alerts(None, None, SETTINGS, now=NOW)) == "red"
