"""Clean-up on Backups: the preview lists what would go, and confirming removes exactly that."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e import harness as H

pytestmark = pytest.mark.e2e

KEEP = 1
REASON = "e2e: the disk is nearly full"


def test_cleanup_preview_then_removes_exactly_that(server: H.Server, page) -> None:
    with server.world.registry() as registry:
        current = registry.current().version
        before = registry.backups()
        planned = [s.timestamp for s in registry.cleanup_plan(KEEP)]
    assert len(before) > KEEP and planned == [s.timestamp for s in before[KEEP:]]

    H.open_app(page, server.base)
    H.open_page(page, "Backups")
    main = page.locator('[data-testid="stMain"]')
    expect(main).to_contain_text(f"Nothing to remove: there are {len(before)} backup sets, keeping 10.")

    keep = page.locator(".st-key-bk_keep input")
    keep.fill(str(KEEP))
    H.after_rerun(page, lambda: keep.press("Enter"))
    expect(main).to_contain_text(f"Keeping the newest {KEEP} would remove {len(planned)} sets")
    expect(main).to_contain_text(f"from {planned[0]} back to {planned[-1]}.")

    page.locator(".st-key-bk_cleanup button").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Keep the newest {KEEP} backup sets and remove these {len(planned)}:")
    listed = dialog.locator('[data-testid="stCode"]').inner_text().split()
    assert listed == planned

    # The reason is required: without one the dialog stays open, says so and removes nothing.
    remove = dialog.get_by_role("button", name=f"Remove {len(planned)} backup sets")
    remove.click()
    expect(dialog.locator('[data-testid="stAlert"]')).to_contain_text("reason")
    with server.world.registry() as registry:
        assert [s.timestamp for s in registry.backups()] == [s.timestamp for s in before]

    dialog.locator(".st-key-bk_cleanup_reason input").fill(REASON)
    remove.click()
    expect(dialog).to_have_count(0)
    expect(main).to_contain_text(f"Removed {len(planned)} backup set(s)")
    expect(main).to_contain_text(f"kept the newest {KEEP}.")
    expect(
        page.locator('[data-testid="stMetric"]').filter(has_text="Backup sets").locator('[data-testid="stMetricValue"]')
    ).to_have_text(str(KEEP))
    expect(page.locator(".st-key-bk_table tbody tr")).to_have_count(KEEP)

    with server.world.registry() as registry:
        after = registry.backups()
        event = registry.history.events(kinds=["cleanup"], limit=1)[0]
        assert registry.current().version == current
    assert [s.timestamp for s in after] == [s.timestamp for s in before[:KEEP]]
    assert {s.timestamp for s in before} - {s.timestamp for s in after} == set(planned)
    assert not any(f.exists() for s in before[KEEP:] for f in s.files.values())
    assert (event.actor, event.reason, event.details["keep"], sorted(event.details["removed"])) == (
        H.LOCAL_ACTOR,
        REASON,
        KEEP,
        sorted(planned),
    )
