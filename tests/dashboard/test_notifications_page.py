"""The Notifications page through AppTest: targets without the secret, Send test for operators, the delivery log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.config import Settings
from core.modelops import reset_ops
from dashboard import services as svc
from tests.dashboard.test_pages import _dashboard_env, login, page, texts  # noqa: F401 (the autouse fixture)
from tests.factories import promote
from tests.webhook_receiver import Receiver, verify

SECRET = "page-test-secret-5be0"


@pytest.fixture
def receiver(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver() as r:
        monkeypatch.setenv("WEBHOOK_URLS", f"team-chat={r.url('/hooks/T0KEN-path')}")
        monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
        reset_ops()
        svc.reset()
        yield r


def everything(at) -> str:
    """All text and table cells the page shows."""
    return texts(at) + "".join(d.value.to_csv() for d in at.dataframe)


def test_send_test_reaches_the_receiver_and_the_log_shows_it_without_the_secret(receiver, registry) -> None:
    at = page("notifications")
    assert not at.exception, [e.value for e in at.exception]
    [targets] = [d.value for d in at.dataframe if "host" in d.value.columns]
    assert targets.to_dict("records") == [
        {"target": "team-chat", "host": f"127.0.0.1:{receiver.port}", "signed with": "shared secret"}
    ]
    assert "Nothing sent yet" in texts(at)

    at.button(key="nt_test").click().run()

    assert not at.exception, [e.value for e in at.exception]
    assert "team-chat: delivered" in "\n".join(s.value for s in at.success)
    assert len(receiver.requests) == 1 and verify(SECRET, receiver.requests[0].headers, receiver.requests[0].body)
    [log] = [d.value for d in at.dataframe if "attempts" in d.value.columns]
    row = log.to_dict("records")[0]
    assert (row["target"], row["status"], row["attempts"], row["HTTP"]) == ("team-chat", "delivered", 1, "200")
    assert row["event"].endswith("notification_test")
    promote(registry, seed=1)
    svc.ops().dispatch_notifications()
    again = page("notifications")
    shown = everything(again)
    assert "Model v1.0.0 promoted by tester" in shown
    assert SECRET not in shown + everything(at) and "T0KEN" not in shown


def test_a_viewer_sees_send_test_disabled_and_why(receiver, settings) -> None:
    token = login("vera", "viewer")
    at = page("notifications", token=token)
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="nt_test").disabled
    assert "may not send test notifications: that needs the operator role" in texts(at)
    assert receiver.requests == []


def test_without_a_webhook_the_page_says_how_to_configure_one(registry) -> None:
    at = page("notifications")
    assert not at.exception, [e.value for e in at.exception]
    assert "WEBHOOK_URLS" in texts(at)
    assert not [b for b in at.button if b.key == "nt_test"]
