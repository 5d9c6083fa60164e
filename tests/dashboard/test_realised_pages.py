"""Status, Trends and Candidates show realised performance from a real prediction log over a simulated fleet."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import prediction_log as P
from core.config import Settings
from core.identity import local_principal
from core.registry import Registry
from core.simulator import simulate_fleet
from core.training import load_training_data, train_candidate
from dashboard import services as svc
from dashboard.pages import page_path
from tests.dashboard.env import dashboard_on

ROUTER = str(Path(__file__).resolve().parents[2] / "dashboard" / "router.py")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _dashboard_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with dashboard_on(settings, monkeypatch):
        yield


def page(name: str) -> AppTest:
    at = AppTest.from_file(ROUTER, default_timeout=60)
    at.switch_page(page_path(name))
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    kinds = ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


@pytest.fixture
def scored(registry: Registry) -> str:
    """50 devices over 70 days up to now, a model trained on the first 40 days, a candidate kept beside it, and
    the last 30 days scored by both; returns the live version."""
    ops = svc.ops()
    simulate_fleet(ops.db, devices=50, days=70, seed=42, end=NOW)
    features, _ = load_training_data(ops.db, days_back=40, end=NOW - dt.timedelta(days=30))
    trained = train_candidate(features, seed=42)
    version = registry.promote(
        trained.failure_model, trained.anomaly_model, trained.metadata_fields(), actor="t", trigger="test"
    ).version
    registry.keep_candidate(
        trained.failure_model, trained.anomaly_model, trained.metadata_fields(), actor="t", trigger="t", because="held"
    )
    ops.score_fleet(actor=local_principal("cron"), days=30)
    return version


def test_status_shows_realised_beside_holdout_with_the_counts(scored: str) -> None:
    at = page("status")
    said = texts(at)
    assert "Realised performance (live version)" in said
    report = svc.ops().realised_performance()
    live = report.version(scored)
    assert live.total.enough and live.total.outcomes > 500
    assert f"{live.total.outcomes:,} device-days" in said and "Too few outcomes yet" not in said
    shown = next(d.value for d in at.dataframe if "realised" in d.value.columns)
    assert list(shown["metric"]) == ["F1", "Precision", "Recall", "AUC"]
    assert shown["realised"].iat[0] == f"{live.total.f1_score:.3f}"


def test_trends_charts_realised_per_week_beside_holdout(scored: str) -> None:
    at = page("trends")
    assert "Realised beside holdout" in texts(at)
    charts = [c for c in at.get("plotly_chart") if "trend_realised_chart" in str(c.proto.id)]
    assert charts, "the realised chart is drawn"
    spec = charts[0].proto.spec
    assert f"{scored} realised" in spec and f"{scored} holdout" in spec and "(shadow) realised" in spec


def test_candidates_show_shadow_figures_beside_the_live_version(scored: str) -> None:
    at = page("candidates")
    shown = next(d.value for d in at.dataframe if "shadow f1" in d.value.columns)
    (shadow,) = svc.ops().shadow_performance()
    assert shown["shadow outcomes"].iat[0] == shadow.shared_outcomes > 300
    # The candidate holds the live model: on the same days its realised F1 is the live version's.
    assert shown["shadow f1"].iat[0] == shown["live f1 (same days)"].iat[0] == shadow.live.f1_score
    assert "scores each candidate beside the live version" in texts(at)


def test_too_few_outcomes_and_no_predictions_are_said(registry: Registry) -> None:
    from tests.factories import metadata_fields, tiny_models

    failure, anomaly = tiny_models(0)
    version = registry.promote(failure, anomaly, metadata_fields(), actor="t", trigger="test").version
    assert "No prediction of v" in texts(page("status"))
    P.insert_rows(svc.ops().db, [P._row(f"d{i}", NOW - dt.timedelta(days=20), version, 0.2, 1.0) for i in range(5)])
    svc.reset()
    said = texts(page("status"))
    assert "Too few outcomes yet" in said and "5 device-days" in said
