"""Notifications against the real server: its dispatcher sends changes made through the API and by another process,
once each, signed; the Notifications page sends a test and shows the delivery log, never the secret."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.e2e import harness as H
from tests.webhook_receiver import Receiver, verify

pytestmark = pytest.mark.e2e

SECRET = "e2e-webhook-secret-3d81"
RECEIVER = Receiver()
REASON = "e2e: notify the team about this rollback"


def prepare_server(server: H.Server) -> None:
    """The receiver listens before the server starts; the server sends to it under the name team-chat."""
    RECEIVER.__enter__()
    server.extra_env.update(
        {"WEBHOOK_URLS": f"team-chat={RECEIVER.url('/hooks/T0KEN-path')}", "WEBHOOK_SECRET": SECRET}
    )


@pytest.fixture(scope="module", autouse=True)
def _receiver_stops() -> None:
    yield
    RECEIVER.__exit__()


def _wait_for(check, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, f"timed out; received {RECEIVER.kinds()}"
        time.sleep(0.1)


def _restore_over_the_api(server: H.Server, version: str) -> None:
    body = json.dumps({"version": version, "reason": REASON}).encode()
    request = urllib.request.Request(
        f"{server.base}/api/predictions/models/restore",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200


def test_changes_through_the_api_and_another_process_are_sent_once_each(server: H.Server) -> None:
    with server.world.registry() as registry:
        versions = [s.version for s in registry.backups()]
        live = registry.current().version
    older = next(v for v in versions if v != live)

    _restore_over_the_api(server, older)  # in the server's process: the dispatcher is woken at once
    _wait_for(lambda: RECEIVER.kinds().count("restore") == 1, timeout=10)
    H.manage_models(server.world, "restore", live, "--reason", REASON)  # another process: the next poll sends it
    _wait_for(lambda: RECEIVER.kinds().count("restore") == 2)
    time.sleep(5)  # two more passes of the dispatcher: nothing is sent again

    restores = [r for r in RECEIVER.requests if r.json["kind"] == "restore"]
    assert [r.json["to_version"] for r in restores] == [older, live]
    assert all(verify(SECRET, r.headers, r.body) for r in restores)
    assert all(r.path == "/hooks/T0KEN-path" for r in restores)
    assert RECEIVER.kinds() == ["restore", "restore"]  # history from before the server started is not replayed
    log = server.log_tail(200_000)
    assert f"-> team-chat (127.0.0.1:{RECEIVER.port}), attempt 1 of 8: delivered, HTTP 200" in log
    assert SECRET not in log and "T0KEN" not in log


def test_the_page_sends_a_test_and_shows_the_log_without_the_secret(server: H.Server, page) -> None:
    H.open_app(page, server.base)
    H.open_page(page, "Notifications")
    main = page.locator('[data-testid="stMain"]')
    targets = H.dataframe_with_column(page, "host")
    expect(targets).to_contain_text(f"127.0.0.1:{RECEIVER.port}")
    before = len(RECEIVER.requests)

    H.after_rerun(page, page.locator(".st-key-nt_test").get_by_role("button", name="Send test").click)

    expect(main).to_contain_text("Test notification sent. team-chat: delivered")
    assert len(RECEIVER.requests) == before + 1
    sent = RECEIVER.requests[-1]
    assert sent.json["kind"] == "notification_test" and verify(SECRET, sent.headers, sent.body)
    log = H.dataframe_with_column(page, "attempts")
    cells = H.dataframe_cells(log)
    rows = [dict(zip(cells["header"], row, strict=False)) for row in cells["rows"]]
    assert rows[0]["target"] == "team-chat" and rows[0]["status"] == "delivered"
    assert rows[0]["event"].endswith("notification_test")
    assert any("restore" in r["event"] for r in rows)
    html = page.content()
    assert SECRET not in html and "T0KEN" not in html
