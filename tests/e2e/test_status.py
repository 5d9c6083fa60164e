"""Status: the current version, each gated metric against its threshold, and an alert once a metric falls below it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from core import constants as C
from tests.e2e import harness as H

pytestmark = pytest.mark.e2e


def metric_column(page, name: str):
    """The Key metrics column of one metric (its st.metric and the pass/fail caption under it)."""
    metric = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(name, exact=True))
    return metric.locator("xpath=ancestor::div[@data-testid='stColumn'][1]")


def test_status_shows_current_version_and_alerts_below_threshold(server: H.Server, page) -> None:
    thresholds = C.DEFAULT_THRESHOLDS  # the suite's server runs on the default gate
    with server.world.registry() as registry:
        current = registry.current()
    assert all(current.performance[m] > t for m, t in thresholds.items()), (
        "the template's current model should pass every threshold"
    )

    H.open_app(page, server.base)
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_role("heading", name=f"Version {current.version}")).to_be_visible()
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(f"v{current.version}")
    for name, limit in thresholds.items():
        column = metric_column(page, name)
        value = current.performance[name]
        expect(column.locator('[data-testid="stMetricValue"]')).to_have_text(f"{value:.3f}")
        expect(column.locator('[data-testid="stMetricDelta"]')).to_contain_text(f"{value - limit:+.3f} vs {limit:g}")
        expect(column).to_contain_text("pass")
    expect(main).to_contain_text("No alerts: metrics above thresholds")
    expect(main).not_to_contain_text("not above its threshold")

    # Arrange a version whose recall and f1 are below the gate, as a promotion from outside the browser would.
    with server.world.registry() as registry:
        weak = H.promote_copy(registry, metrics={"recall": 0.42, "f1_score": 0.55}, actor="e2e-status")
    page.reload()
    H.wait_idle(page)

    expect(main.get_by_role("heading", name=f"Version {weak}")).to_be_visible()
    alerts = page.locator('[data-testid="stMain"] [data-testid="stAlert"]')
    expect(alerts.filter(has_text="recall is 0.420, not above its threshold 0.5.")).to_have_count(1)
    expect(alerts.filter(has_text="f1_score is 0.550, not above its threshold 0.6.")).to_have_count(1)
    expect(alerts.filter(has_text="precision is")).to_have_count(0)
    expect(metric_column(page, "recall")).to_contain_text("fail: needs > 0.5")
    expect(metric_column(page, "recall").locator('[data-testid="stMetricDelta"]')).to_contain_text("-0.080 vs 0.5")
    expect(metric_column(page, "f1_score")).to_contain_text("fail: needs > 0.6")
    expect(metric_column(page, "precision")).to_contain_text("pass")
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("Action needed")

    with server.world.registry() as registry:
        now = registry.current()
        assert now.version == weak and now.version != current.version
        assert now.performance["recall"] == pytest.approx(0.42) and now.performance["recall"] <= thresholds["recall"]
        assert (
            now.performance["f1_score"] == pytest.approx(0.55) and now.performance["f1_score"] <= thresholds["f1_score"]
        )
        assert now.metadata["previous_version"] == current.version
        assert [b.version for b in registry.backups()[:2]] == [now.version, current.version]
