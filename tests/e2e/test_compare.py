"""Compare: two chosen versions give the metric table and the grouped bar chart.

"Only differences" hides what is equal.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from core import constants as C
from core.registry import compare_versions
from dashboard.formatting import flat_pairs
from tests.e2e import harness as H

pytestmark = pytest.mark.e2e


def registry_snapshot(world: H.World) -> tuple:
    with world.registry() as registry:
        return registry.current().version, [(s.timestamp, s.version) for s in registry.backups()]


def detail_tables(page) -> list[dict]:
    """The "Training data" and "Training parameters" tables (both have a "differs" column), in page order."""
    frames = H.dataframe_with_column(page, "differs")
    return [H.dataframe_cells(frames.nth(i)) for i in range(frames.count())]


def test_compare_two_versions_table_chart_and_only_differences(shared_server: H.Server, page) -> None:
    unchanged = registry_snapshot(shared_server.world)
    with shared_server.world.registry() as registry:
        versions = [v.version for v in registry.versions()]
        a, b = versions[2], versions[3]  # two older versions, neither of them the page's default pair
        comparison = compare_versions(registry.get_version(a), registry.get_version(b))

    H.open_app(page, shared_server.base)
    H.open_page(page, "Compare")
    H.choose_option(page, "cmp_a", re.compile(rf"^v{re.escape(a)}\b"))
    H.choose_option(page, "cmp_b", re.compile(rf"^v{re.escape(b)}\b"))

    table = H.dataframe_with_column(page, "difference (A−B)")
    expect(table.locator("th")).to_contain_text(["metric", f"A · v{a}", f"B · v{b}"])
    cells = H.dataframe_cells(table)
    assert cells["header"][:3] == ["metric", f"A · v{a}", f"B · v{b}"]
    shown = {row[0]: row for row in cells["rows"]}
    assert list(shown) == list(C.PERFORMANCE_METRICS)
    for name in C.PERFORMANCE_METRICS:
        m = comparison.metrics[name]
        assert float(shown[name][1]) == pytest.approx(m.current) and float(shown[name][2]) == pytest.approx(m.previous)
        assert float(shown[name][3]) == pytest.approx(m.difference, abs=1e-6)
        assert shown[name][5] == {"better": "▲ better", "worse": "▼ worse", "same": "= same", "n/a": "– n/a"}[m.verdict]

    chart = page.locator(".st-key-cmp_bar")
    expect(chart.locator(".js-plotly-plot")).to_have_count(1)
    figure = H.plotly_figure(chart)
    bars = {t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in figure["data"] if t["type"] == "bar"}
    assert set(bars) == {f"A · v{a}", f"B · v{b}"}
    for name in C.PERFORMANCE_METRICS:
        assert bars[f"A · v{a}"][name] == pytest.approx(comparison.metrics[name].current)
        assert bars[f"B · v{b}"][name] == pytest.approx(comparison.metrics[name].previous)
    gate_lines = sorted(s["y0"] for s in figure["layout"]["shapes"] if s.get("type") == "line")
    assert gate_lines == sorted(C.DEFAULT_THRESHOLDS.values())

    # The grids redraw a moment after the script run ends: wait for the rows the registry predicts, then read them.
    details = H.dataframe_with_column(page, "differs")
    expect(details).to_have_count(2)
    # Mappings (date_range, split, ...) are spread over one row per key, so the part that differs is whole.
    data, parameters = flat_pairs(comparison.data), flat_pairs(comparison.parameters)
    expect(details.nth(0).locator("tbody tr")).to_have_count(len(data))
    expect(details.nth(1).locator("tbody tr")).to_have_count(len(parameters))
    everything = detail_tables(page)
    assert [sorted(r[0] for r in t["rows"]) for t in everything] == [sorted(data), sorted(parameters)]
    assert any(r[-1] != "≠" for t in everything for r in t["rows"]), "the fixture's versions should share some values"

    H.after_rerun(page, page.locator(".st-key-cmp_only_diff label").click)
    expect(page.locator(".st-key-cmp_only_diff input")).to_be_checked()
    differing_data = {k: v for k, v in flat_pairs(comparison.differing("data")).items() if v[0] != v[1]}
    differing_params = comparison.differing("parameters")
    assert differing_data and not differing_params  # same trained model, other metrics and dates
    expect(page.locator('[data-testid="stMain"]').get_by_text("No differences.", exact=True)).to_have_count(1)
    expect(details).to_have_count(1)
    expect(details.locator("tbody tr")).to_have_count(len(differing_data))
    only = detail_tables(page)
    assert [sorted(r[0] for r in t["rows"]) for t in only] == [sorted(differing_data)]
    assert all(r[-1] == "≠" for r in only[0]["rows"])

    assert registry_snapshot(shared_server.world) == unchanged  # looking changes nothing on disk
