"""The Alerts page through the real router (AppTest): open alerts with their state, acknowledge and silence dialogs,
disabled for a viewer with the reason shown; the Status page's count links to it."""

from __future__ import annotations

from core.registry import Registry
from dashboard import services as svc
from tests.dashboard.test_pages import _dashboard_env, confirm, login, page, texts  # noqa: F401
from tests.factories import promote

LOW = "metric_below_threshold:accuracy"


def _firing(registry: Registry) -> int:
    promote(registry, seed=1, accuracy=0.65)
    svc.ops().evaluate_alerts()
    return next(a.id for a in svc.ops().alerts().open if a.rule == LOW)


def test_acknowledge_then_silence_from_the_page(registry: Registry) -> None:
    alert_id = _firing(registry)
    at = page("alerts")
    assert not at.exception, [e.value for e in at.exception]
    assert LOW in texts(at) and "**1 firing**" in texts(at)
    at = confirm(at, f"al_ack_{alert_id}", "al_ack_form", "retraining tonight")
    assert not at.exception, [e.value for e in at.exception]
    assert f"Acknowledged alert {alert_id}" in "\n".join(str(s.value) for s in at.success)
    who = next(a for a in svc.ops().alerts().open if a.id == alert_id).acknowledged_by
    assert f"Acknowledged by **{who}**" in texts(at) and "“retraining tonight”" in texts(at)
    assert at.button(key=f"al_ack_{alert_id}").disabled  # acknowledged once per episode
    at = confirm(at, f"al_silence_{alert_id}", "al_silence_form", "maintenance")
    assert f"Silenced alert {alert_id}" in "\n".join(str(s.value) for s in at.success)
    record = next(a for a in svc.ops().alerts().open if a.id == alert_id)
    assert record.silence_reason == "maintenance" and record.silenced_by == who
    kinds = [e.kind for e in svc.ops().events(kinds=["alert_acknowledged", "alert_silenced"])]
    assert sorted(kinds) == ["alert_acknowledged", "alert_silenced"]


def test_a_reason_is_required(registry: Registry) -> None:
    alert_id = _firing(registry)
    at = confirm(page("alerts"), f"al_ack_{alert_id}", "al_ack_form", "")
    assert "give a reason" in "\n".join(str(e.value) for e in at.error)
    assert next(a for a in svc.ops().alerts().open if a.id == alert_id).acknowledged_at is None


def test_a_viewer_sees_the_buttons_disabled_and_why(registry: Registry) -> None:
    alert_id = _firing(registry)
    at = page("alerts", token=login("bob", "viewer"))
    assert at.button(key=f"al_ack_{alert_id}").disabled and at.button(key=f"al_silence_{alert_id}").disabled
    assert "Your role (viewer) may not acknowledge: that needs the operator role." in texts(at)


def test_status_counts_the_firing_alerts_and_links_to_the_page(registry: Registry) -> None:
    _firing(registry)
    at = page("status")
    links = [link for link in at.get("page_link") if "alerts" in str(link.proto.page)]
    assert links and links[0].proto.label.startswith("1 alert(s) firing")
