"""The Drift page through AppTest on a drifted fleet: ranked tables, the chosen distribution, the cached report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import constants as C
from core.modelops import get_ops
from dashboard.pages import page_path
from tests.dashboard.env import dashboard_on
from tests.drift_world import SHIFTED, DriftWorld, build_drift_world

ROUTER = str(Path(__file__).resolve().parents[2] / "dashboard" / "router.py")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DriftWorld:
    return build_drift_world(tmp_path_factory.mktemp("drift_page"))


@pytest.fixture
def drift_env(world: DriftWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with dashboard_on(world.copy(tmp_path / "copy"), monkeypatch) as settings:
        yield settings


def drift_page() -> AppTest:
    at = AppTest.from_file(ROUTER, default_timeout=60)
    at.switch_page(page_path("drift"))
    return at.run()


def test_the_page_ranks_the_shifted_metrics_and_draws_the_chosen_distribution(drift_env):
    at = drift_page()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Drift"
    metrics = next(d.value for d in at.dataframe if len(d.value) == len(C.METRIC_NAMES))
    assert set(metrics["name"][:5]) == SHIFTED and set(metrics["band"][:5]) == {"significant"}
    assert at.metric[0].value == "5 of 11"
    assert at.selectbox(key="drift_variable").value == metrics["name"][0]
    assert at.multiselect(key="drift_over_time_metrics").value == list(metrics["name"][:5])
    at.selectbox(key="drift_variable").select("humidity").run()
    assert not at.exception
    assert at.selectbox(key="drift_variable").value == "humidity"


def test_a_rerun_reuses_the_report_until_the_window_changes(drift_env):
    at = drift_page()
    first = get_ops().drift(C.DEFAULT_DRIFT_WINDOW_DAYS)
    at.run()
    assert get_ops().drift(C.DEFAULT_DRIFT_WINDOW_DAYS) is first
    at.number_input(key="drift_window").set_value(3).run()
    assert not at.exception
    assert "compared with the last 3 days" in at.caption[0].value


def test_no_recent_telemetry_is_a_message_not_a_crash(drift_env):
    import sqlite3

    db = sqlite3.connect(drift_env.database_url.removeprefix("sqlite:///"))
    cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(days=9)).strftime("%Y-%m-%d")
    db.execute("DELETE FROM device_health_metrics WHERE timestamp >= ?", (cutoff,))
    db.commit()
    db.close()
    at = drift_page()
    assert not at.exception, [e.value for e in at.exception]
    assert any("no telemetry in the last 7 days" in w.value for w in at.warning)
