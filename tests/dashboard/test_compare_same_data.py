"""Compare's same-data panel through AppTest, on two real versions trained on different windows."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.training import load_training_data, train_candidate
from dashboard import services as svc
from dashboard.pages import page_path
from tests.dashboard.env import dashboard_on
from tests.dashboard.test_pages import ROUTER, table, texts
from tests.samedata_world import DATA_END, World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("samedata_pages"))


@pytest.fixture(autouse=True)
def _env(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    shutil.copy(world.root / "world.db", tmp_path / "world.db")
    shutil.copytree(world.root / "models", tmp_path / "models")
    with dashboard_on(world.settings(tmp_path), monkeypatch):
        yield


def compare_page() -> AppTest:
    at = AppTest.from_file(ROUTER, default_timeout=60)
    at.switch_page(page_path("compare"))
    return at.run()


def score(at: AppTest) -> AppTest:
    at.button(key="cmp_same_data").click()
    return at.run()


def test_the_notice_then_the_same_window_reverses_the_verdict(world: World) -> None:
    at = compare_page()
    assert not at.exception, [e.value for e in at.exception]
    warned = "\n".join(str(w.value) for w in at.warning)
    assert "different windows" in warned and "score both on the same window" in warned
    assert table(at, "% change").set_index("metric").loc["f1_score", "A vs B"] == "▼ worse"
    at = score(at)
    assert not at.exception, [e.value for e in at.exception]
    window = svc.ops().same_data_window()
    assert f"**Window** {window.describe()}" in texts(at)
    same = table(at, f"A · v{world.new} (live)").set_index("metric")
    assert same.loc["f1_score", "A vs B"] in ("▲ better", "= same")
    assert same.loc["f1_score", "difference (A−B)"] >= 0


def test_a_candidate_can_be_scored_as_a(world: World) -> None:
    ops = svc.ops()
    features, _ = load_training_data(ops.db, days_back=20, end=DATA_END)
    weak = train_candidate(features, days_back=20)
    kept = ops.registry.keep_candidate(
        weak.failure_model, weak.anomaly_model, weak.metadata_fields(), actor="t", trigger="test", because="test"
    )
    at = compare_page()
    at.selectbox(key="cmp_sd_a").set_value(f"candidate:{kept.id}")
    at = score(at)
    assert not at.exception, [e.value for e in at.exception]
    figures = table(at, f"A · candidate {kept.id}")
    assert list(figures["metric"]) == ["accuracy", "precision", "recall", "f1_score", "roc_auc"]
