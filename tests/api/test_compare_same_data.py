"""GET models/compare?same_data=true over HTTP, and the different-window notice on every compare."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from api.factory import create_api
from core.config import Settings
from tests.api.conftest import P, TestClient, error_of
from tests.samedata_world import World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("samedata_api"))


@pytest.fixture
def world_settings(world: World, tmp_path: Path) -> Settings:
    shutil.copy(world.root / "world.db", tmp_path / "world.db")
    shutil.copytree(world.root / "models", tmp_path / "models")
    return world.settings(tmp_path)


@pytest.fixture
def api(world_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_api(world_settings, predict_requires_key=False), base_url="http://localhost") as c:
        yield c


def test_compare_says_when_the_stored_figures_come_from_different_windows(api: TestClient, world: World) -> None:
    body = api.get(f"{P}/models/compare").json()
    assert (body["compared_version"], body["baseline_version"]) == (world.new, world.old)
    assert body["performance"]["changes"]["f1_score"]["improved"] is False  # the misleading verdict
    assert "different windows" in body["holdout_notice"] and "same_data" not in body


def test_same_data_scores_both_on_one_window_and_reverses_the_verdict(api: TestClient, world: World) -> None:
    body = api.get(f"{P}/models/compare", params={"same_data": "true"}).json()
    same = body["same_data"]
    assert same["a"]["version"] == world.new and same["b"]["version"] == world.old
    assert same["window"]["days"] == 14 and same["sample_count"] > 100 and same["cached"] is False
    assert same["changes"]["f1_score"]["difference"] >= 0
    assert same["a"]["metrics"]["f1_score"] - same["b"]["metrics"]["f1_score"] == pytest.approx(
        same["changes"]["f1_score"]["difference"], abs=1e-6
    )
    assert body["holdout_notice"] and body["performance"]["changes"]["f1_score"]["improved"] is False
    again = api.get(f"{P}/models/compare", params={"same_data": "true"}).json()["same_data"]
    assert again["cached"] is True and again["a"]["metrics"] == same["a"]["metrics"]

    chosen = api.get(
        f"{P}/models/compare",
        params={"a": world.old, "b": world.new, "window_start": "2026-04-01", "window_end": "2026-04-14"},
    ).json()["same_data"]
    assert chosen["window"] == {"start": "2026-04-01", "end": "2026-04-14", "days": 14, "horizon_days": 7}
    week = api.get(f"{P}/models/compare", params={"same_data": "true", "days": 7}).json()["same_data"]
    assert week["window"]["days"] == 7 and week["window"]["end"] == same["window"]["end"]


def test_the_same_artifact_scores_identically(api: TestClient, world: World) -> None:
    backups = api.get(f"{P}/models/backups").json()["backups"]
    ts = next(b["timestamp"] for b in backups if b["version"] == world.new)
    same = api.get(f"{P}/models/compare", params={"a": world.new, "b": ts, "same_data": "true"}).json()["same_data"]
    assert same["identical_artifact"] is True and same["a"]["metrics"] == same["b"]["metrics"]
    assert all(c["difference"] == 0 for c in same["changes"].values())


@pytest.mark.parametrize(
    ("params", "status", "code", "needle"),
    [
        ({"same_data": "true", "window_end": "2030-01-01"}, 422, "invalid_input", "too recent"),
        ({"same_data": "true", "window_start": "2026-05-02", "window_end": "2026-05-01"}, 422, "invalid_input", "swap"),
        ({"same_data": "true", "window_start": "not-a-date"}, 422, None, None),
        ({"same_data": "true", "window_start": "0001-01-01"}, 422, "invalid_input", "before any telemetry"),
        ({"same_data": "true", "window_end": "9999-12-31"}, 422, "invalid_input", "too recent"),
        ({"same_data": "true", "window_start": "2030-01-01"}, 422, "invalid_input", "pick an earlier start"),
        ({"same_data": "true", "a": "candidate:0123456789ab"}, 404, "not_found", "no candidate"),
        ({"same_data": "true", "days": "0"}, 422, None, None),
        ({"same_data": "true", "window_start": "2025-01-01", "window_end": "2025-01-03"}, 422, "data", "no labelled"),
        ({"same_data": "true", "a": "9.9.9"}, 404, "not_found", "9.9.9"),
    ],
)
def test_bad_windows_and_versions_get_clear_errors(api: TestClient, params, status, code, needle) -> None:
    answer = api.get(f"{P}/models/compare", params=params)
    detail = error_of(answer, status, code)
    if needle:
        assert needle in detail


def test_a_backup_missing_a_file_is_refused_by_name(api: TestClient, world: World, world_settings: Settings) -> None:
    backup = next(b for b in api.get(f"{P}/models/backups").json()["backups"] if b["version"] == world.old)
    (world_settings.models_dir / f"anomaly_detection_model.pkl.backup_{backup['timestamp']}").unlink()
    detail = error_of(api.get(f"{P}/models/compare", params={"same_data": "true"}), 409, "integrity")
    assert f"version {world.old} has no complete" in detail and "missing" in detail


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(
    a=st.none() | st.text(max_size=40),
    start=st.none() | st.dates().map(str) | st.text(max_size=12),
    end=st.none() | st.dates().map(str) | st.text(max_size=12),
    days=st.none() | st.integers(-10, 10_000).map(str) | st.text(max_size=6),
)
def test_random_same_data_queries_never_break_compare(api: TestClient, a, start, end, days) -> None:
    params = {
        k: v for k, v in {"a": a, "window_start": start, "window_end": end, "days": days}.items() if v is not None
    }
    answer = api.get(f"{P}/models/compare", params={"same_data": "true", **params})
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        body = answer.json()
        assert isinstance(body["detail"], str) and body["detail"] and isinstance(body["code"], str)
