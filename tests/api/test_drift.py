"""GET /api/predictions/models/drift over real HTTP on a drifted fleet: the same report as the application layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.factory import create_api
from core import drift as D
from core import serialize as S
from core.modelops import get_ops
from tests.api.conftest import P, TestClient, error_of
from tests.drift_world import SHIFTED, UNSHIFTED, DriftWorld, build_drift_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DriftWorld:
    return build_drift_world(tmp_path_factory.mktemp("drift_api"))


@pytest.fixture
def drift_client(world: DriftWorld, tmp_path: Path):
    settings = world.copy(tmp_path / "copy")
    with TestClient(create_api(settings, predict_requires_key=False), base_url="http://localhost") as c:
        c.settings = settings
        yield c


def test_drift_ranks_the_shifted_metrics_and_agrees_with_the_application_layer(drift_client):
    response = drift_client.get(f"{P}/models/drift")
    assert response.status_code == 200, response.text
    body = response.json()
    bands = {m["name"]: m["band"] for m in body["metrics"]}
    assert {name for name, band in bands.items() if band == "significant"} == SHIFTED
    assert all(bands[name] == "stable" for name in UNSHIFTED)
    assert {m["name"] for m in body["metrics"][:5]} == SHIFTED
    assert body["window_days"] == 7 and body["summary"]["metrics"]["significant"] == 5
    assert body["score"]["kind"] == "score" and len(body["features"]) == len(D.FEATURE_COLUMNS)
    assert body["thresholds"] == {
        "psi_moderate": 0.1,
        "psi_significant": 0.25,
        "ks_alpha": 0.01,
        "ks_min_statistic": 0.1,
    }
    assert "histograms" not in body
    report = get_ops(drift_client.settings).drift()  # the API's own (cached) report
    assert body == S.drift_dict(report)


def test_window_and_histograms_are_query_parameters(drift_client):
    body = drift_client.get(f"{P}/models/drift", params={"window_days": 3, "histograms": "true"}).json()
    assert body["window_days"] == 3
    h = body["histograms"]["temperature"]
    assert len(h["edges"]) == D.HIST_BINS + 1 and len(h["reference"]) == len(h["current"]) == D.HIST_BINS


@pytest.mark.parametrize("value", ["0", "91", "seven", "2.5", ""])
def test_a_bad_window_is_422_and_says_what_is_allowed(drift_client, value):
    detail = error_of(drift_client.get(f"{P}/models/drift", params={"window_days": value}), 422)
    assert "window_days" in detail


def test_no_model_is_404(client):
    detail = error_of(client.get(f"{P}/models/drift"), 404, "not_found")
    assert "no model has been trained yet" in detail
