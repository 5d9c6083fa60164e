"""Trends: one point per version in every metric panel, and a dashed threshold line for each gated metric."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from core import constants as C
from tests.e2e import harness as H

pytestmark = pytest.mark.e2e


def test_trends_points_per_version_and_threshold_lines(shared_server: H.Server, page) -> None:
    with shared_server.world.registry() as registry:
        versions = registry.versions()
        current = registry.current().version
    by_version = {v.version: v.performance for v in versions}

    H.open_app(page, shared_server.base)
    H.open_page(page, "Trends")
    expect(page.locator('[data-testid="stMain"]')).to_contain_text(
        f"{len(versions)} promotions · 0 rejected runs · 0 restores"
    )
    chart = page.locator(".st-key-trend_metrics_chart")
    figure = H.plotly_figure(chart)

    # One panel per metric (yaxis y, y2, ...); in each, the "promoted" markers are the versions.
    promoted = [t for t in figure["data"] if t["name"] == "promoted" and t["mode"] == "markers"]
    assert len(promoted) == len(C.PERFORMANCE_METRICS)
    for metric, trace in zip(
        C.PERFORMANCE_METRICS, sorted(promoted, key=lambda t: int(t["yaxis"][1:] or 1)), strict=True
    ):
        assert len(trace["x"]) == len(trace["y"]) == len(versions)
        assert sorted(trace["y"]) == pytest.approx(sorted(p[metric] for p in by_version.values()))

    thresholds = [s for s in figure["layout"]["shapes"] if s.get("type") == "line" and s.get("y0") == s.get("y1")]
    assert sorted(s["y0"] for s in thresholds) == sorted(C.DEFAULT_THRESHOLDS.values())
    assert all(s["line"]["dash"] == "dash" for s in thresholds)
    assert sorted(a for a in figure["layout"]["annotations"] if a.startswith("threshold")) == sorted(
        f"threshold {t:g}" for t in C.DEFAULT_THRESHOLDS.values()
    )

    # By version, the x axis is the versions themselves, oldest first.
    H.after_rerun(page, page.locator(".st-key-trend_axis").get_by_role("radio", name="version").click)
    page.wait_for_function(
        "() => document.querySelector('.st-key-trend_metrics_chart .js-plotly-plot')"
        "?._fullLayout?.xaxis?.type === 'category'"
    )
    figure = H.plotly_figure(chart)
    first_panel = next(t for t in figure["data"] if t["name"] == "promoted" and t["yaxis"] == "y")
    assert first_panel["x"] == [v.version for v in reversed(versions)]
    assert dict(zip(first_panel["x"], first_panel["y"], strict=True)) == pytest.approx(
        {v: p["accuracy"] for v, p in by_version.items()}
    )

    with shared_server.world.registry() as registry:
        assert registry.current().version == current and len(registry.versions()) == len(versions)
