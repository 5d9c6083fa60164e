"""GET notifications (targets and delivery log) and POST notifications/test over the API, with a real receiver."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from api.factory import create_api
from core.config import Settings
from core.modelops import get_ops
from tests.api.conftest import REASON, P, TestClient, error_of, make_key
from tests.webhook_receiver import Receiver, verify

SECRET = "api-test-secret-91c4"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def hooked(settings: Settings, receiver: Receiver) -> Settings:
    return dataclasses.replace(
        settings, webhook_urls=(("ops-chat", receiver.url("/services/T0KEN-path")),), webhook_secret=SECRET
    )


@pytest.fixture
def hooked_client(hooked: Settings) -> Iterator[TestClient]:
    with TestClient(create_api(hooked, predict_requires_key=False), base_url="http://localhost") as c:
        yield c


def test_a_restore_is_delivered_once_and_the_log_shows_it_without_the_secret(
    hooked, hooked_client, receiver, two_versions
):
    ops = get_ops(hooked)
    ops.dispatch_notifications()  # the cursor starts after the two promotions already in History
    r = hooked_client.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON})
    assert r.status_code == 200, r.text
    ops.dispatch_notifications()
    ops.dispatch_notifications()

    body = hooked_client.get(f"{P}/notifications").json()

    assert receiver.kinds() == ["restore"] and verify(SECRET, receiver.requests[0].headers, receiver.requests[0].body)
    assert body["targets"] == [{"name": "ops-chat", "host": f"127.0.0.1:{receiver.port}", "signing": "shared secret"}]
    assert body["secret_set"] is True and "promote" in body["events"]
    assert body["count"] == 1
    delivery = body["deliveries"][0]
    assert (delivery["kind"], delivery["target"], delivery["status"], delivery["attempts"]) == (
        "restore",
        "ops-chat",
        "delivered",
        1,
    )
    assert delivery["summary"].startswith("Model v1.0.0 restored by")
    assert SECRET not in r.text + hooked_client.get(f"{P}/notifications").text
    assert "T0KEN" not in hooked_client.get(f"{P}/notifications").text


def test_send_test_needs_an_operator_and_json_then_reaches_the_receiver(hooked, hooked_client, receiver):
    viewer = make_key(hooked, "dash-reader", "viewer")
    operator = make_key(hooked, "chat-bot", "operator")
    assert "operator" in error_of(hooked_client.post(f"{P}/notifications/test", json={}, headers=viewer), 403)
    error_of(hooked_client.post(f"{P}/notifications/test", headers=operator), 415)
    assert receiver.requests == []

    r = hooked_client.post(f"{P}/notifications/test", json={}, headers=operator)

    assert r.status_code == 200, r.text
    assert r.json()["delivered"] == 1 and r.json()["actor"] == "chat-bot"
    assert r.json()["attempts"][0]["status"] == "delivered" and r.json()["attempts"][0]["http_status"] == 200
    sent = receiver.requests[0]
    assert verify(SECRET, sent.headers, sent.body) and sent.json["actor"] == "chat-bot"
    logged = hooked_client.get(f"{P}/notifications").json()["deliveries"]
    assert [(d["kind"], d["status"]) for d in logged] == [("notification_test", "delivered")]
    assert SECRET not in r.text


def test_send_test_without_webhooks_says_how_to_set_one(client):
    detail = error_of(client.post(f"{P}/notifications/test", json={}), 422, "invalid_input")
    assert "WEBHOOK_URLS" in detail
    body = client.get(f"{P}/notifications").json()
    assert (body["targets"], body["secret_set"], body["deliveries"]) == ([], False, [])
