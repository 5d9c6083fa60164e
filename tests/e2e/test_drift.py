"""Drift: on a fleet whose firmware changed 9 days ago, the table ranks a shifted metric on top, choosing another
variable redraws the distribution plot, and the PSI-per-day chart has a line per metric and the band lines."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from core import constants as C
from core.db import Database
from core.simulator import delete_simulated, simulate_fleet
from tests.e2e import harness as H

pytestmark = pytest.mark.e2e

# What the simulator's firmware update shifts (core/simulator.py).
SHIFTED = {"response_time", "error_rate", "temperature", "data_transfer_rate", "connection_drops"}
DRIFT_DAYS_AGO = 9


def prepare_server(server: H.Server) -> None:
    """The same fleet (same seed, so the same readings before the update), now with the firmware update 9 days ago.

    The live model was trained on the template's data, whose training window ends 8 days before the fleet's end.
    """
    midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    db = Database(server.world.database_url)
    try:
        delete_simulated(db)
        drift_from = (midnight - dt.timedelta(days=DRIFT_DAYS_AGO)).date()
        simulate_fleet(db, **H.FLEET, end=midnight, drift_from=drift_from)
    finally:
        db.dispose()


def figure_of(chart: Any) -> dict[str, Any]:
    """The drawn plotly figure: its title, axis titles, traces (name, x, y) and horizontal lines."""
    return chart.locator(".js-plotly-plot").evaluate(
        "el => ({title: el._fullLayout.title.text, x: el._fullLayout.xaxis.title.text,"
        " y: el._fullLayout.yaxis.title.text,"
        " traces: el._fullData.map(t => ({name: t.name, type: t.type, x: Array.from(t.x || []),"
        " y: Array.from(t.y || [])})),"
        " lines: (el.layout.shapes || []).filter(s => s.y0 === s.y1).map(s => s.y0)})"
    )


def test_drift_page_ranks_a_shifted_metric_on_top_and_redraws_the_chosen_distribution(server: H.Server, page) -> None:
    H.open_app(page, server.base)
    H.open_page(page, "Drift")
    main = page.locator('[data-testid="stMain"]')
    expect(main).to_contain_text("compared with the last 7 days")

    table = page.locator(".st-key-drift_metrics_table")
    table.locator("td").first.wait_for(state="attached")
    cells = H.dataframe_cells(table)
    assert cells["header"][:3] == ["name", "PSI", "band"]
    rows = cells["rows"]
    assert len(rows) == len(C.METRIC_NAMES)
    assert rows[0][0] in SHIFTED and rows[0][2] == "significant", rows[0]
    assert {r[0] for r in rows[:5]} == SHIFTED and {r[2] for r in rows[:5]} == {"significant"}
    assert [float(r[1]) for r in rows] == sorted((float(r[1]) for r in rows), reverse=True)

    # The distribution plot starts on the most drifted metric: both windows, overlaid.
    chart = page.locator(".st-key-drift_distribution_chart")
    before = figure_of(chart)
    assert f">{rows[0][0]}: distribution in both windows<" in before["title"]  # Streamlit's theme bolds titles
    assert [t["type"] for t in before["traces"]] == ["bar", "bar"]
    assert before["traces"][0]["name"].startswith("training (") and before["traces"][1]["name"] == "last 7 days"
    assert before["y"] == "share of values"

    # Choosing a feature redraws it.
    chosen = "humidity_day_mean"
    page.locator(".st-key-drift_variable [role='combobox']").click()
    page.keyboard.type(chosen)
    H.after_rerun(page, page.get_by_role("option", name=re.compile(rf"^{chosen}$")).click)
    after = figure_of(chart)
    assert f">{chosen}: distribution in both windows<" in after["title"] and after["x"] == f"{chosen} (%)"
    assert after["traces"][0]["x"] != before["traces"][0]["x"]
    assert sum(after["traces"][0]["y"]) == pytest.approx(1.0, abs=1e-3)

    # Drift over time: the five most drifted metrics, one line each, with the moderate and significant lines.
    over_time = figure_of(page.locator(".st-key-drift_over_time_chart"))
    assert [t["name"] for t in over_time["traces"]] == [r[0] for r in rows[:5]]
    assert sorted(over_time["lines"]) == [C.PSI_MODERATE, C.PSI_SIGNIFICANT]
    assert over_time["x"] == "day (UTC)" and over_time["y"] == "PSI"
    top = over_time["traces"][0]
    assert max(top["y"]) > C.PSI_SIGNIFICANT > min(top["y"]), top["y"]
