"""The API under its /api mount: OpenAPI and docs paths, JSON for every error, and core errors mapped once."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount

from api.factory import create_api
from core.errors import HTTP_STATUS
from tests.api.conftest import REASON, P, TestClient, error_of

ENDPOINTS = {
    ("get", "/predictions/models/status"),
    ("get", "/predictions/models/version"),
    ("get", "/predictions/models/compare"),
    ("get", "/predictions/models/health"),
    ("get", "/predictions/models/versions"),
    ("get", "/predictions/models/backups"),
    ("get", "/predictions/models/events"),
    ("post", "/predictions/train"),
    ("get", "/predictions/train/{job_id}"),
    ("post", "/predictions/models/restore"),
    ("post", "/predictions/predict"),
    ("get", "/predictions/health"),
    ("get", "/predictions/models/hold"),
    ("post", "/predictions/models/hold"),
    ("post", "/predictions/models/hold/release"),
    ("get", "/predictions/models/candidates"),
    ("get", "/predictions/models/candidates/{candidate_id}"),
    ("post", "/predictions/models/candidates/{candidate_id}/approve"),
    ("post", "/predictions/models/candidates/{candidate_id}/discard"),
    ("get", "/predictions/models/drift"),
    ("get", "/predictions/models/performance"),
    ("get", "/predictions/notifications"),
    ("post", "/predictions/notifications/test"),
    ("get", "/predictions/alerts"),
    ("post", "/predictions/alerts/{alert_id}/acknowledge"),
    ("post", "/predictions/alerts/{alert_id}/silence"),
    ("get", "/metrics"),
    ("get", "/predictions/models/schedule"),
}


def test_openapi_and_docs_work_under_the_api_mount(settings):
    outer = Starlette(routes=[Mount("/api", app=create_api(settings))])
    with TestClient(outer, base_url="http://localhost") as client:
        spec = client.get("/api/openapi.json")
        assert spec.status_code == 200
        paths = spec.json()["paths"]
        assert {(m, p) for p, ops in paths.items() for m in ops} == ENDPOINTS
        docs = client.get("/api/docs")
        assert docs.status_code == 200 and "/api/openapi.json" in docs.text
        assert client.get("/api/predictions/models/status").json()["is_trained"] is False


def test_train_body_is_optional_in_the_schema(client):
    op = client.get("/openapi.json").json()["paths"]["/predictions/train"]["post"]
    assert op["requestBody"].get("required") in (None, False)


def test_unknown_paths_and_methods_are_json(client):
    error_of(client.get(f"{P}/nothing"), 404, "not_found")
    error_of(client.delete(f"{P}/models/status"), 405, "method_not_allowed")
    error_of(client.get(f"{P}/train"), 405)


def test_core_error_codes_map_to_statuses_once(client, two_versions):
    # not_found -> 404, invalid_input -> 422, conflict -> 409, each with {detail, code}.
    assert HTTP_STATUS["not_found"] == 404
    error_of(
        client.post(f"{P}/models/restore", json={"backup_timestamp": "20000101_000000", "reason": REASON}),
        HTTP_STATUS["not_found"],
        "not_found",
    )
    conflict = client.post(f"{P}/models/restore", json={"version": "1.0.1", "reason": REASON})
    error_of(conflict, HTTP_STATUS["conflict"], "conflict")
    # forbidden -> 403 (a role too low; see test_roles.py)
    assert HTTP_STATUS["forbidden"] == 403
    error_of(client.get(f"{P}/models/compare", params={"b": "x"}), HTTP_STATUS["invalid_input"], "invalid_input")
