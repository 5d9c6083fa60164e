"""Compare: "score both on the same window" in a real browser, against the real server's files and telemetry.

The suite's versions all hold the same trained model (promoted again with other stored figures): scored on one
window their figures are identical, whatever their stored figures say. The restore dialog then shows those figures.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from core import constants as C
from tests.e2e import harness as H

pytestmark = pytest.mark.e2e


def test_score_both_on_the_same_window_then_see_it_in_the_restore_dialog(shared_server: H.Server, page) -> None:
    world = shared_server.world
    with world.ops() as ops:
        live = ops.current()
        baseline = ops.compare().b.version  # the page's default B: the live version's predecessor
        expected = ops.compare_same_data(live.version, baseline)  # computed here, in another process
        stored = ops.compare(live.version, baseline)
        backup = next(s for s in ops.backups() if s.version == baseline)
    assert any(m.difference for m in stored.metrics.values()), "the stored figures differ"

    H.open_app(page, shared_server.base)
    H.open_page(page, "Compare")
    main = page.locator('[data-testid="stMain"]')
    expect(main).to_contain_text("Scored on the same window")
    expect(main).not_to_contain_text("different windows")  # every version was trained on the same split
    button = page.locator(".st-key-cmp_same_data button")
    expect(button).to_have_accessible_name("Score both on the same window")
    H.after_rerun(page, button.click)

    window = expected.window
    expect(main).to_contain_text(
        f"Window {window.start:%Y-%m-%d} to {window.end:%Y-%m-%d} ({window.days} days) · "
        f"{expected.sample_count:,} samples ({expected.positives:,} with a recorded failure within 7 days"
    )
    table = H.dataframe_with_column(page, f"A · v{live.version} (live)")  # the stored figures' header has no "(live)"
    expect(table.locator("tbody tr")).to_have_count(len(C.PERFORMANCE_METRICS))
    cells = H.dataframe_cells(table)
    assert cells["header"] == [
        "metric",
        f"A · v{live.version} (live)",
        f"B · v{baseline} (backup {expected.b.ref.backup_timestamp})",
        "difference (A−B)",
        "A vs B",
    ]
    shown = {row[0]: row for row in cells["rows"]}
    for name in C.PERFORMANCE_METRICS:
        a, b = float(shown[name][1]), float(shown[name][2])
        assert a == pytest.approx(expected.a.metrics[name], abs=5e-5) and a == b  # one model: identical figures
        assert float(shown[name][3]) == 0 and shown[name][4] == "= same"
    assert expected.a.metrics == expected.b.metrics

    # A rerun of the page (another widget) keeps the figures and serves them from the cache.
    H.after_rerun(page, page.locator(".st-key-cmp_only_diff label").click)
    expect(main).to_contain_text("from the cache (same files, same telemetry)")

    # The restore dialog of the baseline's backup shows the same-data figures already computed for this pair.
    H.open_page(page, "Backups")
    H.select_backup(page, backup.timestamp)
    page.locator(".st-key-bk_restore button").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Scored on the same window")
    expect(dialog).to_contain_text(re.compile(rf"{expected.sample_count:,} samples"))
    in_dialog = dialog.locator('[data-testid="stDataFrame"]').filter(has=page.locator("th", has_text="A vs B"))
    expect(in_dialog.locator("tbody tr")).to_have_count(len(C.PERFORMANCE_METRICS))
    rows = {r[0]: r for r in H.dataframe_cells(in_dialog)["rows"]}
    assert all(rows[n][4] == "= same" for n in C.PERFORMANCE_METRICS)
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    with world.ops() as ops:
        assert ops.current().version == live.version  # looking restored nothing
